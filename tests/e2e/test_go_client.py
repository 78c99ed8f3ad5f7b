"""franz-go (Go) through the proxy to a real Apache Kafka broker, over mTLS.

The client is tests/clients/go (franz-go + kadm), built once per session; each call is one
process printing one JSON object (see its main.go for the contract). franz-go differs from the
Java and librdkafka clients in ways a proxy must survive: it pipelines, uses flexible versions
of every API, and dials whatever broker address Metadata advertises (`localhost:<broker_port>`).
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from harness import REPO_ROOT

BUILD = REPO_ROOT / "tests" / "clients" / "go" / "build"
REFUSED = 3


@dataclasses.dataclass
class Run:
    argv: list[str]
    code: int
    out: dict
    stderr: str
    seconds: float

    def __str__(self) -> str:
        return (f"`{' '.join(self.argv[-6:])}` exited {self.code} after {self.seconds:.1f}s\n"
                f"stdout: {json.dumps(self.out)}\nstderr (tail):\n"
                + "\n".join(self.stderr.splitlines()[-25:]))


@pytest.fixture(scope="session")
def franz_bin() -> Path:
    """Builds tests/clients/go (a no-op when the binary is up to date)."""
    try:
        result = subprocess.run([str(BUILD)], capture_output=True, text=True, timeout=600,
                                stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as e:
        pytest.fail(f"{BUILD} could not run: {e}", pytrace=False)
    lines = result.stdout.strip().splitlines()
    if result.returncode != 0 or not lines or not Path(lines[-1]).is_file():
        pytest.fail(f"building the franz-go client failed ({BUILD} exited {result.returncode}):"
                    f"\n{result.stderr[-3000:]}{result.stdout[-1000:]}", pytrace=False)
    return Path(lines[-1])


@pytest.fixture(scope="session")
def franz(franz_bin, pki, proxy):
    """`franz("list")` → a Run of the Go client as acme-client through the proxy;
    `cert=` picks another identity of the PKI."""

    def call(*args, cert: str = "acme-client", timeout: float = 60.0) -> Run:
        argv = [str(franz_bin), "--bootstrap", proxy.bootstrap, "--ca", str(pki / "server-ca.pem"),
                "--cert", str(pki / f"{cert}.pem"), "--key", str(pki / f"{cert}.key"),
                *[str(a) for a in args]]
        start = time.monotonic()
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                                stdin=subprocess.DEVNULL)
        seconds = time.monotonic() - start
        try:
            out = json.loads(result.stdout)
        except json.JSONDecodeError:
            out = {"unparsed stdout": result.stdout}
        return Run(argv, result.returncode, out, result.stderr, seconds)

    return call


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def admin_topics(kafka) -> list[str]:
    return kafka.tool("kafka-topics.sh", "--list").stdout.split()


def test_list_sees_only_the_proxy(franz, proxy, kafka):
    run = franz("list")
    assert run.code == 0, run
    assert run.out["cluster_id"] == kafka.cluster_id, run
    broker_ports = set(kafka.nodes[0].ports.values())
    brokers = run.out["brokers"]
    assert [b[0] for b in brokers] == [n.node_id for n in kafka.nodes], run
    for node_id, host, port in brokers:
        assert host == "localhost", f"node {node_id} advertised as {host}:{port}\n{run}"
        assert port not in broker_ports, f"node {node_id} leaks the broker's port {port}\n{run}"
        assert f"{host}:{port}" != proxy.bootstrap, run


def test_created_topic_is_on_the_broker(franz, kafka):
    topic = unique("go-created")
    run = franz("create", topic, "--partitions", 3)
    assert run.code == 0, run
    assert run.out == {"created": topic, "partitions": 3}, run
    assert topic in admin_topics(kafka)
    described = kafka.tool("kafka-topics.sh", "--describe", "--topic", topic).stdout
    assert "PartitionCount: 3" in described, described
    listed = franz("list")
    assert listed.code == 0 and topic in listed.out["topics"], listed
    again = franz("create", topic)
    assert again.code == 1 and "TOPIC_ALREADY_EXISTS" in again.out["error"], again


@pytest.mark.parametrize("protocol", ["classic", "consumer"])
def test_produce_then_consume_in_a_group(franz, kafka, protocol):
    """classic: JoinGroup/SyncGroup/Heartbeat; consumer: KIP-848 ConsumerGroupHeartbeat."""
    topic, group, count = unique("go-data"), unique(f"go-{protocol}"), 10
    assert franz("create", topic, "--partitions", 1).code == 0

    produced = franz("produce", topic, "--count", count, "--prefix", "go")
    assert produced.code == 0, produced
    assert produced.out["offsets"] == list(range(count)), produced

    consumed = franz("consume", topic, "--group", group, "--count", count,
                     "--group-protocol", protocol)
    assert consumed.code == 0, consumed
    assert consumed.out["values"] == [f"go-{i}" for i in range(count)], consumed
    assert consumed.out["committed"] == {"0": count}, consumed

    # The commit reached the broker under that group, not just the client's view of it.
    described = kafka.tool("kafka-consumer-groups.sh", "--describe", "--group", group).stdout
    rows = [line.split() for line in described.splitlines() if topic in line.split()]
    assert rows and rows[0][3] == str(count), described  # GROUP TOPIC PARTITION CURRENT-OFFSET


@pytest.mark.parametrize("cert, alert", [
    ("outsider", "access denied"),                 # trusted CA, no pool admits it
    ("rogue", "unknown certificate authority"),    # a CA the proxy does not trust
])
def test_refused(franz, cert, alert):
    run = franz("refused", cert=cert, timeout=30)
    assert run.code == REFUSED, run
    assert run.out["refused"] is True, run
    # A TLS alert from the proxy (what clients treat as final), not a dropped connection.
    assert "remote error: tls:" in run.out["error"], run
    assert alert in run.out["error"], run
    assert run.seconds < 10 and run.out["elapsed_ms"] < 10_000, run


def test_refused_producer_reports_the_tls_alert(franz):
    """franz-go's producer retries a refused connection until its deadline and then reports
    only `context deadline exceeded`: the client still ends as refused, with the TLS alert."""
    run = franz("--deadline", "4s", "produce", unique("go-refused"), "--count", 1,
                cert="outsider", timeout=30)
    assert run.code == REFUSED, run
    assert "access denied" in run.out["error"], run
