"""PROXY protocol v2 from a real HAProxy (TCP mode, `send-proxy-v2`) in front of the proxy.

Clients dial `localhost` (127.0.0.1), where HAProxy listens on the proxy's bootstrap and broker
ports; the proxy itself listens on 127.0.0.2 with `listener.proxy_protocol.trusted_sources:
[127.0.0.1/32]` (HAProxy's source). The audit record of a client that came through HAProxy
names the client's own address, and HAProxy's connection (a different port) as `viaAddress`.
A header forged by a source outside the trusted range is refused before TLS and counted.

Needs /usr/sbin/haproxy (scripts/test installs the Debian package); skipped with that reason
when it is absent.
"""

from __future__ import annotations

import shutil
import socket
import struct
import textwrap
import urllib.request
from pathlib import Path

import pytest

from clients import driver, unique
from conftest import proxy_config
from harness import (
    KAFKA_NODE_ID,
    AuditLog,
    LogSince,
    Process,
    api_versions_v0_request,
    by_client_address,
    free_port,
    recv_exact,
    ssl_context,
    status_of,
)

HAPROXY = shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists()
                                      else None)
pytestmark = pytest.mark.skipif(
    HAPROXY is None, reason="haproxy is not installed (scripts/test installs it with apt-get)")

PROXY_IP = "127.0.0.2"
UNTRUSTED_IP = "127.0.0.3"


class Setup:
    def __init__(self, workdir: Path, ports: list[int], admin_port: int, proxy: Process,
                 haproxy: Process, audit: AuditLog):
        self.workdir = workdir
        self.bootstrap_port, self.broker_port = ports
        self.admin_port = admin_port
        self.proxy = proxy
        self.haproxy = haproxy
        self.audit = audit

    @property
    def bootstrap(self) -> str:
        return f"localhost:{self.bootstrap_port}"

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.admin_port}/metrics",
                                    timeout=10) as r:
            return r.read().decode()


def free_port_pair() -> tuple[int, int]:
    """A bootstrap port and a first broker port whose node-KAFKA_NODE_ID port is free too."""
    bootstrap = free_port()
    broker = free_port()
    return bootstrap, broker - KAFKA_NODE_ID


