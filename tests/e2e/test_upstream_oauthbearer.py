"""Upstream SASL/OAUTHBEARER with tokens the proxy signs, validated by a real Apache Kafka broker.

The module's one-node cluster validates tokens with Kafka's `OAuthBearerValidatorCallbackHandler`
against the JWKS of the "good" proxy, so that proxy starts first. The broker's principal is the
token's `sub`, the primary pool: `kafka-acls.sh` gives `User:pool-payments` the `payments-`
topics and groups, `User:pool-acme-all` the `analytics-` ones (both: the drivers' `e2e-` groups).
No proxy has ACLs of its own: every refusal here is the broker's.

The proxies share one `keys_dir` (the same keys, one JWKS). Keys rotate every 3 s, published 2 s
ahead; tokens live 4 s and the broker ends each session at the token's `exp`, so live
connections re-authenticate (KIP-368) with fresh tokens of the current key.

* "good": upstream SASL_SSL, with the proxy's client certificate.
* "bad": the wrong audience (the signature is fine).
* "reauth": upstream REAUTH (2 s sessions), its bootstrap connections through a `SaslTap` that
  copies the tokens and the broker's answers: accepted tokens are checked with PyJWT.

Kafka refreshes the JWKS every `sasl.oauthbearer.jwks.endpoint.refresh.ms` (1 h by default) and
on a token naming an unknown kid, but refuses that token (4.4.0: the first login with each new
key fails). The broker here refreshes every second, less than publish_ahead, as 1 h is less than
the default 65 min (`OAuthSettings.jwks_refresh_ms`).
"""

from __future__ import annotations

import asyncio
import base64
import collections
import hashlib
import json
import random
import re
import struct
import threading
import time
import urllib.request
from datetime import datetime, timezone

import jwt
import pytest

from clients import LIBRARIES, driver, unique
from steady_traffic import keep_busy_confluent, keep_busy_kafka_python
from conftest import _PROCESSES, PRIORITY_POOLS_YAML, proxy_config, start_cluster, stop_cluster
from harness import (KAFKA_NODE_ID, SASL_AUTHENTICATE, AuditLog, LogSince, LoopServer, Process,
                     broker_port_base, framed, free_port, kafka_cluster_module,
                     open_kafka_connection, raw_tls_attempt, read_frame, read_uvarint,
                     reason_of, skip_tagged_fields)
# The two ways clients report an upstream authentication failure, as pinned for SCRAM.
from test_upstream_scram import _auth_error_confluent, _auth_error_kafka_python

cluster = kafka_cluster_module()

ISSUER = "https://kafka-mtls-proxy.e2e"
AUDIENCE = "kafka-e2e"
WRONG_AUDIENCE = "not-the-brokers-audience"

ROTATE_EVERY_MS, PUBLISH_AHEAD_MS, TOKEN_LIFETIME_MS = 3000, 2000, 4000
# Less than publish_ahead minus a proxy's tick (publish_ahead / 4): a key another proxy wrote
# reaches the good proxy's JWKS within a tick, the broker within a refresh. Kafka logs every
# refresh at INFO, once per OAUTHBEARER listener (three here).
JWKS_REFRESH_MS = 1000
REAUTH_LIFETIME_MS = 2000  # the REAUTH listener's connections.max.reauth.ms (< the tokens' 4 s)

TOPIC_AUTHORIZATION_FAILED = 29
HR = "hr"  # a topic no pool may use


def _acl(principal: str, topic_prefix: str) -> tuple[str, ...]:
    """Everything on the topics and groups prefixed `topic_prefix`, and the drivers' groups."""
    return ("--add", "--allow-principal", principal, "--operation", "All",
            "--resource-pattern-type", "prefixed", "--topic", topic_prefix,
            "--group", topic_prefix, "--group", "e2e-")


# --------------------------------------------------------------------------------------------
# JWKS and tokens, checked independently (PyJWT)
# --------------------------------------------------------------------------------------------


