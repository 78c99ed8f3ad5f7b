"""Proxy-side ACLs with real clients against Apache Kafka (whose PLAINTEXT listener lets User:ANONYMOUS do everything, so every refusal here is the proxy's).

One proxy of its own with `authorization.enabled: true`:

* pool-payments (acme-client only): write/create/read on `payments-*` topics, read on
  `payments-*` groups;
* pool-acme-all (acme-client and acme-analytics): read on `analytics-*`, describe on `hr-*`,
  and a DENY of write on `payments-locked-*`;
* global rule: read on the `e2e-unused-*` groups the drivers' consumers name.

So acme-client holds the union of both pools; acme-analytics only pool-acme-all's. Topics are
created through the session's ACL-free proxy, so that they exist whatever the ACL proxy allows.
"""

from __future__ import annotations

import time
import uuid

import pytest

from clients import LIBRARIES, driver
from conftest import _PROCESSES, proxy_config
from harness import KAFKA_NODE_ID, AuditLog, Process, broker_port_base, free_port

RUN = uuid.uuid4().hex[:8]
PAYMENTS = f"payments-eu-{RUN}"
LOCKED = f"payments-locked-{RUN}"
HR = f"hr-{RUN}"
ANALYTICS = f"analytics-{RUN}"
SECRET = f"secret-{RUN}"

ACL_POOLS_YAML = """\
      - id: pool-payments
        display_name: Payments
        external_identifier: CN
        filter: 'CN == "acme-client" && OU == "payments"'
        acls:
          - {operations: [write, create, read], resource_type: topic, pattern_type: prefixed, resource_name: payments-}
          - {operations: [read], resource_type: group, pattern_type: prefixed, resource_name: payments-}
      - id: pool-acme-all
        display_name: All Acme clients
        external_identifier: SHA1
        filter: 'O == "Acme Inc"'
        acls:
          - {operations: [read], resource_type: topic, pattern_type: prefixed, resource_name: analytics-}
          - {operations: [describe], resource_type: topic, pattern_type: prefixed, resource_name: hr-}
          - {permission: deny, operations: [write], resource_type: topic, pattern_type: prefixed, resource_name: payments-locked-}
authorization:
  enabled: true
  rules:
    - {operations: [read], resource_type: group, pattern_type: prefixed, resource_name: e2e-unused-}
"""


