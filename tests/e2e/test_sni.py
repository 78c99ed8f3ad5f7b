"""SNI routing: a three-broker Apache Kafka cluster behind one proxy port.

The proxy runs with `listener.sni` (bootstrap `bootstrap.kafka.test`, brokers
`broker-{id}.kafka.test`, all on the bootstrap port) and a wildcard server certificate
(`pki --host '*.kafka.test'`). No DNS server: each client names the hosts its own way —

* the Java client (kafka-clients) through `-Djdk.net.hosts.file=<file>` (JDK_JAVA_OPTIONS);
* franz-go through a custom `kgo.Dialer` (`--connect-to 127.0.0.1`);
* librdkafka (confluent-kafka) in a private mount namespace whose /etc/hosts is the test's file
  bind-mounted (`unshare --mount`; needs root, skipped with the reason otherwise).

Each produces, consumes in a group and commits, and lists the cluster: every broker is
`broker-<id>.kafka.test` on the proxy's one port, and no upstream address appears in anything a
client printed. A name of no broker gets the TLS alert `unrecognized_name`.

A second proxy in front of the same cluster runs in `upstream.identity.mode: scram` (its
SASL_PLAINTEXT listener, each client signed in as its pool's SCRAM user) with
`upstream.proxy_login` (the proxy's own SCRAM user, with no ACL at all) and without
`listener.advertised_host`: a name of no broker still gets `unrecognized_name` before the
handshake (the proxy looked it up as itself), and the Java client produces through the broker
names.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from conftest import _PROCESSES, proxy_config, start_cluster, stop_cluster
from harness import REPO_ROOT, Process, free_port, run_cli

DOMAIN = "kafka.test"
BROKERS = 3
JAVA_RUN = REPO_ROOT / "tests" / "clients" / "java" / "run"
GO_BUILD = REPO_ROOT / "tests" / "clients" / "go" / "build"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def sni_pki(proxy_bin, tmp_path_factory) -> Path:
    """A development PKI whose server certificate also names `*.kafka.test`."""
    out = tmp_path_factory.mktemp("sni-pki")
    r = run_cli("pki", "--out", out, "--force", "--no-jks", "--host", f"*.{DOMAIN}")
    assert r.returncode == 0, r.stderr
    return out


@pytest.fixture(scope="module")
def sni(kafka_jars, proxy_bin, pki, sni_pki, tmp_path_factory):
    """Three Kafka nodes and a proxy in SNI mode (upstream mode none) in front of them."""
    workdir = tmp_path_factory.mktemp("sni")
    kafka = start_cluster(workdir / "kafka", pki, brokers=BROKERS)
    port = free_port()
    config = proxy_config(bootstrap_port=port, first_port=free_port(), pki=sni_pki,
                          upstream_bootstrap=kafka.bootstrap(), audit_path=workdir / "audit.log")
    config = re.sub(r"  broker_ports:\n    first_port: \d+\n", textwrap.indent(textwrap.dedent(f"""\
        sni:
          bootstrap: bootstrap.{DOMAIN}
          broker_pattern: "broker-{{id}}.{DOMAIN}"
        """), "  "), config)
    assert "sni:" in config, config
    (workdir / "proxy.yaml").write_text(config)
    hosts = workdir / "hosts"
    names = " ".join([f"bootstrap.{DOMAIN}",
                      *(f"broker-{n}.{DOMAIN}" for n in range(1, BROKERS + 1))])
    hosts.write_text(f"127.0.0.1 localhost {names}\n::1 localhost ip6-localhost\n")
    proxy = Process("proxy-sni", [proxy_bin, "run", "--config", workdir / "proxy.yaml"],
                    workdir / "proxy.log", cwd=workdir, env={"NO_COLOR": "1", "RUST_LOG": None})
    _PROCESSES["proxy-sni"] = proxy
    try:
        proxy.wait_for_port("127.0.0.1", port, timeout=30)
        upstream_ports = {p for n in kafka.nodes for p in n.ports.values()}
        yield {"kafka": kafka, "port": port, "bootstrap": f"bootstrap.{DOMAIN}:{port}",
               "hosts": hosts, "upstream_ports": upstream_ports, "log": workdir / "proxy.log",
               "workdir": workdir}
    finally:
        proxy.stop()
        _PROCESSES.pop("proxy-sni", None)
        stop_cluster(kafka)


def leaks(text: str, upstream_ports) -> list[str]:
    """Every `host:port` in `text` whose port is a broker's own."""
    return [m.group(0) for m in re.finditer(r"[\w.\-\[\]]+:(\d{2,5})\b", text)
            if int(m.group(1)) in upstream_ports]


