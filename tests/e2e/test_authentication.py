"""Who gets in, who does not, and what the audit log says about it.

Refusals are checked with both kafka-python and confluent-kafka: the client must see a TLS /
authentication failure (never metadata), quickly, and the audit log must say why.
"""

from __future__ import annotations

import hashlib
import ssl

import pytest

from clients import LIBRARIES, driver
from harness import reason_of, status_of

each_library = pytest.mark.parametrize("library", LIBRARIES)

EVENT_TYPE = "io.confluent.kafka.server/authentication"

# A refusal must reach the client as a failed handshake, not after a timeout-and-retry loop.
FAST = 5.0


def attempt_as(proxy, client_tls, library, identity):
    return driver(library, proxy.bootstrap, client_tls(identity)).attempt(timeout=10)


def assert_refused_with_tls_error(refusal, library):
    assert not refusal.got_metadata, f"{library} got metadata although refused"
    assert refusal.exception is not None, f"{library}: no error raised"
    text = " | ".join([repr(refusal.exception), *refusal.errors])
    assert any(word in text.lower() for word in ("ssl", "tls", "authentication", "alert")), (
        f"{library} saw no TLS/authentication error: {text}")


def refusals_since(audit, mark, timeout=10.0):
    records = audit.wait_for(mark, lambda r: status_of(r) == "UNAUTHENTICATED", timeout=timeout)
    audit.settle()
    return records, audit.since(mark)


def client_abandoned_handshake(record) -> bool:
    """librdkafka retries a refused connection every few tens of ms; destroying the client can
    cut its last attempt short mid-handshake, which the proxy rightly records as such."""
    result = record["data"]["result"]
    return result.get("reason") == "handshake_failed" and "eof" in result.get("message", "")


def assert_refusal_records(records, everything, reason):
    assert records, f"no UNAUTHENTICATED audit record; records since: {everything}"
    assert [status_of(r) for r in everything if status_of(r) == "SUCCESS"] == [], (
        f"a refused identity was admitted: {everything}")
    refused = [r for r in records if not client_abandoned_handshake(r)]
    assert refused, f"only abandoned handshakes were recorded: {records}"
    for r in records:
        assert r["type"] == EVENT_TYPE
        assert r["data"]["methodName"] == "kafka.Authentication"
    for r in refused:
        assert reason_of(r) == reason, f"expected reason {reason}: {r}"
        info = r["data"].get("authenticationInfo", {})
        assert not info.get("principal") and not info.get("principals"), r
        assert r["data"].get("identityPoolIds") in ([], None), r


@each_library
def test_rogue_ca_certificate_with_same_subject_is_refused(library, proxy, client_tls, audit):
    mark = audit.mark()
    refusal = attempt_as(proxy, client_tls, library, "rogue")
    assert_refused_with_tls_error(refusal, library)
    records, everything = refusals_since(audit, mark)
    assert_refusal_records(records, everything, "untrusted_chain")


@each_library
def test_trusted_certificate_matching_no_pool_is_refused_fast(library, proxy, client_tls, audit):
    mark = audit.mark()
    refusal = attempt_as(proxy, client_tls, library, "outsider")
    assert_refused_with_tls_error(refusal, library)
    assert refusal.elapsed < FAST, (
        f"{library} learnt of the refusal only after {refusal.elapsed:.1f}s "
        f"(errors: {refusal.errors}, raised: {refusal.exception!r})")
    records, everything = refusals_since(audit, mark)
    assert_refusal_records(records, everything, "no_pool_matched")


@each_library
def test_expired_certificate_is_refused(library, proxy, client_tls, audit):
    mark = audit.mark()
    refusal = attempt_as(proxy, client_tls, library, "expired")
    assert_refused_with_tls_error(refusal, library)
    records, everything = refusals_since(audit, mark)
    assert_refusal_records(records, everything, "expired")


@each_library
def test_client_presenting_no_certificate_is_refused(library, proxy, client_tls, audit):
    mark = audit.mark()
    refusal = attempt_as(proxy, client_tls, library, None)
    assert_refused_with_tls_error(refusal, library)
    records, everything = refusals_since(audit, mark)
    assert_refusal_records(records, everything, "no_certificate")


def successes_for(proxy, client_tls, audit, library, identity):
    mark = audit.mark()
    view = driver(library, proxy.bootstrap, client_tls(identity)).cluster()
    assert view.brokers, "admitted client got no metadata"
    audit.wait_for(mark, lambda r: status_of(r) == "SUCCESS")
    audit.settle()
    everything = audit.since(mark)
    assert everything, "no audit record for an admitted client"
    assert all(status_of(r) == "SUCCESS" for r in everything), everything
    return everything


def assert_success_shape(record):
    assert record["type"] == EVENT_TYPE
    assert record["specversion"] == "1.0"
    data = record["data"]
    assert data["methodName"] == "kafka.Authentication"
    assert data["authenticationInfo"]["mechanism"] == "SSL"
    assert data["connectionId"] and data["clientAddress"].startswith("127.0.0.1:")
    assert "reason" not in data["result"]


@each_library
def test_acme_client_matching_two_pools_gets_both_principals(
        library, proxy, client_tls, audit):
    records = successes_for(proxy, client_tls, audit, library, "acme-client")
    for r in records:
        assert_success_shape(r)
        info = r["data"]["authenticationInfo"]
        assert sorted(info["principals"]) == ["User:pool-acme-all", "User:pool-payments"], r
        # No priorities in this configuration: the primary pool is the smallest id.
        assert info["principal"] == "User:pool-acme-all" == f"User:{r['data']['primaryPoolId']}"
        assert info["identifierType"] == "CN"
        assert info["identifier"] == "acme-client"
        assert sorted(r["data"]["identityPoolIds"]) == ["pool-acme-all", "pool-payments"]


def leaf_sha1(pem_path) -> str:
    pem = pem_path.read_text()
    end = pem.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----")
    return hashlib.sha1(ssl.PEM_cert_to_DER_cert(pem[:end])).hexdigest()


@each_library
def test_acme_analytics_matches_only_pool_acme_all_identified_by_sha1(
        library, proxy, client_tls, audit):
    records = successes_for(proxy, client_tls, audit, library, "acme-analytics")
    fingerprint = leaf_sha1(client_tls("acme-analytics").certfile)
    for r in records:
        assert_success_shape(r)
        info = r["data"]["authenticationInfo"]
        assert info["principals"] == ["User:pool-acme-all"], r
        assert info["principal"] == "User:pool-acme-all"
        assert info["identifierType"] == "SHA1"
        assert info["identifier"].replace(":", "").lower() == fingerprint, (
            f"identifier {info['identifier']} is not the certificate's SHA-1 {fingerprint}")
        assert r["data"]["identityPoolIds"] == ["pool-acme-all"]
