"""Bad set-ups of the local Apache Kafka get clear errors (scripts/kafka-fetch, kafka/cluster.py,
scripts/kafka-cluster): no Java or Maven, a port in use, a broker that does not come up (its
log's first errors and tail are shown), an OAuth JWKS that cannot be fetched."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess

import pytest

from harness import REPO_ROOT, kafka_cluster_module

cluster = kafka_cluster_module()


def test_kafka_fetch_without_java_or_maven_says_what_is_missing_and_what_to_do(tmp_path):
    # A PATH with the shell tools the script uses, and neither java nor mvn.
    tools = tmp_path / "bin"
    tools.mkdir()
    for name in ("bash", "env", "sed", "cksum", "cut", "cat", "dirname", "mkdir", "rm", "mv",
                 "ls", "wc", "date", "tail"):
        found = shutil.which(name)
        if found:
            (tools / name).symlink_to(found)
    result = subprocess.run(
        [str(REPO_ROOT / "scripts" / "kafka-fetch")], capture_output=True, text=True, timeout=30,
        env={"PATH": str(tools), "HOME": str(tmp_path),
             "KAFKA_MTLS_PROXY_CACHE": str(tmp_path / "cache")})
    assert result.returncode == 3, result
    assert "java (a JDK 17 or newer" in result.stderr, result.stderr
    assert "mvn (Maven" in result.stderr, result.stderr
    assert "upstream.bootstrap_servers" in result.stderr, result.stderr


def test_a_port_in_use_is_named_before_anything_starts(kafka_jars, pki, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        c = cluster.Cluster(tmp_path, pki=pki, port_base=port)
        with pytest.raises(cluster.ClusterError) as refused:
            c.start()
    assert f"PLAINTEXT of node 1 on 127.0.0.1:{port}" in str(refused.value)
    assert not any(n.alive() for n in c.nodes)


def test_a_broker_that_exits_while_starting_shows_its_first_errors(kafka_jars, pki, tmp_path):
    c = cluster.Cluster(tmp_path, pki=pki)
    c.write_configuration()
    c.format()
    # Storage formatted, then its identity removed: the broker refuses to start on it.
    (c.nodes[0].dir / "data" / "meta.properties").unlink()
    c.start_node(c.nodes[0])
    try:
        with pytest.raises(cluster.ClusterError) as failed:
            c.wait_ready(timeout=60)
    finally:
        c.stop()
    message = str(failed.value)
    assert "Kafka node 1 exited with 1 while starting" in message, message
    assert "first errors:" in message and "meta.properties" in message, message
    assert f"last lines of {c.nodes[0].log_path}" in message, message


def test_an_oauth_cluster_whose_jwks_cannot_be_fetched_is_refused_with_the_reason(
        kafka_jars, pki, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]  # closed again: nothing listens there
    url = f"http://127.0.0.1:{dead}/.well-known/jwks.json"
    c = cluster.Cluster(tmp_path, pki=pki,
                        oauth=cluster.OAuthSettings(url, "https://issuer", "aud"))
    with pytest.raises(cluster.ClusterError) as refused:
        c.start()
    assert url in str(refused.value) and "start the proxy" in str(refused.value)
    assert not any(n.alive() for n in c.nodes)


def test_the_cluster_script_reports_a_second_start_and_stops_cleanly(kafka_jars, pki, tmp_path):
    script = str(REPO_ROOT / "scripts" / "kafka-cluster")
    workdir = tmp_path / "kafka"
    base = _free_range(7)
    env = {**os.environ}
    started = subprocess.run([script, "start", "--dir", str(workdir), "--pki", str(pki),
                              "--port-base", str(base)], capture_output=True, text=True,
                             timeout=180, env=env)
    try:
        assert started.returncode == 0, started.stderr
        assert f"PLAINTEXT       127.0.0.1:{base}" in started.stdout, started.stdout
        again = subprocess.run([script, "start", "--dir", str(workdir), "--pki", str(pki),
                                "--port-base", str(base)], capture_output=True, text=True,
                               timeout=60, env=env)
        assert again.returncode == 1 and "still running" in again.stderr, again
        assert cluster.metadata_brokers(base), "the broker does not answer Metadata"
    finally:
        stopped = subprocess.run([script, "stop", "--dir", str(workdir)], capture_output=True,
                                 text=True, timeout=60)
    assert stopped.returncode == 0 and "stopped 1 Kafka node" in stopped.stdout, stopped
    with pytest.raises(OSError):
        cluster.metadata_brokers(base, timeout=1)


def _free_range(count: int) -> int:
    """A port base under 32768 (below Linux's ephemeral range) with `count` free ports."""
    for base in range(21000, 32000, 50):
        if not any(cluster.port_in_use(base + i) for i in range(count)):
            return base
    raise RuntimeError("no free port range")
