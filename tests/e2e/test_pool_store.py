"""Three proxy replicas share their pools through a compacted topic of the three-broker cluster.

Three replicas (127.0.0.2, .3, .4, the same ports) sit behind HAProxy (127.0.0.1, round robin);
each has its own configuration file, admin API and `store:` section, and reads and writes the
store topic as the proxy's own SCRAM user, which the broker's ACLs allow on that topic only.

* A pool created through replica A admits a client connecting through replica B within 2 s
  (measured 20 times: median and max printed), and its deletion refuses it there again.
* A pool deleted through C closes the client's live connection on A.
* Two replicas updating the same pool at once end in one agreed state on all three.
* A CA created through one replica (its chain inline in the record) is trusted by the others;
  deleting it through another removes it and its pools everywhere.
* Records that do not validate (a bad CEL filter, bad JSON, a bad key) are skipped on every
  replica, counted by reason, and the tail goes on.
* The topic unreadable (the store user's ACL removed): replicas keep enforcing the last state,
  `/readyz` answers 200 `degraded` with the reason, `pool_store_up` is 0; back when readable.
* The broker leading the store's partition stopped, then a replica restarted with an empty disk: it comes back with every pool,
  and writes still apply everywhere.

Needs /usr/sbin/haproxy (scripts/test installs it); skipped with that reason when absent.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import socket
import statistics
import textwrap
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import _PROCESSES, proxy_config, start_cluster, stop_cluster
from harness import (
    Process,
    api_versions_v0_request,
    free_port,
    is_closed_by_peer,
    metric,
    raw_tls_attempt,
    recv_exact,
    run_cli,
    ssl_context,
)

HAPROXY = shutil.which("haproxy") or ("/usr/sbin/haproxy" if Path("/usr/sbin/haproxy").exists()
                                      else None)
pytestmark = pytest.mark.skipif(
    HAPROXY is None, reason="haproxy is not installed (scripts/test installs it with apt-get)")

BROKERS = 3
TOPIC = "_kafka_mtls_proxy_pools"
STORE_USER = "kafka-mtls-proxy"
STORE_PASSWORD = "store-pw-5150"
TOKEN = "e2e-admin-token-0123456789abcdef"
REPLICA_IPS = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
CA = "ca-acme"
# The file's pool: seeds the empty topic; matches none of the test's clients.
SEED_POOLS = """\
      - id: pool-seed
        display_name: Seeded from the file
        external_identifier: CN
        filter: 'CN == "nobody"'
"""
OUTSIDER_FILTER = 'O == "Other Corp"'
ENFORCEMENT_BOUND_S = 2.0


def store_acl_args() -> tuple[str, ...]:
    """The README's ACLs: the proxy's user may create, describe, read and write the topic."""
    return ("--allow-principal", f"User:{STORE_USER}", "--operation", "Create", "--operation",
            "Describe", "--operation", "Read", "--operation", "Write", "--topic", TOPIC)


class Replica:
    def __init__(self, name: str, ip: str, workdir: Path, proxy_bin: Path, config: str):
        self.name, self.ip, self.workdir = name, ip, workdir
        self.proxy_bin = proxy_bin
        self.config_path = workdir / "proxy.yaml"
        self.config_path.write_text(config)
        self.admin_port = int(config.split("admin:\n  listen: 127.0.0.1:")[1].split("\n")[0])
        self.process: Process | None = None

    def start(self):
        self.process = Process(self.name, [self.proxy_bin, "run", "--config", self.config_path],
                               self.workdir / "proxy.log", cwd=self.workdir,
                               env={"NO_COLOR": "1", "RUST_LOG": None,
                                    "STORE_PASSWORD": STORE_PASSWORD})
        _PROCESSES[self.name] = self.process

    def stop(self):
        if self.process is not None:
            self.process.stop()
            _PROCESSES.pop(self.name, None)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.admin_port}{path}"

    def request(self, method: str, path: str, body: dict | None = None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.url(path), data=data, method=method, headers={
            "Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                text = r.read().decode()
                return r.status, (json.loads(text) if text else None)
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read().decode() or "null")

    def readyz(self):
        return self.request("GET", "/readyz")

    def metrics(self) -> str:
        with urllib.request.urlopen(self.url("/metrics"), timeout=10) as r:
            return r.read().decode()

    def pools(self) -> dict[str, dict]:
        status, body = self.request("GET", f"/iam/v2/certificate-authorities/{CA}/identity-pools")
        assert status == 200, body
        return {p["id"]: p for p in body["data"]}

    def wait_ready(self, timeout: float = 60.0):
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                last = self.readyz()
                if last[0] == 200 and last[1]["status"] == "ready":
                    return
            except OSError as e:
                last = e
            time.sleep(0.2)
        raise AssertionError(f"{self.name} not ready: {last}\n{self.process.log_tail()}")


class Setup:
    def __init__(self, kafka, replicas, bootstrap_port, haproxy):
        self.kafka, self.replicas = kafka, replicas
        self.bootstrap_port, self.haproxy = bootstrap_port, haproxy


def replica_config(*, pki, kafka, ip, bootstrap_port, first_port, admin_port, token_file,
                   workdir) -> str:
    config = proxy_config(bootstrap_port=bootstrap_port, first_port=first_port, pki=pki,
                          upstream_bootstrap=kafka.bootstrap(), audit_path=workdir / "audit.log",
                          pools_yaml=SEED_POOLS)
    config = config.replace(f"  bootstrap: 127.0.0.1:{bootstrap_port}\n",
                            f"  bootstrap: {ip}:{bootstrap_port}\n  broker_bind_address: {ip}\n")
    return config + store_sections(admin_port=admin_port, token_file=token_file, workdir=workdir,
                                   store_extra=f"""\
