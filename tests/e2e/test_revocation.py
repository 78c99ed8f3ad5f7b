"""Revocation: a CRL (from a URL or a file) refuses revoked certificates in the handshake, and a
CRL that arrives by reload closes the live connections of the certificates it revokes.
"""

from __future__ import annotations

import functools
import http.server
import threading

import pytest

from clients import driver
from harness import (ClientTLS, free_port, is_closed_by_peer, open_kafka_connection,
                     raw_tls_attempt, reason_of, run_cli, status_of)
from test_reload import Reloadable

from conftest import POOLS_YAML, _PROCESSES


@pytest.fixture
def crl_server(pki):
    """Serves the dev PKI's directory over HTTP (the CRL distribution point)."""
    port = free_port()
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(pki))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{port}"
    httpd.shutdown()


@pytest.fixture
def start(proxy_bin, pki, kafka, tmp_path):
    started = []

    def run(fields: str) -> Reloadable:
        r = Reloadable(tmp_path, pki, kafka.bootstrap(), proxy_bin, ca_fields=fields)
        _PROCESSES["proxy-revocation"] = r.process
        started.append(r)
        r.process.wait_for_port("127.0.0.1", r.port, timeout=30)
        # The readiness probe was an attempt too (no TLS): let its record land first.
        assert r.audit.wait_for(0, timeout=10)
        r.audit.settle(quiet=0.3)
        return r

    yield run
    for r in started:
        r.process.stop()
    _PROCESSES.pop("proxy-revocation", None)


def refusal_reasons(r: Reloadable, since: int) -> list[str]:
    return [reason_of(rec) for rec in r.audit.records()[since:]
            if status_of(rec) == "UNAUTHENTICATED"]


def test_a_certificate_revoked_by_the_crl_at_crl_url_is_refused(kafka, start, crl_server, client_tls):
    r = start(f"crl_url: {crl_server}/acme-intermediate-ca.crl.pem")
    before = len(r.audit.records())
    attempt = raw_tls_attempt("127.0.0.1", r.port, client_tls("revoked"))
    assert not attempt.kafka_ok and attempt.error is not None, "a revoked certificate got in"
    r.audit.wait_for(before, lambda rec: reason_of(rec) == "revoked")
    assert refusal_reasons(r, before) == ["revoked"]
    # The CRL does not touch certificates it does not list.
    view = driver("confluent-kafka", r.bootstrap, client_tls("acme-client")).cluster()
    assert view.cluster_id == kafka.cluster_id


def test_a_crl_added_by_reload_closes_the_live_connection_it_revokes(start, client_tls):
    r = start("")
    live = open_kafka_connection(r.port, client_tls("revoked"))  # admitted: no CRL yet
    other = open_kafka_connection(r.port, client_tls("acme-client"))
    before = len(r.audit.records())

    r.write(POOLS_YAML, ca_fields=f"crl_chain: {r.pki / 'acme-intermediate-ca.crl.pem'}")
    r.wait_for_log("configuration reloaded")

    assert is_closed_by_peer(live, timeout=5), "the revoked certificate's connection stayed open"
    assert not is_closed_by_peer(other, timeout=1), "an unrevoked connection was dropped"
    assert refusal_reasons(r, before) == ["revoked"]
    other.close()


def test_require_crl_without_a_reachable_crl_fails_closed(start, client_tls):
    dead = f"http://127.0.0.1:{free_port()}/nothing-listens-here.crl"
    r = start(f"crl_url: {dead}\nrequire_crl_on_client_certificate: true")
    before = len(r.audit.records())
    attempt = raw_tls_attempt("127.0.0.1", r.port, client_tls("acme-client"))
    assert not attempt.kafka_ok and attempt.error is not None
    r.audit.wait_for(before, lambda rec: status_of(rec) == "UNAUTHENTICATED")
    assert refusal_reasons(r, before) == ["revocation_status_unknown"]
    assert "CRL fetch failed" in r.log_text()


@pytest.fixture
def pki_naming_its_crl(tmp_path):
    """A development PKI whose client certificates name their issuer's CRL as CRL distribution
    point (`pki --crl-base-url`), that directory served over HTTP, and the paths requested."""
    out = tmp_path / "pki-cdp"
    port = free_port()
    result = run_cli("pki", "--out", out, "--force", "--no-jks",
                     "--crl-base-url", f"http://127.0.0.1:{port}")
    assert result.returncode == 0, result.stderr
    requested: list[str] = []

    class Recording(http.server.SimpleHTTPRequestHandler):
        def do_GET(self):
            requested.append(self.path)
            super().do_GET()

        def log_message(self, *args):
            pass

    handler = functools.partial(Recording, directory=str(out))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield out, requested
    httpd.shutdown()


def test_a_ca_without_crl_settings_learns_the_crl_its_client_certificates_name(
        kafka, proxy_bin, tmp_path, pki_naming_its_crl):
    pki, requested = pki_naming_its_crl
    workdir = tmp_path / "proxy"
    workdir.mkdir()
    r = Reloadable(workdir, pki, kafka.bootstrap(), proxy_bin)  # no crl_url, no crl_chain
    _PROCESSES["proxy-revocation-cdp"] = r.process
    try:
        r.process.wait_for_port("127.0.0.1", r.port, timeout=30)
        assert requested == [], "nothing names a CRL before a client certificate does"

        def tls(name):
            return ClientTLS(pki / "server-ca.pem", pki / f"{name}.pem", pki / f"{name}.key")

        # The first connection of a certificate whose CRL is not known yet gets in; the proxy
        # fetches the CRL its certificate names and closes it, since that CRL revokes it. The
        # fetch can win the race with the connection's first answer (a few ms on loopback): then
        # the close is seen there, and the log line below is what says it was admitted first.
        try:
            live = open_kafka_connection(r.port, tls("revoked"))
        except ConnectionError:
            live = None
        r.wait_for_log("closing a live connection")
        assert "reason=revoked" in r.log_text()
        if live is not None:
            assert is_closed_by_peer(live, timeout=5), \
                "the revoked certificate's connection stayed open"
        assert "/acme-intermediate-ca.crl.pem" in requested, requested
        assert "CRL distribution point learned from a client certificate" in r.log_text()

        # From then on the handshake refuses it, and the CRL spares the others.
        before = len(r.audit.records())
        attempt = raw_tls_attempt("127.0.0.1", r.port, tls("revoked"))
        assert not attempt.kafka_ok and attempt.error is not None, "a revoked certificate got in"
        r.audit.wait_for(before, lambda rec: reason_of(rec) == "revoked")
        view = driver("confluent-kafka", r.bootstrap, tls("acme-client")).cluster()
        assert view.cluster_id == kafka.cluster_id
        # One fetch per distribution point, not one per connection.
        assert requested.count("/acme-intermediate-ca.crl.pem") == 1, requested
    finally:
        r.process.stop()
        _PROCESSES.pop("proxy-revocation-cdp", None)
