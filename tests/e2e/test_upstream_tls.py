"""TLS to the upstream brokers: CA verification and the proxy's own client certificate.

tansu 0.6.0 cannot serve TLS itself (its CLI refuses `--cert` together with `--key`), so a TLS
terminator runs in this test process in front of a real tansu: it serves `broker.pem` (issued by
the dev server CA), REQUIRES a client certificate from that CA — the proxy's
`proxy-upstream-client.pem` — and forwards the bytes to tansu, which advertises the terminator's
address. Real clients then go client → proxy (mTLS) → terminator (TLS, proxy's cert) → tansu.
"""

from __future__ import annotations

import pytest

from clients import LIBRARIES, driver, unique
from conftest import _PROCESSES, proxy_config
from harness import TANSU_NODE_ID, Process, TlsTerminator, broker_port_base, free_port


@pytest.fixture(scope="module")
def tls_upstream(tansu_bin, proxy_bin, pki, tmp_path_factory):
    """tansu behind a TLS terminator, and a proxy configured for a TLS upstream."""
    workdir = tmp_path_factory.mktemp("tls-upstream")
    tansu_port = free_port()
    # Started first so tansu can advertise its address.
    terminator = TlsTerminator(pki, tansu_port)
    tansu = Process("tansu-tls", [tansu_bin, "broker",
                                  "--listener-url", f"tcp://127.0.0.1:{tansu_port}",
                                  "--advertised-listener-url", f"tcp://localhost:{terminator.port}",
                                  "--storage-engine", "memory://tansu/"],
                    workdir / "tansu.log", cwd=workdir)
    _PROCESSES["tansu-tls"] = tansu
    proxy = None
    try:
        tansu.wait_for_port("127.0.0.1", tansu_port, timeout=30)
        terminator.start()
        bootstrap_port = free_port()
        first_port = broker_port_base(TANSU_NODE_ID)
        config = workdir / "proxy.yaml"
        config.write_text(proxy_config(
            bootstrap_port=bootstrap_port, first_port=first_port, pki=pki, tansu_port=tansu_port,
            audit_path=workdir / "audit.log", upstream_bootstrap=f"localhost:{terminator.port}",
            upstream_yaml=f"""
tls:
  ca: {pki / "server-ca.pem"}
  certificate_chain: {pki / "proxy-upstream-client.pem"}
  private_key: {pki / "proxy-upstream-client.key"}
"""))
        proxy = Process("proxy-tls-upstream", [proxy_bin, "run", "--config", config],
                        workdir / "proxy.log", cwd=workdir, env={"NO_COLOR": "1", "RUST_LOG": None})
        _PROCESSES["proxy-tls-upstream"] = proxy
        proxy.wait_for_port("127.0.0.1", bootstrap_port, timeout=30)
        yield {"bootstrap": f"localhost:{bootstrap_port}", "terminator": terminator,
               "broker_port": first_port + TANSU_NODE_ID, "tansu_port": tansu_port}
    finally:
        if proxy is not None:
            proxy.stop()
            _PROCESSES.pop("proxy-tls-upstream", None)
        terminator.stop()
        tansu.stop()
        _PROCESSES.pop("tansu-tls", None)


@pytest.mark.parametrize("library", LIBRARIES)
def test_tls_upstream_with_the_proxys_client_certificate_carries_real_traffic(
        library, tls_upstream, client_tls):
    client = driver(library, tls_upstream["bootstrap"], client_tls("acme-client"))
    topic = unique("tls-upstream")
    client.create_topic(topic)
    records = [(b"k", b"over TLS both ways"), (None, bytes(range(256)))]
    client.produce(topic, records)
    assert [(k, v) for _, k, v in client.consume(topic, len(records))] == records

    view = client.cluster()
    assert view.brokers == [(111, "localhost", tls_upstream["broker_port"])], view.brokers
    # Every upstream connection was TLS and presented the proxy's own certificate.
    subjects = tls_upstream["terminator"].peer_subjects
    assert subjects, "the proxy never connected through the TLS terminator"
    assert all("commonName=kafka-mtls-proxy" in s for s in subjects), subjects