def expected_brokers(port: int) -> list[list]:
    return [[n, f"broker-{n}.{DOMAIN}", port] for n in range(1, BROKERS + 1)]


def create_topic(kafka, partitions: int = 3) -> str:
    topic = unique("sni")
    kafka.tool("kafka-topics.sh", "--create", "--topic", topic, "--partitions", str(partitions),
               "--replication-factor", "3")
    return topic


# --------------------------------------------------------------------------------------------
# The Java client: the JDK's hosts file
# --------------------------------------------------------------------------------------------


def java(sni, sni_pki, *args, timeout: float = 180.0) -> tuple[dict, str]:
    env = dict(os.environ, JDK_JAVA_OPTIONS=f"-Djdk.net.hosts.file={sni['hosts']}")
    r = subprocess.run([str(JAVA_RUN), "--bootstrap", sni["bootstrap"], "--config",
                        str(sni_pki / "acme-client.properties"), *map(str, args)],
                       capture_output=True, text=True, timeout=timeout, env=env,
                       stdin=subprocess.DEVNULL)
    lines = r.stdout.strip().splitlines()
    answer = json.loads(lines[-1]) if lines else {}
    assert r.returncode == 0, f"Java client {args} exited {r.returncode}: {answer}\n{r.stderr[-3000:]}"
    return answer, r.stdout + r.stderr


def test_java_client_produces_and_consumes_in_a_group_through_one_port(sni, sni_pki):
    listed, out = java(sni, sni_pki, "list")
    assert listed["cluster_id"] == sni["kafka"].cluster_id, listed
    assert sorted(listed["brokers"]) == expected_brokers(sni["port"]), listed
    topic, group = create_topic(sni["kafka"]), unique("sni-java")
    produced, out2 = java(sni, sni_pki, "produce", topic, "--count", 20, "--prefix", "java")
    assert len(produced["offsets"]) == 20, produced
    consumed, out3 = java(sni, sni_pki, "consume", topic, "--group", group, "--count", 20)
    assert sorted(consumed["values"]) == sorted(f"java-{i}" for i in range(20)), consumed
    # Keyless records may leave a partition empty: it has no committed offset (null).
    assert sum(v for v in consumed["committed"].values() if v is not None) == 20, consumed
    assert not leaks(out + out2 + out3, sni["upstream_ports"])
    # The audit records say which name each connection asked for, and where it went.
    records = [json.loads(line)["data"] for line in
               (sni["workdir"] / "audit.log").read_text().splitlines() if line.strip()]
    routed = {(r.get("serverName"), r["listener"]) for r in records if r.get("serverName")}
    assert (f"bootstrap.{DOMAIN}", "bootstrap") in routed, routed
    assert any(name == f"broker-{listener[len('broker-'):]}.{DOMAIN}"
               for name, listener in routed if listener.startswith("broker-")), routed


# --------------------------------------------------------------------------------------------
# franz-go: a custom dialer
# --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def franz_bin() -> Path:
    r = subprocess.run([str(GO_BUILD)], capture_output=True, text=True, timeout=600,
                       stdin=subprocess.DEVNULL)
    lines = r.stdout.strip().splitlines()
    if r.returncode != 0 or not lines:
        pytest.fail(f"building the franz-go client failed:\n{r.stderr[-3000:]}", pytrace=False)
    return Path(lines[-1])


def franz(sni, sni_pki, franz_bin, *args) -> tuple[dict, str]:
    r = subprocess.run([str(franz_bin), "--bootstrap", sni["bootstrap"], "--connect-to",
                        "127.0.0.1", "--ca", str(sni_pki / "server-ca.pem"),
                        "--cert", str(sni_pki / "acme-client.pem"),
                        "--key", str(sni_pki / "acme-client.key"), *map(str, args)],
                       capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL)
    out = json.loads(r.stdout) if r.stdout.strip() else {}
    assert r.returncode == 0, f"franz-go {args} exited {r.returncode}: {out}\n{r.stderr[-3000:]}"
    return out, r.stdout + r.stderr


def test_franz_go_produces_and_consumes_in_a_group_through_one_port(sni, sni_pki, franz_bin):
    listed, out = franz(sni, sni_pki, franz_bin, "list")
    assert listed["cluster_id"] == sni["kafka"].cluster_id, listed
    assert sorted(listed["brokers"]) == expected_brokers(sni["port"]), listed
    topic, group = create_topic(sni["kafka"], partitions=1), unique("sni-go")
    produced, out2 = franz(sni, sni_pki, franz_bin, "produce", topic, "--count", 10,
                           "--prefix", "go")
    assert produced["offsets"] == list(range(10)), produced
    consumed, out3 = franz(sni, sni_pki, franz_bin, "consume", topic, "--group", group,
                           "--count", 10)
    assert consumed["values"] == [f"go-{i}" for i in range(10)], consumed
    assert consumed["committed"] == {"0": 10}, consumed
    assert not leaks(out + out2 + out3, sni["upstream_ports"])


