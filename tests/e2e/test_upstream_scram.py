"""Per-pool upstream identity over SASL/SCRAM, against a real tansu that requires SCRAM.

tansu creates users only while authentication is off: it starts on a sqlite file without
`--authentication`, gets two SCRAM-SHA-512 users (`payments`, `acme-all`), stops, and starts
again on the same file with `--authentication`. Clients still speak mTLS (security.protocol=SSL)
to the proxy; the proxy logs in to tansu as the client's primary pool.

* proxy "good": both pools' passwords right (one from an environment variable, one from a file);
  acme-client (pools payments + acme-all; payments has the higher priority) and acme-analytics
  (acme-all) create topics, produce and consume.
* proxy "bad": pool-payments' password is wrong. tansu itself refuses it, so acme-client gets an
  authentication error from its library; acme-analytics (pool-acme-all) keeps working.
* proxy "reauth": upstream TLS (with the proxy's own client certificate) and SCRAM together, to
  a second authenticating tansu behind a TlsTerminator and a ReauthShim (below). The shim grants
  1.5 s sessions and enforces them as a Kafka broker does (KIP-368), so the proxy must
  re-authenticate on its live connections while real clients keep producing and consuming.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import hmac
import logging
import os
import struct
import subprocess
import time

import pytest

from clients import LIBRARIES, _LogCapture, driver, unique
from conftest import _PROCESSES, PRIORITY_POOLS_YAML, proxy_config
from harness import (
    SASL_AUTHENTICATE,
    SASL_HANDSHAKE,
    TANSU_NODE_ID,
    AuditLog,
    LoopServer,
    Process,
    TlsTerminator,
    broker_port_base,
    framed,
    free_port,
    put_uvarint,
    read_frame,
    read_uvarint,
    reason_of,
    skip_tagged_fields,
)

PAYMENTS_PASSWORD = "payments-pw-4242"
ACME_ALL_PASSWORD = "acme-all-pw-1717"


def _start_tansu(tansu_bin, workdir, port, db, name, authentication, advertised=None):
    url = f"tcp://127.0.0.1:{port}"
    argv = [tansu_bin, "broker", "--listener-url", url,
            "--advertised-listener-url", advertised or url,
            "--storage-engine", f"sqlite://{db.name}"]  # relative to cwd
    if authentication:
        argv.append("--authentication")
    proc = Process(name, argv, workdir / f"{name}.log", cwd=workdir)
    _PROCESSES[name] = proc
    proc.wait_for_port("127.0.0.1", port, timeout=30)
    return proc


def _create_user(tansu_bin, port, user, password):
    result = subprocess.run(
        [tansu_bin, "user", "create", user, password, "--mechanism", "scram512",
         "--broker", f"tcp://127.0.0.1:{port}"],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, (result.stdout, result.stderr)


def _start_proxy(proxy_bin, pki, workdir, name, tansu_port, payments_password,
                 upstream_bootstrap=None, upstream_tls=""):
    bootstrap_port = free_port()
    first_port = broker_port_base(TANSU_NODE_ID)
    secret = workdir / f"{name}-acme-all.secret"
    secret.write_text(ACME_ALL_PASSWORD + "\n")
    secret.chmod(0o600)
    audit_path = workdir / f"{name}-audit.log"
    config = workdir / f"{name}.yaml"
    config.write_text(proxy_config(
        bootstrap_port=bootstrap_port, first_port=first_port, pki=pki, tansu_port=tansu_port,
        audit_path=audit_path, pools_yaml=PRIORITY_POOLS_YAML, upstream_bootstrap=upstream_bootstrap,
        upstream_yaml=upstream_tls + f"""
identity:
  mode: scram
  mechanism: SCRAM-SHA-512
  credentials:
    pool-payments: {{ username: payments, password_env: PAYMENTS_SCRAM_PASSWORD }}
    pool-acme-all: {{ username: acme-all, password_file: {secret} }}
