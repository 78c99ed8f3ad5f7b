"""Apache Kafka's own Java client (kafka-clients 4.4.0) and tools through the proxy over mTLS.

The Java client is driven by tests/clients/java/ClientMatrix.java (one operation per run, one
JSON answer), with the PKI's PKCS#12 keystores and with the JKS copies `pki` makes with keytool
(`NAME-jks.properties`). The tools are run exactly as documented: `kafka/bin/kafka-*.sh
--bootstrap-server localhost:PORT --command-config PKI/client.properties`.

Fixtures (conftest.py): `pki`, `proxy` (`.bootstrap` = "localhost:PORT"; upstream is the cluster's
PLAINTEXT listener, so every admitted client is `User:ANONYMOUS` to the broker) and `kafka` (a
`cluster.Cluster`; `kafka.tool(...)` runs a tool as the administrator directly on the broker).
What the broker itself recorded is checked directly, never through the proxy.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from harness import REPO_ROOT

JAVA_DIR = REPO_ROOT / "tests" / "clients" / "java"
KAFKA_BIN = REPO_ROOT / "kafka" / "bin"
FORMATS = ("pkcs12", "jks")
# Identities the proxy must refuse in the handshake, and the TLS alert each one gets.
REFUSED = {"outsider": "access_denied", "rogue": "unknown_ca", "expired": "certificate_expired"}


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# --------------------------------------------------------------------------------------------
# The Java client program and the tools
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class JavaRun:
    argv: list[str]
    code: int
    answer: dict
    stderr: str
    seconds: float

    def __str__(self) -> str:
        return (f"`{' '.join(self.argv[1:])}` exited {self.code} after {self.seconds:.1f} s\n"
                f"answer: {json.dumps(self.answer)}\nstderr (tail):\n{self.stderr[-3000:]}")


def run_java(bootstrap: str, config: Path, *args, timeout: float = 180.0) -> JavaRun:
    argv = [str(JAVA_DIR / "run"), "--bootstrap", bootstrap, "--config", str(config),
            *map(str, args)]
    start = time.monotonic()
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:  # the program's own watchdog should come first
        pytest.fail(f"`{' '.join(argv)}` still running after {timeout} s: {e.stderr!r}")
    seconds = time.monotonic() - start
    try:
        answer = json.loads(r.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        answer = {"unparsed stdout": r.stdout}
    return JavaRun(argv, r.returncode, answer, r.stderr, seconds)


class JavaClient:
    """One identity's Java client against the proxy."""

    def __init__(self, bootstrap: str, config: Path):
        self.bootstrap, self.config = bootstrap, config

    def run(self, *args, **kw) -> JavaRun:
        return run_java(self.bootstrap, self.config, *args, **kw)

    def ok(self, *args, **kw) -> dict:
        result = self.run(*args, **kw)
        assert result.code == 0, f"Java client ({self.config.name}) failed:\n{result}"
        return result.answer


def proxy_tool(proxy, pki: Path, script: str, *args, input: str | None = None,
               config_flag: str = "--command-config",
               timeout: float = 120.0) -> subprocess.CompletedProcess:
    """`kafka/bin/SCRIPT --bootstrap-server localhost:PORT --command-config PKI/client.properties
    ARGS`, as the README documents it; asserts success."""
    argv = [str(KAFKA_BIN / script), "--bootstrap-server", proxy.bootstrap,
            config_flag, str(pki / "client.properties"), *map(str, args)]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, input=input,
                       stdin=None if input is not None else subprocess.DEVNULL)
    assert r.returncode == 0, (f"{' '.join(argv)} exited {r.returncode} through the proxy\n"
                               f"stdout:\n{r.stdout}\nstderr:\n{r.stderr[-3000:]}")
    return r


