"""Per-pool upstream identity over SASL/SCRAM, against the session's Apache Kafka broker.

The broker is set up with Kafka's own tools (fixture `broker`): SCRAM-SHA-512 users named after
the pools, so the broker sees the pool principals (`User:pool-payments`, `User:pool-acme-all`),
and StandardAuthorizer ACLs per pool — pool-payments may use topics and groups prefixed
`payments-`, pool-acme-all those prefixed `analytics-`, both the groups prefixed `e2e-` that the
drivers' consumers name; nobody may use the topic `hr`. Clients keep speaking mTLS to the proxy,
which logs in as the client's primary pool (acme-client: pool-payments, by priority;
acme-analytics: pool-acme-all). No proxy here has ACLs of its own: every refusal is the broker's.

* proxy "good" (upstream: SASL_PLAINTEXT): both pools' passwords right, one from an environment
  variable, one from a file.
* proxy "bad": pool-payments' password is wrong; the broker refuses that login, acme-analytics
  keeps working on the same proxy.
* proxy "tls" (upstream: SASL_SSL): TLS with the proxy's client certificate, and SCRAM.
* proxy "reauth" (upstream: REAUTH, sessions of conftest.REAUTH_MS): KIP-368 re-authentication
  on live connections, which the broker closes once their session expired.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import logging
import os
import re
import socket
import struct
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest

from clients import LIBRARIES, _LogCapture, driver, unique
from steady_traffic import keep_busy_confluent, keep_busy_kafka_python
from conftest import _PROCESSES, PRIORITY_POOLS_YAML, REAUTH_MS, proxy_config
from harness import (
    KAFKA_NODE_ID,
    SASL_AUTHENTICATE,
    SASL_HANDSHAKE,
    AuditLog,
    LogSince,
    Process,
    api_versions_v0_request,
    broker_port_base,
    free_port,
    put_uvarint,
    raw_tls_attempt,
    read_uvarint,
    reason_of,
    recv_exact,
    skip_tagged_fields,
)

PAYMENTS_PASSWORD = "payments-pw-4242"
ACME_ALL_PASSWORD = "acme-all-pw-1717"
# The broker's SCRAM users are the pool ids: the broker sees `User:<pool id>`.
USERS = {"pool-payments": PAYMENTS_PASSWORD, "pool-acme-all": ACME_ALL_PASSWORD}
PREFIX = {"acme-client": "payments-", "acme-analytics": "analytics-"}  # the primary pool's topics
HR = "hr"  # a topic that exists, and that no pool may use


# Each pool's broker ACLs: operation All on these prefixed resources.
ACLS = {
    "User:pool-payments": (("--topic", "payments-"), ("--group", "payments-"), ("--group", "e2e-")),
    "User:pool-acme-all": (("--topic", "analytics-"), ("--group", "analytics-"),
                           ("--group", "e2e-")),
}


def _acl_args(principal: str) -> tuple[str, ...]:
    return ("--allow-principal", principal, "--operation", "All", "--resource-pattern-type",
            "prefixed", *(arg for resource in ACLS[principal] for arg in resource))


def _in_parallel(*calls):
    """Run Kafka's tools side by side (each is a JVM start of a few seconds); their results."""
    with ThreadPoolExecutor(len(calls)) as pool:
        return [future.result() for future in [pool.submit(call) for call in calls]]


# --------------------------------------------------------------------------------------------
# Kafka's SASL wire by hand (a client of the broker without the proxy)
# --------------------------------------------------------------------------------------------


def _request(api_key: int, version: int, correlation_id: int, body: bytes,
             flexible: bool) -> bytes:
    client_id = b"e2e-scram-raw"
    header = struct.pack(">hhih", api_key, version, correlation_id, len(client_id)) + client_id
    if flexible:
        header += b"\x00"  # no tagged fields
    frame = header + body
    return struct.pack(">i", len(frame)) + frame


def _answer(sock, correlation_id: int) -> bytes:
    size = struct.unpack(">i", recv_exact(sock, 4))[0]
    payload = recv_exact(sock, size)
    assert struct.unpack(">i", payload[:4])[0] == correlation_id
    return payload[4:]


class LoginRefused(Exception):
    """The broker answered SaslAuthenticate with an error: (error code, error message)."""


def _sasl_authenticate(sock, correlation_id: int, auth: bytes) -> tuple[bytes, int]:
    """SaslAuthenticate v2: (auth bytes, session_lifetime_ms), or LoginRefused."""
    body = put_uvarint(len(auth) + 1) + auth + b"\x00"
    sock.sendall(_request(SASL_AUTHENTICATE, 2, correlation_id, body, flexible=True))
    buf = _answer(sock, correlation_id)
    pos = skip_tagged_fields(buf, 0)  # response header v1
    error = struct.unpack_from(">h", buf, pos)[0]
    n, pos = read_uvarint(buf, pos + 2)
    message = buf[pos:pos + n - 1].decode() if n else None
    if error:
        raise LoginRefused(error, message)
    pos += max(n - 1, 0)
    n, pos = read_uvarint(buf, pos)
    auth_bytes = buf[pos:pos + n - 1]
    lifetime = struct.unpack_from(">q", buf, pos + n - 1)[0]
    return auth_bytes, lifetime