"""))
    proc = Process(name, [proxy_bin, "run", "--config", config], workdir / f"{name}.log",
                   cwd=workdir, env={"NO_COLOR": "1", "RUST_LOG": None,
                                     "PAYMENTS_SCRAM_PASSWORD": payments_password})
    _PROCESSES[name] = proc
    proc.wait_for_port("127.0.0.1", bootstrap_port, timeout=30)
    return {"bootstrap": f"localhost:{bootstrap_port}", "process": proc,
            "audit": AuditLog(audit_path), "log": workdir / f"{name}.log"}


@pytest.fixture(scope="module")
def scram(tansu_bin, proxy_bin, pki, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("upstream-scram")
    db = workdir / "tansu.db"
    port = free_port()
    started: list[str] = []
    try:
        setup = _start_tansu(tansu_bin, workdir, port, db, "tansu-scram-setup", False)
        started.append("tansu-scram-setup")
        _create_user(tansu_bin, port, "payments", PAYMENTS_PASSWORD)
        _create_user(tansu_bin, port, "acme-all", ACME_ALL_PASSWORD)
        setup.stop()
        _PROCESSES.pop("tansu-scram-setup", None)
        started.remove("tansu-scram-setup")

        _start_tansu(tansu_bin, workdir, port, db, "tansu-scram", True)
        started.append("tansu-scram")
        good = _start_proxy(proxy_bin, pki, workdir, "proxy-scram-good", port, PAYMENTS_PASSWORD)
        started.append("proxy-scram-good")
        bad = _start_proxy(proxy_bin, pki, workdir, "proxy-scram-bad", port, "not-the-password")
        started.append("proxy-scram-bad")
        yield {"good": good, "bad": bad, "tansu_port": port}
    finally:
        for name in reversed(started):
            proc = _PROCESSES.pop(name, None)
            if proc is not None:
                proc.stop()


def test_tansu_really_requires_sasl(scram, client_tls):
    """Without the proxy's SCRAM login, tansu refuses the client: the exchange below is real."""
    from kafka import KafkaAdminClient
    from kafka.errors import KafkaError

    with pytest.raises((KafkaError, AssertionError)):
        admin = KafkaAdminClient(bootstrap_servers=f"127.0.0.1:{scram['tansu_port']}",
                                 request_timeout_ms=3000, api_version_auto_timeout_ms=3000)
        try:
            topics = admin.list_topics()
            assert topics is None, "tansu answered without authentication"
        finally:
            admin.close()


@pytest.mark.parametrize("client", ["acme-client", "acme-analytics"])
@pytest.mark.parametrize("library", LIBRARIES)
def test_both_pools_carry_traffic_as_their_broker_user(library, client, scram, client_tls):
    c = driver(library, scram["good"]["bootstrap"], client_tls(client))
    topic = unique(f"scram-{client}")
    c.create_topic(topic)
    records = [(b"k", f"as {client}".encode()), (None, bytes(range(256)))]
    c.produce(topic, records)
    assert [(k, v) for _, k, v in c.consume(topic, len(records))] == records


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
    assert sorted(data["identityPoolIds"]) == ["pool-acme-all", "pool-payments"]
    log = scram["good"]["log"].read_text()
    assert "authenticated to the broker as the pool's upstream identity" in log
    # Secrets never reach the log or the audit trail.
    for secret in (PAYMENTS_PASSWORD, ACME_ALL_PASSWORD):
        assert secret not in log
        assert secret not in audit.path.read_text()


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


@pytest.mark.parametrize("library", LIBRARIES)
def test_a_refused_pool_gets_an_authentication_error_and_others_keep_working(
        library, scram, client_tls):
    bad = scram["bad"]
    mark = bad["audit"].mark()
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
    assert "not-the-password" not in bad["audit"].path.read_text()
    assert "not-the-password" not in bad["log"].read_text()

    # The other pool's credentials are right on the same proxy.
    c = driver(library, bad["bootstrap"], client_tls("acme-analytics"))
    topic = unique("scram-still-works")
    c.create_topic(topic)
    c.produce(topic, [(None, b"still fine")])
    assert [v for _, _, v in c.consume(topic, 1)] == [b"still fine"]


def _tansu_with_users(tansu_bin, workdir, port, db, name, started, advertised=None):
    """tansu on sqlite: users created while authentication is off, then restarted with it."""
    setup = _start_tansu(tansu_bin, workdir, port, db, f"{name}-setup", False)
    started.append(f"{name}-setup")
    _create_user(tansu_bin, port, "payments", PAYMENTS_PASSWORD)
    _create_user(tansu_bin, port, "acme-all", ACME_ALL_PASSWORD)
    setup.stop()
    _PROCESSES.pop(f"{name}-setup", None)
    started.remove(f"{name}-setup")
    _start_tansu(tansu_bin, workdir, port, db, name, True, advertised=advertised)
    started.append(name)