@pytest.fixture(scope="module")
def behind_haproxy(proxy_bin, pki, kafka, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("proxy-protocol")
    bootstrap_port, first_port = free_port_pair()
    broker_port = first_port + KAFKA_NODE_ID
    admin_port = free_port()
    audit_path = workdir / "audit.log"
    config = proxy_config(bootstrap_port=bootstrap_port, first_port=first_port, pki=pki,
                          upstream_bootstrap=kafka.bootstrap(), audit_path=audit_path)
    # The proxy on 127.0.0.2, advertising `localhost`: HAProxy's address, same ports.
    config = config.replace(
        f"  bootstrap: 127.0.0.1:{bootstrap_port}\n",
        f"  bootstrap: {PROXY_IP}:{bootstrap_port}\n"
        f"  broker_bind_address: {PROXY_IP}\n"
        "  proxy_protocol:\n"
        "    trusted_sources: [127.0.0.1/32]\n",
    ) + f"admin:\n  listen: 127.0.0.1:{admin_port}\n"
    assert "proxy_protocol" in config
    config_path = workdir / "proxy.yaml"
    config_path.write_text(config)
    proxy = Process("proxy-pp", [proxy_bin, "run", "--config", config_path],
                    workdir / "proxy.log", cwd=workdir, env={"NO_COLOR": "1", "RUST_LOG": None})
    haproxy_cfg = workdir / "haproxy.cfg"
    haproxy_cfg.write_text(textwrap.dedent(f"""\
        defaults
            mode tcp
            timeout connect 5s
            timeout client 60s
            timeout server 60s

        frontend kafka_bootstrap
            bind 127.0.0.1:{bootstrap_port}
            default_backend proxy_bootstrap

        backend proxy_bootstrap
            server proxy {PROXY_IP}:{bootstrap_port} send-proxy-v2

        frontend kafka_broker
            bind 127.0.0.1:{broker_port}
            default_backend proxy_broker

        backend proxy_broker
            server proxy {PROXY_IP}:{broker_port} send-proxy-v2
        """))
    haproxy = Process("haproxy", [HAPROXY, "-db", "-f", haproxy_cfg], workdir / "haproxy.log",
                      cwd=workdir)
    try:
        proxy.wait_for_port(PROXY_IP, bootstrap_port, timeout=30)
        haproxy.wait_for_port("127.0.0.1", bootstrap_port, timeout=30)
        yield Setup(workdir, [bootstrap_port, broker_port], admin_port, proxy, haproxy,
                    AuditLog(audit_path))
    finally:
        haproxy.stop()
        code = proxy.stop()
        assert code in (0, -15, None), f"proxy exited with {code}\n{proxy.log_tail()}"


def tls_round_trip(sock: socket.socket, client_tls) -> None:
    """TLS as acme-client and one ApiVersions round trip on `sock`."""
    conn = ssl_context(client_tls("acme-client")).wrap_socket(sock, server_hostname="localhost")
    try:
        conn.sendall(api_versions_v0_request(3))
        size = struct.unpack(">i", recv_exact(conn, 4))[0]
        assert struct.unpack(">i", recv_exact(conn, size)[:4])[0] == 3
    finally:
        conn.close()


def test_a_producer_through_haproxy_is_audited_with_its_own_address(behind_haproxy,
                                                                    client_tls):
    setup = behind_haproxy
    tls = client_tls("acme-client")
    topic = unique("via-haproxy")
    client = driver("kafka-python", setup.bootstrap, tls)
    client.create_topic(topic)
    mark = setup.audit.mark()
    offsets = client.produce(topic, [(b"k", b"through haproxy")])
    assert offsets == [0]
    assert client.consume(topic, 1) == [(0, b"k", b"through haproxy")]

    # Every connection the client made came through HAProxy, which always sends a header.
    records = setup.audit.since(mark)
    assert records, "no audit record for the producer's connections"
    for r in records:
        data = r["data"]
        assert status_of(r) == "SUCCESS", r
        assert data["clientAddress"].startswith("127.0.0.1:"), data
        assert data["viaAddress"].startswith("127.0.0.1:"), data
        assert data["clientAddress"] != data["viaAddress"], data

    # One connection whose client port the test knows: the audit names exactly it.
    log = LogSince(setup.proxy.log_path)
    sock = socket.create_connection(("127.0.0.1", setup.bootstrap_port), timeout=10)
    local = "%s:%d" % sock.getsockname()[:2]
    tls_round_trip(sock, client_tls)
    (record,) = setup.audit.wait_for(mark, by_client_address(local))
    assert record["data"]["viaAddress"] != local
    # The proxy's log span names the client, and HAProxy as `via`.
    assert log.wait_for(rf"peer={local} listener=bootstrap via=127\.0\.0\.1:\d+")


def test_a_forged_header_from_an_untrusted_source_is_refused(behind_haproxy, client_tls):
    setup = behind_haproxy
    mark = setup.audit.mark()
    log = LogSince(setup.proxy.log_path)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.bind((UNTRUSTED_IP, 0))
    sock.connect((PROXY_IP, setup.bootstrap_port))
    forger = "%s:%d" % sock.getsockname()[:2]
    forged = (b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c" + socket.inet_aton("192.0.2.7")
              + socket.inet_aton(PROXY_IP) + struct.pack(">HH", 51234, setup.bootstrap_port))
    sock.sendall(forged)
    try:
        assert sock.recv(1) == b"", "the proxy answered a forged header"
    except ConnectionResetError:
        pass
    finally:
        sock.close()
    assert log.wait_for(
        rf"peer={forger}\}}: .*connection refused before the TLS handshake "
        r"reason=sent a PROXY protocol header from a source not in "
        r"listener.proxy_protocol.trusted_sources")
    metrics = setup.metrics()
    assert ('kafka_mtls_proxy_proxy_protocol_refusals_total{reason="untrusted_header"} 1'
            in metrics), metrics
    assert not any("192.0.2.7" in str(r) for r in setup.audit.since(mark))

    # The same source without a header is a direct client, audited as itself.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(10)
    sock.bind((UNTRUSTED_IP, 0))
    sock.connect((PROXY_IP, setup.bootstrap_port))
    direct = "%s:%d" % sock.getsockname()[:2]
    tls_round_trip(sock, client_tls)
    (record,) = setup.audit.wait_for(mark, by_client_address(direct))
    assert "viaAddress" not in record["data"], record
    # (ssl.SSLError or a reset: both are OSErrors.)
    with pytest.raises(OSError):
        # Not through HAProxy from HAProxy's own address: no header, refused before TLS.
        sock = socket.create_connection((PROXY_IP, setup.bootstrap_port), timeout=10)
        tls_round_trip(sock, client_tls)