def _scram_login(sock, user: str, password: str) -> int:
    """SaslHandshake v1 and a SCRAM-SHA-512 exchange (RFC 5802) as the proxy makes them,
    verifying the broker's signature; the session lifetime granted, or LoginRefused."""
    mechanism = b"SCRAM-SHA-512"
    sock.sendall(_request(SASL_HANDSHAKE, 1, 1, struct.pack(">h", len(mechanism)) + mechanism,
                          flexible=False))
    assert struct.unpack(">h", _answer(sock, 1)[:2])[0] == 0
    nonce = base64.b64encode(os.urandom(18)).decode()
    bare = f"n={user},r={nonce}"
    server_first, _ = _sasl_authenticate(sock, 2, f"n,,{bare}".encode())
    fields = dict(f.split("=", 1) for f in server_first.decode().split(","))
    assert fields["r"].startswith(nonce), fields
    salted = hashlib.pbkdf2_hmac("sha512", password.encode(), base64.b64decode(fields["s"]),
                                 int(fields["i"]))
    without_proof = f"c=biws,r={fields['r']}"
    message = f"{bare},{server_first.decode()},{without_proof}".encode()
    client_key = hmac.new(salted, b"Client Key", "sha512").digest()
    signature = hmac.new(hashlib.sha512(client_key).digest(), message, "sha512").digest()
    proof = base64.b64encode(bytes(a ^ b for a, b in zip(client_key, signature))).decode()
    server_final, lifetime = _sasl_authenticate(sock, 3, f"{without_proof},p={proof}".encode())
    server_key = hmac.new(salted, b"Server Key", "sha512").digest()
    expected = base64.b64encode(hmac.new(server_key, message, "sha512").digest()).decode()
    assert server_final.decode() == f"v={expected}", server_final
    return lifetime


def _wait_for_login(kafka, user: str, password: str, timeout: float = 15.0) -> None:
    """Until the SASL_PLAINTEXT listener accepts `user`'s SCRAM login."""
    deadline = time.monotonic() + timeout
    while True:
        with socket.create_connection(
                ("127.0.0.1", kafka.nodes[0].ports["SASL_PLAINTEXT"]), timeout=5) as sock:
            try:
                _scram_login(sock, user, password)
                return
            except LoginRefused as e:
                if time.monotonic() > deadline:
                    raise AssertionError(f"the broker still refuses {user}: {e}") from e
        time.sleep(0.2)


# --------------------------------------------------------------------------------------------
# The broker: users and ACLs, with Kafka's own tools
# --------------------------------------------------------------------------------------------


def _plaintext_admin(kafka):
    """kafka-python's admin client on the PLAINTEXT listener (User:ANONYMOUS, who may do
    everything there): a topic of the pools' broker without a JVM start."""
    from kafka import KafkaAdminClient

    return KafkaAdminClient(bootstrap_servers=kafka.bootstrap("PLAINTEXT"),
                            request_timeout_ms=15000)


@pytest.fixture(scope="module")
def broker(kafka):
    """The session broker with the pools' SCRAM users and ACLs (the ACLs are removed again at
    teardown; the users stay, with passwords nobody else uses) and an `hr` topic."""
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    created_hr = False
    try:
        _in_parallel(
            *(lambda user=user, password=password: kafka.tool(
                "kafka-configs.sh", "--alter", "--add-config",
                f"SCRAM-SHA-512=[password={password}]", "--entity-type", "users",
                "--entity-name", user) for user, password in USERS.items()),
            *(lambda principal=principal: kafka.acls("--add", *_acl_args(principal))
              for principal in ACLS))
        admin = _plaintext_admin(kafka)
        try:
            admin.create_topics([NewTopic(HR, 1, 1)], timeout_ms=10000)
            created_hr = True
        except TopicAlreadyExistsError:
            pass
        finally:
            admin.close()
        # A refused first login would be remembered by a proxy for a moment: wait until the
        # broker accepts both users (SCRAM credentials reach the broker through its metadata).
        for user, password in USERS.items():
            _wait_for_login(kafka, user, password)
        yield kafka
    finally:
        if created_hr:
            admin = _plaintext_admin(kafka)
            try:
                admin.delete_topics([HR], timeout_ms=10000)
            finally:
                admin.close()
        _in_parallel(*(lambda principal=principal: kafka.acls("--remove", "--force",
                                                              *_acl_args(principal))
                       for principal in ACLS))


def _broker_log(kafka) -> LogSince:
    """The broker node's server.log from now on (the authorizer logs denials at INFO)."""
    return LogSince(kafka.nodes[0].log_path)


def _denials(log: LogSince, principal: str, operation: str, topic: str) -> list[str]:
    """StandardAuthorizer's denial lines for `principal` doing `operation` on `topic`."""
    return log.wait_for(rf"INFO Principal = {re.escape(principal)} is Denied operation = "
                        rf"{operation} from host = 127\.0\.0\.1 on resource = "
                        rf"Topic:LITERAL:{re.escape(topic)} .*\(kafka\.authorizer\.logger\)")