def broker_batches(kafka, topic: str, partition: int = 0) -> list[dict]:
    """The record batches the broker stored for `topic`-`partition` (DumpLogSegments on its log
    directory): what really reached the broker, with producer ids and transaction markers."""
    dirs = [n.dir / "data" / f"{topic}-{partition}" for n in kafka.nodes]
    found = [d for d in dirs if d.is_dir()]
    assert found, f"no broker has a log directory for {topic}-{partition} (looked in {dirs})"
    segments = sorted(str(p) for p in found[0].glob("*.log"))
    r = subprocess.run([str(KAFKA_BIN / "kafka-run-class.sh"), "org.apache.kafka.tools.DumpLogSegments",
                        "--files", ",".join(segments)], capture_output=True, text=True,
                       timeout=120, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, f"DumpLogSegments failed:\n{r.stdout}{r.stderr}"
    return [dict(re.findall(r"(\w+): (\S+)", line))
            for line in r.stdout.splitlines() if line.startswith("baseOffset:")]


# --------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def java_built():
    r = subprocess.run([str(JAVA_DIR / "build")], capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        pytest.fail(f"tests/clients/java/build exited {r.returncode}:\n{r.stderr}", pytrace=False)
    return Path(r.stdout.strip())


@pytest.fixture(scope="module")
def jks(pki) -> dict[str, Path]:
    """The JKS client configurations `kafka-mtls-proxy pki` wrote with keytool: name → its
    `NAME-jks.properties` (JKS keystore and truststore)."""
    made = {name: pki / f"{name}-jks.properties" for name in ("acme-client", *REFUSED)}
    missing = [str(p) for p in made.values() if not p.is_file()]
    assert not missing, f"`pki` wrote no JKS configuration (is keytool on PATH?): {missing}"
    assert "ssl.keystore.type=JKS" in made["acme-client"].read_text()
    return made


@pytest.fixture(params=FORMATS)
def config_of(request, pki, jks, java_built):
    """`config_of(identity)` → that identity's client properties in the parametrized format."""
    return lambda name: jks[name] if request.param == "jks" else pki / f"{name}.properties"


@pytest.fixture
def java(proxy, config_of) -> JavaClient:
    return JavaClient(proxy.bootstrap, config_of("acme-client"))


def new_topic(java: JavaClient, partitions: int = 1) -> str:
    topic = unique("java")
    assert java.ok("create", topic, "--partitions", partitions) == {"created": topic}
    return topic


# --------------------------------------------------------------------------------------------
# The Java client, PKCS#12 and JKS
# --------------------------------------------------------------------------------------------


def test_list_shows_the_cluster_at_proxy_addresses_only(java, proxy, kafka):
    answer = java.ok("list")
    broker_ports = set(kafka.nodes[0].ports.values())
    assert answer["cluster_id"] == kafka.cluster_id, f"not the real cluster's id: {answer}"
    assert sorted(b[0] for b in answer["brokers"]) == [n.node_id for n in kafka.nodes], answer
    for node_id, host, port in answer["brokers"]:
        assert host == "localhost" and port not in broker_ports, (
            f"broker {node_id} advertised as {host}:{port}, not a proxy address "
            f"(the broker's own ports: {sorted(broker_ports)}): {answer}")
        if hasattr(proxy, "broker_port"):
            assert port == proxy.broker_port, f"expected the proxy's broker port: {answer}"
    assert isinstance(answer["topics"], list), answer


def test_create_topic(java, kafka):
    topic = new_topic(java, partitions=3)
    described = kafka.tool("kafka-topics.sh", "--describe", "--topic", topic).stdout
    assert "PartitionCount: 3" in described, f"the broker does not have {topic} with 3 " \
                                             f"partitions:\n{described}"
    assert topic in java.ok("list")["topics"], f"{topic} missing from the listing"


def test_idempotent_produce(java, kafka):
    topic = new_topic(java)
    answer = java.ok("produce", topic, "--count", 10, "--idempotent", "--prefix", "idem")
    assert answer["offsets"] == list(range(10)), f"offsets: {answer}"
    batches = broker_batches(kafka, topic)
    # An idempotent producer's batches carry its producer id and sequence numbers (-1 without).
    assert batches and batches[0]["baseSequence"] == "0" and all(
        int(b["producerId"]) >= 0 and int(b["baseSequence"]) >= 0 for b in batches), \
        f"not idempotent batches on the broker: {batches}"


def test_consume_in_group_and_commit(java, kafka):
    topic, group = new_topic(java), unique("group")
    java.ok("produce", topic, "--count", 5, "--prefix", "first")
    answer = java.ok("consume", topic, "--group", group, "--count", 5)
    assert answer["values"] == [f"first-{i}" for i in range(5)], answer
    assert answer["committed"] == {"0": 5}, f"committed offsets read back: {answer}"
    groups = kafka.tool("kafka-consumer-groups.sh", "--describe", "--group", group).stdout
    assert re.search(rf"{group}\s+{topic}\s+0\s+5\s", groups), \
        f"the broker's group coordinator does not hold offset 5:\n{groups}"
    # The group resumes from its committed offset: only the new records come.
    java.ok("produce", topic, "--count", 3, "--prefix", "second")
    answer = java.ok("consume", topic, "--group", group, "--count", 3)
    assert answer["values"] == [f"second-{i}" for i in range(3)], answer
    assert answer["committed"] == {"0": 8}, answer


def test_transactions_and_read_committed(java, kafka, proxy):
    """Kafka 4 finalizes `transaction.version=2` (KIP-890): the producer adds partitions to a
    transaction through Produce v12+ instead of AddPartitionsToTxn. Through a proxy that
    advertised Produce v9 this failed with INVALID_TXN_STATE ("Partition was not added to the
    transaction"); the proxy now advertises Produce up to v13, and this pins it."""
    topic = new_topic(java)
    txid = unique("tx")
    java.ok("produce", topic, "--count", 3, "--transactional-id", txid, "--abort",
            "--prefix", "aborted")
    java.ok("produce", topic, "--count", 3, "--transactional-id", txid, "--prefix", "committed")
    committed = java.ok("consume", topic, "--group", unique("rc"), "--count", 3,
                        "--read-committed")
    assert committed["values"] == [f"committed-{i}" for i in range(3)], \
        f"read_committed must skip the aborted transaction: {committed}"
    everything = java.ok("consume", topic, "--group", unique("ru"), "--count", 6)
    assert everything["values"] == [f"aborted-{i}" for i in range(3)] + committed["values"], \
        f"read_uncommitted sees both transactions: {everything}"
    markers = [b for b in broker_batches(kafka, topic) if b["isControl"] == "true"]
    assert len(markers) == 2, f"the broker should hold an abort and a commit marker: {markers}"
    features = subprocess.run(
        [str(KAFKA_BIN / "kafka-run-class.sh"), "org.apache.kafka.tools.FeatureCommand",
         "--bootstrap-server", kafka.bootstrap("INTERNAL"), "--command-config",
         str(kafka.admin_properties), "describe"], capture_output=True, text=True, timeout=120)
    level = re.search(r"transaction\.version\s.*FinalizedVersionLevel:\s*(\d+)", features.stdout)
    assert level and int(level.group(1)) >= 2, \
        f"the broker no longer runs transaction.version 2; this test lost its point:\n{features.stdout}"


@pytest.mark.parametrize("identity", sorted(REFUSED))
def test_refused_in_the_handshake_fast(proxy, config_of, identity):
    result = run_java(proxy.bootstrap, config_of(identity), "refused")
    assert result.code == 3, f"{identity} should be refused (exit 3):\n{result}"
    answer = result.answer
    assert answer.get("exception", "").startswith("SslAuthenticationException"), str(result)
    assert REFUSED[identity] in answer.get("cause", ""), \
        f"expected TLS alert {REFUSED[identity]}:\n{result}"
    # A refusal after the handshake would be retried for the whole api timeout (30 s).
    assert answer["elapsed_ms"] < 10_000 and result.seconds < 20, f"not refused fast:\n{result}"


def test_refused_without_a_client_certificate(proxy, pki, java_built, tmp_path):
    config = tmp_path / "no-certificate.properties"
    config.write_text("".join(line + "\n" for line in
                              (pki / "client.properties").read_text().splitlines()
                              if not line.startswith("ssl.keystore.")
                              and not line.startswith("ssl.key.")))
    result = run_java(proxy.bootstrap, config, "refused")
    assert result.code == 3 and "certificate_required" in result.answer.get("cause", ""), \
        str(result)


def test_kip848_consumer_group_protocol(proxy, pki, java_built):
    """The new consumer rebalance protocol (ConsumerGroupHeartbeat, GA in Kafka 4.0)."""
    java = JavaClient(proxy.bootstrap, pki / "acme-client.properties")
    topic, group = new_topic(java), unique("kip848")
    java.ok("produce", topic, "--count", 4, "--prefix", "kip848")
    answer = java.ok("consume", topic, "--group", group, "--count", 4,
                     "--group-protocol", "consumer")
    assert answer == {"values": [f"kip848-{i}" for i in range(4)], "committed": {"0": 4}}, answer


# --------------------------------------------------------------------------------------------
# Kafka's tools, exactly as documented (Kafka 4.4: --command-config for every tool)
# --------------------------------------------------------------------------------------------


def test_kafka_topics_create_list_describe(proxy, pki, kafka):
    topic = unique("tools")
    out = proxy_tool(proxy, pki, "kafka-topics.sh", "--create", "--topic", topic,
                     "--partitions", 2).stdout
    assert f"Created topic {topic}." in out, out
    listed = proxy_tool(proxy, pki, "kafka-topics.sh", "--list").stdout.split()
    assert topic in listed, f"{topic} not in `kafka-topics.sh --list` through the proxy: {listed}"
    described = proxy_tool(proxy, pki, "kafka-topics.sh", "--describe", "--topic", topic).stdout
    assert "PartitionCount: 2" in described, described
    assert topic in kafka.tool("kafka-topics.sh", "--list").stdout.split(), \
        "the topic is not on the broker"


def test_console_producer_and_consumer(proxy, pki):
    topic, lines = unique("console"), [f"line {i}" for i in range(5)]
    proxy_tool(proxy, pki, "kafka-topics.sh", "--create", "--topic", topic, "--partitions", 1)
    produced = proxy_tool(proxy, pki, "kafka-console-producer.sh", "--topic", topic,
                          input="\n".join(lines) + "\n")
    consumed = proxy_tool(proxy, pki, "kafka-console-consumer.sh", "--topic", topic,
                          "--from-beginning", "--max-messages", len(lines),
                          "--timeout-ms", 30000)
    assert consumed.stdout.splitlines() == lines, f"read back:\n{consumed.stdout}{consumed.stderr}"
    assert f"Processed a total of {len(lines)} messages" in consumed.stderr, consumed.stderr
    for r in (produced, consumed):
        assert "deprecated" not in (r.stdout + r.stderr).lower(), \
            f"--command-config is current: {r.stdout}{r.stderr}"


def test_console_tools_deprecated_config_flags(proxy, pki):
    """--producer.config / --consumer.config still work in 4.4 but warn (removal announced)."""
    topic = unique("console-old")
    proxy_tool(proxy, pki, "kafka-topics.sh", "--create", "--topic", topic, "--partitions", 1)
    produced = proxy_tool(proxy, pki, "kafka-console-producer.sh", "--topic", topic,
                          input="old flags\n", config_flag="--producer.config")
    consumed = proxy_tool(proxy, pki, "kafka-console-consumer.sh", "--topic", topic,
                          "--from-beginning", "--max-messages", 1, "--timeout-ms", 30000,
                          config_flag="--consumer.config")
    # 4.4's console tools print their deprecation notices on stdout, the consumer's among the
    # records it prints: one more reason for --command-config in scripts.
    notice = "Option --consumer.config is deprecated"
    assert [line for line in consumed.stdout.splitlines() if not line.startswith(notice)] == \
        ["old flags"], consumed.stdout
    assert notice in consumed.stdout, consumed.stdout
    assert "--producer.config is deprecated" in produced.stdout, produced.stdout


def test_kafka_acls_list_shows_the_brokers_acls(proxy, pki):
    """DescribeAcls needs DESCRIBE on the cluster. Upstream, every admitted client is the
    PLAINTEXT listener's `User:ANONYMOUS`, which holds ALL (and so DESCRIBE) on the cluster: the
    broker answers, and pool-payments sees the real ACLs — those of ANONYMOUS itself."""
    out = proxy_tool(proxy, pki, "kafka-acls.sh", "--list").stdout
    assert re.search(r"resourceType=CLUSTER, name=kafka-cluster.*\n\s*\(principal=User:ANONYMOUS"
                     r", host=\*, operation=ALL, permissionType=ALLOW\)", out), \
        f"expected ANONYMOUS's ALL on the cluster in `kafka-acls.sh --list`:\n{out}"


def test_kafka_acls_add_through_the_proxy_is_allowed_by_the_broker(proxy, pki, kafka):
    """CreateAcls needs ALTER on the cluster, which ANONYMOUS holds too: without the proxy's own
    ACLs, any admitted certificate can change the broker's ACLs through the proxy. Pinned here so
    that a change (proxy-side ACLs, a narrower upstream identity) is a visible decision."""
    topic, principal = unique("acl"), f"User:{unique('probe')}"
    acl = ("--allow-principal", principal, "--operation", "Read", "--topic", topic)
    proxy_tool(proxy, pki, "kafka-acls.sh", "--add", *acl)
    try:
        listed = kafka.tool("kafka-acls.sh", "--list", "--topic", topic).stdout
        assert principal in listed, f"the broker does not hold the ACL added through the proxy:" \
                                    f"\n{listed}"
    finally:
        kafka.tool("kafka-acls.sh", "--remove", "--force", *acl)