@pytest.fixture(scope="module")
def reauth(tansu_bin, proxy_bin, pki, tmp_path_factory):
    """proxy ──TLS (proxy's client certificate)──▶ TlsTerminator ──▶ ReauthShim ──▶ tansu, with
    SCRAM logins; tansu advertises the terminator's address, so every upstream connection (the
    bootstrap and broker 111) takes that path."""
    workdir = tmp_path_factory.mktemp("upstream-reauth")
    port = free_port()
    shim = ReauthShim(port, {"payments": PAYMENTS_PASSWORD, "acme-all": ACME_ALL_PASSWORD},
                      SHIM_LIFETIME_MS)
    terminator = TlsTerminator(pki, shim.port)
    started: list[str] = []
    try:
        _tansu_with_users(tansu_bin, workdir, port, workdir / "tansu.db", "tansu-reauth", started,
                          advertised=f"tcp://localhost:{terminator.port}")
        shim.start()
        terminator.start()
        proxy = _start_proxy(
            proxy_bin, pki, workdir, "proxy-scram-reauth", port, PAYMENTS_PASSWORD,
            upstream_bootstrap=f"localhost:{terminator.port}", upstream_tls=f"""
tls:
  ca: {pki / "server-ca.pem"}
  certificate_chain: {pki / "proxy-upstream-client.pem"}
  private_key: {pki / "proxy-upstream-client.key"}
""")
        started.append("proxy-scram-reauth")
        yield {**proxy, "shim": shim, "terminator": terminator}
    finally:
        for name in reversed(started):
            proc = _PROCESSES.pop(name, None)
            if proc is not None:
                proc.stop()
        terminator.stop()
        shim.stop()


@pytest.mark.parametrize("client", ["acme-client", "acme-analytics"])
@pytest.mark.parametrize("library", LIBRARIES)
def test_upstream_tls_and_scram_together_carry_both_pools(library, client, reauth, client_tls):
    c = driver(library, reauth["bootstrap"], client_tls(client))
    topic = unique(f"tls-scram-{client}")
    c.create_topic(topic)
    records = [(b"k", f"TLS and SCRAM as {client}".encode()), (None, bytes(range(256)))]
    c.produce(topic, records)
    assert [(k, v) for _, k, v in c.consume(topic, len(records))] == records
    subjects = reauth["terminator"].peer_subjects
    assert subjects, "the proxy never connected through the TLS terminator"
    assert all("commonName=kafka-mtls-proxy" in s for s in subjects), subjects
    # Every upstream connection logged in over TLS (tansu refuses anything else).
    assert all(conn.logins >= 1 for conn in reauth["shim"].connections
               if conn.closed is None), reauth["shim"].connections


def _steady_phase(step, drain, seconds, mark, sent, received):
    """`step(0)` to warm up, `drain()` until that record is `received` (15 s at most), `mark()`,
    `step(1)`, `step(2)`, … for `seconds`, `mark()` again, then `drain()` until every record
    `sent` is `received` (10 s at most)."""
    step(0)
    # Warm up until the first record is consumed back: then every connection the clients need
    # is open (on a busy machine the consumer may not have reached the broker after step 0),
    # and any connection opened later is a reconnect.
    end = time.monotonic() + 15
    while not received and time.monotonic() < end:
        drain()
    assert received, "the warm-up record was not consumed within 15 s"
    mark()  # the steady phase starts
    deadline = time.monotonic() + seconds
    i = 1
    while time.monotonic() < deadline:
        step(i)
        i += 1
    mark()  # the steady phase ends; closing the clients below closes their connections
    end = time.monotonic() + 10
    while len(received) < len(sent) and time.monotonic() < end:
        drain()


def _keep_busy_kafka_python(bootstrap, tls, topic, seconds, mark):
    """A kafka-python producer (acks=1) and consumer (manual assignment) on one topic: one
    record per ~50 ms for `seconds`, each consumed back. `mark()` is called when the steady
    phase starts (after a warm-up record) and when it ends. Returns (sent, received, problems)."""
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    d = driver("kafka-python", bootstrap, tls)
    capture = _LogCapture(min_level=logging.WARNING)
    logger = logging.getLogger("kafka")
    logger.addHandler(capture)
    producer = KafkaProducer(**d.config(acks=1, linger_ms=0, retries=0))
    consumer = KafkaConsumer(**d.config(group_id=None, enable_auto_commit=False,
                                        auto_offset_reset="earliest"))
    sent, received = [], []
    try:
        consumer.assign([TopicPartition(topic, 0)])

        def poll(timeout_ms):
            for batch in consumer.poll(timeout_ms=timeout_ms).values():
                received.extend(r.value for r in batch)

        def step(i):
            value = f"record-{i}".encode()
            producer.send(topic, value=value, partition=0).get(timeout=10)
            sent.append(value)
            poll(50)

        _steady_phase(step, lambda: poll(200), seconds, mark, sent, received)
    finally:
        producer.close(timeout=5)
        consumer.close()
        logger.removeHandler(capture)
    return sent, received, [m for _, m in capture.seen]


