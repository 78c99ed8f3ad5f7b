"""Upstream identity over SASL/OAUTHBEARER with tokens the proxy issues itself (KIP-768 style).

No Kafka broker that validates JWTs can run here, so a "validating front" in this test process
plays the broker's part: it listens with TLS and REQUIRES the proxy's own client certificate
(`proxy-upstream-client.pem`), answers the proxy's SaslHandshake and SaslAuthenticate as a
broker with `OAuthBearerValidatorCallbackHandler` would — parse the RFC 7628 message, fetch the
JWKS from the proxy's admin port, verify the token with PyJWT (an independent implementation:
ES256, issuer, audience, exp) and check its claims against the extensions — and then pipes every
following byte to a real tansu broker. Real clients (kafka-python and librdkafka) speak mTLS to
the proxy, so a record goes client → proxy (mTLS) → front (TLS + token) → tansu.

tansu here is this module's own, advertising the front's address: the session broker advertises
itself, and the proxy would then dial it directly (with TLS) for node 111, around the front.

* proxy "good": right issuer and audience; clients produce and consume; every token is checked.
* proxy "bad": the wrong audience; the front refuses the token with `{"status":
  "invalid_token"}` as a broker does, and the client gets an authentication error at once.
* proxy "rotation": rotate_every 3 s, publish_ahead 1.5 s: each new kid is in the JWKS before
  any token names it, and a token of the previous key verifies against the served JWKS after
  the rotation, until it expires.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import struct
import threading
import time
import urllib.request

import jwt
import pytest

from clients import LIBRARIES, driver, unique
from conftest import _PROCESSES, PRIORITY_POOLS_YAML, proxy_config
from harness import (SASL_AUTHENTICATE, SASL_HANDSHAKE, TANSU_NODE_ID, AuditLog, LoopServer,
                     Process, broker_port_base, broker_tls_context, framed, free_port,
                     peer_subject, pipe_to_backend, put_uvarint, raw_tls_attempt, read_frame,
                     read_uvarint, reason_of, skip_tagged_fields)
# The two ways clients report an upstream authentication failure, as pinned for SCRAM.
from test_upstream_scram import _auth_error_confluent, _auth_error_kafka_python

ISSUER = "https://kafka-mtls-proxy.e2e"
AUDIENCE = "kafka-e2e"

UNSUPPORTED_SASL_MECHANISM, SASL_AUTHENTICATION_FAILED = 33, 58


# --------------------------------------------------------------------------------------------
# Kafka wire helpers (just what the two SASL requests need)
# --------------------------------------------------------------------------------------------


def _request_header(buf: bytes, flexible: bool) -> tuple[int, int, int, int]:
    """(api key, version, correlation id, body offset) of a request header v1 or v2."""
    api_key, version, correlation_id, client_id_len = struct.unpack(">hhih", buf[:10])
    off = 10 + max(client_id_len, 0)
    if flexible:
        off = skip_tagged_fields(buf, off)
    return api_key, version, correlation_id, off


async def _read_frame(reader) -> bytes:
    return await read_frame(reader, max_size=1 << 20)


def _handshake_response(correlation_id: int, error: int) -> bytes:
    mechanism = b"OAUTHBEARER"
    return framed(struct.pack(">ihi", correlation_id, error, 1)
                  + struct.pack(">h", len(mechanism)) + mechanism)


def _authenticate_response(correlation_id: int, error: int, message: str | None,
                           auth_bytes: bytes, session_lifetime_ms: int) -> bytes:
    """SaslAuthenticate v2: response header v1 (flexible), compact strings and bytes."""
    body = struct.pack(">i", correlation_id) + b"\x00" + struct.pack(">h", error)
    if message is None:
        body += put_uvarint(0)
    else:
        encoded = message.encode()
        body += put_uvarint(len(encoded) + 1) + encoded
    body += put_uvarint(len(auth_bytes) + 1) + auth_bytes
    body += struct.pack(">q", session_lifetime_ms) + b"\x00"
    return framed(body)


def _authenticate_request_bytes(frame: bytes) -> tuple[int, bytes]:
    api_key, version, correlation_id, off = _request_header(frame, flexible=True)
    assert (api_key, version) == (SASL_AUTHENTICATE, 2), (api_key, version)
    size, off = read_uvarint(frame, off)
    return correlation_id, frame[off:off + size - 1]


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


def fetch_jwks(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as reply:
        assert reply.status == 200
        assert "max-age" in reply.headers.get("Cache-Control", "")
        return json.load(reply)


def verify(token: str, jwks_urls: list[str], audience: str = AUDIENCE) -> dict:
    """What a KIP-768 broker checks: a key of the JWKS by kid, ES256, iss, aud, exp."""
    header = jwt.get_unverified_header(token)
    keys = {k["kid"]: k for url in jwks_urls for k in fetch_jwks(url)["keys"]}
    if header.get("kid") not in keys:
        raise jwt.InvalidTokenError(f"no key {header.get('kid')} in the JWKS")
    key = jwt.PyJWK.from_dict(keys[header["kid"]])
    return jwt.decode(token, key, algorithms=["ES256"], audience=audience, issuer=ISSUER,
                      options={"require": ["exp", "iat", "iss", "aud", "sub"]})


# --------------------------------------------------------------------------------------------
# The validating front
# --------------------------------------------------------------------------------------------


class ValidatingFront(LoopServer):
    """TLS (client certificate required), OAUTHBEARER as a validating broker, then a pipe."""

    name = "validating front"

    def __init__(self, pki, backend_port: int):
        super().__init__(broker_tls_context(pki))
        self.backend_port = backend_port
        self.jwks_urls: list[str] = []
        self.accepted: list[dict] = []  # one per token the front accepted
        self.refused: list[str] = []  # why, one per token refused
        self.peer_subjects: list[str] = []

    async def _serve(self, reader, writer):
        try:
            self.peer_subjects.append(peer_subject(writer))
            if not await self._authenticate(reader, writer):
                writer.close()
                return
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            writer.close()
            return
        await pipe_to_backend(reader, writer, self.backend_port)

    async def _authenticate(self, reader, writer) -> bool:
        frame = await _read_frame(reader)
        api_key, version, correlation_id, off = _request_header(frame, flexible=False)
        assert (api_key, version) == (SASL_HANDSHAKE, 1), (api_key, version)
        (size,) = struct.unpack(">h", frame[off:off + 2])
        mechanism = frame[off + 2:off + 2 + size].decode()
        if mechanism != "OAUTHBEARER":
            writer.write(_handshake_response(correlation_id, UNSUPPORTED_SASL_MECHANISM))
            await writer.drain()
            return False
        writer.write(_handshake_response(correlation_id, 0))
        await writer.drain()

        correlation_id, message = _authenticate_request_bytes(await _read_frame(reader))
        received_at = time.time()
        token, extensions = parse_client_message(message)
        try:
            claims = await self.loop.run_in_executor(None, verify, token, self.jwks_urls)
            # What the proxy promises beyond the signature: sub is one of the pools, and the
            # identityPoolId extension lists exactly the token's pools.
            if claims["sub"] not in claims["pools"]:
                raise jwt.InvalidTokenError("sub is not one of the pools")
            if extensions.get("identityPoolId") != ",".join(claims["pools"]):
                raise jwt.InvalidTokenError("identityPoolId does not list the token's pools")
            if not {"kind", "value"} <= set(claims.get("cert_identifier", {})):
                raise jwt.InvalidTokenError("no certificate identifier")
        except jwt.InvalidTokenError as e:
            self.refused.append(f"{type(e).__name__}: {e}")
            # As Kafka's OAuthBearerSaslServer: an error report first, the failure after the
            # client's \x01 (RFC 7628 §3.2.3).
            writer.write(_authenticate_response(
                correlation_id, 0, None, b'{"status":"invalid_token"}', 0))
            await writer.drain()
            correlation_id, ack = _authenticate_request_bytes(await _read_frame(reader))
            assert ack == b"\x01", ack
            writer.write(_authenticate_response(
                correlation_id, SASL_AUTHENTICATION_FAILED,
                "Authentication failed: invalid_token", b"", 0))
            await writer.drain()
            return False
        self.accepted.append({"header": jwt.get_unverified_header(token), "claims": claims,
                              "extensions": extensions, "token": token, "at": received_at})
        lifetime_ms = claims["exp"] * 1000 - int(received_at * 1000)
        writer.write(_authenticate_response(correlation_id, 0, None, b"", lifetime_ms))
        await writer.drain()
        return True


# --------------------------------------------------------------------------------------------
# Fixture: tansu, the front, three proxies
# --------------------------------------------------------------------------------------------


def _start_proxy(proxy_bin, pki, workdir, name, front, tansu_port, identity_yaml):
    bootstrap_port, admin_port = free_port(), free_port()
    first_port = broker_port_base(TANSU_NODE_ID)
    audit_path = workdir / f"{name}-audit.log"
    keys_dir = workdir / f"{name}-keys"
    keys_dir.mkdir(mode=0o700)
    config = workdir / f"{name}.yaml"
    config.write_text(proxy_config(
        bootstrap_port=bootstrap_port, first_port=first_port, pki=pki, tansu_port=tansu_port,
        audit_path=audit_path, pools_yaml=PRIORITY_POOLS_YAML,
        upstream_bootstrap=f"localhost:{front.port}", upstream_yaml=f"""
