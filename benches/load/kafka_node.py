"""One Apache Kafka node for the load benchmark (benches/load.rs, `--broker kafka`).

  python3 benches/load/kafka_node.py WORKDIR PKI PORT_BASE [ADVERTISED_HOST:PORT]

Starts a one-node cluster with kafka/cluster.py — the settings of `scripts/kafka-cluster start
--brokers 1 --dir WORKDIR --pki PKI --port-base PORT_BASE [--advertise PLAINTEXT=…]` — but as
this process's child, in this process group (not in a session of its own, as `kafka-cluster`
starts it): whoever kills the benchmark's group kills the JVM too. Once the broker serves
clients, WORKDIR/ready.json says its pid and ports. The node is killed (its storage is thrown
away with the benchmark's working directory) when stdin reaches end of file — the benchmark
closed it, or died — on SIGTERM/SIGINT, and if this process fails; this process exits when the
JVM does.
"""

import json
import signal
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "kafka"))
import cluster  # noqa: E402


def main() -> int:
    if len(sys.argv) not in (4, 5):
        print(__doc__, file=sys.stderr)
        return 2
    workdir, pki, port_base = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    advertise = {"PLAINTEXT": sys.argv[4]} if len(sys.argv) == 5 else {}
    node_cluster = cluster.Cluster(workdir, brokers=1, pki=pki, port_base=port_base,
                                   advertise=advertise)
    node = node_cluster.nodes[0]

    # Only signals the JVM: the main thread reaps it. (Waiting here could deadlock: a signal
    # handler runs in the main thread, which may be inside Popen.wait() holding its lock.)
    def kill():
        if node.proc is not None and node.proc.returncode is None:
            node.proc.kill()

    def on_signal(signum, _frame):
        kill()
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    done = threading.Event()

    # End of stdin: the benchmark is done with this broker (or gone).
    def watch_stdin():
        sys.stdin.buffer.read()
        done.set()
        kill()

    threading.Thread(target=watch_stdin, daemon=True).start()
    try:
        node_cluster.start(timeout=180)
        if done.is_set():  # the benchmark went away while the node was starting
            return 1
        ready = {"pid": node.proc.pid, "node_id": node.node_id, "ports": node.ports,
                 "data": str(node.dir / "data"), "log": str(node.log_path)}
        tmp = workdir / "ready.json.tmp"
        tmp.write_text(json.dumps(ready) + "\n")
        tmp.replace(workdir / "ready.json")
        print(f"Kafka node {node.node_id} ready: pid {node.proc.pid}, PLAINTEXT "
              f"127.0.0.1:{node.ports['PLAINTEXT']}", flush=True)
        code = node.proc.wait()
        print(f"Kafka node {node.node_id} exited with {code}", flush=True)
        return 0 if code in (0, -signal.SIGKILL) else 1
    except cluster.ClusterError as e:
        print(f"kafka_node: {e}", file=sys.stderr, flush=True)
        return 1
    finally:
        kill()
        if node.proc is not None:
            node.proc.wait()


if __name__ == "__main__":
    sys.exit(main())