def _keep_busy_confluent(bootstrap, tls, topic, seconds, mark):
    """The same with librdkafka (confluent-kafka): producer acks=1, consumer by assignment."""
    import gc

    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

    d = driver("confluent-kafka", bootstrap, tls)
    producer = Producer(d.config(**{"acks": 1, "linger.ms": 0, "enable.idempotence": False}))
    consumer = Consumer(d.config(**{"group.id": unique("reauth-unused"),
                                    "enable.auto.commit": False,
                                    "auto.offset.reset": "earliest"}))
    sent, received, problems = [], [], []

    def poll(timeout):
        msg = consumer.poll(timeout)
        if msg is None:
            return
        if msg.error():
            if msg.error().code() != KafkaError._PARTITION_EOF:
                problems.append(str(msg.error()))
            return
        received.append(msg.value())

    def delivered(err, _msg):
        if err is not None:
            problems.append(str(err))

    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])

        def step(i):
            value = f"record-{i}".encode()
            producer.produce(topic, value=value, partition=0, on_delivery=delivered)
            assert producer.flush(10) == 0, "a record was not delivered within 10 s"
            sent.append(value)
            poll(0.05)

        _steady_phase(step, lambda: poll(0.2), seconds, mark, sent, received)
    finally:
        consumer.close()
        producer = consumer = None
        gc.collect()
    return sent, received, problems + [str(e) for _, e in d.errors]


@pytest.mark.parametrize("library", LIBRARIES)
def test_the_proxy_reauthenticates_on_live_connections_without_disturbing_clients(
        library, reauth, client_tls):
    """Sessions last 1.5 s and the shim closes a connection whose session expired, as a Kafka
    broker does. Clients keep producing and consuming for 5 s (more than three lifetimes) with
    no error and no reconnect; the proxy re-authenticates at least three times on the same
    upstream connection."""
    shim = reauth["shim"]
    first = len(shim.connections)  # connections before this are earlier tests'
    topic = unique(f"reauth-{library}")
    driver(library, reauth["bootstrap"], client_tls("acme-client")).create_topic(topic)
    steady: dict = {}

    def mark():
        if "since" in steady:
            steady["until"] = time.monotonic()
        else:
            steady["since"] = time.monotonic()
            steady["connections"] = [c for c in shim.connections[first:] if c.closed is None]

    busy = _keep_busy_kafka_python if library == "kafka-python" else _keep_busy_confluent
    sent, received, problems = busy(reauth["bootstrap"], client_tls("acme-client"), topic, 5.0,
                                    mark)

    assert not problems, problems
    assert len(sent) > 20, len(sent)
    assert received == sent, (len(received), len(sent))
    conns = shim.connections
    assert not any(c.expired for c in conns), "a session expired: the proxy re-authenticated late"
    assert not any(c.errors for c in conns), [c.errors for c in conns]
    # No reconnect: no upstream connection opened during the steady phase, and the one that
    # re-authenticated most stayed open throughout.
    new = [c for c in conns[first:] if c not in steady["connections"]
           and steady["since"] <= c.opened <= steady["until"]]
    assert not new, new
    busiest = max(steady["connections"], key=lambda c: c.reauthentications)
    assert busiest.reauthentications >= 3, steady["connections"]
    assert busiest.closed is None or busiest.closed > steady["until"], busiest
    log = reauth["log"].read_text()
    assert "re-authenticated to the broker" in log
    assert "re-authentication to the broker failed" not in log
    assert PAYMENTS_PASSWORD not in log



