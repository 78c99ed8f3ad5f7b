"""A real Apache Kafka cluster on one machine: KRaft, 1 or 3 nodes, loopback listeners.

Each node runs broker and controller in one JVM (combined mode) and has the listeners a
production cluster behind the proxy would have:

| listener       | protocol                       | who connects, as which principal             |
| -------------- | ------------------------------ | -------------------------------------------- |
| PLAINTEXT      | PLAINTEXT                      | no identity: `User:ANONYMOUS`                |
| SASL_PLAINTEXT | SCRAM-SHA-512, OAUTHBEARER     | the SCRAM user, or the token's `sub`         |
| SASL_SSL       | the same over TLS, client cert | the SASL principal (TLS proves the proxy)    |
| SSL            | TLS, client certificate        | the certificate's CN (`User:kafka-mtls-proxy`)|
| REAUTH         | SASL_PLAINTEXT, short sessions | as SASL_PLAINTEXT; KIP-368 re-authentication |
| INTERNAL       | SASL_PLAINTEXT, PLAIN          | inter-broker (`User:broker`), tools (`User:admin`) |
| CONTROLLER     | SASL_PLAINTEXT, PLAIN          | KRaft (`User:broker`)                        |

`StandardAuthorizer` is on; `super.users` are the cluster's own identity (`broker`) and the
administrator the tools use (`admin`, through `admin.properties`) only. OAUTHBEARER is offered
when a JWKS URL is given (the proxy's `/.well-known/jwks.json`): Kafka's own
`OAuthBearerValidatorCallbackHandler` validates tokens against it, with the expected issuer and
audience, and the JVM's `org.apache.kafka.sasl.oauthbearer.allowed.urls` naming it (Kafka 4).
REAUTH exists when a session lifetime is given (`connections.max.reauth.ms`).

The PLAINTEXT listener stands for the loopback listener a sidecar proxy uses in `mode: none`:
unless told otherwise, `User:ANONYMOUS` is granted every operation by ACLs (not by
`super.users`), so the authorizer still decides for every other principal.

Used by `scripts/kafka-cluster` (the command line) and by the e2e suite (as a library). Needs
only Python's standard library, Java and the jars of `scripts/kafka-fetch`.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import signal
import socket
import struct
import subprocess
import time
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / "kafka" / "bin"

# Listener order fixes the port offsets of `port_base` (PLAINTEXT first: 19092 by default).
CLIENT_LISTENERS = ("PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL", "REAUTH")
ALL_LISTENERS = CLIENT_LISTENERS + ("INTERNAL", "CONTROLLER")
PROTOCOL = {"PLAINTEXT": "PLAINTEXT", "SASL_PLAINTEXT": "SASL_PLAINTEXT", "SASL_SSL": "SASL_SSL",
            "SSL": "SSL", "REAUTH": "SASL_PLAINTEXT", "INTERNAL": "SASL_PLAINTEXT",
            "CONTROLLER": "SASL_PLAINTEXT"}
# Ports of node N (1-based) with a fixed base: base + 100 * (N - 1) + offset.
NODE_PORT_STRIDE = 100

ADMIN_USER, ADMIN_PASSWORD = "admin", "admin-secret"
BROKER_USER, BROKER_PASSWORD = "broker", "broker-secret"
PROXY_CERT_PRINCIPAL = "kafka-mtls-proxy"  # the CN of pki's proxy-upstream-client.pem

SCRAM_LOGIN = "org.apache.kafka.common.security.scram.ScramLoginModule required;"
OAUTH_LOGIN = "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;"
OAUTH_VALIDATOR = ("org.apache.kafka.common.security.oauthbearer."
                   "OAuthBearerValidatorCallbackHandler")
PLAIN_MODULE = "org.apache.kafka.common.security.plain.PlainLoginModule"


class ClusterError(Exception):
    """A cluster that cannot be set up or did not come up; the message says why."""


@dataclasses.dataclass
class OAuthSettings:
    jwks_url: str
    issuer: str
    audience: str
    # `sasl.oauthbearer.jwks.endpoint.refresh.ms` (Kafka: 1 h). Kafka 4.4 refuses a token whose
    # kid it has not fetched yet (and refreshes then), so the proxy's `publish_ahead_ms` must
    # exceed this; tests that rotate keys in seconds shorten it.
    jwks_refresh_ms: int | None = None


@dataclasses.dataclass
class Node:
    node_id: int
    ports: dict[str, int]
    dir: Path
    proc: subprocess.Popen | None = None
    # The address the node binds and advertises, and the network namespace it runs in (None:
    # the host's); the fault tests put one node behind a veth pair they can cut.
    host: str = "127.0.0.1"
    netns: str | None = None

    @property
    def name(self) -> str:
        return f"kafka-{self.node_id}"

    @property
    def log_path(self) -> Path:
        return self.dir / "server.log"

    @property
    def properties_path(self) -> Path:
        return self.dir / "server.properties"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return f"<{self.log_path} does not exist>"
        return "\n".join(text.splitlines()[-lines:])

    def diagnosis(self, lines: int = 20) -> str:
        """Why a node failed: its first ERROR lines (a broker that stops logs its cause early,
        then a page of orderly shutdown), then the tail of its log."""
        try:
            text = self.log_path.read_text(errors="replace").splitlines()
        except FileNotFoundError:
            return f"<{self.log_path} does not exist>"
        errors = [line[:600] for line in text if "] ERROR " in line or "] FATAL " in line][:5]
        first = ("first errors:\n" + "\n".join(errors) + "\n") if errors else ""
        return f"{first}last lines of {self.log_path}:\n" + "\n".join(text[-lines:])


def free_ports(count: int) -> list[int]:
    """`count` distinct free ports: all held open while they are picked, since a port closed
    again may be handed out twice (and Kafka refuses two listeners on one port)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sockets.append(s)
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
            return False
        except OSError:
            return True