def fetch_jwks(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as reply:
        assert reply.status == 200
        assert "max-age" in reply.headers.get("Cache-Control", "")
        return json.load(reply)


def verify(token: str, jwks_urls: list[str], audience: str = AUDIENCE,
           presented_at: float | None = None) -> dict:
    """What a KIP-768 broker checks: a key of the JWKS by kid, ES256, iss, aud, exp (at
    `presented_at`, when the token was presented, if given: tokens here live 4 s)."""
    header = jwt.get_unverified_header(token)
    keys = {k["kid"]: k for url in jwks_urls for k in fetch_jwks(url)["keys"]}
    if header.get("kid") not in keys:
        raise jwt.InvalidTokenError(f"no key {header.get('kid')} in the JWKS")
    key = jwt.PyJWK.from_dict(keys[header["kid"]])
    leeway = 0.0 if presented_at is None else max(0.0, time.time() - presented_at)
    return jwt.decode(token, key, algorithms=["ES256"], audience=audience, issuer=ISSUER,
                      leeway=leeway, options={"require": ["exp", "iat", "iss", "aud", "sub"]})


def parse_client_message(message: bytes) -> tuple[str, dict[str, str]]:
    """RFC 7628 §3.1: `n,,` then `\\x01`-separated key=value pairs, ending `\\x01\\x01`.
    Returns the bearer token and the extensions (every key but `auth`)."""
    text = message.decode("ascii")
    assert text.startswith("n,,\x01"), repr(text[:8])
    assert text.endswith("\x01\x01"), repr(text[-8:])
    pairs = dict(kv.split("=", 1) for kv in text[4:-2].split("\x01"))
    auth = pairs.pop("auth")
    assert auth.startswith("Bearer "), auth[:10]
    return auth[len("Bearer "):], pairs


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _thumbprint(jwk: dict) -> str:
    """RFC 7638: SHA-256 of the required members in lexicographic order, no whitespace."""
    members = {name: jwk[name] for name in ("crv", "kty", "x", "y")}
    return _b64url(hashlib.sha256(
        json.dumps(members, separators=(",", ":"), sort_keys=True).encode()).digest())


# --------------------------------------------------------------------------------------------
# A tap on the proxy's upstream connections: the tokens the broker accepted
# --------------------------------------------------------------------------------------------


def _authenticate_request_bytes(frame: bytes) -> bytes:
    """auth_bytes of a SaslAuthenticate v2 request (request header v2)."""
    api_key, version, _, client_id_len = struct.unpack_from(">hhih", frame)
    assert (api_key, version) == (SASL_AUTHENTICATE, 2), (api_key, version)
    off = skip_tagged_fields(frame, 10 + max(client_id_len, 0))
    size, off = read_uvarint(frame, off)
    return frame[off:off + size - 1]


def _authenticate_answer(frame: bytes) -> dict:
    """error_code, error_message, auth_bytes, session_lifetime_ms of a SaslAuthenticate v2
    response (response header v1)."""
    off = skip_tagged_fields(frame, 4)
    (error_code,) = struct.unpack_from(">h", frame, off)
    size, off = read_uvarint(frame, off + 2)
    message = frame[off:off + size - 1].decode() if size else None
    off += max(size - 1, 0)
    size, off = read_uvarint(frame, off)
    auth_bytes = frame[off:off + size - 1]
    (lifetime,) = struct.unpack_from(">q", frame, off + size - 1)
    return {"error_code": error_code, "error_message": message, "auth_bytes": auth_bytes,
            "session_lifetime_ms": lifetime}


class SaslTap(LoopServer):
    """Plaintext TCP between the proxy and one broker listener: every byte is forwarded as it
    is, and each SaslAuthenticate (first login or KIP-368 re-authentication) is recorded with
    the broker's answer. `connections` holds one list of logins per connection, each
    `{"message", "at", "answer"}`. Answers come in request order, so a FIFO of the requests'
    api keys pairs them (no Produce with acks=0 passes here: only bootstrap connections)."""

    name = "SASL tap"

    def __init__(self, backend_port: int):
        super().__init__()
        self.backend_port = backend_port
        self.connections: list[list[dict]] = []

    async def _serve(self, reader, writer):
        logins: list[dict] = []
        self.connections.append(logins)
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.backend_port)
        in_flight: collections.deque = collections.deque()

        async def requests():
            while True:
                frame = await read_frame(reader)
                (api_key,) = struct.unpack_from(">h", frame)
                if api_key == SASL_AUTHENTICATE:
                    logins.append({"message": _authenticate_request_bytes(frame),
                                   "at": time.time(), "answer": None})
                in_flight.append(api_key)
                up_writer.write(framed(frame))
                await up_writer.drain()

        async def answers():
            while True:
                frame = await read_frame(up_reader)
                if in_flight.popleft() == SASL_AUTHENTICATE:
                    login = next(entry for entry in logins if entry["answer"] is None)
                    login["answer"] = _authenticate_answer(frame)
                writer.write(framed(frame))
                await writer.drain()

        tasks = [asyncio.ensure_future(requests()), asyncio.ensure_future(answers())]
        try:
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            writer.close()
            up_writer.close()

    def logins(self, since: int = 0) -> list[dict]:
        """Every login recorded on connections opened from the `since`-th on, answered."""
        return [login for conn in self.connections[since:] for login in conn
                if login["answer"] is not None]


