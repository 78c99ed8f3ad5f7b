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
"""

from __future__ import annotations

import subprocess
import time

import pytest

from clients import LIBRARIES, driver, unique
from conftest import _PROCESSES, proxy_config
from harness import TANSU_NODE_ID, AuditLog, Process, broker_port_base, free_port, reason_of

PAYMENTS_PASSWORD = "payments-pw-4242"
ACME_ALL_PASSWORD = "acme-all-pw-1717"

# pool-payments is the primary pool of acme-client, which also matches pool-acme-all.
SCRAM_POOLS_YAML = """\
      - id: pool-payments
        display_name: Payments
        external_identifier: CN
        filter: 'CN == "acme-client" && OU == "payments"'
        priority: 10
      - id: pool-acme-all
        display_name: All Acme clients
        external_identifier: SHA1
        filter: 'O == "Acme Inc"'
"""


def _start_tansu(tansu_bin, workdir, port, db, name, authentication):
    url = f"tcp://127.0.0.1:{port}"
    argv = [tansu_bin, "broker", "--listener-url", url, "--advertised-listener-url", url,
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


def _start_proxy(proxy_bin, pki, workdir, name, tansu_port, payments_password):
    bootstrap_port = free_port()
    first_port = broker_port_base(TANSU_NODE_ID)
    secret = workdir / f"{name}-acme-all.secret"
    secret.write_text(ACME_ALL_PASSWORD + "\n")
    secret.chmod(0o600)
    audit_path = workdir / f"{name}-audit.log"
    config = workdir / f"{name}.yaml"
    config.write_text(proxy_config(
        bootstrap_port=bootstrap_port, first_port=first_port, pki=pki, tansu_port=tansu_port,
        audit_path=audit_path, pools_yaml=SCRAM_POOLS_YAML, upstream_yaml=f"""
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
    records = audit.wait_for(mark, lambda r: r["data"].get("primaryPoolId") is not None)
    assert records, "no audit record"
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