bootstrap_servers: [{kafka.bootstrap("SASL_PLAINTEXT")}]
sasl:
  mechanism: SCRAM-SHA-512
  username: {STORE_USER}
  password_env: STORE_PASSWORD
""")


def store_sections(*, admin_port, token_file, workdir, store_extra: str = "") -> str:
    """The `admin:`, `reload:` and `store:` sections of a replica's configuration (the store
    needs the admin API, and no file watcher may race the store's own reloads). `store_extra`:
    more keys of `store:`, YAML unindented."""
    return textwrap.dedent(f"""\
        admin:
          listen: 127.0.0.1:{admin_port}
          token_file: {token_file}
        reload:
          watch_interval_ms: 0
        store:
          topic: {TOPIC}
          replication_factor: 3
          min_insync_replicas: 2
          directory: {workdir / "pool-store"}
        """) + textwrap.indent(store_extra, "  ")


def listener_ports() -> tuple[int, int]:
    """A bootstrap port and a first broker port whose node 1..3 ports are free on HAProxy's
    and every replica's address, below Linux's ephemeral range (32768–60999), where no client's
    outgoing connection can take one between this check and HAProxy's bind."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(20000, 32000)
        ports = [base] + [base + 10 + n for n in range(1, BROKERS + 1)]
        try:
            for ip in ["127.0.0.1", *REPLICA_IPS]:
                for port in ports:
                    with socket.socket() as sock:
                        sock.bind((ip, port))
        except OSError:
            continue
        return base, base + 10
    raise RuntimeError("no free listener ports below 32768")