# --------------------------------------------------------------------------------------------
# The cluster and the proxies
# --------------------------------------------------------------------------------------------


def _port_base() -> int:
    """A `port_base` whose seven listener ports are free, below the ephemeral range (clients'
    outgoing connections cannot take them there, see /work/shared/kafka-notes.md)."""
    for _ in range(200):
        base = random.randrange(20000, 32000, 10)
        if not any(cluster.port_in_use(base + i) for i in range(len(cluster.ALL_LISTENERS))):
            return base
    raise RuntimeError("no free range of ports for the module's cluster")


def _start_proxy(proxy_bin, pki, workdir, name, upstream, keys_dir, *, audience=AUDIENCE,
                 tls=False, admin_port=None):
    bootstrap_port, admin_port = free_port(), admin_port or free_port()
    audit_path = workdir / f"{name}-audit.log"
    tls_yaml = f"""
tls:
  ca: {pki / "server-ca.pem"}
  certificate_chain: {pki / "proxy-upstream-client.pem"}
  private_key: {pki / "proxy-upstream-client.key"}
""" if tls else ""
    config = workdir / f"{name}.yaml"
    config.write_text(proxy_config(
        bootstrap_port=bootstrap_port, first_port=broker_port_base(KAFKA_NODE_ID), pki=pki,
        upstream_bootstrap=upstream, audit_path=audit_path, pools_yaml=PRIORITY_POOLS_YAML,
        upstream_yaml=tls_yaml + f"""
identity:
  mode: oauthbearer
  issuer: {ISSUER}
  audience: {audience}
  keys_dir: {keys_dir}
  rotate_every_ms: {ROTATE_EVERY_MS}
  publish_ahead_ms: {PUBLISH_AHEAD_MS}
  token_lifetime_ms: {TOKEN_LIFETIME_MS}
  extensions:
    logicalCluster: lkc-e2e
""") + f"admin:\n  listen: 127.0.0.1:{admin_port}\n")
    log = workdir / f"{name}.log"
    proc = Process(name, [proxy_bin, "run", "--config", config], log, cwd=workdir,
                   env={"NO_COLOR": "1", "RUST_LOG": None})
    _PROCESSES[name] = proc
    try:
        proc.wait_for_port("127.0.0.1", bootstrap_port, timeout=30)
        proc.wait_for_port("127.0.0.1", admin_port, timeout=30)
    except BaseException:
        _PROCESSES.pop(name, None)
        proc.stop()
        raise
    return {"bootstrap": f"localhost:{bootstrap_port}", "port": bootstrap_port,
            "admin_port": admin_port, "upstream": upstream,
            "jwks": f"http://127.0.0.1:{admin_port}/.well-known/jwks.json",
            "audit": AuditLog(audit_path), "log": log, "process": proc}