# --------------------------------------------------------------------------------------------
# librdkafka: /etc/hosts in a private mount namespace
# --------------------------------------------------------------------------------------------

LIBRDKAFKA_SCRIPT = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from clients import ClientTLS, ConfluentDriver
from confluent_kafka import Consumer
bootstrap, ca, cert, key, topic, group = sys.argv[2:8]
d = ConfluentDriver(bootstrap, ClientTLS(ca, cert, key))
view = d.cluster()
offsets = d.produce(topic, [(None, f"rd-{i}".encode()) for i in range(10)])
c = Consumer(d.config(**{"group.id": group, "enable.auto.commit": False,
                          "auto.offset.reset": "earliest"}))
c.subscribe([topic])
values, deadline = [], time.monotonic() + 60
while len(values) < 10 and time.monotonic() < deadline:
    m = c.poll(0.5)
    if m is not None and not m.error():
        values.append(m.value().decode())
c.commit(asynchronous=False)
committed = {str(tp.partition): tp.offset for tp in c.committed(c.assignment(), timeout=20)}
c.close()
print(json.dumps({"brokers": [list(b) for b in view.brokers], "cluster_id": view.cluster_id,
                  "offsets": offsets, "values": values, "committed": committed,
                  "errors": [str(e) for _, e in d.errors]}))
"""


def in_private_hosts(hosts: Path, argv: list[str]) -> list[str]:
    """`argv` run in a new mount namespace where /etc/hosts is `hosts`."""
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c",
            'mount --bind "$0" /etc/hosts && exec "$@"', str(hosts), *argv]


def test_librdkafka_produces_and_consumes_in_a_group_through_one_port(sni, sni_pki):
    probe = subprocess.run(in_private_hosts(sni["hosts"], ["getent", "hosts",
                                                           f"broker-2.{DOMAIN}"]),
                           capture_output=True, text=True, timeout=30)
    if probe.returncode != 0 or "127.0.0.1" not in probe.stdout:
        pytest.skip("cannot give librdkafka a private /etc/hosts here (unshare --mount and "
                    f"mount --bind need root): {probe.stderr.strip() or probe.stdout.strip()}")
    topic, group = create_topic(sni["kafka"], partitions=1), unique("sni-rdkafka")
    r = subprocess.run(in_private_hosts(sni["hosts"], [
        sys.executable, "-c", LIBRDKAFKA_SCRIPT, str(REPO_ROOT / "tests" / "e2e"),
        sni["bootstrap"], str(sni_pki / "server-ca.pem"), str(sni_pki / "acme-client.pem"),
        str(sni_pki / "acme-client.key"), topic, group]),
        capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, f"librdkafka exited {r.returncode}:\n{r.stdout}\n{r.stderr[-3000:]}"
    answer = json.loads(r.stdout.strip().splitlines()[-1])
    assert answer["cluster_id"] == sni["kafka"].cluster_id, answer
    assert sorted(answer["brokers"]) == expected_brokers(sni["port"]), answer
    assert answer["offsets"] == list(range(10)), answer
    assert answer["values"] == [f"rd-{i}" for i in range(10)], answer
    assert answer["committed"] == {"0": 10}, answer
    assert not leaks(r.stdout + r.stderr, sni["upstream_ports"])


# --------------------------------------------------------------------------------------------
# A name of no broker
# --------------------------------------------------------------------------------------------


def test_a_name_of_no_broker_gets_unrecognized_name(sni, sni_pki):
    import ssl
    import socket

    ctx = ssl.create_default_context(cafile=str(sni_pki / "server-ca.pem"))
    ctx.load_cert_chain(str(sni_pki / "acme-client.pem"), str(sni_pki / "acme-client.key"))
    for name in (f"broker-42.{DOMAIN}", f"elsewhere.{DOMAIN}"):
        with socket.create_connection(("127.0.0.1", sni["port"]), timeout=10) as raw:
            with pytest.raises(ssl.SSLError, match="UNRECOGNIZED_NAME"):
                ctx.wrap_socket(raw, server_hostname=name)
    log = sni["log"].read_text()
    assert "the server name is neither the bootstrap name nor a broker" in log, log[-3000:]


# --------------------------------------------------------------------------------------------
# SCRAM mode: the proxy looks brokers up as itself
# --------------------------------------------------------------------------------------------

SCRAM_POOL_USER, SCRAM_POOL_PASSWORD = "sni-payments", "sni-payments-pw-3131"
PROXY_USER, PROXY_PASSWORD = "kafka-mtls-proxy", "sni-proxy-pw-2727"
SCRAM_POOLS = """\
      - id: pool-payments
        display_name: Payments
        external_identifier: CN
        filter: 'CN == "acme-client" && OU == "payments"'
