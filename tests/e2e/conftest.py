"""Session fixtures: one development PKI, one Apache Kafka broker and one proxy for the run.

Real clients (kafka-python, confluent-kafka, the Java client and Kafka's own tools, franz-go)
talk mTLS to the proxy, which forwards to a real Apache Kafka broker (KRaft, one node, the
listeners of kafka/cluster.py, StandardAuthorizer on). The proxy's and the broker's logs are
written to files; when a test fails, their tails are attached to the failure report (the first
thing anyone debugging a red CI needs).
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import textwrap
from datetime import datetime, timezone
from pathlib import Path

import pytest

from harness import (
    KAFKA_NODE_ID,
    STARTED_LOGS,
    AuditLog,
    ClientTLS,
    Process,
    broker_port_base,
    broker_stalls,
    REPO_ROOT,
    free_port,
    kafka_cluster_module,
    proxy_binary,
    run_cli,
    tail,
)

cluster = kafka_cluster_module()

# Every process the session started, for the failure report.
_PROCESSES: dict[str, Process] = {}

PKI_FILES = [
    "server-ca.pem", "server.pem", "server.key", "acme-internal-client-ca.pem", "rogue-ca.pem",
    "broker.pem", "broker.key", "proxy-upstream-client.pem", "proxy-upstream-client.key",
    *(f"{name}.{ext}" for name in ("acme-client", "acme-analytics", "outsider", "expired", "rogue")
      for ext in ("pem", "key")),
]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        # CI shows an excerpt of its output, not all of it: every section names the failed
        # test, its error and when it failed (UTC, to match the logs' timestamps), so any
        # excerpt of a log tail still says what broke and whether the test waited out a timeout.
        crash = getattr(report.longrepr, "reprcrash", None)
        error = crash.message.splitlines()[0][:200] if crash is not None and crash.message \
            else report.outcome
        when = datetime.fromtimestamp(call.stop, timezone.utc).strftime("%H:%M:%S.%f")[:-3]
        failure = (f"{item.nodeid} failed in {call.when} at {when}Z after "
                   f"{call.stop - call.start:.1f}s: {error}")
        for name, proc in _PROCESSES.items():
            state = "running" if proc.alive() else f"exited with {proc.proc.returncode}"
            report.sections.append(
                (f"{name} log tail ({proc.log_path}, {state}) | {failure}",
                 proc.log_tail(40)))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    # The clients retry a request the broker leaves unanswered (see clients.py), so a stall
    # does not fail the run; it is reported here, with the proxy's own account of it.
    stalls = broker_stalls(STARTED_LOGS)
    if stalls:
        terminalreporter.section("requests the broker left unanswered while a client waited")
        for line in stalls[:20]:
            terminalreporter.write_line(line)


# --------------------------------------------------------------------------------------------
# Binaries and PKI
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def proxy_bin() -> Path:
    path = proxy_binary()
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"proxy binary not found at {path}: run `cargo build --bins` or set "
                    "KAFKA_MTLS_PROXY_BIN", pytrace=False)
    return path


@pytest.fixture(scope="session")
def kafka_jars() -> Path:
    """The pinned Apache Kafka release's jars (scripts/kafka-fetch: cached after the first run)."""
    result = subprocess.run([str(REPO_ROOT / "scripts" / "kafka-fetch")], capture_output=True,
                            text=True, timeout=900, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        pytest.fail(f"scripts/kafka-fetch failed ({result.returncode}):\n{result.stderr}",
                    pytrace=False)
    return Path(result.stdout.strip())


@pytest.fixture(scope="session")
def pki(proxy_bin, tmp_path_factory) -> Path:
    """A development PKI written by `kafka-mtls-proxy pki --out DIR`."""
    out = tmp_path_factory.mktemp("pki")
    result = run_cli("pki", "--out", out, "--force")
    assert result.returncode == 0, (
        f"`pki --out {out}` exited {result.returncode}\nstdout:\n{result.stdout}\n"
        f"stderr:\n{result.stderr}")
    missing = [f for f in PKI_FILES if not (out / f).is_file()]
    assert not missing, f"`pki` did not write {missing}; it wrote {sorted(os.listdir(out))}"
    return out


@pytest.fixture(scope="session")
def client_tls(pki):
    """`client_tls("acme-client")` → the files a client uses for that identity;
    `client_tls(None)` → a client that trusts the proxy but presents no certificate."""

    def make(name: str | None) -> ClientTLS:
        if name is None:
            return ClientTLS(pki / "server-ca.pem", None, None)
        return ClientTLS(pki / "server-ca.pem", pki / f"{name}.pem", pki / f"{name}.key")

    return make


# --------------------------------------------------------------------------------------------
# Broker and proxy
# --------------------------------------------------------------------------------------------


# The session broker's KIP-368 listener (REAUTH) grants sessions this long.
REAUTH_MS = 4000


def start_cluster(workdir: Path, pki: Path, **kwargs) -> "cluster.Cluster":
    """A started Apache Kafka cluster whose nodes' logs go into failure reports; stop it with
    `stop_cluster`."""
    kafka = cluster.Cluster(workdir, pki=pki, **kwargs)
    for node in kafka.nodes:
        _PROCESSES[f"{workdir.name}/{node.name}"] = node
        STARTED_LOGS.append(node.log_path)
    try:
        kafka.start()
    except BaseException:
        stop_cluster(kafka)
        raise
    return kafka


def stop_cluster(kafka) -> None:
    kafka.stop()
    for node in kafka.nodes:
        _PROCESSES.pop(f"{kafka.workdir.name}/{node.name}", None)


@pytest.fixture(scope="session")
def kafka(kafka_jars, pki, tmp_path_factory):
    """The session's Apache Kafka broker (one node): PLAINTEXT for `mode: none`, SCRAM on the
    SASL listeners, and REAUTH with `REAUTH_MS` sessions. Its node id is `KAFKA_NODE_ID`."""
    kafka = start_cluster(tmp_path_factory.mktemp("kafka"), pki, brokers=1, reauth_ms=REAUTH_MS)
    try:
        yield kafka
    finally:
        stop_cluster(kafka)


@dataclasses.dataclass
class Proxy:
    bootstrap_port: int
    broker_port: int  # where the broker's node KAFKA_NODE_ID is served: first_port + node id
    config_path: Path
    audit_path: Path
    process: Process

    @property
    def bootstrap(self) -> str:
        # The proxy's certificate names `localhost` (and 127.0.0.1); clients verify it.
        return f"localhost:{self.bootstrap_port}"


POOLS_YAML = """\
      - id: pool-payments
        display_name: Payments
        external_identifier: CN
        filter: 'CN == "acme-client" && OU == "payments"'
      - id: pool-acme-all
        display_name: All Acme clients
        external_identifier: SHA1
        filter: 'O == "Acme Inc"'
"""

# The same pools, pool-payments with the higher priority: acme-client, which matches both, has
# pool-payments as its primary pool (the upstream identity it gets: SCRAM user, token `sub`).
PRIORITY_POOLS_YAML = POOLS_YAML.replace(
    "      - id: pool-acme-all\n", "        priority: 10\n      - id: pool-acme-all\n")


def proxy_config(*, bootstrap_port: int, first_port: int, pki: Path, upstream_bootstrap: str,
                 audit_path: Path, pools_yaml: str = POOLS_YAML, upstream_yaml: str = "") -> str:
    """The session's configuration (the one in the brief), with absolute paths.

    `upstream_bootstrap` is the broker listener (`kafka.bootstrap("PLAINTEXT")` for
    `mode: none`); `upstream_yaml` adds keys under `upstream:` (YAML at column 0, indented
    here), e.g. a `tls:` or `identity:` block.
    """
    extra = textwrap.indent(textwrap.dedent(upstream_yaml).strip("\n"), " " * 2)
    extra = extra + "\n" if extra else ""
    bootstrap = upstream_bootstrap
    return textwrap.dedent(f"""\
        listener:
          bootstrap: 127.0.0.1:{bootstrap_port}
          advertised_host: localhost
          broker_ports:
            first_port: {first_port}
        tls:
          certificate_chain: {pki / "server.pem"}
          private_key: {pki / "server.key"}
        upstream:
          bootstrap_servers: [{bootstrap}]
        """) + extra + textwrap.dedent(f"""\
        audit:
          path: {audit_path}
        log:
          level: debug
        certificate_authorities:
          - id: ca-acme
            display_name: Acme Internal Client CA
            certificate_chain: {pki / "acme-internal-client-ca.pem"}
            identity_pools:
        """) + pools_yaml


@pytest.fixture(scope="session")
def proxy(proxy_bin, pki, kafka, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("proxy")
    bootstrap_port = free_port()
    first_port = broker_port_base(KAFKA_NODE_ID)
    audit_path = workdir / "audit.log"
    config_path = workdir / "proxy.yaml"
    config_path.write_text(proxy_config(bootstrap_port=bootstrap_port, first_port=first_port,
                                        pki=pki, upstream_bootstrap=kafka.bootstrap(),
                                        audit_path=audit_path))
    env_log = workdir / "proxy.log"
    # NO_COLOR: a log file people read, not a terminal. RUST_LOG would override log.level.
    env = {"NO_COLOR": "1", "RUST_LOG": None}
    proc = Process("proxy", [proxy_bin, "run", "--config", config_path], env_log, cwd=workdir,
                   env=env)
    _PROCESSES["proxy"] = proc
    try:
        proc.wait_for_port("127.0.0.1", bootstrap_port, timeout=30)
        # The readiness probe was an authentication attempt too (refused: no TLS at all); let
        # its audit record land so that it is not counted by the first test.
        probe_audit = AuditLog(audit_path)
        assert probe_audit.wait_for(0, timeout=10), "no audit record for the readiness probe"
        probe_audit.settle(quiet=0.3)
        yield Proxy(bootstrap_port, first_port + KAFKA_NODE_ID, config_path, audit_path, proc)
    finally:
        code = proc.stop()
        # A proxy that crashed during the run must not go unnoticed: fail loudly at teardown.
        assert code in (0, -15, None), (
            f"proxy exited with {code}\n{tail(env_log)}")


@pytest.fixture(scope="session")
def audit(proxy) -> AuditLog:
    return AuditLog(proxy.audit_path)


@pytest.fixture(autouse=True)
def _processes_still_running():
    """Each test ends with the broker and the proxy (those the session started) still alive."""
    yield
    for name, proc in _PROCESSES.items():
        assert proc.alive(), (
            f"{name} died during this test (exit {proc.proc.returncode})\n{proc.log_tail()}")