def random_cluster_id() -> str:
    """A KRaft cluster id: 16 random bytes, URL-safe base64 without padding (Kafka's Uuid).
    Never one that starts with `-`: kafka-storage.sh would read it as an option (one id in 64)."""
    while True:
        cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


class Cluster:
    """Apache Kafka nodes under `workdir`, from configuration to stop.

    `port_base=None` picks free ports (tests); a number fixes them (the quickstart: 19092 is the
    first node's PLAINTEXT listener). `hosts` (node id → address, default 127.0.0.1) and `netns`
    (node id → network namespace to run it in) place nodes elsewhere on this machine.
    """

    def __init__(self, workdir: Path, *, brokers: int = 1, pki: Path,
                 port_base: int | None = None, oauth: OAuthSettings | None = None,
                 reauth_ms: int | None = None, anonymous_acls: bool = True,
                 advertise: dict[str, str] | None = None, heap: str = "-Xms384m -Xmx384m",
                 hosts: dict[int, str] | None = None, netns: dict[int, str] | None = None):
        if brokers not in (1, 3):
            raise ClusterError(f"brokers: 1 or 3, not {brokers}")
        self.workdir = Path(workdir).resolve()
        self.pki = Path(pki).resolve()
        self.oauth = oauth
        self.reauth_ms = reauth_ms
        self.anonymous_acls = anonymous_acls
        self.heap = heap
        # listener → "host:port" clients are told instead of the bound address (one node only:
        # a TCP load balancer or TLS terminator in front of it).
        self.advertise = dict(advertise or {})
        if self.advertise and brokers != 1:
            raise ClusterError("advertise: only for a one-node cluster")
        self.cluster_id = random_cluster_id()
        free = iter(free_ports(brokers * len(ALL_LISTENERS)) if port_base is None else ())
        hosts, netns = hosts or {}, netns or {}
        self.nodes = [Node(n, self._ports(n, port_base, free), self.workdir / f"node-{n}",
                           host=hosts.get(n, "127.0.0.1"), netns=netns.get(n))
                      for n in range(1, brokers + 1)]

    # ----------------------------------------------------------------------------------------
    # Addresses
    # ----------------------------------------------------------------------------------------

    @staticmethod
    def _ports(node_id: int, base: int | None, free) -> dict[str, int]:
        if base is None:
            return {name: next(free) for name in ALL_LISTENERS}
        first = base + NODE_PORT_STRIDE * (node_id - 1)
        return {name: first + i for i, name in enumerate(ALL_LISTENERS)}

    def listeners(self) -> tuple[str, ...]:
        """The client listeners this cluster offers."""
        return tuple(name for name in CLIENT_LISTENERS
                     if name != "REAUTH" or self.reauth_ms)

    def bootstrap(self, listener: str = "PLAINTEXT", nodes=None) -> str:
        """`host:port,…` of `listener` on every node (or those in `nodes`)."""
        chosen = [n for n in self.nodes if nodes is None or n.node_id in nodes]
        return ",".join(f"{n.host}:{n.ports[listener]}" for n in chosen)

    @property
    def admin_properties(self) -> Path:
        """The `--command-config` of the cluster's administrator (a super user)."""
        return self.workdir / "admin.properties"

    def node(self, node_id: int) -> Node:
        return next(n for n in self.nodes if n.node_id == node_id)

    # ----------------------------------------------------------------------------------------
    # Configuration
    # ----------------------------------------------------------------------------------------

    def _plain_jaas(self, *, with_admin: bool) -> str:
        users = f'user_{BROKER_USER}="{BROKER_PASSWORD}"'
        if with_admin:
            users += f' user_{ADMIN_USER}="{ADMIN_PASSWORD}"'
        return (f'{PLAIN_MODULE} required username="{BROKER_USER}" '
                f'password="{BROKER_PASSWORD}" {users};')

    def _keystore(self) -> Path:
        """The brokers' PEM keystore: pki's broker key followed by its chain."""
        path = self.workdir / "broker-keystore.pem"
        path.write_text((self.pki / "broker.key").read_text()
                        + (self.pki / "broker.pem").read_text())
        path.chmod(0o600)
        return path

    def properties(self, node: Node, keystore: Path) -> dict[str, str]:
        count = len(self.nodes)
        listeners = [*self.listeners(), "INTERNAL", "CONTROLLER"]
        sasl_mechanisms = "SCRAM-SHA-512" + (",OAUTHBEARER" if self.oauth else "")
        props = {
            "process.roles": "broker,controller",
            "node.id": str(node.node_id),
            "controller.quorum.voters": ",".join(
                f"{n.node_id}@{n.host}:{n.ports['CONTROLLER']}" for n in self.nodes),
            "listeners": ",".join(f"{l}://{node.host}:{node.ports[l]}" for l in listeners),
            "advertised.listeners": ",".join(
                f"{l}://{self.advertise.get(l, f'{node.host}:{node.ports[l]}')}"
                for l in listeners if l != "CONTROLLER"),
            "listener.security.protocol.map": ",".join(f"{l}:{PROTOCOL[l]}" for l in listeners),
            "inter.broker.listener.name": "INTERNAL",
            "controller.listener.names": "CONTROLLER",
            "sasl.mechanism.inter.broker.protocol": "PLAIN",
            "sasl.mechanism.controller.protocol": "PLAIN",
            "listener.name.internal.sasl.enabled.mechanisms": "PLAIN",
            "listener.name.internal.plain.sasl.jaas.config": self._plain_jaas(with_admin=True),
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "listener.name.controller.plain.sasl.jaas.config": self._plain_jaas(with_admin=False),
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": f"User:{ADMIN_USER};User:{BROKER_USER}",
            "allow.everyone.if.no.acl.found": "false",
            # TLS: the broker certificate of the dev PKI; clients (the proxy) must present a
            # certificate from the server CA, whose only client certificate is the proxy's.
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(keystore),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.pki / "server-ca.pem"),
            "listener.name.ssl.ssl.client.auth": "required",
            "listener.name.sasl_ssl.ssl.client.auth": "required",
            "listener.name.ssl.ssl.principal.mapping.rules": "RULE:^CN=([^,]+)(,.*)?$/$1/,DEFAULT",
            "log.dirs": str(node.dir / "data"),
            "num.partitions": "1",
            "default.replication.factor": str(count),
            "min.insync.replicas": "1",
            "offsets.topic.replication.factor": str(count),
            "offsets.topic.num.partitions": "10",
            "transaction.state.log.replication.factor": str(count),
            "transaction.state.log.min.isr": str(min(2, count)),
            "transaction.state.log.num.partitions": "10",
            "share.coordinator.state.topic.replication.factor": str(count),
            "share.coordinator.state.topic.min.isr": str(min(2, count)),
            # Tests join groups often; a stock broker waits 3 s for more members first.
            "group.initial.rebalance.delay.ms": "0",
            "num.network.threads": "2",
            "num.io.threads": "4",
            "log.segment.bytes": str(64 * 1024 * 1024),
            "auto.create.topics.enable": "true",
        }
        for listener in ("SASL_PLAINTEXT", "SASL_SSL", "REAUTH"):
            if listener not in listeners:
                continue
            prefix = f"listener.name.{listener.lower()}"
            props[f"{prefix}.sasl.enabled.mechanisms"] = sasl_mechanisms
            props[f"{prefix}.scram-sha-512.sasl.jaas.config"] = SCRAM_LOGIN
            if self.oauth:
                props[f"{prefix}.oauthbearer.sasl.jaas.config"] = OAUTH_LOGIN
                props[f"{prefix}.oauthbearer.sasl.server.callback.handler.class"] = \
                    OAUTH_VALIDATOR
            if listener == "REAUTH":
                for mechanism in sasl_mechanisms.split(","):
                    props[f"{prefix}.{mechanism.lower()}.connections.max.reauth.ms"] = \
                        str(self.reauth_ms)
        if self.oauth:
            props["sasl.oauthbearer.jwks.endpoint.url"] = self.oauth.jwks_url
            props["sasl.oauthbearer.expected.issuer"] = self.oauth.issuer
            props["sasl.oauthbearer.expected.audience"] = self.oauth.audience
            if self.oauth.jwks_refresh_ms is not None:
                props["sasl.oauthbearer.jwks.endpoint.refresh.ms"] = str(self.oauth.jwks_refresh_ms)
        return props

    def write_configuration(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        keystore = self._keystore()
        for node in self.nodes:
            node.dir.mkdir(parents=True, exist_ok=True)
            lines = [f"{k}={v}" for k, v in self.properties(node, keystore).items()]
            node.properties_path.write_text("\n".join(lines) + "\n")
        self.admin_properties.write_text(
            "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n"
            f'sasl.jaas.config={PLAIN_MODULE} required username="{ADMIN_USER}" '
            f'password="{ADMIN_PASSWORD}";\n')
        (self.workdir / "cluster.json").write_text(json.dumps(self.describe(), indent=2) + "\n")

    def describe(self) -> dict:
        return {
            "cluster_id": self.cluster_id,
            "brokers": len(self.nodes),
            "bootstrap": {l: self.bootstrap(l) for l in (*self.listeners(), "INTERNAL")},
            "admin_properties": str(self.admin_properties),
            "nodes": [{"node_id": n.node_id, "ports": n.ports, "dir": str(n.dir),
                       "pid": n.proc.pid if n.proc else None} for n in self.nodes],
        }

    # ----------------------------------------------------------------------------------------
    # Processes
    # ----------------------------------------------------------------------------------------

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env["KAFKA_HEAP_OPTS"] = self.heap
        if self.oauth:
            allowed = f"-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls={self.oauth.jwks_url}"
            env["KAFKA_OPTS"] = (env.get("KAFKA_OPTS", "") + " " + allowed).strip()
        return env

    def format(self) -> None:
        for node in self.nodes:
            result = subprocess.run(
                [str(BIN / "kafka-storage.sh"), "format", "--cluster-id", self.cluster_id,
                 "--config", str(node.properties_path), "--ignore-formatted"],
                capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
            if result.returncode != 0:
                raise ClusterError(f"kafka-storage.sh format failed for node {node.node_id} "
                                   f"(exit {result.returncode}):\n{result.stdout}{result.stderr}")

    def check_ports(self) -> None:
        # A node in its own network namespace has its ports to itself.
        taken = [f"{l} of node {n.node_id} on {n.host}:{p}"
                 for n in self.nodes if n.netns is None for l, p in n.ports.items()
                 if (l in self.listeners() or l in ("INTERNAL", "CONTROLLER"))
                 and port_in_use(p, n.host)]
        if taken:
            raise ClusterError("ports already in use (another Kafka or proxy running?): "
                               + "; ".join(taken))

    def check_jwks(self, timeout: float = 5.0) -> None:
        """Kafka's validator fetches the JWKS while the broker starts, and a broker that cannot
        fetch it exits ("Fatal error during broker startup … Connection refused"): say so first."""
        if not self.oauth:
            return
        try:
            with urllib.request.urlopen(self.oauth.jwks_url, timeout=timeout) as answer:
                keys = json.load(answer).get("keys")
        except (OSError, ValueError) as e:
            raise ClusterError(
                f"the JWKS at {self.oauth.jwks_url} cannot be fetched ({e}); Kafka's "
                "OAuthBearerValidatorCallbackHandler fetches it at start and the broker would "
                "refuse to start: start the proxy (its admin server serves the JWKS) first") from e
        if not keys:
            raise ClusterError(f"the JWKS at {self.oauth.jwks_url} has no keys")

    def start_node(self, node: Node, *, detach: bool = False) -> None:
        log = open(node.log_path, "ab")
        # `ip netns exec` execs the script, which execs java: the pid is the broker's.
        netns = ["ip", "netns", "exec", node.netns] if node.netns else []
        node.proc = subprocess.Popen(
            [*netns, str(BIN / "kafka-server-start.sh"), str(node.properties_path)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=self._env(),
            start_new_session=detach)
        log.close()
        (node.dir / "pid").write_text(f"{node.proc.pid}\n")

    def start(self, *, timeout: float = 90.0, detach: bool = False) -> None:
        """Configure, format and start every node; return once all brokers serve clients."""
        self.check_ports()
        self.check_jwks()
        self.write_configuration()
        self.format()
        for node in self.nodes:
            self.start_node(node, detach=detach)
        self.wait_ready(timeout=timeout)
        (self.workdir / "cluster.json").write_text(json.dumps(self.describe(), indent=2) + "\n")
        if self.anonymous_acls:
            self.acls("--add", "--allow-principal", "User:ANONYMOUS", "--operation", "All",
                      "--topic", "*", "--group", "*", "--transactional-id", "*", "--cluster")

    def wait_ready(self, timeout: float = 90.0, nodes=None) -> float:
        """Wait until every node (or those in `nodes`) answers Metadata listing all brokers on
        its PLAINTEXT listener; return the seconds waited. A node that exits or never gets
        there is an error with its log tail."""
        start = time.monotonic()
        deadline = start + timeout
        waiting = [n for n in self.nodes if nodes is None or n.node_id in nodes]
        while waiting:
            node = waiting[0]
            if not node.alive():
                code = node.proc.returncode if node.proc else None
                raise ClusterError(f"Kafka node {node.node_id} exited with {code} while "
                                   f"starting.\n{node.diagnosis()}")
            try:
                if len(metadata_brokers(node.ports["PLAINTEXT"], host=node.host)) \
                        == len(self.nodes):
                    waiting.pop(0)
                    continue
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise ClusterError(f"Kafka node {node.node_id} did not serve Metadata with all "
                                   f"{len(self.nodes)} brokers within {timeout:.0f} s.\n"
                                   f"{node.diagnosis()}")
            time.sleep(0.2)
        return time.monotonic() - start

    def stop_node(self, node: Node, timeout: float = 30.0) -> None:
        if not node.alive():
            return
        node.proc.send_signal(signal.SIGTERM)
        try:
            node.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            node.proc.kill()
            node.proc.wait(timeout=timeout)

    def kill_node(self, node: Node, timeout: float = 30.0) -> None:
        """SIGKILL: the broker gets no chance to shut down (no controlled shutdown, no flush)."""
        if node.alive():
            node.proc.kill()
            node.proc.wait(timeout=timeout)

    def stop(self) -> None:
        for node in reversed(self.nodes):
            self.stop_node(node)

    # ----------------------------------------------------------------------------------------
    # Kafka's own tools, as the administrator
    # ----------------------------------------------------------------------------------------

    def tool(self, script: str, *args: str, check: bool = True, timeout: float = 120.0,
             input: str | None = None) -> subprocess.CompletedProcess:
        """Runs `kafka/bin/<script>` against the INTERNAL listener as the administrator."""
        argv = [str(BIN / script), "--bootstrap-server", self.bootstrap("INTERNAL"),
                "--command-config", str(self.admin_properties), *args]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                                input=input, stdin=None if input is not None else subprocess.DEVNULL)
        if check and result.returncode != 0:
            raise ClusterError(f"{' '.join(argv)} exited {result.returncode}:\n"
                               f"{result.stdout}{result.stderr}")
        return result

    def acls(self, *args: str) -> subprocess.CompletedProcess:
        return self.tool("kafka-acls.sh", *args)

    def add_scram_user(self, user: str, password: str, mechanism: str = "SCRAM-SHA-512"):
        return self.tool("kafka-configs.sh", "--alter", "--add-config",
                         f"{mechanism}=[password={password}]", "--entity-type", "users",
                         "--entity-name", user)


# --------------------------------------------------------------------------------------------
# A Metadata request by hand: readiness needs no client library.
# --------------------------------------------------------------------------------------------


def metadata_brokers(port: int, timeout: float = 2.0,
                     host: str = "127.0.0.1") -> list[tuple[int, str, int]]:
    """The brokers a Metadata v4 request (no topics) on `host`:`port` returns."""
    client_id = b"kafka-cluster-ready"
    body = struct.pack(">hhih", 3, 4, 1, len(client_id)) + client_id
    body += struct.pack(">i?", 0, False)  # topics: empty array; allow_auto_topic_creation
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(struct.pack(">i", len(body)) + body)
        size = struct.unpack(">i", _recv(sock, 4))[0]
        payload = _recv(sock, size)
    off = 4 + 4  # correlation id, throttle_time_ms
    (count,) = struct.unpack_from(">i", payload, off)
    off += 4
    brokers = []
    for _ in range(count):
        node_id, host_len = struct.unpack_from(">ih", payload, off)
        off += 6
        host = payload[off:off + host_len].decode()
        off += host_len
        (port_, rack_len) = struct.unpack_from(">ih", payload, off)
        off += 6 + max(rack_len, 0)
        brokers.append((node_id, host, port_))
    return brokers


def _recv(sock, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        buf += chunk
    return buf