def test_a_rotated_password_file_is_read_at_the_next_connect(scram, client_tls):
    """Secrets are read at connect time: rewriting the file takes effect with no reload.
    (Runs last in this module: it leaves the "bad" proxy's file as it found it.)"""
    bad = scram["bad"]
    secret = bad["log"].parent / "proxy-scram-bad-acme-all.secret"
    mark = bad["audit"].mark()
    secret.write_text("rotated-to-something-wrong\n")
    try:
        refusal = driver("confluent-kafka", bad["bootstrap"], client_tls("acme-analytics")).attempt(
            timeout=3)
        assert not refusal.got_metadata
        refused = bad["audit"].wait_for(
            mark, lambda r: reason_of(r) == "upstream_identity_refused", timeout=10)
        assert refused and refused[0]["data"]["primaryPoolId"] == "pool-acme-all"
    finally:
        secret.write_text(ACME_ALL_PASSWORD + "\n")
    # The right password again: the remembered refusal was for another password.
    assert "localhost" in [h for _, h, _ in driver(
        "kafka-python", bad["bootstrap"], client_tls("acme-analytics")).cluster().brokers]


# --------------------------------------------------------------------------------------------
# KIP-368 re-authentication: a shim that makes tansu behave like a Kafka broker
# --------------------------------------------------------------------------------------------

SHIM_LIFETIME_MS = 1500
SCRAM_ITERATIONS = 4096


def _sasl_authenticate_v2_body(buf: bytes, pos: int) -> dict:
    """Fields of a SaslAuthenticate v2 response body starting at `pos`, with the offset of
    `session_lifetime_ms` (to rewrite it in place)."""
    error_code = struct.unpack_from(">h", buf, pos)[0]
    n, pos = read_uvarint(buf, pos + 2)
    pos += max(n - 1, 0)  # error_message (compact nullable string)
    n, pos = read_uvarint(buf, pos)
    auth_bytes = buf[pos:pos + n - 1]
    pos += n - 1
    return {"error_code": error_code, "auth_bytes": auth_bytes, "lifetime_at": pos,
            "lifetime": struct.unpack_from(">q", buf, pos)[0]}


def _scram_keys(password: str, salt: bytes) -> tuple[bytes, bytes]:
    salted = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, SCRAM_ITERATIONS)
    client_key = hmac.new(salted, b"Client Key", "sha512").digest()
    return hashlib.sha512(client_key).digest(), hmac.new(salted, b"Server Key", "sha512").digest()


@dataclasses.dataclass
class ShimConnection:
    """One proxy → tansu connection as the shim saw it."""
    opened: float
    user: str | None = None
    logins: int = 0
    reauthentications: int = 0
    expires: float | None = None
    expired: bool = False
    closed: float | None = None
    errors: list[str] = dataclasses.field(default_factory=list)