# --------------------------------------------------------------------------------------------
# Proxies in scram mode
# --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def _scram_proxy(proxy_bin, pki, workdir, name, upstream, payments_password,
                 upstream_tls="", admin=False):
    """A proxy logging in to `upstream` as the primary pool: pool-payments' password from an
    environment variable, pool-acme-all's from a file; the e2e pools (PRIORITY_POOLS_YAML), no
    proxy ACLs, `log.level: debug`."""
    bootstrap_port = free_port()
    admin_port = free_port() if admin else None
    secret = workdir / f"{name}-acme-all.secret"
    secret.write_text(ACME_ALL_PASSWORD + "\n")
    secret.chmod(0o600)
    audit_path = workdir / f"{name}-audit.log"
    config = workdir / f"{name}.yaml"
    text = proxy_config(
        bootstrap_port=bootstrap_port, first_port=broker_port_base(KAFKA_NODE_ID), pki=pki,
        audit_path=audit_path, pools_yaml=PRIORITY_POOLS_YAML, upstream_bootstrap=upstream,
        upstream_yaml=upstream_tls + f"""
identity:
  mode: scram
  mechanism: SCRAM-SHA-512
  credentials:
    pool-payments: {{ username: pool-payments, password_env: PAYMENTS_SCRAM_PASSWORD }}
    pool-acme-all: {{ username: pool-acme-all, password_file: {secret} }}
""")
    if admin:
        text += f"admin:\n  listen: 127.0.0.1:{admin_port}\n"
    config.write_text(text)
    log = workdir / f"{name}.log"
    proc = Process(name, [proxy_bin, "run", "--config", config], log, cwd=workdir,
                   env={"NO_COLOR": "1", "RUST_LOG": None,
                        "PAYMENTS_SCRAM_PASSWORD": payments_password})
    _PROCESSES[name] = proc
    try:
        proc.wait_for_port("127.0.0.1", bootstrap_port, timeout=30)
        yield {"bootstrap": f"localhost:{bootstrap_port}", "process": proc, "config": config,
               "audit": AuditLog(audit_path), "log": log, "secret": secret,
               "admin_port": admin_port}
    finally:
        proc.stop()
        _PROCESSES.pop(name, None)


