"""Hot reload: a changed configuration applies without a restart, a broken one is refused, and
live connections a new configuration no longer admits are closed (reload.existing_connections:
reevaluate, the default). One proxy of its own (these tests rewrite its configuration), in
front of the session's Apache Kafka broker.
"""

from __future__ import annotations

import shutil
import signal
import socket
import ssl
import time

import pytest

from clients import driver, unique
from conftest import POOLS_YAML, _PROCESSES, proxy_config
from harness import (KAFKA_NODE_ID, AuditLog, Process, broker_port_base, free_port,
                     is_closed_by_peer, open_kafka_connection, raw_tls_attempt, reason_of, run_cli,
                     status_of)

PAYMENTS_ONLY = POOLS_YAML.split("      - id: pool-acme-all")[0]
WATCH_MS = 200


class Reloadable:
    def __init__(self, workdir, pki, upstream, proxy_bin, ca_fields: str = ""):
        self.workdir = workdir
        self.pki = pki
        self.upstream = upstream
        self.port = free_port()
        self.first_port = broker_port_base(KAFKA_NODE_ID)
        # Its own copies of the server certificate and key: a test rotates them.
        shutil.copy(pki / "server.pem", workdir / "server.pem")
        shutil.copy(pki / "server.key", workdir / "server.key")
        self.config = workdir / "proxy.yaml"
        self.audit = AuditLog(workdir / "audit.log")
        self.write(POOLS_YAML, ca_fields=ca_fields)
        self.log = workdir / "proxy.log"
        self.process = Process("proxy-reload", [proxy_bin, "run", "--config", self.config],
                               self.log, cwd=workdir, env={"NO_COLOR": "1", "RUST_LOG": None})

    def write(self, pools_yaml: str, extra: str = "", ca_fields: str = "") -> None:
        """Write the configuration atomically; `ca_fields`: extra keys on the CA."""
        text = proxy_config(bootstrap_port=self.port, first_port=self.first_port, pki=self.pki,
                            upstream_bootstrap=self.upstream, audit_path=self.audit.path,
                            pools_yaml=pools_yaml)
        anchor = f"certificate_chain: {self.pki / 'acme-internal-client-ca.pem'}\n"
        text = text.replace(anchor, anchor + "".join(
            f"    {line}\n" for line in ca_fields.strip().splitlines()))
        text = text.replace(str(self.pki / "server.pem"), str(self.workdir / "server.pem"))
        text = text.replace(str(self.pki / "server.key"), str(self.workdir / "server.key"))
        text += f"reload:\n  watch_interval_ms: {WATCH_MS}\n" + extra
        tmp = self.config.with_suffix(".tmp")
        tmp.write_text(text)
        tmp.replace(self.config)  # atomic, as operators (and Kubernetes) do

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def wait_for_log(self, needle: str, count: int = 1, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.log_text().count(needle) >= count:
                return
            time.sleep(0.05)
        raise AssertionError(f"`{needle}` x{count} not in the proxy log:\n{self.log_text()[-3000:]}")

    @property
    def bootstrap(self) -> str:
        return f"localhost:{self.port}"


@pytest.fixture
def reloadable(proxy_bin, pki, kafka, tmp_path):
    r = Reloadable(tmp_path, pki, kafka.bootstrap(), proxy_bin)
    _PROCESSES["proxy-reload"] = r.process
    try:
        r.process.wait_for_port("127.0.0.1", r.port, timeout=30)
        yield r
    finally:
        r.process.stop()
        _PROCESSES.pop("proxy-reload", None)






def test_a_broken_configuration_is_refused_and_the_old_pools_keep_working(kafka, reloadable, client_tls):
    r = reloadable
    r.write(POOLS_YAML.replace("""'O == "Acme Inc"'""", "'O =='"))
    r.process.proc.send_signal(signal.SIGHUP)
    r.wait_for_log("reload refused, previous configuration kept")
    assert "pool-acme-all" in r.log_text()  # the error names the pool
    # Still the old pools: acme-analytics (pool-acme-all only) is admitted and works.
    view = driver("kafka-python", r.bootstrap, client_tls("acme-analytics")).cluster()
    assert view.cluster_id == kafka.cluster_id


def test_a_removed_pool_closes_its_live_connection_and_refuses_new_ones(reloadable, client_tls):
    r = reloadable
    analytics = open_kafka_connection(r.port, client_tls("acme-analytics"))  # pool-acme-all only
    payments = open_kafka_connection(r.port, client_tls("acme-client"))      # also pool-payments
    before = len(r.audit.records())

    r.write(PAYMENTS_ONLY)  # the file watch picks it up
    r.wait_for_log("configuration reloaded")

    assert is_closed_by_peer(analytics, timeout=5), "the connection of a removed pool stayed open"
    assert not is_closed_by_peer(payments, timeout=1), "a still-admitted connection was dropped"
    refused = [rec for rec in r.audit.records()[before:] if status_of(rec) == "UNAUTHENTICATED"]
    assert [reason_of(rec) for rec in refused] == ["no_pool_matched"], refused
    assert "re-evaluated after a configuration reload" in refused[0]["data"]["result"]["message"]

    attempt = raw_tls_attempt("127.0.0.1", r.port, client_tls("acme-analytics"))
    assert not attempt.kafka_ok and attempt.error is not None, "a removed pool still admits"
    # acme-client still produces through the proxy.
    client = driver("kafka-python", r.bootstrap, client_tls("acme-client"))
    topic = unique("after-reload")
    client.create_topic(topic)
    client.produce(topic, [(b"k", b"still admitted")])
    payments.close()


def served_serial(r: Reloadable, server_ca) -> str:
    """Connect as acme-client, verifying the proxy against `server_ca`; the served serial."""
    ctx = ssl.create_default_context(cafile=str(server_ca))
    ctx.load_cert_chain(str(r.pki / "acme-client.pem"), str(r.pki / "acme-client.key"))
    with socket.create_connection(("127.0.0.1", r.port), timeout=10) as sock:
        with ctx.wrap_socket(sock, server_hostname="localhost") as conn:
            return conn.getpeercert()["serialNumber"]


def test_a_server_certificate_rotated_on_disk_is_served_to_the_next_client(
        reloadable, tmp_path_factory):
    r = reloadable
    old = served_serial(r, r.pki / "server-ca.pem")
    fresh = tmp_path_factory.mktemp("rotated")
    assert run_cli("pki", "--out", str(fresh), "--password", "x").returncode == 0
    # Key first, then certificate, each moved into place: between the two the pair does not
    # match, that reload is refused, and the next change completes the rotation.
    shutil.copy(fresh / "server.key", r.workdir / "server.key.new")
    shutil.copy(fresh / "server.pem", r.workdir / "server.pem.new")
    (r.workdir / "server.key.new").replace(r.workdir / "server.key")
    (r.workdir / "server.pem.new").replace(r.workdir / "server.pem")
    r.wait_for_log("configuration reloaded")

    # The new certificate chains only to the new PKI's server CA.
    new = served_serial(r, fresh / "server-ca.pem")
    assert new != old, "the rotated certificate is not served"