@pytest.fixture(scope="module")
def oauth(kafka_jars, proxy_bin, pki, client_tls, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("upstream-oauthbearer")
    keys_dir = workdir / "keys"
    keys_dir.mkdir(mode=0o700)
    base = _port_base()
    # The listeners' addresses, known before anything starts (the same port_base below).
    planned = cluster.Cluster(workdir / "kafka", pki=pki, port_base=base,
                              reauth_ms=REAUTH_LIFETIME_MS)
    good_admin = free_port()
    jwks_url = f"http://127.0.0.1:{good_admin}/.well-known/jwks.json"
    tap = SaslTap(int(planned.bootstrap("REAUTH").rsplit(":", 1)[1])).start()
    proxies: dict[str, dict] = {}
    kafka = None
    try:
        # The issuer first: the broker fetches its JWKS while starting.
        proxies["good"] = _start_proxy(proxy_bin, pki, workdir, "proxy-oauth-good",
                                       planned.bootstrap("SASL_SSL"), keys_dir, tls=True,
                                       admin_port=good_admin)
        proxies["bad"] = _start_proxy(proxy_bin, pki, workdir, "proxy-oauth-bad",
                                      planned.bootstrap("SASL_PLAINTEXT"), keys_dir,
                                      audience=WRONG_AUDIENCE)
        proxies["reauth"] = _start_proxy(proxy_bin, pki, workdir, "proxy-oauth-reauth",
                                         f"127.0.0.1:{tap.port}", keys_dir)
        kafka = start_cluster(workdir / "kafka", pki, brokers=1, port_base=base,
                              oauth=cluster.OAuthSettings(jwks_url, ISSUER, AUDIENCE,
                                                          jwks_refresh_ms=JWKS_REFRESH_MS),
                              reauth_ms=REAUTH_LIFETIME_MS)
        assert kafka.bootstrap("REAUTH") == planned.bootstrap("REAUTH")
        kafka.acls(*_acl("User:pool-payments", "payments-"))
        kafka.acls(*_acl("User:pool-acme-all", "analytics-"))
        # A fresh broker's first login on a listener is slow (measured: 2.5 s on SASL_SSL, its
        # JVM's first TLS handshake and token validation), longer than kafka-python's 2 s for
        # its first ApiVersions: one login through each proxy first.
        for name, accepted in (("good", True), ("reauth", True), ("bad", False)):
            attempt = raw_tls_attempt("127.0.0.1", proxies[name]["port"],
                                      client_tls("acme-client"), timeout=30)
            assert attempt.kafka_ok == accepted, (name, attempt)
        yield {**proxies, "kafka": kafka, "tap": tap, "keys_dir": keys_dir, "jwks": jwks_url}
    finally:
        procs = [p["process"] for p in proxies.values()]
        for name in [n for n, p in _PROCESSES.items() if p in procs]:
            del _PROCESSES[name]
        # Signal every proxy first: each takes a moment to exit (its admin server too).
        for proc in procs:
            if proc.alive():
                proc.proc.terminate()
        if kafka is not None:
            stop_cluster(kafka)
        codes = {proc.name: proc.stop() for proc in procs}
        tap.stop()
        # A proxy that crashed during the module must not go unnoticed.
        crashed = {name: code for name, code in codes.items() if code not in (0, -15, None)}
        assert not crashed, (crashed, {name: proc.log_tail(20) for name, proc in
                                       zip(codes, procs) if name in crashed})


def _denials(log: LogSince, principal: str, topic: str, timeout: float = 10.0) -> list[str]:
    """StandardAuthorizer's denial lines (kafka.authorizer.logger, INFO) for `principal` on the
    literal topic `topic`."""
    return log.wait_for(rf"Principal = {re.escape(principal)} is Denied operation = \w+ from "
                        rf"host = 127\.0\.0\.1 on resource = Topic:LITERAL:{re.escape(topic)} ",
                        timeout=timeout)


_PROXY_LINE = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z\s+(\w+)\s+(.*)$")
_CONNECTION_ID = re.compile(r"\bconn\{id=(conn-\d+)")


def _proxy_events(path, message: str) -> list[tuple[float, str]]:
    """(UNIX time, line) of each line of the proxy log at `path` containing `message`."""
    out = []
    for line in path.read_text(errors="replace").splitlines():
        m = _PROXY_LINE.match(line)
        if m and message in m.group(3):
            stamp = datetime.strptime(m.group(1)[:26], "%Y-%m-%dT%H:%M:%S.%f")
            out.append((stamp.replace(tzinfo=timezone.utc).timestamp(), line))
    return out


SIGNED = "authenticated to the broker with a token for the pool"  # debug, names the kid
REAUTHENTICATED = "re-authenticated to the broker"
REFUSED = "the broker refused the pool's upstream identity"
REAUTH_FAILED = "re-authentication to the broker failed"
UNKNOWN_KID = "Unable to find a suitable verification key"  # Kafka's (jose4j's) words


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


def _metric_sum(metrics: dict[str, float], prefix: str) -> float:
    return sum(v for k, v in metrics.items() if k.startswith(prefix))


# --------------------------------------------------------------------------------------------
# The JWKS and the tokens
# --------------------------------------------------------------------------------------------


def test_the_jwks_publishes_public_p256_keys_named_by_their_thumbprint(oauth):
    keys = fetch_jwks(oauth["jwks"])["keys"]
    assert keys, "the JWKS is empty"
    for key in keys:
        # Public members only: no "d" (the private scalar) ever.
        assert set(key) == {"kty", "crv", "x", "y", "kid", "use", "alg"}, key
        assert (key["kty"], key["crv"], key["alg"], key["use"]) == ("EC", "P-256", "ES256",
                                                                     "sig"), key
        for coordinate in ("x", "y"):
            assert len(base64.urlsafe_b64decode(key[coordinate] + "==")) == 32, key
        assert key["kid"] == _thumbprint(key), key
        jwt.PyJWK.from_dict(key)  # a key PyJWT accepts for ES256
    # Proxies sharing keys_dir publish the same keys (a rotation may land between fetches).
    for other in ("bad", "reauth"):
        mine = {k["kid"] for k in fetch_jwks(oauth[other]["jwks"])["keys"]}
        assert mine & {k["kid"] for k in keys}, (other, mine, keys)
    files = list(oauth["keys_dir"].glob("es256-*.pem"))
    assert files and all(f.stat().st_mode & 0o777 == 0o600 for f in files), files


def test_tokens_the_broker_accepted_carry_the_pools_and_verify_against_the_jwks(
        oauth, client_tls):
    """The tap copies the proxy's SaslAuthenticate requests and the broker's answers: every
    token the broker accepted is checked here with PyJWT, with its claims and extensions."""
    tap, reauth = oauth["tap"], oauth["reauth"]
    first = len(tap.connections)
    # acme-client (pool-payments, pool-acme-all): held open for three sessions, idle.
    conn = open_kafka_connection(reauth["port"], client_tls("acme-client"))
    try:
        time.sleep(3 * REAUTH_LIFETIME_MS / 1000 + 0.5)
        held = tap.connections[first:]
    finally:
        conn.close()
    assert len(held) == 1, f"expected one upstream connection, the tap saw {len(held)}"
    logins = [login for login in held[0] if login["answer"] is not None]
    assert len(logins) >= 3, f"expected a login and re-authentications: {logins}"
    tokens = []
    for login in logins:
        answer = login["answer"]
        # Accepted: no error, no error report, and a session the REAUTH listener caps.
        assert answer["error_code"] == 0 and answer["auth_bytes"] == b"", answer
        assert 0 < answer["session_lifetime_ms"] <= REAUTH_LIFETIME_MS, answer
        token, extensions = parse_client_message(login["message"])
        assert extensions == {"identityPoolId": "pool-payments,pool-acme-all",
                              "logicalCluster": "lkc-e2e"}, extensions
        header = jwt.get_unverified_header(token)
        assert header == {"alg": "ES256", "typ": "JWT", "kid": header["kid"]}, header
        claims = verify(token, [oauth["jwks"]], presented_at=login["at"])
        assert claims["iss"] == ISSUER and claims["aud"] == AUDIENCE, claims
        assert claims["sub"] == "pool-payments", claims  # the primary pool → User:pool-payments
        assert claims["pools"] == ["pool-payments", "pool-acme-all"], claims
        assert claims["cert_identifier"] == {"kind": "CN", "value": "acme-client"}, claims
        assert claims["exp"] - claims["iat"] == TOKEN_LIFETIME_MS // 1000, claims
        assert abs(claims["iat"] - login["at"]) < 2, (claims, login["at"])
        assert "nbf" not in claims, claims
        tokens.append((header, claims))
    # A fresh token for every login: its own jti, issued at the time.
    assert len({c["jti"] for _, c in tokens}) == len(tokens), tokens
    assert [c["iat"] for _, c in tokens] == sorted(c["iat"] for _, c in tokens), tokens

    # acme-analytics (pool-acme-all only, identified by its certificate's SHA-1).
    first = len(tap.connections)
    attempt = raw_tls_attempt("127.0.0.1", reauth["port"], client_tls("acme-analytics"))
    assert attempt.kafka_ok, attempt
    logins = tap.logins(first)
    assert logins, "the tap saw no login for acme-analytics"
    login = logins[0]
    token, extensions = parse_client_message(login["message"])
    assert login["answer"]["error_code"] == 0, login["answer"]
    claims = verify(token, [oauth["jwks"]], presented_at=login["at"])
    assert claims["sub"] == "pool-acme-all" and claims["pools"] == ["pool-acme-all"], claims
    assert claims["cert_identifier"]["kind"] == "SHA1", claims
    assert extensions == {"identityPoolId": "pool-acme-all", "logicalCluster": "lkc-e2e"}


# --------------------------------------------------------------------------------------------
# The broker's principal is the primary pool
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("library", LIBRARIES)
def test_clients_produce_and_consume_as_their_primary_pool(library, oauth, client_tls):
    """acme-client through the good proxy (upstream TLS with the proxy's certificate, then its
    token): the broker's ACLs for User:pool-payments let it create, write and read."""
    client = driver(library, oauth["good"]["bootstrap"], client_tls("acme-client"))
    topic = unique("payments-oauth")
    client.create_topic(topic)
    records = [(b"k", b"signed by the proxy"), (None, bytes(range(256)))]
    client.produce(topic, records)
    assert [(k, v) for _, k, v in client.consume(topic, len(records))] == records
    log = oauth["good"]["log"].read_text()
    assert REFUSED not in log and REAUTH_FAILED not in log


def _kafka_python_refusals(bootstrap, tls, topic) -> list[BaseException]:
    """Create `topic`, then write to it, with kafka-python: both must raise."""
    from kafka import KafkaProducer
    from kafka.errors import KafkaError

    d = driver("kafka-python", bootstrap, tls)
    raised = []
    try:
        d.create_topic(topic)
    except KafkaError as e:
        raised.append(e)
    producer = KafkaProducer(**d.config(max_block_ms=10000, retries=0))
    try:
        producer.send(topic, b"not allowed").get(timeout=10)
    except KafkaError as e:
        raised.append(e)
    finally:
        producer.close(timeout=5)
    return raised


def _confluent_refusals(bootstrap, tls, topic) -> list:
    """Create `topic`, then write to it, with librdkafka: the KafkaErrors of both."""
    import gc

    from confluent_kafka import KafkaException, Producer

    d = driver("confluent-kafka", bootstrap, tls)
    errors = []
    try:
        d.create_topic(topic)
    except KafkaException as e:
        errors.append(e.args[0])
    reports = []
    producer = Producer(d.config(**{"linger.ms": 0, "message.timeout.ms": 10000}))
    try:
        producer.produce(topic, b"not allowed", on_delivery=lambda err, _msg: reports.append(err))
        producer.flush(15)
    finally:
        producer = None
        gc.collect()
    return errors + reports


def _assert_topic_refused(library, bootstrap, tls, topic):
    if library == "kafka-python":
        from kafka.errors import TopicAuthorizationFailedError

        raised = _kafka_python_refusals(bootstrap, tls, topic)
        assert len(raised) == 2 and all(isinstance(e, TopicAuthorizationFailedError)
                                        for e in raised), raised
    else:
        errors = _confluent_refusals(bootstrap, tls, topic)
        assert len(errors) == 2 and all(e is not None and e.code() == TOPIC_AUTHORIZATION_FAILED
                                        for e in errors), errors


@pytest.mark.parametrize("library", LIBRARIES)
def test_the_broker_refuses_a_topic_outside_the_pools_acls(library, oauth, client_tls):
    """`hr` is in no pool's ACLs: the broker refuses acme-client (TOPIC_AUTHORIZATION_FAILED),
    and its authorizer names the principal it derived from the token's `sub`."""
    node_log = LogSince(oauth["kafka"].nodes[0].log_path)
    _assert_topic_refused(library, oauth["good"]["bootstrap"], client_tls("acme-client"), HR)
    denials = _denials(node_log, "User:pool-payments", HR)
    assert denials, node_log.text()[-3000:]
    assert not _denials(node_log, "User:pool-acme-all", HR, timeout=0), \
        "acme-client is not pool-acme-all"


def test_another_client_is_its_own_pool_at_the_broker(oauth, client_tls):
    """acme-analytics (pool-acme-all) works on `analytics-` topics, and the broker refuses it
    a `payments-` topic: User:pool-acme-all, not User:pool-payments."""
    analytics = driver("kafka-python", oauth["good"]["bootstrap"], client_tls("acme-analytics"))
    topic = unique("analytics-oauth")
    analytics.create_topic(topic)
    analytics.produce(topic, [(None, b"as pool-acme-all")])
    assert [v for _, _, v in analytics.consume(topic, 1)] == [b"as pool-acme-all"]

    payments = unique("payments-not-for-analytics")
    node_log = LogSince(oauth["kafka"].nodes[0].log_path)
    for library in LIBRARIES:
        _assert_topic_refused(library, oauth["good"]["bootstrap"],
                              client_tls("acme-analytics"), payments)
    assert _denials(node_log, "User:pool-acme-all", payments), node_log.text()[-3000:]


# --------------------------------------------------------------------------------------------
# A token the broker refuses
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("library", LIBRARIES)
def test_a_token_the_broker_refuses_is_an_authentication_error(library, oauth, client_tls):
    """The "bad" proxy signs with the shared keys but names the wrong audience. Kafka answers
    the token with the error report `{"status":"invalid_token"}` and, after the proxy's
    `\\x01`, SASL_AUTHENTICATION_FAILED with the same text; its log says why."""
    bad = oauth["bad"]
    mark = bad["audit"].mark()
    node_log = LogSince(oauth["kafka"].nodes[0].log_path)
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
    message = data["result"]["message"]
    assert ("refused the upstream identity of pool `pool-payments` (user `pool-payments`, "
            "OAUTHBEARER)") in message, message
    assert ('the broker reported {"status":"invalid_token"}; SaslAuthenticate error 58 '
            '(SaslAuthenticationFailed): {"status":"invalid_token"}') in message, message
    # The broker checked the signature first (jose4j), then refused the claim.
    why = node_log.wait_for(
        re.escape(f"Audience (aud) claim [{WRONG_AUDIENCE}] doesn't contain an acceptable "
                  f"identifier. Expected {AUDIENCE} as an aud value."))
    assert why, node_log.text()[-3000:]
    assert "Invalid JWS Signature" not in node_log.text()
    assert node_log.wait_for(r"Failed authentication with /127\.0\.0\.1 .*"
                             r"\(\{\"status\":\"invalid_token\"\}\)")


# --------------------------------------------------------------------------------------------
# Clients that keep running: key rotation, KIP-368
# --------------------------------------------------------------------------------------------


def _busy(library):
    return keep_busy_kafka_python if library == "kafka-python" else keep_busy_confluent


ROTATION_SECONDS = 12.0


def test_keys_rotate_under_running_clients_each_published_before_it_signs(oauth, client_tls):
    """Through the good proxy (upstream SASL_SSL), a producer and a consumer run for
    ROTATION_SECONDS while keys rotate every 3 s. The broker ends each session at its token's
    `exp` (4 s), so the live connections re-authenticate with tokens of each new key: no client
    error, every record consumed, every new kid in the JWKS before the proxy signs with it, no
    login refused, and the broker never meets a kid it does not know."""
    good = oauth["good"]
    node_log = LogSince(oauth["kafka"].nodes[0].log_path)
    first_published: dict[str, float] = {}
    stop = threading.Event()

    def watch_jwks():
        while not stop.is_set():
            now = time.time()
            for key in fetch_jwks(good["jwks"])["keys"]:
                first_published.setdefault(key["kid"], now)
            time.sleep(0.05)

    # Keys that existed before the watch started.
    initial = {k["kid"] for k in fetch_jwks(good["jwks"])["keys"]}
    watcher = threading.Thread(target=watch_jwks, daemon=True)
    watcher.start()
    steady: dict = {}

    def mark():
        steady["until" if "since" in steady else "since"] = time.time()

    topic = unique("payments-rotation")
    driver("confluent-kafka", good["bootstrap"], client_tls("acme-client")).create_topic(topic)
    try:
        sent, received, problems = keep_busy_confluent(
            good["bootstrap"], client_tls("acme-client"), topic, ROTATION_SECONDS, mark)
    finally:
        stop.set()
        watcher.join(5)

    assert not problems, problems
    assert len(sent) > 20, len(sent)
    assert received == sent, (len(received), len(sent))
    since, until = steady["since"], steady["until"]

    first_use: dict[str, float] = {}
    for at, line in _proxy_events(good["log"], SIGNED):
        m = re.search(r"\bkid=(\S+)", line)
        assert m, line
        first_use.setdefault(m.group(1), at)
    new = {kid: at for kid, at in first_use.items()
           if kid not in initial and since <= at <= until}
    assert len(new) >= 2, f"expected two rotations to reach the broker: {first_use}"
    for kid, used in new.items():
        assert kid in first_published, f"{kid} signed a token but never appeared in the JWKS"
        ahead = used - first_published[kid]
        # publish_ahead is 2 s; this proxy may load a key another one wrote a tick (0.5 s)
        # later; the JWKS is polled every 50 ms. More than the broker's refresh in any case.
        assert ahead > JWKS_REFRESH_MS / 1000, \
            f"{kid} was published only {ahead:.2f} s before its first token"
    # The live connections moved to the new keys by re-authenticating (no reconnect needed).
    reauthenticated = [at for at, _ in _proxy_events(good["log"], REAUTHENTICATED)
                       if since <= at <= until]
    assert len(reauthenticated) >= 2, reauthenticated
    # Keys that signed are still published: their tokens live on until `exp`.
    published = {k["kid"] for k in fetch_jwks(good["jwks"])["keys"]}
    assert set(new) <= published, (set(new), published)

    log = good["log"].read_text()
    assert REFUSED not in log and REAUTH_FAILED not in log
    assert UNKNOWN_KID not in node_log.text(), "the broker met a kid it had not fetched"


REAUTH_SECONDS = 7.0  # more than three sessions of REAUTH_LIFETIME_MS


@pytest.mark.parametrize("library", LIBRARIES)
def test_the_proxy_reauthenticates_on_live_connections_without_disturbing_clients(
        library, oauth, client_tls):
    """The REAUTH listener grants sessions of REAUTH_LIFETIME_MS (shorter than the tokens) and
    closes a connection that sends a request after its session expired. Clients produce and
    consume for REAUTH_SECONDS with no error and no reconnect: no upstream connection opens
    meanwhile, and the proxy re-authenticates a live one at least three times, each time with
    a newly signed token."""
    reauth = oauth["reauth"]
    log_path = reauth["log"]
    topic = unique(f"payments-reauth-{library}")
    driver(library, reauth["bootstrap"], client_tls("acme-client")).create_topic(topic)
    steady: dict = {}

    def mark():
        key = "end" if "start" in steady else "start"
        steady[key] = (log_path.stat().st_size, _metrics(reauth["admin_port"]))

    sent, received, problems = _busy(library)(reauth["bootstrap"], client_tls("acme-client"),
                                              topic, REAUTH_SECONDS, mark)

    assert not problems, problems
    assert len(sent) > 20, len(sent)
    assert received == sent, (len(received), len(sent))
    with open(log_path, "rb") as f:
        f.seek(steady["start"][0])
        during = f.read(steady["end"][0] - steady["start"][0]).decode(errors="replace")
    lines = during.splitlines()
    # No reconnect: no upstream connection opened (each client connection has its own).
    opened = [line for line in lines if "upstream connected" in line]
    assert not opened, opened
    (_, before), (_, after) = steady["start"], steady["end"]
    connections = "kafka_mtls_proxy_connections_total"
    assert _metric_sum(after, connections) == _metric_sum(before, connections)
    # Re-authenticated in time, on the same connections, at least three times on one of them.
    per_connection: dict[str, int] = collections.Counter()
    signed: dict[str, int] = collections.Counter()
    for line in lines:
        m = _CONNECTION_ID.search(line)
        if REAUTHENTICATED in line:
            assert m, line
            per_connection[m.group(1)] += 1
        elif SIGNED in line:
            assert m, line
            signed[m.group(1)] += 1
    assert max(per_connection.values(), default=0) >= 3, (
        per_connection, [line for line in lines if "kafka_mtls_proxy::connection" in line
                         and "request api_key" not in line])
    # Each re-authentication signed a new token (one per login; the window's edges may cut
    # one pair of lines apart).
    for conn, count in per_connection.items():
        assert abs(signed[conn] - count) <= 1, (conn, signed, per_connection)
    success = 'kafka_mtls_proxy_upstream_reauthentications_total{result="success"}'
    failure = 'kafka_mtls_proxy_upstream_reauthentications_total{result="failure"}'
    assert after.get(success, 0) - before.get(success, 0) >= sum(per_connection.values())
    assert after.get(failure, 0) == 0, after
    log = log_path.read_text()
    assert REAUTH_FAILED not in log and REFUSED not in log


def test_no_token_reaches_a_proxy_log_or_audit_trail(oauth):
    """Tokens are bearer secrets: after every test above (logins, refusals, re-authentications
    at debug level), no proxy wrote one, whole or in part: a base64url run that starts with
    "eyJ" (`{"` in base64url opens every JWT). Only at the start of a run: a key id (a SHA-256
    thumbprint, logged when a key is published) may hold "eyJ" inside it by chance."""
    jwt_start = re.compile(r"(?<![A-Za-z0-9_-])eyJ[A-Za-z0-9_-]{8,}")
    for name in ("good", "bad", "reauth"):
        for path in (oauth[name]["log"], oauth[name]["audit"].path):
            assert path.exists(), path
            found = jwt_start.search(path.read_text(errors="replace"))
            assert not found, f"{path} holds a JWT: {found.group(0)[:16]}…"