@pytest.fixture(scope="module")
def scram(broker, proxy_bin, pki, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("upstream-scram")
    upstream = broker.bootstrap("SASL_PLAINTEXT")
    with _scram_proxy(proxy_bin, pki, workdir, "proxy-scram-good", upstream,
                      PAYMENTS_PASSWORD) as good, \
            _scram_proxy(proxy_bin, pki, workdir, "proxy-scram-bad", upstream,
                         "not-the-password") as bad:
        yield {"good": good, "bad": bad}


def _proxy_has_no_acls(proxy) -> None:
    """The refusals are the broker's: the proxy enforces nothing and denied nothing itself."""
    config = proxy["config"].read_text()
    assert "authorization:" not in config and "acls:" not in config, config
    assert "denied by proxy ACLs" not in proxy["log"].read_text()
    assert not [r for r in proxy["audit"].records()
                if r["data"].get("methodName") == "kafka.Authorization"]


# --------------------------------------------------------------------------------------------
# The SASL_PLAINTEXT listener: the broker's side of the login
# --------------------------------------------------------------------------------------------


def _metadata_v4_request(correlation_id: int = 1) -> bytes:
    client_id = b"e2e-no-sasl"
    body = struct.pack(">hhih", 3, 4, correlation_id, len(client_id)) + client_id
    body += struct.pack(">i?", 0, False)  # no topics, no auto-creation
    return struct.pack(">i", len(body)) + body


def test_the_sasl_listener_refuses_a_client_that_does_not_log_in(broker):
    """The SCRAM exchange the proxy makes is required: a Metadata request without it makes the
    broker close the connection (the PLAINTEXT listener answers the same request)."""
    log = _broker_log(broker)
    node = broker.nodes[0]
    with socket.create_connection(("127.0.0.1", node.ports["PLAINTEXT"]), timeout=5) as sock:
        sock.sendall(_metadata_v4_request())
        size = struct.unpack(">i", recv_exact(sock, 4))[0]
        assert struct.unpack(">i", recv_exact(sock, size)[:4])[0] == 1
    with socket.create_connection(("127.0.0.1", node.ports["SASL_PLAINTEXT"]),
                                  timeout=5) as sock:
        local_port = sock.getsockname()[1]
        sock.sendall(_metadata_v4_request())
        assert sock.recv(4) == b"", "the SASL listener answered Metadata without a login"
    closed = log.wait_for(rf"127\.0\.0\.1:{local_port}-\d+-\d+\)?; closing connection")
    assert closed, log.text()[-3000:]
    assert log.wait_for("Unexpected Kafka request of type METADATA during SASL handshake"), \
        log.text()[-3000:]


# --------------------------------------------------------------------------------------------
# Both pools through the proxy, each as its own broker user
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("client", ["acme-client", "acme-analytics"])
@pytest.mark.parametrize("library", LIBRARIES)
def test_each_pool_writes_and_reads_its_own_topics_as_its_broker_user(
        library, client, scram, client_tls):
    """acme-client (as pool-payments) on `payments-…`, acme-analytics (as pool-acme-all) on
    `analytics-…`: create, produce, consume, commit and fetch a group offset. Only the pool's
    own broker ACLs allow this (nothing is granted to any other principal on these names)."""
    c = driver(library, scram["good"]["bootstrap"], client_tls(client))
    topic = unique(PREFIX[client] + library)
    c.create_topic(topic)
    records = [(b"k", f"as {client}".encode()), (None, bytes(range(256)))]
    assert c.produce(topic, records) == [0, 1]
    assert [(k, v) for _, k, v in c.consume(topic, len(records))] == records
    # A group under the pool's prefix: FindCoordinator, OffsetCommit and OffsetFetch as the pool.
    group = unique(PREFIX[client] + "group")
    c.commit(group, topic, 2)
    assert c.committed(group, topic) == 2


def test_the_primary_pool_logs_in_and_every_pool_is_audited(scram, client_tls):
    audit = scram["good"]["audit"]
    mark = audit.mark()
    driver("kafka-python", scram["good"]["bootstrap"], client_tls("acme-client")).cluster()
    # Only acme-client's certificate matches both pools (records land asynchronously, so an
    # earlier test's may still arrive after `mark`).
    records = audit.wait_for(mark, lambda r: r["data"].get("primaryPoolId") is not None
                             and len(r["data"].get("identityPoolIds", [])) == 2)
    assert records, "no audit record for a client of both pools"
    data = records[0]["data"]
    assert data["primaryPoolId"] == "pool-payments"
    assert data["authenticationInfo"]["principal"] == "User:pool-payments"
    assert sorted(data["identityPoolIds"]) == ["pool-acme-all", "pool-payments"]
    log = scram["good"]["log"].read_text()
    logins = [line for line in log.splitlines()
              if "authenticated to the broker as the pool's upstream identity" in line]
    assert any("user=pool-payments" in line for line in logins), logins[-5:]
    # Secrets never reach the log or the audit trail.
    for secret in (PAYMENTS_PASSWORD, ACME_ALL_PASSWORD):
        assert secret not in log
        assert secret not in audit.path.read_text()


def _kafka_python_refusals(bootstrap, tls, existing: str, new: str) -> None:
    """kafka-python on topics outside the pool's ACLs: creating `new` and producing to
    `existing` raise TopicAuthorizationFailedError (error 29); a consumer never raises for a
    topic it may not describe: it logs the broker's error at each metadata refresh and polls
    nothing."""
    from kafka.errors import TopicAuthorizationFailedError

    c = driver("kafka-python", bootstrap, tls)
    with pytest.raises(TopicAuthorizationFailedError) as created:
        c.create_topic(new)
    assert f"topic='{new}', error_code=29, error_message='Authorization failed.'" \
        in str(created.value), created.value
    with pytest.raises(TopicAuthorizationFailedError) as produced:
        c.produce(existing, [(None, b"not for this pool")], timeout=15)
    assert str(produced.value) == f"[Error 29] TopicAuthorizationFailedError: {existing}"
    from kafka import KafkaConsumer, TopicPartition

    capture = _LogCapture(min_level=logging.ERROR)
    logger = logging.getLogger("kafka")
    logger.addHandler(capture)
    refusal = f"Topic {existing} is not authorized for this client"
    consumer = KafkaConsumer(**c.config(group_id=None, enable_auto_commit=False,
                                        auto_offset_reset="earliest"))
    polled = []
    try:
        consumer.assign([TopicPartition(existing, 0)])
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and refusal not in [m for _, m in capture.seen]:
            polled += [r for batch in consumer.poll(timeout_ms=200).values() for r in batch]
    finally:
        consumer.close()
        logger.removeHandler(capture)
    assert refusal in [m for _, m in capture.seen], [m for _, m in capture.seen]
    assert polled == []


def _confluent_refusals(bootstrap, tls, existing: str, new: str) -> None:
    """librdkafka on topics outside the pool's ACLs: TOPIC_AUTHORIZATION_FAILED from
    CreateTopics, in the delivery report of a record for `existing`, and as the first message
    of a consumer subscribed to it (a consumer by assignment waits silently instead)."""
    import gc

    from confluent_kafka import Consumer, KafkaError, KafkaException, Producer

    d = driver("confluent-kafka", bootstrap, tls)
    with pytest.raises(KafkaException) as created:
        d.create_topic(new)
    error = created.value.args[0]
    assert (error.code(), error.str()) == (KafkaError.TOPIC_AUTHORIZATION_FAILED,
                                           "Authorization failed."), error
    producer = Producer(d.config(**{"linger.ms": 0, "enable.idempotence": False,
                                    "message.timeout.ms": 10000}))
    reports = []
    try:
        producer.produce(existing, value=b"not for this pool", partition=0,
                         on_delivery=lambda err, _msg: reports.append(err))
        assert producer.flush(15) == 0
    finally:
        producer = None
        gc.collect()
    assert len(reports) == 1 and reports[0] is not None, reports
    assert (reports[0].code(), reports[0].str()) == (
        KafkaError.TOPIC_AUTHORIZATION_FAILED, "Broker: Topic authorization failed"), reports
    consumer = Consumer(d.config(**{"group.id": unique("e2e-refused"),
                                    "enable.auto.commit": False}))
    message = None
    try:
        consumer.subscribe([existing])
        deadline = time.monotonic() + 15
        while message is None and time.monotonic() < deadline:
            message = consumer.poll(0.5)
    finally:
        consumer.close()
        consumer = None
        gc.collect()
    assert message is not None and message.error() is not None, message
    assert message.error().code() == KafkaError.TOPIC_AUTHORIZATION_FAILED, message.error()
    assert message.error().str() == (f"Subscribed topic not available: {existing}: "
                                     "Broker: Topic authorization failed"), message.error()


REFUSALS = {"kafka-python": _kafka_python_refusals, "confluent-kafka": _confluent_refusals}


@pytest.mark.parametrize("library", LIBRARIES)
def test_the_broker_refuses_the_pool_a_topic_outside_its_acls(library, scram, client_tls, broker):
    """acme-client's upstream identity is pool-payments, whose broker ACLs do not cover `hr`:
    creating `hr-…`, producing to and consuming from `hr` (which exists) are refused with
    TOPIC_AUTHORIZATION_FAILED by the broker's authorizer, which logs the denials of
    User:pool-payments; the proxy has no ACLs of its own."""
    log = _broker_log(broker)
    new = unique("hr")
    REFUSALS[library](scram["good"]["bootstrap"], client_tls("acme-client"), HR, new)
    assert _denials(log, "User:pool-payments", "CREATE", new), log.text()[-3000:]
    assert _denials(log, "User:pool-payments", "DESCRIBE", HR), log.text()[-3000:]
    _proxy_has_no_acls(scram["good"])


def test_the_broker_lists_the_acls_it_enforces_for_the_pool(broker):
    """`kafka-acls.sh --list`: pool-payments may use its prefixes, and nothing grants `hr`."""
    listed = broker.acls("--list", "--principal", "User:pool-payments").stdout
    patterns = re.findall(r"ResourcePattern\(resourceType=(\w+), name=([^,]+), "
                          r"patternType=(\w+)\)", listed)
    assert sorted(patterns) == [("GROUP", "e2e-", "PREFIXED"), ("GROUP", "payments-", "PREFIXED"),
                                ("TOPIC", "payments-", "PREFIXED")], listed
    assert listed.count("(principal=User:pool-payments, host=*, operation=ALL, "
                        "permissionType=ALLOW)") == 3, listed


@pytest.mark.parametrize("library", LIBRARIES)
def test_one_pools_broker_acls_do_not_extend_to_another_pool(library, scram, client_tls,
                                                             broker):
    """acme-analytics logs in as pool-acme-all: pool-payments' topics are refused to it."""
    payments = unique("payments-not-analytics")
    driver(library, scram["good"]["bootstrap"], client_tls("acme-client")).create_topic(payments)
    log = _broker_log(broker)
    new = unique("payments-not-analytics")
    REFUSALS[library](scram["good"]["bootstrap"], client_tls("acme-analytics"), payments, new)
    assert _denials(log, "User:pool-acme-all", "CREATE", new), log.text()[-3000:]
    assert _denials(log, "User:pool-acme-all", "DESCRIBE", payments), log.text()[-3000:]


# --------------------------------------------------------------------------------------------
# A pool whose password the broker refuses
# --------------------------------------------------------------------------------------------


def _auth_error_kafka_python(bootstrap, tls):
    """kafka-python treats an ApiVersions error as it treats a broker's SASL refusal: it logs
    the error (`SaslAuthenticationFailedError`), closes, and its bootstrap finally raises
    NoBrokersAvailable. The refusal must be in that log, and come at once."""
    import logging

    from kafka import KafkaAdminClient
    from kafka.errors import NoBrokersAvailable

    from clients import _LogCapture

    capture = _LogCapture(min_level=logging.ERROR)
    logger = logging.getLogger("kafka")
    logger.addHandler(capture)
    start = time.monotonic()
    try:
        with pytest.raises(NoBrokersAvailable):
            admin = KafkaAdminClient(
                bootstrap_servers=bootstrap, security_protocol="SSL", ssl_cafile=str(tls.cafile),
                ssl_certfile=str(tls.certfile), ssl_keyfile=str(tls.keyfile),
                request_timeout_ms=5000, api_version_auto_timeout_ms=5000)
            admin.close()
    finally:
        logger.removeHandler(capture)
    refusals = [(t, m) for t, m in capture.seen if "SaslAuthenticationFailedError" in m]
    assert refusals, [m for _, m in capture.seen]
    # The first attempt is refused with the error, not after a timeout.
    assert refusals[0][0] - start < 3, refusals[0][0] - start
    # Never decoded as anything else (e.g. a response it cannot parse).
    assert not any("Unable to decode" in m for _, m in capture.seen), capture.seen
    return [m for _, m in refusals]


def _auth_error_confluent(bootstrap, tls):
    """librdkafka fails the connection with "ApiVersionRequest failed: Broker: SASL
    Authentication failed" (its log, at warning level) and reports the broker down to the
    application; metadata requests fail."""
    import logging

    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    from clients import _LogCapture

    capture = _LogCapture(min_level=logging.DEBUG)
    logger = logging.getLogger(f"e2e-librdkafka-{time.monotonic_ns()}")
    logger.setLevel(logging.DEBUG)
    logger.addHandler(capture)
    errors = []
    admin = AdminClient({
        "bootstrap.servers": bootstrap, "security.protocol": "SSL",
        "ssl.ca.location": str(tls.cafile), "ssl.certificate.location": str(tls.certfile),
        "ssl.key.location": str(tls.keyfile), "logger": logger,
        "error_cb": errors.append})
    try:
        with pytest.raises(KafkaException):
            admin.list_topics(timeout=5)
        admin.poll(0.5)
    finally:
        admin = None
        import gc
        gc.collect()
        logger.removeHandler(capture)
    refusals = [(t, m) for t, m in capture.seen if "SASL Authentication failed" in m]
    # (Log lines reach Python only when the client is polled: no timing from them.)
    assert refusals, ([m for _, m in capture.seen], errors)
    assert "APIVERSION_QUERY" in refusals[0][1]
    return [m for _, m in refusals]


# What Kafka's SCRAM server says about a wrong password (to the client and in its log).
INVALID_CREDENTIALS = ("Authentication failed during authentication due to invalid credentials "
                       "with SASL mechanism SCRAM-SHA-512")


@pytest.mark.parametrize("library", LIBRARIES)
def test_a_refused_pool_gets_an_authentication_error_and_others_keep_working(
        library, scram, client_tls, broker):
    """The broker refuses pool-payments' wrong password: acme-client gets its library's SASL
    authentication error at once and an `upstream_identity_refused` audit record carries the
    broker's reason; acme-analytics (pool-acme-all) keeps working on the same proxy."""
    bad = scram["bad"]
    mark = bad["audit"].mark()
    log = _broker_log(broker)
    if library == "kafka-python":
        _auth_error_kafka_python(bad["bootstrap"], client_tls("acme-client"))
    else:
        _auth_error_confluent(bad["bootstrap"], client_tls("acme-client"))

    refused = bad["audit"].wait_for(
        mark, lambda r: reason_of(r) == "upstream_identity_refused", timeout=10)
    assert refused, "no audit record for the upstream refusal"
    data = refused[0]["data"]
    assert data["primaryPoolId"] == "pool-payments"
    assert sorted(data["identityPoolIds"]) == ["pool-acme-all", "pool-payments"]
    assert "pool-payments" in data["result"]["message"]
    # The broker's own reason reaches the audit record (a refusal remembered by the proxy for
    # a moment repeats it).
    assert INVALID_CREDENTIALS in data["result"]["message"], data["result"]["message"]
    assert "not-the-password" not in bad["audit"].path.read_text()
    assert "not-the-password" not in bad["log"].read_text()
    # The broker refused the login itself (the proxy remembers a refusal for 2 s only, and each
    # helper above keeps its client retrying for longer, so at least one attempt reached it).
    failed = log.wait_for(r"Failed authentication with /127\.0\.0\.1 .*"
                          + re.escape(f"({INVALID_CREDENTIALS})"))
    assert failed, log.text()[-3000:]

    # The other pool's credentials are right on the same proxy.
    c = driver(library, bad["bootstrap"], client_tls("acme-analytics"))
    topic = unique("analytics-still-works")
    c.create_topic(topic)
    c.produce(topic, [(None, b"still fine")])
    assert [v for _, _, v in c.consume(topic, 1)] == [b"still fine"]


# --------------------------------------------------------------------------------------------
# TLS and SCRAM together: the SASL_SSL listener
# --------------------------------------------------------------------------------------------


def _upstream_tls(pki, with_certificate: bool = True) -> str:
    text = f"tls:\n  ca: {pki / 'server-ca.pem'}\n"
    if with_certificate:
        text += (f"  certificate_chain: {pki / 'proxy-upstream-client.pem'}\n"
                 f"  private_key: {pki / 'proxy-upstream-client.key'}\n")
    return text


@pytest.fixture(scope="module")
def tls_scram(broker, proxy_bin, pki, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("upstream-scram-tls")
    with _scram_proxy(proxy_bin, pki, workdir, "proxy-scram-tls", broker.bootstrap("SASL_SSL"),
                      PAYMENTS_PASSWORD, upstream_tls=_upstream_tls(pki)) as proxy:
        yield proxy


@pytest.mark.parametrize("client", ["acme-client", "acme-analytics"])
@pytest.mark.parametrize("library", LIBRARIES)
def test_upstream_tls_and_scram_together_carry_both_pools(library, client, tls_scram,
                                                          client_tls, broker):
    """Over SASL_SSL (TLS with the proxy's client certificate, then SCRAM) each client works on
    its primary pool's topics: the broker's principal is the pool, not the certificate's
    `User:kafka-mtls-proxy`, which has no ACLs on these topics."""
    c = driver(library, tls_scram["bootstrap"], client_tls(client))
    topic = unique(PREFIX[client] + "tls-scram")
    c.create_topic(topic)
    records = [(b"k", f"TLS and SCRAM as {client}".encode()), (None, bytes(range(256)))]
    c.produce(topic, records)
    assert [(k, v) for _, k, v in c.consume(topic, len(records))] == records
    # Every upstream connection went to the SASL_SSL listener and logged in there.
    upstream = broker.bootstrap("SASL_SSL")
    connected = [line for line in tls_scram["log"].read_text().splitlines()
                 if "upstream connected" in line]
    assert connected and all(f"upstream={upstream}" in line for line in connected), connected


def test_the_sasl_ssl_listener_refuses_a_proxy_without_its_client_certificate(
        broker, proxy_bin, pki, client_tls, tmp_path):
    """SASL_SSL requires the proxy's TLS client certificate besides the SCRAM login: a proxy
    configured without it (right passwords) gets no Kafka answer through it."""
    log = _broker_log(broker)
    with _scram_proxy(proxy_bin, pki, tmp_path, "proxy-scram-tls-no-cert",
                      broker.bootstrap("SASL_SSL"), PAYMENTS_PASSWORD,
                      upstream_tls=_upstream_tls(pki, with_certificate=False)) as proxy:
        attempt = raw_tls_attempt("127.0.0.1", int(proxy["bootstrap"].rsplit(":", 1)[1]),
                                  client_tls("acme-client"))
        assert attempt.handshake_ok, attempt.error
        assert not attempt.kafka_ok, "a listener that requires a client certificate answered"
        proxy_log = proxy["log"].read_text().splitlines()
        # Under TLS 1.3 the broker checks the client's certificate after the handshake: its
        # alert arrives at the proxy's first read, the SaslHandshake answer.
        closing = [line for line in proxy_log if "closing: no upstream connection" in line]
        assert closing, proxy_log[-20:]
        assert "for pool `pool-payments` failed: read: received fatal alert: BadCertificate" \
            in closing[0], closing[0]
        assert not any("upstream connected" in line for line in proxy_log)
    failed = log.wait_for(r"Failed authentication with /127\.0\.0\.1 .*SSL handshake failed")
    assert failed, log.text()[-3000:]


# --------------------------------------------------------------------------------------------
# KIP-368: the REAUTH listener's short sessions
# --------------------------------------------------------------------------------------------


def test_the_reauth_listener_closes_a_session_that_outlives_its_lifetime(broker):
    """What the proxy is up against: the REAUTH listener grants REAUTH_MS sessions and closes
    a connection whose next request after the session expired is not a re-authentication;
    a re-authentication (SaslHandshake first) is still accepted then."""
    port = broker.nodes[0].ports["REAUTH"]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as late, \
            socket.create_connection(("127.0.0.1", port), timeout=5) as renewing:
        for sock in (late, renewing):
            assert _scram_login(sock, "pool-payments", PAYMENTS_PASSWORD) == REAUTH_MS
            sock.sendall(api_versions_v0_request(4))
            assert struct.unpack(">h", _answer(sock, 4)[:2])[0] == 0  # within the session
        time.sleep(REAUTH_MS / 1000 + 0.3)
        late.sendall(api_versions_v0_request(5))
        try:
            answer = late.recv(4)
        except ConnectionResetError:
            answer = b""
        assert answer == b"", "the broker answered a request after the session expired"
        assert _scram_login(renewing, "pool-payments", PAYMENTS_PASSWORD) == REAUTH_MS
        renewing.sendall(api_versions_v0_request(5))
        assert struct.unpack(">h", _answer(renewing, 5)[:2])[0] == 0


@pytest.fixture(scope="module")
def reauth(broker, proxy_bin, pki, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("upstream-scram-reauth")
    with _scram_proxy(proxy_bin, pki, workdir, "proxy-scram-reauth", broker.bootstrap("REAUTH"),
                      PAYMENTS_PASSWORD, admin=True) as proxy:
        yield proxy


def _metrics(admin_port: int) -> dict[str, float]:
    """The proxy's /metrics as {"name{labels}": value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{admin_port}/metrics", timeout=5) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def _metric(metrics: dict[str, float], name: str) -> float:
    """The sum of `name` over its labels."""
    return sum(v for k, v in metrics.items() if k == name or k.startswith(name + "{"))


STEADY_SECONDS = 14.0  # more than three sessions of REAUTH_MS


def _wait_until_no_upstream_connects(log_path, quiet: float, timeout: float = 10.0) -> None:
    """Until the proxy has logged no "upstream connected" for `quiet` seconds: clients open some
    connections lazily after their first record went round (librdkafka its consumer group
    coordinator's, even unused), and those are not reconnects."""
    offset = log_path.stat().st_size
    deadline = time.monotonic() + timeout
    last = time.monotonic()
    while time.monotonic() - last < quiet and time.monotonic() < deadline:
        time.sleep(0.1)
        with open(log_path, "rb") as f:
            f.seek(offset)
            new = f.read()
        offset += len(new)
        if b"upstream connected" in new:
            last = time.monotonic()


# Every log line of a client connection is in its span: `conn{id=conn-7 peer=… listener=…}`.
_CONNECTION_ID = re.compile(r"\bconn\{id=(conn-\d+) ")


def test_the_proxy_reauthenticates_on_live_connections_without_disturbing_clients(
        reauth, client_tls):
    """The broker grants REAUTH_MS sessions and closes a connection that sends a request after
    its session expired. A producer and a consumer of each library (side by side, acme-client:
    pool-payments) keep working for STEADY_SECONDS (more than three lifetimes) with no error
    and no reconnect: once their connections are open, the proxy opens and closes none during
    that time, and re-authenticates the live ones in time, at least three times each."""
    log_path = reauth["log"]
    marks: list[tuple[int, dict[str, float]]] = []

    def mark():
        # The metrics' window must hold the log's: at the start read them first, at the end last.
        if not marks:
            _wait_until_no_upstream_connects(log_path, quiet=1.5)
            metrics = _metrics(reauth["admin_port"])
            marks.append((log_path.stat().st_size, metrics))
        else:
            size = log_path.stat().st_size
            marks.append((size, _metrics(reauth["admin_port"])))

    # Both libraries warm up, then the steady phase starts and ends for both at once: the
    # barrier's action marks the proxy's log and metrics.
    barrier = threading.Barrier(len(LIBRARIES), timeout=60, action=mark)
    busy = {"kafka-python": keep_busy_kafka_python, "confluent-kafka": keep_busy_confluent}
    topics = {library: unique(f"payments-reauth-{library}") for library in LIBRARIES}
    for library, topic in topics.items():
        driver(library, reauth["bootstrap"], client_tls("acme-client")).create_topic(topic)
    results, failures = {}, {}

    def run(library):
        try:
            results[library] = busy[library](reauth["bootstrap"], client_tls("acme-client"),
                                             topics[library], STEADY_SECONDS, barrier.wait)
        except BaseException as e:  # noqa: BLE001 - reported below, with the other library's
            failures[library] = e
            barrier.abort()

    threads = [threading.Thread(target=run, args=(library,)) for library in LIBRARIES]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(STEADY_SECONDS + 90)
    assert not any(thread.is_alive() for thread in threads), "a client did not finish"
    assert not failures, {library: repr(e) for library, e in failures.items()}
    for library, (sent, received, problems) in results.items():
        assert not problems, (library, problems)
        assert len(sent) > 50, (library, len(sent))
        assert received == sent, (library, len(received), len(sent))

    (start, before), (end, after) = marks
    with open(log_path, "rb") as f:
        f.seek(start)
        during = f.read(end - start).decode(errors="replace").splitlines()
    # No reconnect: no upstream connection opened (each client connection has its own), none
    # closed.
    assert not [line for line in during if "upstream connected" in line
                or "connection closed" in line or "closing" in line], during[-40:]
    assert _metric(after, "kafka_mtls_proxy_connections_total") == \
        _metric(before, "kafka_mtls_proxy_connections_total")
    # Re-authenticated in time on the live connections (each lived through the steady phase):
    # at least three times on each, busy or idle (a consumer's unused group coordinator).
    reauthenticated = [line for line in during if "re-authenticated to the broker" in line]
    per_connection: dict[str, int] = {}
    for line in reauthenticated:
        m = _CONNECTION_ID.search(line)
        assert m, line
        per_connection[m.group(1)] = per_connection.get(m.group(1), 0) + 1
    assert len(per_connection) >= 2 * len(LIBRARIES), per_connection  # producers, consumers
    assert min(per_connection.values()) >= 3, (per_connection, reauthenticated[-10:])
    success = 'kafka_mtls_proxy_upstream_reauthentications_total{result="success"}'
    failure = 'kafka_mtls_proxy_upstream_reauthentications_total{result="failure"}'
    assert after.get(success, 0) - before.get(success, 0) >= len(reauthenticated), (before, after)
    assert after.get(failure, 0) == 0, after
    log = log_path.read_text()
    assert "re-authentication to the broker failed" not in log
    assert PAYMENTS_PASSWORD not in log


# --------------------------------------------------------------------------------------------
# Secrets are read at every connect
# --------------------------------------------------------------------------------------------


def test_a_rotated_password_file_is_read_at_the_next_connect(scram, client_tls):
    """Secrets are read at connect time: rewriting the file takes effect with no reload.
    (It leaves the "bad" proxy's file as it found it.)"""
    bad = scram["bad"]
    secret = bad["secret"]
    mark = bad["audit"].mark()
    secret.write_text("rotated-to-something-wrong\n")
    try:
        refusal = driver("confluent-kafka", bad["bootstrap"],
                         client_tls("acme-analytics")).attempt(timeout=3)
        assert not refusal.got_metadata
        refused = bad["audit"].wait_for(
            mark, lambda r: reason_of(r) == "upstream_identity_refused", timeout=10)
        assert refused and refused[0]["data"]["primaryPoolId"] == "pool-acme-all"
        assert INVALID_CREDENTIALS in refused[0]["data"]["result"]["message"]
    finally:
        secret.write_text(ACME_ALL_PASSWORD + "\n")
    # The right password again: the remembered refusal was for another password.
    assert "localhost" in [h for _, h, _ in driver(
        "kafka-python", bad["bootstrap"], client_tls("acme-analytics")).cluster().brokers]