"""


@pytest.fixture(scope="module")
def sni_scram(sni, proxy_bin, sni_pki, tmp_path_factory):
    """A second proxy in SNI mode, upstream SCRAM, with its own login and no advertised_host."""
    kafka = sni["kafka"]
    workdir = tmp_path_factory.mktemp("sni-scram")
    kafka.add_scram_user(SCRAM_POOL_USER, SCRAM_POOL_PASSWORD)
    kafka.add_scram_user(PROXY_USER, PROXY_PASSWORD)
    for resource in ("--topic", "--group"):
        kafka.acls("--add", "--allow-principal", f"User:{SCRAM_POOL_USER}", "--operation", "All",
                   "--resource-pattern-type", "prefixed", resource, "sni")
    port = free_port()
    config = proxy_config(
        bootstrap_port=port, first_port=free_port(), pki=sni_pki,
        upstream_bootstrap=kafka.bootstrap("SASL_PLAINTEXT"), audit_path=workdir / "audit.log",
        pools_yaml=SCRAM_POOLS, upstream_yaml=f"""
identity:
  mode: scram
  mechanism: SCRAM-SHA-512
  credentials:
    pool-payments: {{username: {SCRAM_POOL_USER}, password_env: SNI_POOL_PASSWORD}}
proxy_login:
  username: {PROXY_USER}
  password_env: SNI_PROXY_PASSWORD
""")
    config = re.sub(r"  advertised_host: localhost\n  broker_ports:\n    first_port: \d+\n",
                    textwrap.indent(textwrap.dedent(f"""\
        sni:
          bootstrap: bootstrap.{DOMAIN}
          broker_pattern: "broker-{{id}}.{DOMAIN}"
        """), "  "), config)
    assert "sni:" in config and "advertised_host" not in config, config
    (workdir / "proxy.yaml").write_text(config)
    proxy = Process("proxy-sni-scram", [proxy_bin, "run", "--config", workdir / "proxy.yaml"],
                    workdir / "proxy.log", cwd=workdir,
                    env={"NO_COLOR": "1", "RUST_LOG": None,
                         "SNI_POOL_PASSWORD": SCRAM_POOL_PASSWORD,
                         "SNI_PROXY_PASSWORD": PROXY_PASSWORD})
    _PROCESSES["proxy-sni-scram"] = proxy
    try:
        proxy.wait_for_port("127.0.0.1", port, timeout=30)
        yield {**sni, "port": port, "bootstrap": f"bootstrap.{DOMAIN}:{port}",
               "log": workdir / "proxy.log", "workdir": workdir}
    finally:
        proxy.stop()
        _PROCESSES.pop("proxy-sni-scram", None)


def test_scram_mode_refuses_a_name_of_no_broker_before_the_handshake(sni_scram, sni_pki):
    import ssl
    import socket

    ctx = ssl.create_default_context(cafile=str(sni_pki / "server-ca.pem"))
    ctx.load_cert_chain(str(sni_pki / "acme-client.pem"), str(sni_pki / "acme-client.key"))
    # The proxy has served no client yet: broker 42 is looked up with the cluster, signed in
    # as the proxy's own user (which has no ACL: listing the brokers needs none).
    with socket.create_connection(("127.0.0.1", sni_scram["port"]), timeout=10) as raw:
        with pytest.raises(ssl.SSLError, match="UNRECOGNIZED_NAME"):
            ctx.wrap_socket(raw, server_hostname=f"broker-42.{DOMAIN}")
    log = sni_scram["log"].read_text()
    assert "the server name is neither the bootstrap name nor a broker" in log, log[-3000:]
    assert "the cluster refused the login" not in log, log[-3000:]


def test_scram_mode_java_client_produces_through_the_broker_names(sni_scram, sni_pki):
    topic = create_topic(sni_scram["kafka"])
    produced, out = java(sni_scram, sni_pki, "produce", topic, "--count", 10, "--prefix", "scram")
    assert len(produced["offsets"]) == 10, produced
    assert not leaks(out, sni_scram["upstream_ports"])
    records = [json.loads(line)["data"] for line in
               (sni_scram["workdir"] / "audit.log").read_text().splitlines() if line.strip()]
    listeners = {r["listener"] for r in records}
    assert any(listener.startswith("broker-") for listener in listeners), listeners
    assert "broker-unverified" not in listeners, listeners