@pytest.fixture(scope="module")
def setup(kafka_jars, proxy_bin, pki, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("pool-store")
    kafka = start_cluster(workdir / "kafka", pki, brokers=BROKERS)
    replicas: list[Replica] = []
    haproxy = None
    try:
        kafka.add_scram_user(STORE_USER, STORE_PASSWORD)
        kafka.acls("--add", *store_acl_args())
        bootstrap_port, first_port = listener_ports()
        token_file = workdir / "admin.token"
        token_file.write_text(TOKEN + "\n")
        for i, ip in enumerate(REPLICA_IPS):
            rdir = workdir / f"replica-{'abc'[i]}"
            rdir.mkdir()
            replicas.append(Replica(
                f"proxy-store-{'abc'[i]}", ip, rdir, proxy_bin,
                replica_config(pki=pki, kafka=kafka, ip=ip, bootstrap_port=bootstrap_port,
                               first_port=first_port, admin_port=free_port(),
                               token_file=token_file, workdir=rdir)))
        for r in replicas:
            r.start()
        for r in replicas:
            r.wait_ready(timeout=90)
        ports = [bootstrap_port] + [first_port + n for n in range(1, BROKERS + 1)]
        cfg = "defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 60s\n" \
              "    timeout server 60s\n\n"
        for port in ports:
            cfg += f"frontend f{port}\n    bind 127.0.0.1:{port}\n    default_backend b{port}\n\n"
            cfg += f"backend b{port}\n    balance roundrobin\n"
            cfg += "".join(f"    server r{i} {ip}:{port}\n" for i, ip in enumerate(REPLICA_IPS))
            cfg += "\n"
        (workdir / "haproxy.cfg").write_text(cfg)
        haproxy = Process("haproxy-store", [HAPROXY, "-db", "-f", workdir / "haproxy.cfg"],
                          workdir / "haproxy.log", cwd=workdir)
        haproxy.wait_for_port("127.0.0.1", bootstrap_port, timeout=30)
        yield Setup(kafka, replicas, bootstrap_port, haproxy)
    finally:
        if haproxy is not None:
            haproxy.stop()
        for r in replicas:
            r.stop()
        stop_cluster(kafka)


def admitted(replica: Replica, port: int, tls) -> bool:
    return raw_tls_attempt(replica.ip, port, tls, timeout=5).kafka_ok


def wait_until(predicate, timeout: float, what: str) -> float:
    """Seconds until `predicate()` held (polled as fast as it answers)."""
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout:
            raise AssertionError(f"not within {timeout} s: {what}")
    return time.monotonic() - start


def create_pool(replica: Replica, pool_id: str, filter_: str = OUTSIDER_FILTER, **extra):
    status, body = replica.request("POST", f"/iam/v2/certificate-authorities/{CA}/identity-pools",
                                   {"id": pool_id, "display_name": pool_id,
                                    "external_identifier": "CN", "filter": filter_, **extra})
    assert status == 201, (status, body)
    return body


def delete_pool(replica: Replica, pool_id: str):
    status, body = replica.request(
        "DELETE", f"/iam/v2/certificate-authorities/{CA}/identity-pools/{pool_id}")
    assert status == 204, (status, body)


def test_the_file_seeded_the_empty_topic_and_every_replica_serves_it(setup):
    for r in setup.replicas:
        assert set(r.pools()) == {"pool-seed"}, r.name
        text = r.metrics()
        assert metric(text, "kafka_mtls_proxy_pool_store_up") == 1
        assert metric(text, "kafka_mtls_proxy_pool_store_records_rejected_total") == 0


def test_a_pool_written_on_one_replica_is_enforced_on_another_within_2_s(setup, client_tls):
    outsider = client_tls("outsider")
    port = setup.bootstrap_port
    a, b, _ = setup.replicas
    assert not admitted(b, port, outsider), "outsider admitted before any pool matches it"
    admit_times, refuse_times = [], []
    for i in range(20):
        pool_id = f"pool-measure-{i}"
        start = time.monotonic()
        create_pool(a, pool_id)
        wait_until(lambda: admitted(b, port, outsider), 10, f"{pool_id} admits on B")
        admit_times.append(time.monotonic() - start)
        start = time.monotonic()
        delete_pool(a, pool_id)
        wait_until(lambda: not admitted(b, port, outsider), 10, f"{pool_id} gone on B")
        refuse_times.append(time.monotonic() - start)
    for name, times in (("create→admitted", admit_times), ("delete→refused", refuse_times)):
        print(f"\npool store, API write on A → enforced on B ({name}), 20 runs: "
              f"median {statistics.median(times) * 1000:.0f} ms, "
              f"max {max(times) * 1000:.0f} ms")
        assert max(times) < ENFORCEMENT_BOUND_S, (name, times)


def test_clients_behind_haproxy_are_admitted_by_whichever_replica_they_reach(setup, client_tls):
    """The pool is created with the CLI, through replica A."""
    outsider = client_tls("outsider")
    a = setup.replicas[0]
    token_file = a.workdir.parent / "admin.token"
    created = run_cli("pools", "create", "Through haproxy", "--provider", CA,
                      "--external-identifier", "CN", "--filter", OUTSIDER_FILTER,
                      "--admin-url", a.url(""), "--token-file", token_file, "--output", "json")
    assert created.returncode == 0, created.stderr
    pool_id = json.loads(created.stdout)["id"]
    try:
        for r in setup.replicas:
            wait_until(lambda r=r: admitted(r, setup.bootstrap_port, outsider), 5, r.name)
        attempts = [raw_tls_attempt("127.0.0.1", setup.bootstrap_port, outsider)
                    for _ in range(6)]
        assert all(x.kafka_ok for x in attempts), attempts
        listed = run_cli("pools", "list", "--provider", CA, "--admin-url",
                         setup.replicas[2].url(""), "--output", "json")
        assert listed.returncode == 0, listed.stderr
        assert pool_id in {p["id"] for p in json.loads(listed.stdout)}, listed.stdout
    finally:
        delete_pool(a, pool_id)


def open_connection(host: str, port: int, tls) -> socket.socket:
    sock = socket.create_connection((host, port), timeout=10)
    conn = ssl_context(tls).wrap_socket(sock, server_hostname="localhost")
    conn.sendall(api_versions_v0_request(1))
    size = int.from_bytes(recv_exact(conn, 4), "big")
    assert int.from_bytes(recv_exact(conn, size)[:4], "big") == 1
    return conn


def test_a_pool_deleted_through_c_closes_the_live_connection_on_a(setup, client_tls):
    outsider = client_tls("outsider")
    a, _, c = setup.replicas
    create_pool(c, "pool-live")
    wait_until(lambda: admitted(a, setup.bootstrap_port, outsider), 5, "pool-live on A")
    conn = open_connection(a.ip, setup.bootstrap_port, outsider)
    try:
        assert not is_closed_by_peer(conn, timeout=0.5), "closed before the pool was deleted"
        delete_pool(c, "pool-live")
        assert wait_until(lambda: is_closed_by_peer(conn, timeout=0.2), 5,
                          "A closes the live connection") < ENFORCEMENT_BOUND_S
    finally:
        conn.close()


def test_two_replicas_updating_one_pool_at_once_agree_on_all_three(setup):
    a, b, c = setup.replicas
    create_pool(a, "pool-race", 'CN == "race-0"')
    for round_ in range(5):
        results = {}

        def patch(replica, name):
            results[name] = replica.request(
                "PATCH", f"/iam/v2/certificate-authorities/{CA}/identity-pools/pool-race",
                {"display_name": f"{name}-{round_}", "filter": f'CN == "{name}-{round_}"'})

        threads = [threading.Thread(target=patch, args=(r, n)) for r, n in ((a, "a"), (b, "b"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(s == 200 for s, _ in results.values()), results
        # Each replica answered once it applied its own write; the later one in the topic wins
        # everywhere.
        def views():
            return [(r.pools()["pool-race"]["display_name"],
                     r.pools()["pool-race"]["filter"]) for r in setup.replicas]

        wait_until(lambda: len(set(views())) == 1, 5, f"one state on all three: {views()}")
        name, filter_ = views()[0]
        assert name in (f"a-{round_}", f"b-{round_}"), name
        assert filter_ == f'CN == "{name}"', (name, filter_)
    delete_pool(c, "pool-race")


def test_an_unreadable_topic_leaves_replicas_serving_and_degraded(setup, client_tls):
    outsider = client_tls("outsider")
    a, b, _ = setup.replicas
    create_pool(a, "pool-kept")
    wait_until(lambda: admitted(b, setup.bootstrap_port, outsider), 5, "pool-kept on B")
    setup.kafka.acls("--remove", "--force", *store_acl_args())
    try:
        def degraded():
            status, body = b.readyz()
            return status == 200 and body["status"] == "degraded"

        wait_until(degraded, 30, "B reports degraded")
        status, body = b.readyz()
        assert body["degraded"][0]["check"] == "pool_store", body
        assert "cannot be read" in body["degraded"][0]["reason"], body
        assert metric(b.metrics(), "kafka_mtls_proxy_pool_store_up") == 0
        # The last applied state is still enforced.
        assert admitted(b, setup.bootstrap_port, outsider)
        # A write cannot be made now: a clear 5xx, nothing changes.
        status, body = a.request("POST", f"/iam/v2/certificate-authorities/{CA}/identity-pools",
                                 {"id": "pool-while-down", "display_name": "x",
                                  "external_identifier": "CN", "filter": "true"})
        assert status in (503, 504), (status, body)
    finally:
        setup.kafka.acls("--add", *store_acl_args())
    for r in setup.replicas:
        r.wait_ready(timeout=30)
    assert "pool-while-down" not in a.pools()
    delete_pool(a, "pool-kept")


def test_a_ca_created_on_one_replica_carries_its_chain_and_its_delete_takes_its_pools(
        setup, pki, client_tls):
    """The chain travels as PEM text in the record: the other replicas have no such file."""
    rogue = client_tls("rogue")  # issued by rogue-ca, which no replica trusts yet
    a, b, c = setup.replicas
    assert not admitted(c, setup.bootstrap_port, rogue)
    status, body = a.request("POST", "/iam/v2/certificate-authorities", {
        "id": "ca-rogue", "display_name": "Rogue CA",
        "certificate_chain": (pki / "rogue-ca.pem").read_text()})
    assert status == 201, body
    status, body = a.request("POST", "/iam/v2/certificate-authorities/ca-rogue/identity-pools",
                             {"id": "pool-rogue", "display_name": "rogue",
                              "external_identifier": "CN", "filter": "true"})
    assert status == 201, body
    wait_until(lambda: admitted(c, setup.bootstrap_port, rogue), 5, "rogue admitted on C")
    status, body = c.request("GET", "/iam/v2/certificate-authorities/ca-rogue")
    assert status == 200 and len(body["fingerprints"]) == 1, body
    status, body = b.request("DELETE", "/iam/v2/certificate-authorities/ca-rogue")
    assert status == 204, body
    for r in setup.replicas:
        wait_until(lambda r=r: not admitted(r, setup.bootstrap_port, rogue), 5, r.name)
        status, _ = r.request("GET", "/iam/v2/certificate-authorities/ca-rogue/identity-pools")
        assert status == 404, r.name
    # Its pool went with it: a CA of the same id comes back without it.
    status, body = b.request("POST", "/iam/v2/certificate-authorities", {
        "id": "ca-rogue", "display_name": "Rogue CA again",
        "certificate_chain": (pki / "rogue-ca.pem").read_text()})
    assert status == 201, body
    wait_until(lambda: c.request("GET", "/iam/v2/certificate-authorities/ca-rogue")[0] == 200,
               5, "ca-rogue again on C")
    status, body = c.request("GET", "/iam/v2/certificate-authorities/ca-rogue/identity-pools")
    assert status == 200 and body["data"] == [], body
    assert b.request("DELETE", "/iam/v2/certificate-authorities/ca-rogue")[0] == 204


def test_records_that_do_not_validate_are_skipped_everywhere_and_the_tail_goes_on(setup):
    """Records written around the API (here by the cluster's PLAINTEXT user, which this test
    cluster lets write every topic) are validated like any write."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=setup.kafka.bootstrap("PLAINTEXT"), acks="all")
    before = [metric(r.metrics(), "kafka_mtls_proxy_pool_store_records_rejected_total")
              for r in setup.replicas]
    bad_filter = {"id": "pool-bad", "display_name": "bad", "external_identifier": "CN",
                  "filter": "CN == ("}
    producer.send(TOPIC, key=f"pool/{CA}/pool-bad".encode(), value=json.dumps(bad_filter).encode())
    producer.send(TOPIC, key=f"pool/{CA}/pool-json".encode(), value=b"{not json")
    producer.send(TOPIC, key=b"user/someone", value=b"{}")
    producer.flush(timeout=10)
    producer.close()
    for r, was in zip(setup.replicas, before):
        wait_until(lambda r=r, was=was: metric(
            r.metrics(), "kafka_mtls_proxy_pool_store_records_rejected_total") >= was + 3,
            5, f"{r.name} counts three rejected records")
        text = r.metrics()
        for reason in ("invalid", "document", "key"):
            assert metric(text, "kafka_mtls_proxy_pool_store_records_rejected_total",
                          reason=reason) >= 1, (r.name, reason)
        assert not {"pool-bad", "pool-json"} & set(r.pools()), r.name
        assert "pool store record skipped" in r.process.log_tail(200)
    # The tail goes on: a valid write after them applies on every replica.
    create_pool(setup.replicas[1], "pool-after-bad", 'CN == "nobody-2"')
    for r in setup.replicas:
        wait_until(lambda r=r: "pool-after-bad" in r.pools(), 5, r.name)
    delete_pool(setup.replicas[1], "pool-after-bad")


def test_a_replica_restarted_with_an_empty_disk_while_a_broker_is_down_gets_every_pool(
        setup, client_tls):
    outsider = client_tls("outsider")
    a, b, c = setup.replicas
    create_pool(a, "pool-durable")
    expected = set(a.pools())
    wait_until(lambda: set(c.pools()) == expected, 5, "C has every pool")
    # The broker that leads the store's partition: the tails and writers must move on.
    described = setup.kafka.tool("kafka-topics.sh", "--describe", "--topic", TOPIC).stdout
    leader = int(re.search(r"Partition: 0\s+Leader: (\d+)", described).group(1))
    node = setup.kafka.node(leader)
    setup.kafka.stop_node(node)
    try:
        c.stop()
        shutil.rmtree(c.workdir / "pool-store")
        c.start()
        c.wait_ready(timeout=60)
        assert set(c.pools()) == expected
        assert admitted(c, setup.bootstrap_port, outsider)
        # With one broker of three down (min.insync.replicas 2), writes still apply everywhere.
        create_pool(b, "pool-during-outage", 'CN == "nobody-else"')
        for r in setup.replicas:
            wait_until(lambda r=r: "pool-during-outage" in r.pools(), 5, r.name)
        delete_pool(b, "pool-during-outage")
    finally:
        setup.kafka.start_node(node)
    setup.kafka.wait_ready(nodes=[node.node_id])
    delete_pool(a, "pool-durable")
    for r in setup.replicas:
        wait_until(lambda r=r: not admitted(r, setup.bootstrap_port, outsider), 5, r.name)
