"""A three-broker Apache Kafka cluster (KRaft, replication factor 3) behind one proxy.

* Every broker gets its own proxy listener (port-per-broker), and clients are told only those.
* A consumer group whose coordinator and partition leaders sit on different brokers works.
* One broker is stopped while a producer (acks=all, idempotent) and a group consumer run through
  the proxy, then started again: the clients recover by themselves, nothing acknowledged is
  lost, and no upstream address ever reaches a client.
"""

from __future__ import annotations

import re
import time

import pytest

from clients import driver, unique
from conftest import _PROCESSES, proxy_config, start_cluster, stop_cluster
from harness import Process, broker_port_base, free_port
from traffic import Traffic, longest_gap

BROKERS = 3


@pytest.fixture(scope="module")
def trio(kafka_jars, proxy_bin, pki, tmp_path_factory):
    """Three Kafka nodes and a proxy (mode none) bootstrapping from all three."""
    workdir = tmp_path_factory.mktemp("three-brokers")
    kafka = start_cluster(workdir / "kafka", pki, brokers=BROKERS)
    bootstrap_port = free_port()
    first_port = broker_port_base(BROKERS)
    config = workdir / "proxy.yaml"
    config.write_text(proxy_config(
        bootstrap_port=bootstrap_port, first_port=first_port, pki=pki,
        upstream_bootstrap=kafka.bootstrap(), audit_path=workdir / "audit.log"))
    proxy = Process("proxy-three-brokers", [proxy_bin, "run", "--config", config],
                    workdir / "proxy.log", cwd=workdir, env={"NO_COLOR": "1", "RUST_LOG": None})
    _PROCESSES["proxy-three-brokers"] = proxy
    try:
        proxy.wait_for_port("127.0.0.1", bootstrap_port, timeout=30)
        upstream_ports = {p for n in kafka.nodes for p in n.ports.values()}
        yield {"kafka": kafka, "bootstrap": f"localhost:{bootstrap_port}",
               "first_port": first_port, "upstream_ports": upstream_ports,
               "log": workdir / "proxy.log"}
    finally:
        proxy.stop()
        _PROCESSES.pop("proxy-three-brokers", None)
        stop_cluster(kafka)


def _leaks(texts, upstream_ports) -> list[str]:
    """Every text that names a broker's own port (an upstream address)."""
    pattern = re.compile(r":(\d{2,5})\b")
    return [t for t in texts if any(int(p) in upstream_ports for p in pattern.findall(t))]


def _describe(kafka, topic: str, group: str | None = None):
    """(partition → leader) of `topic`, and the group's coordinator, from the broker itself."""
    out = kafka.tool("kafka-topics.sh", "--describe", "--topic", topic).stdout
    leaders = {int(m.group(1)): int(m.group(2))
               for m in re.finditer(r"Partition: (\d+)\s+Leader: (\d+)", out)}
    coordinator = None
    if group is not None:
        state = kafka.tool("kafka-consumer-groups.sh", "--describe", "--group", group,
                           "--state").stdout
        m = re.search(r"127\.0\.0\.1:(\d+)\s+\((\d+)\)", state)
        coordinator = int(m.group(2)) if m else None
    return leaders, coordinator


@pytest.mark.parametrize("library", ["kafka-python", "confluent-kafka"])
def test_every_broker_is_served_on_its_own_proxy_port_and_only_there(library, trio, client_tls):
    view = driver(library, trio["bootstrap"], client_tls("acme-client")).cluster()
    assert view.cluster_id == trio["kafka"].cluster_id
    assert view.brokers == [(n, "localhost", trio["first_port"] + n)
                            for n in range(1, BROKERS + 1)], view.brokers


def test_a_group_whose_coordinator_and_leaders_are_on_different_brokers(trio, client_tls):
    kafka = trio["kafka"]
    topic, group = unique("trio-group"), unique("trio-group")
    kafka.tool("kafka-topics.sh", "--create", "--topic", topic, "--partitions", "3",
               "--replication-factor", "3")
    c = driver("confluent-kafka", trio["bootstrap"], client_tls("acme-client"))
    records = [(f"k{i}".encode(), f"v{i}".encode()) for i in range(30)]
    for partition in range(3):
        c.produce(topic, records[partition::3], partition=partition)
    kp = driver("kafka-python", trio["bootstrap"], client_tls("acme-client"))
    got = kp.group_consume_and_commit(group, topic, len(records))
    assert sorted(v for *_, v in got) == sorted(v for _, v in records)

    leaders, coordinator = _describe(kafka, topic, group)
    assert len(leaders) == 3 and coordinator is not None, (leaders, coordinator)
    assert len(set(leaders.values())) > 1, f"all partitions on one broker: {leaders}"
    assert any(leader != coordinator for leader in leaders.values()), (leaders, coordinator)


def test_a_broker_stopped_and_restarted_under_load_loses_nothing_and_clients_recover(
        trio, client_tls, record_property):
    kafka = trio["kafka"]
    topic, group = unique("trio-failover"), unique("trio-failover")
    kafka.tool("kafka-topics.sh", "--create", "--topic", topic, "--partitions", "3",
               "--replication-factor", "3", "--config", "min.insync.replicas=2")
    victim = kafka.node(2)
    with Traffic(trio["bootstrap"], client_tls("acme-client"), topic, group) as traffic:
        time.sleep(5)
        assert traffic.acked, f"nothing acknowledged before the failure: {traffic.logs[-5:]}"
        stopped_at = time.monotonic()
        kafka.stop_node(victim)
        time.sleep(8)
        acked_while_down = [t for t, _ in traffic.acked if t > stopped_at + 1]
        restarted_at = time.monotonic()
        kafka.start_node(victim)
        kafka.wait_ready(timeout=90, nodes=[victim.node_id])
        time.sleep(6)
    back_at = time.monotonic()

    acked = [v for _, v in traffic.acked]
    missing = set(acked) - set(traffic.consumed)
    assert not missing, f"{len(missing)} acknowledged records never consumed: {sorted(missing)[:5]}"
    # The clients kept going with the broker down (two replicas of three suffice) …
    assert acked_while_down, f"no record acknowledged while broker 2 was down: {traffic.logs[-10:]}"
    # … and the stall the failure caused is measured: the longest pause in acknowledgements.
    stall = longest_gap([t for t, _ in traffic.acked], stopped_at - 1)
    record_property("longest_ack_gap_s", round(stall, 2))
    print(f"broker 2 down {restarted_at - stopped_at:.1f} s; longest pause in acks "
          f"{stall:.2f} s; {len(acked)} records acked, all consumed; up again "
          f"{back_at - restarted_at:.1f} s before the end")
    assert stall < 30, f"the producer stalled {stall:.1f} s"
    # No upstream address reached the clients, in anything they reported or logged.
    assert not _leaks(traffic.logs, trio["upstream_ports"]), _leaks(traffic.logs,
                                                                     trio["upstream_ports"])
    view = driver("kafka-python", trio["bootstrap"], client_tls("acme-client")).cluster()
    assert {p for _, _, p in view.brokers}.isdisjoint(trio["upstream_ports"]), view.brokers
    assert len(view.brokers) == BROKERS, view.brokers