class ReauthShim(LoopServer):
    """Between the proxy and tansu, KIP-368 as a Kafka broker does it (tansu grants 60 s
    sessions and never enforces them; it also refuses a second login on a connection: its
    SaslHandshake only accepts a connection that has not authenticated, and then drops the
    connection's authentication, see tansu-auth 0.6.0 `handshake.rs`):

    * the final successful SaslAuthenticate v2 answer's `session_lifetime_ms` becomes
      `lifetime_ms`;
    * a request other than SASL arriving after the session expired closes the connection
      (recorded as `expired`);
    * a SaslHandshake/SaslAuthenticate on an authenticated connection is a re-authentication:
      the shim answers it itself with SCRAM-SHA-512 (it knows the test's passwords), once every
      request forwarded before it has been answered (answers stay in order), and counts it.

    Runs its own asyncio loop in a thread, like the TlsTerminator (without TLS).
    """

    name = "the re-authentication shim"

    def __init__(self, backend_port: int, users: dict[str, str], lifetime_ms: int):
        super().__init__()
        self.backend_port = backend_port
        self.users = users
        self.lifetime = lifetime_ms / 1000
        self.connections: list[ShimConnection] = []

    async def _serve(self, reader, writer):
        conn = ShimConnection(opened=time.monotonic())
        self.connections.append(conn)
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.backend_port)
        # Correlation id → (api key, version) of requests forwarded to tansu and not answered.
        forwarded: dict[int, tuple[int, int]] = {}
        answered = asyncio.Condition()
        scram: dict = {}

        async def requests():
            while True:
                req = await read_frame(reader)
                api_key, version, corr = struct.unpack_from(">hhi", req)
                sasl = api_key in (SASL_HANDSHAKE, SASL_AUTHENTICATE)
                if conn.logins and sasl:
                    async with answered:
                        await answered.wait_for(lambda: not forwarded)
                    answer, close = self._reauthenticate(conn, scram, api_key, version, corr, req)
                    writer.write(framed(answer))
                    await writer.drain()
                    if close:
                        return
                    continue
                if conn.expires is not None and not sasl and time.monotonic() > conn.expires:
                    conn.expired = True
                    return
                if api_key == SASL_AUTHENTICATE and conn.user is None:
                    first = self._auth_bytes(req)
                    conn.user = first.decode().split("n=", 1)[1].split(",", 1)[0]
                forwarded[corr] = (api_key, version)
                up_writer.write(framed(req))
                await up_writer.drain()

        async def responses():
            while True:
                resp = bytearray(await read_frame(up_reader))
                corr = struct.unpack_from(">i", resp)[0]
                api_key, version = forwarded[corr]
                if api_key == SASL_AUTHENTICATE and version >= 2:
                    pos = skip_tagged_fields(resp, 4)  # response header v1
                    body = _sasl_authenticate_v2_body(resp, pos)
                    final = body["auth_bytes"].startswith(b"v=")
                    if body["error_code"] == 0 and final:
                        struct.pack_into(">q", resp, body["lifetime_at"], int(self.lifetime * 1000))
                        conn.logins += 1
                        conn.expires = time.monotonic() + self.lifetime
                writer.write(framed(bytes(resp)))
                await writer.drain()
                async with answered:
                    del forwarded[corr]
                    answered.notify_all()

        tasks = [asyncio.ensure_future(requests()), asyncio.ensure_future(responses())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for t in tasks:
                if t.done() and t.exception() is not None and not isinstance(
                        t.exception(), (asyncio.IncompleteReadError, ConnectionError)):
                    conn.errors.append(repr(t.exception()))
        finally:
            conn.closed = time.monotonic()
            for t in tasks:
                t.cancel()
            writer.close()
            up_writer.close()

    @staticmethod
    def _auth_bytes(req: bytes) -> bytes:
        """auth_bytes of a SaslAuthenticate v2 request (request header v2)."""
        client_id_len = struct.unpack_from(">h", req, 8)[0]
        pos = skip_tagged_fields(req, 10 + max(client_id_len, 0))
        n, pos = read_uvarint(req, pos)
        return req[pos:pos + n - 1]

    def _reauthenticate(self, conn, scram, api_key, version, corr, req) -> tuple[bytes, bool]:
        """The shim's own answer to a re-authentication step, and whether to close after it."""
        if api_key == SASL_HANDSHAKE:
            assert version == 1, version
            mechanism = b"SCRAM-SHA-512"
            body = struct.pack(">ih", corr, 0) + struct.pack(">ih", 1, len(mechanism)) + mechanism
            return body, False
        assert version == 2, version

        def answer(error_code: int, auth: bytes, lifetime_ms: int, message: bytes | None = None):
            msg = b"\x00" if message is None else put_uvarint(len(message) + 1) + message
            return (struct.pack(">i", corr) + b"\x00" + struct.pack(">h", error_code) + msg
                    + put_uvarint(len(auth) + 1) + auth + struct.pack(">q", lifetime_ms)
                    + b"\x00")

        auth = self._auth_bytes(req).decode()
        if not scram:
            bare = auth.split(",", 2)[2]  # after "n,,"
            fields = dict(f.split("=", 1) for f in bare.split(","))
            if fields["n"] != conn.user:
                # KIP-368: re-authentication must keep the connection's principal.
                conn.errors.append(f"re-authentication as {fields['n']}, not {conn.user}")
                return answer(58, b"", 0, b"principal changed"), True
            salt = os.urandom(16)
            server_first = (f"r={fields['r']}{os.urandom(8).hex()},"
                            f"s={base64.b64encode(salt).decode()},i={SCRAM_ITERATIONS}")
            scram.update(bare=bare, server_first=server_first, salt=salt)
            return answer(0, server_first.encode(), 0), False
        without_proof, proof = auth.rsplit(",p=", 1)
        auth_message = f"{scram['bare']},{scram['server_first']},{without_proof}".encode()
        stored_key, server_key = _scram_keys(self.users[conn.user], scram["salt"])
        signature = hmac.new(stored_key, auth_message, "sha512").digest()
        client_key = bytes(a ^ b for a, b in zip(base64.b64decode(proof), signature))
        scram.clear()
        if hashlib.sha512(client_key).digest() != stored_key:
            return answer(58, b"", 0, b"invalid credentials"), True
        conn.reauthentications += 1
        conn.expires = time.monotonic() + self.lifetime
        verifier = base64.b64encode(hmac.new(server_key, auth_message, "sha512").digest())
        return answer(0, b"v=" + verifier, int(self.lifetime * 1000)), False