@pytest.fixture(scope="module")
def acl_proxy(proxy_bin, pki, kafka, proxy, client_tls, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("acl")
    # The topics exist before the ACL proxy sees them (created through the ACL-free proxy).
    admin = driver("kafka-python", proxy.bootstrap, client_tls("acme-client"))
    for topic in (PAYMENTS, LOCKED, HR, ANALYTICS, SECRET):
        admin.create_topic(topic)
    admin.produce(ANALYTICS, [(b"a", b"analytics record")])
    bootstrap_port = free_port()
    audit_path = workdir / "audit.log"
    config = workdir / "proxy.yaml"
    config.write_text(proxy_config(
        bootstrap_port=bootstrap_port, first_port=broker_port_base(KAFKA_NODE_ID), pki=pki,
        upstream_bootstrap=kafka.bootstrap(), audit_path=audit_path, pools_yaml=ACL_POOLS_YAML))
    check = Process("check-acl", [proxy_bin, "check-config", "--config", config],
                    workdir / "check.log", cwd=workdir)
    assert check.proc.wait(timeout=30) == 0, check.log_tail()
    proc = Process("proxy-acl", [proxy_bin, "run", "--config", config], workdir / "proxy.log",
                   cwd=workdir, env={"NO_COLOR": "1", "RUST_LOG": None})
    _PROCESSES["proxy-acl"] = proc
    try:
        proc.wait_for_port("127.0.0.1", bootstrap_port, timeout=30)
        yield {"bootstrap": f"localhost:{bootstrap_port}", "audit": AuditLog(audit_path),
               "log": workdir / "proxy.log", "config": config, "process": proc}
    finally:
        _PROCESSES.pop("proxy-acl", None)
        proc.stop()


def _normalized(error: BaseException) -> str:
    return str(error).upper().replace("_", "").replace(" ", "") + type(error).__name__.upper()


def _refused(action, code: str) -> str:
    """Run `action`; it must fail with the Kafka error `code` (e.g. TOPIC_AUTHORIZATION_FAILED)
    as the client library reports it."""
    with pytest.raises(Exception) as caught:
        action()
    text = _normalized(caught.value)
    assert code.replace("_", "") in text, repr(caught.value)
    return text


@pytest.mark.parametrize("library", LIBRARIES)
def test_payments_pool_writes_payments_topics_and_is_refused_on_hr(library, acl_proxy,
                                                                     client_tls):
    c = driver(library, acl_proxy["bootstrap"], client_tls("acme-client"))
    offsets = c.produce(PAYMENTS, [(b"k", b"allowed")])
    assert offsets and offsets[0] >= 0
    # hr-* is describable (pool-acme-all) but not writable: Metadata succeeds, and the Produce
    # itself is refused per topic with TOPIC_AUTHORIZATION_FAILED, as a broker refuses it.
    _refused(lambda: c.produce(HR, [(b"k", b"refused")], timeout=15),
             "TOPIC_AUTHORIZATION_FAILED")


@pytest.mark.parametrize("library", LIBRARIES)
def test_listing_shows_only_topics_the_connection_may_describe(library, acl_proxy, proxy,
                                                               client_tls):
    # Through the ACL-free proxy every topic is listed: the filter below is the proxy's doing.
    everything = driver(library, proxy.bootstrap, client_tls("acme-client")).cluster().topics
    assert {PAYMENTS, LOCKED, HR, ANALYTICS, SECRET} <= everything

    client = driver(library, acl_proxy["bootstrap"], client_tls("acme-client")).cluster().topics
    assert {PAYMENTS, LOCKED, HR, ANALYTICS} <= client
    assert SECRET not in client
    assert all(t.startswith(("payments-", "hr-", "analytics-")) for t in client), client

    analytics = driver(library, acl_proxy["bootstrap"],
                       client_tls("acme-analytics")).cluster().topics
    assert {HR, ANALYTICS} <= analytics
    assert not {PAYMENTS, LOCKED, SECRET} & analytics, analytics


@pytest.mark.parametrize("library", LIBRARIES)
def test_two_pools_allows_combine(library, acl_proxy, client_tls):
    # acme-client reads analytics-* only through pool-acme-all, writes payments-* only through
    # pool-payments: one connection, both rights.
    both = driver(library, acl_proxy["bootstrap"], client_tls("acme-client"))
    assert [v for _, _, v in both.consume(ANALYTICS, 1)] == [b"analytics record"]
    both.produce(PAYMENTS, [(None, b"union")])
    # acme-analytics has pool-acme-all alone: reading analytics-* works, writing payments-*
    # does not (it may not even see the topic, so its library reports the topic refused).
    alone = driver(library, acl_proxy["bootstrap"], client_tls("acme-analytics"))
    assert [v for _, _, v in alone.consume(ANALYTICS, 1)] == [b"analytics record"]
    _refused(lambda: alone.produce(PAYMENTS, [(None, b"no")], timeout=15),
             "TOPIC_AUTHORIZATION_FAILED")


@pytest.mark.parametrize("library", LIBRARIES)
def test_a_deny_wins_over_another_pools_allow(library, acl_proxy, client_tls):
    c = driver(library, acl_proxy["bootstrap"], client_tls("acme-client"))
    # pool-payments allows write on payments-*, pool-acme-all denies it on payments-locked-*.
    _refused(lambda: c.produce(LOCKED, [(None, b"locked")], timeout=15),
             "TOPIC_AUTHORIZATION_FAILED")
    # The deny is on write only: the topic is still described (listed).
    assert LOCKED in c.cluster().topics


def test_groups_are_authorized_by_name(acl_proxy, client_tls):
    c = driver("kafka-python", acl_proxy["bootstrap"], client_tls("acme-client"))
    c.produce(PAYMENTS, [(None, b"to commit")])
    c.commit(f"payments-app-{RUN}", PAYMENTS, 1)
    assert c.committed(f"payments-app-{RUN}", PAYMENTS) == 1
    _refused(lambda: c.commit(f"other-app-{RUN}", PAYMENTS, 1), "GROUP_AUTHORIZATION_FAILED")


def test_a_consumer_group_the_pool_may_read_joins_consumes_and_commits(acl_proxy, client_tls):
    """The whole group protocol under ACLs: FindCoordinator, JoinGroup, SyncGroup, Heartbeat,
    OffsetFetch, Fetch, OffsetCommit and LeaveGroup, each checked and allowed."""
    c = driver("kafka-python", acl_proxy["bootstrap"], client_tls("acme-client"))
    topic = f"payments-grouped-{RUN}"
    c.create_topic(topic)
    c.produce(topic, [(None, b"one"), (None, b"two")])
    group = f"payments-consumers-{RUN}"
    records = c.group_consume_and_commit(group, topic, 2, timeout=90)
    assert [v for _, _, v in records] == [b"one", b"two"]
    assert c.committed(group, topic) == 2


def test_topic_creation_needs_create_on_the_topic(acl_proxy, client_tls):
    c = driver("kafka-python", acl_proxy["bootstrap"], client_tls("acme-client"))
    c.create_topic(f"payments-new-{RUN}")
    _refused(lambda: c.create_topic(f"hr-new-{RUN}"), "TOPIC_AUTHORIZATION_FAILED")


def test_every_denial_is_an_authorization_audit_record(acl_proxy, client_tls):
    audit = acl_proxy["audit"]
    mark = audit.mark()
    c = driver("kafka-python", acl_proxy["bootstrap"], client_tls("acme-client"))
    _refused(lambda: c.produce(HR, [(None, b"audited")], timeout=15),
             "TOPIC_AUTHORIZATION_FAILED")
    # Records land asynchronously: the previous test's denials may still arrive after `mark`,
    # so look for this one (a Produce to HR) rather than the first after the mark.
    records = audit.wait_for(
        mark, lambda r: r["data"].get("methodName") == "kafka.Authorization"
        and r["data"].get("apiName") == "Produce"
        and r["data"].get("authorizationInfo", {}).get("resourceName") == HR)
    assert records, "no kafka.Authorization record for the Produce to HR"
    data = records[0]["data"]
    assert records[0]["type"] == "io.confluent.kafka.server/authorization"
    info = data["authorizationInfo"]
    assert (info["granted"], info["operation"], info["resourceType"], info["resourceName"]) == (
        False, "write", "topic", HR)
    assert sorted(data["identityPoolIds"]) == ["pool-acme-all", "pool-payments"]
    # The primary pool's principal (no priorities here: the smallest id); all pools' follow.
    assert data["authenticationInfo"]["principal"] == "User:pool-acme-all"
    assert sorted(data["authenticationInfo"]["principals"]) == [
        "User:pool-acme-all", "User:pool-payments"]
    assert data["result"]["status"] == "DENIED"
    assert "denied by proxy ACLs" in acl_proxy["log"].read_text()


def test_apis_the_proxy_cannot_authorize_are_hidden(acl_proxy, client_tls):
    """ApiVersions under ACLs lists only APIs the proxy authorizes, and Fetch stops at v12."""
    from harness import api_versions_v0_request, open_kafka_connection, recv_exact

    port = int(acl_proxy["bootstrap"].rsplit(":", 1)[1])
    conn = open_kafka_connection(port, client_tls("acme-client"))
    try:
        conn.sendall(api_versions_v0_request(7))
        size = int.from_bytes(recv_exact(conn, 4), "big")
        body = recv_exact(conn, size)
    finally:
        conn.close()
    assert int.from_bytes(body[0:4], "big") == 7
    assert int.from_bytes(body[4:6], "big") == 0
    count = int.from_bytes(body[6:10], "big")
    apis = {}
    for i in range(count):
        entry = body[10 + 6 * i: 16 + 6 * i]
        apis[int.from_bytes(entry[0:2], "big")] = (int.from_bytes(entry[2:4], "big"),
                                                   int.from_bytes(entry[4:6], "big"))
    assert 0 in apis and 3 in apis  # Produce, Metadata
    assert apis[1][1] <= 12, apis[1]  # Fetch without topic ids
    # Only APIs with an authorizer in the proxy (src/acl/apis.rs); never SASL.
    assert set(apis) <= AUTHORIZED_API_KEYS, sorted(set(apis) - AUTHORIZED_API_KEYS)


def test_a_reload_changes_the_rules_of_live_connections(acl_proxy, client_tls):
    """Rules are re-derived at the next request after a reload: one kafka-python consumer, one
    connection, sees `secret-*` appear in its listing once a rule allows describing it."""
    from kafka import KafkaConsumer

    c = driver("kafka-python", acl_proxy["bootstrap"], client_tls("acme-analytics"))
    consumer = KafkaConsumer(**c.config(group_id=None, enable_auto_commit=False))
    config = acl_proxy["config"]
    original = config.read_text()
    audit = acl_proxy["audit"]
    try:
        # Twice: kafka-python drops its bootstrap connection once it knows the broker, so the
        # second listing is on the connection the rest of the test uses.
        assert SECRET not in consumer.topics()
        assert SECRET not in consumer.topics()
        mark = audit.mark()
        allow = ("          - {operations: [describe], resource_type: topic, "
                 "pattern_type: prefixed, resource_name: secret-}\n")
        anchor = "resource_name: analytics-}\n"
        assert anchor in original
        config.write_text(original.replace(anchor, anchor + allow, 1))
        deadline = time.monotonic() + 15
        while SECRET not in consumer.topics():
            assert time.monotonic() < deadline, "the new rule never applied"
            time.sleep(0.3)
        # Same connection: no new authentication happened meanwhile.
        assert not [r for r in audit.since(mark)
                    if r["data"].get("methodName") == "kafka.Authentication"]
    finally:
        consumer.close()
        config.write_text(original)
    assert "configuration reloaded" in acl_proxy["log"].read_text()


def test_an_api_the_proxy_cannot_authorize_closes_the_connection_with_an_audit_record(
        acl_proxy, client_tls):
    """A client that sends a hidden API anyway (DescribeAcls, api key 29) is refused: the
    connection is closed, the reason logged and a kafka.Authorization record written."""
    import struct

    from harness import is_closed_by_peer, open_kafka_connection

    audit = acl_proxy["audit"]
    mark = audit.mark()
    port = int(acl_proxy["bootstrap"].rsplit(":", 1)[1])
    conn = open_kafka_connection(port, client_tls("acme-client"))
    try:
        client_id = b"e2e-raw"
        header = struct.pack(">hhih", 29, 1, 9, len(client_id)) + client_id
        body = bytes(16)  # never decoded: the API is refused on its key alone
        conn.sendall(struct.pack(">i", len(header) + len(body)) + header + body)
        assert is_closed_by_peer(conn, timeout=5)
    finally:
        conn.close()
    records = audit.wait_for(
        mark, lambda r: r["data"].get("methodName") == "kafka.Authorization"
        and r["data"].get("apiName") == "DescribeAcls")
    assert records, "no kafka.Authorization record for DescribeAcls"
    info = records[0]["data"]["authorizationInfo"]
    assert info["resourceName"] == "DescribeAcls v1", info
    assert "closing: request refused by proxy ACLs" in acl_proxy["log"].read_text()


# Every API key src/acl/apis.rs may offer under ACLs (a superset is fine: the broker may list fewer).
AUTHORIZED_API_KEYS = {0, 1, 2, 3, 8, 9, 10, 11, 12, 13, 14, 15, 16, 18, 19, 20, 21, 22, 23, 24,
                       25, 26, 28, 32, 33, 37, 42, 44, 47, 60}
