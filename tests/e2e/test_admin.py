"""The admin port with real clients: health, readiness, and metrics that move as clients act."""

from __future__ import annotations

import json
import ssl
import time
import urllib.error
import urllib.request

import pytest

from clients import driver
from conftest import _PROCESSES, proxy_config
from harness import (KAFKA_NODE_ID, Process, broker_port_base, free_port, metric,
                     open_kafka_connection, raw_tls_attempt)


@pytest.fixture(scope="module")
def admin_proxy(proxy_bin, pki, kafka, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("admin")
    port, admin_port = free_port(), free_port()
    config = workdir / "proxy.yaml"
    config.write_text(proxy_config(bootstrap_port=port, first_port=broker_port_base(KAFKA_NODE_ID),
                                   pki=pki, upstream_bootstrap=kafka.bootstrap(),
                                   audit_path=workdir / "audit.log")
                      + f"admin:\n  listen: 127.0.0.1:{admin_port}\n")
    proc = Process("proxy-admin", [proxy_bin, "run", "--config", config], workdir / "proxy.log",
                   cwd=workdir, env={"NO_COLOR": "1", "RUST_LOG": None})
    _PROCESSES["proxy-admin"] = proc
    try:
        proc.wait_for_port("127.0.0.1", port, timeout=30)
        proc.wait_for_port("127.0.0.1", admin_port, timeout=30)
        yield {"bootstrap": f"localhost:{port}", "port": port,
               "admin": f"http://127.0.0.1:{admin_port}"}
    finally:
        proc.stop()
        _PROCESSES.pop("proxy-admin", None)


def get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_health_and_readiness_with_a_reachable_broker(admin_proxy):
    assert get(admin_proxy["admin"] + "/healthz") == (200, "ok\n")
    status, body = get(admin_proxy["admin"] + "/readyz")
    assert status == 200, body
    assert json.loads(body)["status"] == "ready"


def test_metrics_count_handshakes_pools_requests_and_bytes(kafka, admin_proxy, client_tls):
    url = admin_proxy["admin"] + "/metrics"
    before = get(url)[1]

    view = driver("kafka-python", admin_proxy["bootstrap"], client_tls("acme-client")).cluster()
    assert view.cluster_id == kafka.cluster_id
    refused = raw_tls_attempt("127.0.0.1", admin_proxy["port"], client_tls("outsider"))
    assert refused.error is not None

    after = get(url)[1]
    def delta(name, **labels):
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert delta("kafka_mtls_proxy_handshakes_total", result="success") >= 1
    assert delta("kafka_mtls_proxy_handshakes_total", result="refused",
                 reason="no_pool_matched") == 1
    assert delta("kafka_mtls_proxy_pool_matches_total", pool="pool-payments") >= 1
    assert delta("kafka_mtls_proxy_pool_matches_total", pool="pool-acme-all") >= 1
    assert delta("kafka_mtls_proxy_requests_total", api_key="Metadata") >= 1
    assert delta("kafka_mtls_proxy_requests_total", api_key="ApiVersions") >= 1
    assert delta("kafka_mtls_proxy_bytes_total", direction="client_to_upstream") > 0
    assert delta("kafka_mtls_proxy_bytes_total", direction="upstream_to_client") > 0
    assert delta("kafka_mtls_proxy_connections_total", listener="bootstrap") >= 2


def not_after(pem) -> float:
    """A certificate file's notAfter, Unix seconds."""
    return ssl.cert_time_to_seconds(ssl._ssl._test_decode_cert(str(pem))["notAfter"])


def test_metrics_show_when_each_certificate_expires(admin_proxy, client_tls, pki):
    url = admin_proxy["admin"] + "/metrics"
    text = get(url)[1]
    name = "kafka_mtls_proxy_certificate_expiry_timestamp_seconds"
    assert metric(text, name, kind="server", subject="CN=localhost") == not_after(pki / "server.pem")
    bundle = metric(text, name, kind="ca", ca="ca-acme")
    assert bundle > time.time(), text

    # The soonest-expiring client certificate of each pool among the live connections.
    live = open_kafka_connection(admin_proxy["port"], client_tls("acme-client"))
    try:
        name = "kafka_mtls_proxy_client_certificate_earliest_expiry_timestamp_seconds"
        deadline = time.monotonic() + 15  # the gauges are brought up to date every 10 s
        while metric(get(url)[1], name, pool="pool-acme-all") == 0 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert metric(get(url)[1], name, pool="pool-acme-all") == not_after(pki / "acme-client.pem")
    finally:
        live.close()


def test_an_idle_proxy_with_an_admin_server_stops_at_once_on_sigterm(proxy_bin, pki, kafka,
                                                                      tmp_path_factory):
    """Nothing in flight, so nothing to drain: SIGTERM ends the process promptly (a task that
    kept the audit sink alive once made every stop wait out the audit writer's 5 s)."""
    import signal
    import time

    workdir = tmp_path_factory.mktemp("admin-stop")
    port, admin_port = free_port(), free_port()
    config = workdir / "proxy.yaml"
    config.write_text(proxy_config(bootstrap_port=port, first_port=broker_port_base(KAFKA_NODE_ID),
                                   pki=pki, upstream_bootstrap=kafka.bootstrap(),
                                   audit_path=workdir / "audit.log")
                      + f"admin:\n  listen: 127.0.0.1:{admin_port}\n")
    proc = Process("proxy-admin-stop", [proxy_bin, "run", "--config", config],
                   workdir / "proxy.log", cwd=workdir, env={"NO_COLOR": "1", "RUST_LOG": None})
    try:
        proc.wait_for_port("127.0.0.1", admin_port, timeout=30)
        assert get(f"http://127.0.0.1:{admin_port}/healthz")[0] == 200
        start = time.monotonic()
        proc.proc.send_signal(signal.SIGTERM)
        assert proc.proc.wait(timeout=10) == 0, proc.log_tail()
        assert time.monotonic() - start < 2.5, proc.log_tail()
    finally:
        proc.stop()