tls:
  ca: {pki / "server-ca.pem"}
  certificate_chain: {pki / "proxy-upstream-client.pem"}
  private_key: {pki / "proxy-upstream-client.key"}
identity:
  mode: oauthbearer
  issuer: {ISSUER}
  keys_dir: {keys_dir}
  extensions:
    logicalCluster: lkc-e2e
""" + identity_yaml) + f"admin:\n  listen: 127.0.0.1:{admin_port}\n")
    jwks_url = f"http://127.0.0.1:{admin_port}/.well-known/jwks.json"
    front.jwks_urls.append(jwks_url)
    proc = Process(name, [proxy_bin, "run", "--config", config], workdir / f"{name}.log",
                   cwd=workdir, env={"NO_COLOR": "1", "RUST_LOG": None})
    _PROCESSES[name] = proc
    proc.wait_for_port("127.0.0.1", bootstrap_port, timeout=30)
    proc.wait_for_port("127.0.0.1", admin_port, timeout=30)
    return {"bootstrap": f"localhost:{bootstrap_port}", "port": bootstrap_port,
            "jwks": jwks_url, "keys_dir": keys_dir, "audit": AuditLog(audit_path),
            "log": workdir / f"{name}.log"}


@pytest.fixture(scope="module")
def oauth(tansu_bin, proxy_bin, pki, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("upstream-oauthbearer")
    tansu_port = free_port()
    front = ValidatingFront(pki, tansu_port)
    started: list[str] = []
    try:
        tansu = Process("tansu-oauth", [
            tansu_bin, "broker", "--listener-url", f"tcp://127.0.0.1:{tansu_port}",
            "--advertised-listener-url", f"tcp://localhost:{front.port}",
            "--storage-engine", "memory://tansu/"], workdir / "tansu.log", cwd=workdir)
        _PROCESSES["tansu-oauth"] = tansu
        started.append("tansu-oauth")
        tansu.wait_for_port("127.0.0.1", tansu_port, timeout=30)
        front.start()
        proxies = {}
        for name, identity in [
            ("good", f"  audience: {AUDIENCE}\n"),
            ("bad", "  audience: not-the-brokers-audience\n"),
            ("rotation", f"  audience: {AUDIENCE}\n  rotate_every_ms: 3000\n"
                         "  publish_ahead_ms: 1500\n  token_lifetime_ms: 4000\n"),
        ]:
            proxies[name] = _start_proxy(proxy_bin, pki, workdir, f"proxy-oauth-{name}", front,
                                         tansu_port, identity)
            started.append(f"proxy-oauth-{name}")
        yield {"front": front, **proxies}
    finally:
        procs = [p for p in (_PROCESSES.pop(name, None) for name in reversed(started)) if p]
        # Signal every process first: a proxy with an admin server takes a few seconds to
        # exit, and three of them in sequence would triple that.
        for proc in procs:
            if proc.alive():
                proc.proc.terminate()
        for proc in procs:
            proc.stop()
        front.stop()


# --------------------------------------------------------------------------------------------
# Tests
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("library", LIBRARIES)
def test_clients_produce_and_consume_through_the_token_validating_front(
        library, oauth, client_tls):
    front, good = oauth["front"], oauth["good"]
    seen = len(front.accepted)
    client = driver(library, good["bootstrap"], client_tls("acme-client"))
    topic = unique("oauth")
    client.create_topic(topic)
    records = [(b"k", b"signed by the proxy"), (None, bytes(range(256)))]
    client.produce(topic, records)
    assert [(k, v) for _, k, v in client.consume(topic, len(records))] == records

    tokens = front.accepted[seen:]
    assert tokens, f"the front accepted no token; refused: {front.refused}"
    for t in tokens:
        claims, header = t["claims"], t["header"]
        assert header["alg"] == "ES256" and header["typ"] == "JWT" and header["kid"], header
        assert claims["iss"] == ISSUER and claims["aud"] == AUDIENCE
        assert claims["sub"] == "pool-payments", claims  # the primary pool → User:pool-payments
        assert claims["pools"] == ["pool-payments", "pool-acme-all"], claims
        assert claims["cert_identifier"] == {"kind": "CN", "value": "acme-client"}, claims
        assert claims["exp"] - claims["iat"] == 15 * 60, claims  # the default lifetime
        assert t["extensions"] == {"identityPoolId": "pool-payments,pool-acme-all",
                                   "logicalCluster": "lkc-e2e"}, t["extensions"]
    assert len({t["claims"]["jti"] for t in tokens}) == len(tokens), "a jti was reused"
    # Only the proxy, with its own certificate, reached the front.
    assert all("commonName=kafka-mtls-proxy" in s for s in front.peer_subjects), \
        front.peer_subjects


def test_each_client_gets_a_token_for_its_own_pools(oauth, client_tls):
    front, good = oauth["front"], oauth["good"]
    seen = len(front.accepted)
    attempt = raw_tls_attempt("127.0.0.1", good["port"], client_tls("acme-analytics"))
    assert attempt.kafka_ok, attempt
    claims = front.accepted[seen]["claims"]
    assert claims["sub"] == "pool-acme-all" and claims["pools"] == ["pool-acme-all"], claims
    assert claims["cert_identifier"]["kind"] == "SHA1", claims
    assert front.accepted[seen]["extensions"]["identityPoolId"] == "pool-acme-all"


@pytest.mark.parametrize("library", LIBRARIES)
def test_a_token_the_broker_refuses_is_an_authentication_error(library, oauth, client_tls):
    front, bad = oauth["front"], oauth["bad"]
    refused_before = len(front.refused)
    mark = bad["audit"].mark()
    if library == "kafka-python":
        _auth_error_kafka_python(bad["bootstrap"], client_tls("acme-client"))
    else:
        _auth_error_confluent(bad["bootstrap"], client_tls("acme-client"))

    assert any("audience" in r.lower() for r in front.refused[refused_before:]), front.refused
    refused = bad["audit"].wait_for(
        mark, lambda r: reason_of(r) == "upstream_identity_refused", timeout=10)
    assert refused, "no audit record for the upstream refusal"
    data = refused[0]["data"]
    assert data["primaryPoolId"] == "pool-payments"
    assert "invalid_token" in data["result"]["message"], data["result"]


def test_rotation_publishes_each_kid_before_use_and_keeps_the_old_key_until_expiry(
        oauth, client_tls):
    front, rot = oauth["front"], oauth["rotation"]
    first_published: dict[str, float] = {}
    stop = threading.Event()

    def watch_jwks():
        while not stop.is_set():
            for key in fetch_jwks(rot["jwks"])["keys"]:
                first_published.setdefault(key["kid"], time.time())
            time.sleep(0.05)

    watcher = threading.Thread(target=watch_jwks, daemon=True)
    # Keys that existed before the watch started (the first key signs at once, unannounced).
    initial = {k["kid"] for k in fetch_jwks(rot["jwks"])["keys"]}
    watcher.start()
    seen = len(front.accepted)
    old_token_checks = []
    deadline = time.time() + 8
    try:
        while time.time() < deadline:
            assert raw_tls_attempt("127.0.0.1", rot["port"], client_tls("acme-client")).kafka_ok
            mine = [t for t in front.accepted[seen:] if t["claims"]["iss"] == ISSUER
                    and t["claims"]["exp"] - t["claims"]["iat"] == 4]
            if len(mine) >= 2 and mine[-1]["header"]["kid"] != mine[-2]["header"]["kid"]:
                # The signer just changed: the previous key's last token must still verify
                # against the JWKS served now, as long as it has not expired.
                old = mine[-2]
                now = time.time()
                assert now < old["claims"]["exp"]
                verify(old["token"], [rot["jwks"]])
                old_token_checks.append((old["header"]["kid"], now))
            time.sleep(0.2)
    finally:
        stop.set()
        watcher.join(5)

    tokens = [t for t in front.accepted[seen:] if t["claims"]["exp"] - t["claims"]["iat"] == 4]
    first_use: dict[str, float] = {}
    for t in tokens:
        first_use.setdefault(t["header"]["kid"], t["at"])
    assert len(first_use) >= 3, f"expected at least two rotations in 8 s: {first_use}"
    for kid, used in first_use.items():
        if kid in initial:
            continue
        assert kid in first_published, f"{kid} signed a token but never appeared in the JWKS"
        ahead = used - first_published[kid]
        # publish_ahead is 1.5 s; the JWKS is polled every 50 ms.
        assert ahead > 1.0, f"{kid} was published only {ahead:.2f} s before its first token"
    assert len(old_token_checks) >= 2, old_token_checks
    # Keys are files in keys_dir, private to the proxy's user.
    files = list(rot["keys_dir"].glob("es256-*.pem"))
    assert files and all(f.stat().st_mode & 0o777 == 0o600 for f in files), files
