"""TLS to the upstream brokers: CA verification and the proxy's own client certificate.

The session broker's SSL listener serves `broker.pem` (issued by the dev server CA) and
REQUIRES a client certificate from that CA, whose only client certificate is the proxy's
`proxy-upstream-client.pem`; the broker maps its CN to `User:kafka-mtls-proxy`
(`ssl.principal.mapping.rules`). The broker's own ACLs then decide what that principal may do:
here, only topics with the prefix `tls-upstream-`. So a topic under the prefix works end to end
and one outside it is refused **by the broker**, which proves that every upstream connection was
TLS and presented the proxy's certificate. (Combined with SASL: test_upstream_scram.py and
test_upstream_oauthbearer.py, over SASL_SSL.)
"""

from __future__ import annotations

import pytest

from clients import LIBRARIES, driver, unique
from conftest import _PROCESSES, proxy_config
from harness import KAFKA_NODE_ID, Process, broker_port_base, free_port, raw_tls_attempt

PREFIX = "tls-upstream-"


@pytest.fixture(scope="module")
def tls_upstream(kafka, proxy_bin, pki, tmp_path_factory):
    """A proxy whose upstream is the broker's SSL listener, with the proxy's certificate."""
    principal = "User:kafka-mtls-proxy"
    # Topics under the prefix; any group (the libraries name their own).
    acls = [("--allow-principal", principal, "--operation", "All", "--resource-pattern-type",
             "prefixed", "--topic", PREFIX),
            ("--allow-principal", principal, "--operation", "All", "--group", "*")]
    for acl in acls:
        kafka.acls("--add", *acl)
    workdir = tmp_path_factory.mktemp("tls-upstream")
    bootstrap_port = free_port()
    first_port = broker_port_base(KAFKA_NODE_ID)
    config = workdir / "proxy.yaml"
    config.write_text(proxy_config(
        bootstrap_port=bootstrap_port, first_port=first_port, pki=pki,
        audit_path=workdir / "audit.log", upstream_bootstrap=kafka.bootstrap("SSL"),
        upstream_yaml=f"""
tls:
  ca: {pki / "server-ca.pem"}
  certificate_chain: {pki / "proxy-upstream-client.pem"}
  private_key: {pki / "proxy-upstream-client.key"}
"""))
    proxy = Process("proxy-tls-upstream", [proxy_bin, "run", "--config", config],
                    workdir / "proxy.log", cwd=workdir, env={"NO_COLOR": "1", "RUST_LOG": None})
    _PROCESSES["proxy-tls-upstream"] = proxy
    try:
        proxy.wait_for_port("127.0.0.1", bootstrap_port, timeout=30)
        yield {"bootstrap": f"localhost:{bootstrap_port}", "broker_port": first_port + KAFKA_NODE_ID,
               "log": workdir / "proxy.log"}
    finally:
        proxy.stop()
        _PROCESSES.pop("proxy-tls-upstream", None)
        for acl in acls:
            kafka.acls("--remove", "--force", *acl)


@pytest.mark.parametrize("library", LIBRARIES)
def test_tls_upstream_with_the_proxys_client_certificate_carries_real_traffic(
        library, tls_upstream, client_tls, kafka):
    client = driver(library, tls_upstream["bootstrap"], client_tls("acme-client"))
    topic = unique(PREFIX + library)
    client.create_topic(topic)
    records = [(b"k", b"over TLS both ways"), (None, bytes(range(256)))]
    client.produce(topic, records)
    assert [(k, v) for _, k, v in client.consume(topic, len(records))] == records

    view = client.cluster()
    assert view.brokers == [(KAFKA_NODE_ID, "localhost", tls_upstream["broker_port"])], view.brokers
    assert view.cluster_id == kafka.cluster_id


def test_the_broker_identifies_the_proxy_by_its_certificate_and_applies_its_own_acls(
        tls_upstream, client_tls, kafka):
    """Outside the prefix the broker's authorizer refuses `User:kafka-mtls-proxy`: the identity
    the broker saw is the proxy's certificate, not ANONYMOUS (which may do everything)."""
    client = driver("confluent-kafka", tls_upstream["bootstrap"], client_tls("acme-client"))
    topic = unique("not-" + PREFIX.rstrip("-"))
    with pytest.raises(Exception) as refused:
        client.create_topic(topic)
    assert "TOPIC_AUTHORIZATION_FAILED" in str(refused.value) or \
        "authoriz" in str(refused.value).lower(), refused.value
    listed = kafka.tool("kafka-topics.sh", "--list").stdout.split()
    assert topic not in listed, f"the broker created {topic} although its ACLs refuse it"


def test_a_proxy_without_its_client_certificate_is_refused_by_the_broker(
        kafka, proxy_bin, pki, client_tls, tmp_path):
    """The SSL listener requires a client certificate: a proxy configured without one gets
    no Kafka answer through it (the broker ends the TLS handshake), and says so in its log."""
    bootstrap_port = free_port()
    config = tmp_path / "proxy.yaml"
    config.write_text(proxy_config(
        bootstrap_port=bootstrap_port, first_port=broker_port_base(KAFKA_NODE_ID), pki=pki,
        audit_path=tmp_path / "audit.log", upstream_bootstrap=kafka.bootstrap("SSL"),
        upstream_yaml=f"""
tls:
  ca: {pki / "server-ca.pem"}
"""))
    proxy = Process("proxy-tls-no-cert", [proxy_bin, "run", "--config", config],
                    tmp_path / "proxy.log", cwd=tmp_path, env={"NO_COLOR": "1", "RUST_LOG": None})
    _PROCESSES["proxy-tls-no-cert"] = proxy
    try:
        proxy.wait_for_port("127.0.0.1", bootstrap_port, timeout=30)
        attempt = raw_tls_attempt("127.0.0.1", bootstrap_port, client_tls("acme-client"))
        assert attempt.handshake_ok, attempt.error
        assert not attempt.kafka_ok, "a broker that requires a client certificate answered"
        log = (tmp_path / "proxy.log").read_text()
        assert "upstream" in log and ("certificate" in log.lower() or "tls" in log.lower()), \
            log[-3000:]
    finally:
        proxy.stop()
        _PROCESSES.pop("proxy-tls-no-cert", None)
