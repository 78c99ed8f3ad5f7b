"""Live management of certificate authorities and identity pools: the `pools` and `cas` commands
(clients of the admin port's iam/v2 API) change a running proxy, and real Kafka clients feel it
at once, without a restart. One proxy of its own (these tests rewrite its configuration), in
front of the session's Apache Kafka broker.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from clients import driver, unique
from conftest import _PROCESSES, proxy_config
from harness import (KAFKA_NODE_ID, AuditLog, Process, broker_port_base, free_port,
                     is_closed_by_peer, open_kafka_connection, proxy_binary, raw_tls_attempt,
                     reason_of, status_of)

TOKEN = "e2e-admin-token-0123456789abcdef"


class IamProxy:
    def __init__(self, workdir, pki, upstream, proxy_bin):
        self.workdir = workdir
        self.pki = pki
        self.port = free_port()
        self.admin_port = free_port()
        self.token_file = workdir / "admin.token"
        self.token_file.write_text(TOKEN + "\n")
        self.config = workdir / "proxy.yaml"
        self.audit = AuditLog(workdir / "audit.log")
        self.config.write_text(
            proxy_config(bootstrap_port=self.port, first_port=broker_port_base(KAFKA_NODE_ID),
                         pki=pki, upstream_bootstrap=upstream, audit_path=self.audit.path)
            + f"admin:\n  listen: 127.0.0.1:{self.admin_port}\n  token_file: {self.token_file}\n"
            # No file watch: every change below must apply through the API's own reload.
            + "reload:\n  watch_interval_ms: 0\n")
        self.process = Process("proxy-iam", [proxy_bin, "run", "--config", self.config],
                               workdir / "proxy.log", cwd=workdir,
                               env={"NO_COLOR": "1", "RUST_LOG": None})

    @property
    def bootstrap(self) -> str:
        return f"localhost:{self.port}"

    @property
    def admin_url(self) -> str:
        return f"http://127.0.0.1:{self.admin_port}"

    def cli(self, *args, token: bool = True) -> subprocess.CompletedProcess:
        """`kafka-mtls-proxy ARGS --admin-url …`, with the token file unless `token=False`."""
        argv = [str(proxy_binary()), *[str(a) for a in args], "--admin-url", self.admin_url]
        if token:
            argv += ["--token-file", str(self.token_file)]
        env = {k: v for k, v in os.environ.items()
               if k not in ("KAFKA_MTLS_PROXY_ADMIN_TOKEN", "KAFKA_MTLS_PROXY_ADMIN_URL")}
        return subprocess.run(argv, capture_output=True, text=True, timeout=60,
                              stdin=subprocess.DEVNULL, env=env)

    def cli_ok(self, *args) -> str:
        result = self.cli(*args)
        assert result.returncode == 0, (
            f"{' '.join(map(str, args))} exited {result.returncode}\nstdout:\n{result.stdout}\n"
            f"stderr:\n{result.stderr}")
        return result.stdout

    def cli_json(self, *args):
        out = self.cli_ok(*args, "--output", "json")
        try:
            return json.loads(out)
        except json.JSONDecodeError as e:
            raise AssertionError(f"{args} --output json printed no JSON ({e}):\n{out}") from e


@pytest.fixture(scope="module")
def iam(proxy_bin, pki, kafka, tmp_path_factory):
    p = IamProxy(tmp_path_factory.mktemp("iam"), pki, kafka.bootstrap(), proxy_bin)
    _PROCESSES["proxy-iam"] = p.process
    try:
        p.process.wait_for_port("127.0.0.1", p.port, timeout=30)
        p.process.wait_for_port("127.0.0.1", p.admin_port, timeout=30)
        yield p
    finally:
        p.process.stop()
        _PROCESSES.pop("proxy-iam", None)






def test_a_pool_created_with_the_cli_admits_a_refused_client_and_its_deletion_closes_it(kafka, 
        iam, client_tls):
    outsider = client_tls("outsider")  # O=Other Corp: trusted chain, no pool matches it
    refused = raw_tls_attempt("127.0.0.1", iam.port, outsider)
    assert not refused.kafka_ok and refused.error is not None, "outsider admitted before any pool"

    pool = iam.cli_json("pools", "create", "Other Corp clients", "--provider", "ca-acme",
                        "--description", "created by the e2e suite",
                        "--external-identifier", "CN", "--filter", 'O == "Other Corp"')
    pool_id = pool["id"]
    assert pool_id.startswith("pool-"), pool
    assert pool["principal"] == f"User:{pool_id}"
    assert pool["kind"] == "CertificateIdentityPool" and pool["api_version"] == "iam/v2"

    # No restart: the next connection of the same client is admitted, by two client libraries.
    mark = iam.audit.mark()
    assert raw_tls_attempt("127.0.0.1", iam.port, outsider).kafka_ok
    for library in ("kafka-python", "confluent-kafka"):
        view = driver(library, iam.bootstrap, outsider).cluster()
        assert view.cluster_id == kafka.cluster_id, library
    admitted = iam.audit.wait_for(mark, lambda r: status_of(r) == "SUCCESS"
                                  and pool_id in r["data"].get("identityPoolIds", []))
    assert admitted and admitted[0]["data"]["identityPoolIds"] == [pool_id], admitted[:1]
    assert admitted[0]["data"]["authenticationInfo"]["principal"] == f"User:{pool_id}"

    # It produces through the proxy as that pool.
    client = driver("kafka-python", iam.bootstrap, outsider)
    topic = unique("iam-outsider")
    client.create_topic(topic)
    client.produce(topic, [(b"k", b"admitted by a pool created over the API")])

    live = open_kafka_connection(iam.port, outsider)
    other = open_kafka_connection(iam.port, client_tls("acme-client"))
    mark = iam.audit.mark()
    out = iam.cli_ok("pools", "delete", pool_id, "--provider", "ca-acme")
    assert f'Deleted identity pool "{pool_id}".' in out

    # Re-evaluation: the deleted pool's live connection is closed, the others stay.
    assert is_closed_by_peer(live, timeout=5), "the connection of a deleted pool stayed open"
    assert not is_closed_by_peer(other, timeout=1), "a still-admitted connection was dropped"
    other.close()
    closed = iam.audit.wait_for(mark, lambda r: status_of(r) == "UNAUTHENTICATED")
    assert closed and reason_of(closed[0]) == "no_pool_matched", closed
    assert "re-evaluated after a configuration reload" in closed[0]["data"]["result"]["message"]
    again = raw_tls_attempt("127.0.0.1", iam.port, outsider)
    assert not again.kafka_ok and again.error is not None, "a deleted pool still admits"


def test_a_ca_created_with_the_cli_trusts_its_clients_once_a_pool_admits_them(kafka, 
        iam, pki, client_tls):
    rogue = client_tls("rogue")  # issued by rogue-ca.pem, which no configured CA is
    assert not raw_tls_attempt("127.0.0.1", iam.port, rogue).kafka_ok

    ca = iam.cli_json("cas", "create", "Partner CA", "--description", "a partner's CA",
                      "--certificate-chain-filename", pki / "rogue-ca.pem")
    ca_id = ca["id"]
    assert ca_id.startswith("op-") and ca["kind"] == "CertificateAuthority", ca
    assert len(ca["fingerprints"]) == 1 and len(ca["serial_numbers"]) == 1
    try:
        iam.cli_json("pools", "create", "--display-name", "Partner", "--provider", ca_id,
                     "--id", "pool-partner", "--external-identifier", "SHA1",
                     "--filter", 'CN == "acme-client"')
        view = driver("confluent-kafka", iam.bootstrap, rogue).cluster()
        assert view.cluster_id == kafka.cluster_id
    finally:
        out = iam.cli_ok("cas", "delete", ca_id)
        assert f'Deleted certificate authority "{ca_id}".' in out
    assert not raw_tls_attempt("127.0.0.1", iam.port, rogue).kafka_ok, "a deleted CA still trusts"
    assert ca_id not in iam.config.read_text()


def test_table_and_json_outputs(iam, pki):
    table = iam.cli_ok("pools", "list", "--provider", "ca-acme")
    header, rule, *rows = table.splitlines()
    assert [c.strip() for c in header.split("|")] == [
        "ID", "Display Name", "Description", "External Identifier", "Filter", "Principal"]
    assert set(rule) <= {"-", "+"}
    payments = next(r for r in rows if r.split("|")[0].strip() == "pool-payments")
    cells = [c.strip() for c in payments.split("|")]
    assert cells[3:] == ["CN", 'CN == "acme-client" && OU == "payments"', "User:pool-payments"]

    pools = iam.cli_json("pools", "list", "--provider", "ca-acme")
    assert {p["id"] for p in pools} >= {"pool-payments", "pool-acme-all"}
    assert all(p["principal"] == f"User:{p['id']}" for p in pools)

    described = iam.cli_ok("pools", "describe", "pool-acme-all", "--provider", "ca-acme")
    assert "| ID " in described and "pool-acme-all" in described
    assert "User:pool-acme-all" in described

    cas = iam.cli_json("cas", "list")
    acme = next(c for c in cas if c["id"] == "ca-acme")
    assert acme["certificate_chain_filename"] == "acme-internal-client-ca.pem"
    assert len(acme["fingerprints"]) == len(acme["expiration_dates"]) >= 1
    ca_table = iam.cli_ok("cas", "describe", "ca-acme")
    for fingerprint in acme["fingerprints"]:
        assert fingerprint in ca_table
    assert "Acme Internal Client CA" in iam.cli_ok("cas", "list")


def test_writes_are_refused_without_the_token_and_invalid_ones_name_the_field(iam):
    before = iam.config.read_text()
    no_token = iam.cli("pools", "create", "X", "--provider", "ca-acme",
                       "--external-identifier", "CN", "--filter", "true", token=False)
    assert no_token.returncode == 1
    assert "Authorization: Bearer" in no_token.stderr and "--token-file" in no_token.stderr

    bad_filter = iam.cli("pools", "create", "X", "--provider", "ca-acme",
                         "--external-identifier", "CN", "--filter", 'CN == "x" &&')
    assert bad_filter.returncode == 1
    assert "filter:" in bad_filter.stderr and "line 1, column" in bad_filter.stderr

    unknown_ca = iam.cli("pools", "list", "--provider", "op-nowhere")
    assert unknown_ca.returncode == 1 and "op-nowhere" in unknown_ca.stderr
    assert iam.config.read_text() == before, "a refused write changed the configuration"

    unreachable = subprocess.run(
        [str(proxy_binary()), "cas", "list", "--admin-url", f"http://127.0.0.1:{free_port()}"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert unreachable.returncode == 1 and "cannot reach the admin API" in unreachable.stderr
