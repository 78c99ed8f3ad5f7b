"""Exactly one audit record per authentication attempt.

The test opens raw TLS connections itself (Python's `ssl` module), so it knows exactly how many
attempts were made and from which client address; the records are matched by that address.
"""

from __future__ import annotations

import ssl

from clients import driver
from harness import by_client_address, raw_tls_attempt, reason_of, status_of


def log_has_connection(proxy, connection_id: str, address: str) -> bool:
    """The proxy's own log names the connection with the same id and peer address."""
    text = proxy.process.log_path.read_text(errors="replace")
    return any(connection_id in line and address in line for line in text.splitlines())


def test_audit_log_has_exactly_one_record_per_authentication_attempt(proxy, client_tls, audit):
    tls = client_tls("acme-client")
    # The per-broker listener opens when the broker first appears in metadata.
    assert driver("kafka-python", proxy.bootstrap, tls).cluster().brokers
    ports = [proxy.bootstrap_port] * 3 + [proxy.broker_port] * 2  # both kinds of listener
    before = audit.settle()

    attempts = [raw_tls_attempt("127.0.0.1", port, tls) for port in ports]

    for a in attempts:
        assert a.error is None and a.handshake_ok and a.kafka_ok, (
            f"attempt from {a.local_address} failed: {a.error!r}")
    audit.wait_for(before, count=len(attempts))
    after = audit.settle(quiet=1.0)
    new = audit.since(before)
    assert after - before == len(attempts), (
        f"{len(attempts)} attempts produced {after - before} records: {new}")
    ids = set()
    for a in attempts:
        mine = [r for r in new if by_client_address(a.local_address)(r)]
        assert len(mine) == 1, f"{a.local_address}: {len(mine)} records: {mine}"
        (record,) = mine
        assert status_of(record) == "SUCCESS", record
        cid = record["data"]["connectionId"]
        assert cid and record["subject"] == cid, record
        assert log_has_connection(proxy, cid, a.local_address), (
            f"no proxy log line names connection {cid} from {a.local_address}")
        ids.add(cid)
    assert len(ids) == len(attempts), f"connection ids are not unique: {ids}"


def test_refused_attempt_yields_exactly_one_audit_record(proxy, client_tls, audit):
    before = audit.settle()

    attempt = raw_tls_attempt("127.0.0.1", proxy.bootstrap_port, client_tls("outsider"))

    # The refusal is a TLS alert: in TLS 1.3 it arrives right after the client's Finished.
    assert isinstance(attempt.error, ssl.SSLError), f"expected a TLS alert, got {attempt.error!r}"
    assert not attempt.kafka_ok
    audit.wait_for(before, by_client_address(attempt.local_address))
    after = audit.settle(quiet=1.0)
    new = audit.since(before)
    assert after - before == 1, f"one refused attempt produced {after - before} records: {new}"
    (record,) = new
    assert record["data"]["clientAddress"] == attempt.local_address
    assert status_of(record) == "UNAUTHENTICATED"
    assert reason_of(record) == "no_pool_matched"
