"""The shared pool store in `upstream.identity.mode: oauthbearer`, on the three-broker cluster.

Two proxy replicas (127.0.0.1, ports of their own) share one `keys_dir` and so one signing key;
the brokers validate tokens with Kafka's `OAuthBearerValidatorCallbackHandler` (KIP-768) against
replica A's JWKS, so A starts first. Neither replica has a password: each signs in to the store
topic with a token its own issuer signs for the proxy's own subject (`upstream.proxy_login`'s
default, `User:kafka-mtls-proxy`), and the topic's ACLs name only that principal.

* The first replica seeds the empty topic from its file; both serve the seeded pool.
* A pool created through replica A admits a client connecting through replica B.
"""

from __future__ import annotations

import random
import time

import pytest

from conftest import proxy_config, start_cluster, stop_cluster
from harness import free_port, kafka_cluster_module, metric
from test_pool_store import (CA, OUTSIDER_FILTER, SEED_POOLS, TOKEN, TOPIC, Replica, admitted,
                             create_pool, store_sections, wait_until)

cluster = kafka_cluster_module()

BROKERS = 3
ISSUER = "https://kafka-mtls-proxy.store.e2e"
AUDIENCE = "kafka-store-e2e"
PROXY_PRINCIPAL = "User:kafka-mtls-proxy"


def _port_base() -> int:
    """A `port_base` whose listener ports are free on every node, below the ephemeral range."""
    for _ in range(200):
        base = random.randrange(20000, 31000, 100)
        ports = [base + cluster.NODE_PORT_STRIDE * n + i for n in range(BROKERS)
                 for i in range(len(cluster.ALL_LISTENERS))]
        if not any(cluster.port_in_use(p) for p in ports):
            return base
    raise RuntimeError("no free range of ports for the module's cluster")


def replica_config(*, pki, upstream, workdir, keys_dir, token_file) -> tuple[str, int, int]:
    bootstrap_port, admin_port = free_port(), free_port()
    config = proxy_config(
        bootstrap_port=bootstrap_port, first_port=free_port(), pki=pki,
        upstream_bootstrap=upstream, audit_path=workdir / "audit.log", pools_yaml=SEED_POOLS,
        upstream_yaml=f"""
identity:
  mode: oauthbearer
  issuer: {ISSUER}
  audience: {AUDIENCE}
  keys_dir: {keys_dir}
""")
    store = store_sections(admin_port=admin_port, token_file=token_file, workdir=workdir)
    return config + store, bootstrap_port, admin_port


@pytest.fixture(scope="module")
def store(kafka_jars, proxy_bin, pki, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("pool-store-oauth")
    keys_dir = workdir / "keys"
    keys_dir.mkdir(mode=0o700)
    token_file = workdir / "admin.token"
    token_file.write_text(TOKEN + "\n")
    base = _port_base()
    planned = cluster.Cluster(workdir / "kafka", pki=pki, brokers=BROKERS, port_base=base)
    upstream = planned.bootstrap("SASL_PLAINTEXT")
    replicas: list[Replica] = []
    ports: list[int] = []
    kafka = None
    try:
        # The issuer first, its key in keys_dir before B starts: one key, one JWKS.
        for name in ("a", "b"):
            rdir = workdir / f"replica-{name}"
            rdir.mkdir()
            config, port, admin_port = replica_config(pki=pki, upstream=upstream, workdir=rdir,
                                                      keys_dir=keys_dir, token_file=token_file)
            replica = Replica(f"proxy-store-oauth-{name}", "127.0.0.1", rdir, proxy_bin, config)
            replica.start()
            replica.process.wait_for_port("127.0.0.1", admin_port, timeout=30)
            replicas.append(replica)
            ports.append(port)
        jwks_url = replicas[0].url("/.well-known/jwks.json")
        kafka = start_cluster(workdir / "kafka", pki, brokers=BROKERS, port_base=base,
                              oauth=cluster.OAuthSettings(jwks_url, ISSUER, AUDIENCE))
        assert kafka.bootstrap("SASL_PLAINTEXT") == upstream
        kafka.acls("--add", "--allow-principal", PROXY_PRINCIPAL, "--operation", "Create",
                   "--operation", "Describe", "--operation", "Read", "--operation", "Write",
                   "--topic", TOPIC)
        for r in replicas:
            r.wait_ready(timeout=120)
        yield {"kafka": kafka, "replicas": replicas, "ports": ports}
    finally:
        for r in replicas:
            r.stop()
        if kafka is not None:
            stop_cluster(kafka)


def test_the_first_replica_seeds_the_topic_signed_in_with_its_own_token(store):
    for r in store["replicas"]:
        assert set(r.pools()) == {"pool-seed"}, r.name
        text = r.metrics()
        assert metric(text, "kafka_mtls_proxy_pool_store_up") == 1, r.name
    # The topic was created by the proxy's own principal, with the store's settings.
    described = store["kafka"].tool("kafka-topics.sh", "--describe", "--topic", TOPIC)
    assert "cleanup.policy=compact" in described.stdout, described.stdout
    assert "ReplicationFactor: 3" in described.stdout, described.stdout


def test_a_pool_written_on_a_admits_a_client_on_b(store, client_tls):
    outsider = client_tls("outsider")
    a, b = store["replicas"]
    port_b = store["ports"][1]
    assert not admitted(b, port_b, outsider), "outsider admitted before any pool matches it"
    start = time.monotonic()
    create_pool(a, "pool-outsiders", OUTSIDER_FILTER)
    wait_until(lambda: admitted(b, port_b, outsider), 10, "pool-outsiders admits on B")
    print(f"\npool store (oauthbearer), API write on A → admitted on B: "
          f"{(time.monotonic() - start) * 1000:.0f} ms")
    status, body = b.request("GET", f"/iam/v2/certificate-authorities/{CA}/identity-pools")
    assert status == 200 and "pool-outsiders" in {p["id"] for p in body["data"]}, body
