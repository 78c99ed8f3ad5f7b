#!/usr/bin/env python3
"""Soak: hours of connection churn plus produce and consume through kafka-mtls-proxy against a
real Apache Kafka broker, with the proxy's memory and open files sampled all along.

  .venv/bin/python benches/soak.py                     # one hour
  .venv/bin/python benches/soak.py --duration 120      # a two-minute smoke run
  .venv/bin/python benches/soak.py --duration 86400 --churn-workers 4 --csv soak.csv

A benchmark, not a CI test: it starts a one-node Apache Kafka (kafka/cluster.py, the jars from
scripts/kafka-fetch) and the proxy (the release build, or $KAFKA_MTLS_PROXY_BIN), then runs at
once, for --duration seconds:

- a kafka-python producer (acks=1) sending one record every --produce-interval seconds to one
  partition, and a consumer (manual assignment) reading every record back: both hold their
  connections for the whole run, as long-lived clients do;
- --churn-workers threads opening connection after connection: TCP, full mTLS handshake,
  ApiVersions, close — the short-lived clients (`kafka-topics.sh --list`, health checks);
- a sampler writing, every --sample-interval seconds, one CSV line: elapsed seconds, the
  proxy's RSS (VmRSS, KiB) and open file descriptors (/proc/PID/fd), and the traffic so far.

At the end it prints min / max / first / last of RSS and open files (steady growth in `last`
against `first`, under the same load, is what a leak looks like), the traffic counts, and the
CSV's path. Everything it starts is stopped on exit, failure or Ctrl-C. Exit 1 when the proxy
died, a record was not consumed back, or nothing got through.
"""

from __future__ import annotations

import argparse
import csv
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))
import harness  # noqa: E402  (tests/e2e/harness.py: processes, ports, raw TLS attempts)

SAMPLE_FIELDS = ["elapsed_s", "rss_kib", "open_fds", "produced", "consumed", "churned",
                 "churn_failures"]


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=3600, help="seconds of load (default 3600)")
    p.add_argument("--sample-interval", type=float, default=10,
                   help="seconds between samples (default 10)")
    p.add_argument("--churn-workers", type=int, default=2,
                   help="threads opening and closing connections (default 2)")
    p.add_argument("--produce-interval", type=float, default=0.01,
                   help="seconds between produced records (default 0.01)")
    p.add_argument("--csv", type=Path, default=None,
                   help="where the samples go (default: soak-<time>.csv in the working directory)")
    p.add_argument("--keep", action="store_true", help="keep the working directory (logs)")
    args = p.parse_args()
    if args.duration <= 0 or args.sample_interval <= 0 or args.churn_workers < 0:
        p.error("--duration and --sample-interval must be positive, --churn-workers ≥ 0")
    return args


def proxy_binary() -> Path:
    env = os.environ.get("KAFKA_MTLS_PROXY_BIN")
    if env:
        return Path(env)
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return target / "release" / "kafka-mtls-proxy"


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def open_fds(pid: int) -> int | None:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return None


class Counters:
    """Traffic so far; each field is written by one thread only."""

    def __init__(self):
        self.produced = 0
        self.consumed = 0
        self.churned = 0
        self.churn_failures = 0
        self.first_churn_error: BaseException | None = None
        self.problems: list[str] = []


def produce_and_consume(bootstrap: str, tls: harness.ClientTLS, topic: str, stop: threading.Event,
                        interval: float, c: Counters) -> None:
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    common = dict(bootstrap_servers=bootstrap, security_protocol="SSL",
                  ssl_cafile=str(tls.cafile), ssl_certfile=str(tls.certfile),
                  ssl_keyfile=str(tls.keyfile))
    producer = KafkaProducer(acks=1, linger_ms=0, **common)
    consumer = KafkaConsumer(group_id=None, enable_auto_commit=False,
                             auto_offset_reset="earliest", **common)
    consumer.assign([TopicPartition(topic, 0)])
    try:
        while not stop.is_set():
            producer.send(topic, value=b"soak-%d" % c.produced, partition=0).get(timeout=30)
            c.produced += 1
            for batch in consumer.poll(timeout_ms=0).values():
                c.consumed += len(batch)
            stop.wait(interval)
        # Read back what is still on its way (30 s at most).
        end = time.monotonic() + 30
        while c.consumed < c.produced and time.monotonic() < end:
            for batch in consumer.poll(timeout_ms=500).values():
                c.consumed += len(batch)
    except Exception as e:  # noqa: BLE001 — reported, and the run fails
        c.problems.append(f"producer/consumer: {e!r}")
    finally:
        producer.close(timeout=5)
        consumer.close()


def churn(port: int, tls: harness.ClientTLS, stop: threading.Event, c: Counters,
          lock: threading.Lock) -> None:
    while not stop.is_set():
        attempt = harness.raw_tls_attempt("127.0.0.1", port, tls)
        with lock:
            if attempt.kafka_ok:
                c.churned += 1
            else:
                c.churn_failures += 1
                if c.first_churn_error is None:
                    c.first_churn_error = attempt.error
        if not attempt.kafka_ok:
            stop.wait(0.1)  # a broken path must not spin


def summary(name: str, values: list[int]) -> str:
    if not values:
        return f"{name}: no sample"
    return (f"{name}: min {min(values)}  max {max(values)}  first {values[0]}  "
            f"last {values[-1]}  (last − first {values[-1] - values[0]:+d})")


def main() -> int:
    args = parse_args()
    binary = proxy_binary()
    if not binary.is_file():
        print(f"soak: no proxy binary at {binary}: `cargo build --release` or set "
              "KAFKA_MTLS_PROXY_BIN", file=sys.stderr)
        return 2
    fetched = subprocess.run([str(ROOT / "scripts" / "kafka-fetch")], capture_output=True,
                             text=True, timeout=900, stdin=subprocess.DEVNULL)
    if fetched.returncode != 0:
        print(f"soak: scripts/kafka-fetch failed:\n{fetched.stderr}", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="kafka-mtls-proxy-soak-"))
    csv_path = args.csv or Path.cwd() / time.strftime("soak-%Y%m%d-%H%M%S.csv")
    pki = work / "pki"
    subprocess.run([str(binary), "pki", "--out", str(pki)], check=True, capture_output=True)
    tls = harness.ClientTLS(pki / "server-ca.pem", pki / "acme-client.pem", pki / "acme-client.key")

    cluster = harness.kafka_cluster_module().Cluster(work / "kafka", pki=pki, brokers=1)
    proxy = None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        print("soak: starting Apache Kafka…", file=sys.stderr)
        cluster.start()
        port = harness.free_port()
        config = work / "proxy.yaml"
        config.write_text(f"""\
listener:
  bootstrap: 127.0.0.1:{port}
  advertised_host: localhost
  broker_ports:
    first_port: {harness.broker_port_base(harness.KAFKA_NODE_ID)}
tls:
  certificate_chain: {pki / "server.pem"}
  private_key: {pki / "server.key"}
upstream:
  bootstrap_servers: [{cluster.bootstrap("PLAINTEXT")}]
audit:
  path: {work / "audit.log"}
log:
  level: warn
certificate_authorities:
  - id: ca-acme
    display_name: Acme Internal Client CA
    certificate_chain: {pki / "acme-internal-client-ca.pem"}
    identity_pools:
      - id: pool-payments
        display_name: Payments
        external_identifier: CN
        filter: 'CN == "acme-client" && OU == "payments"'
""")
        proxy = harness.Process("proxy", [binary, "run", "--config", config], work / "proxy.log",
                                cwd=work, env={"NO_COLOR": "1", "RUST_LOG": None})
        proxy.wait_for_port("127.0.0.1", port, timeout=30)
        topic = f"soak-{int(time.time())}"
        cluster.tool("kafka-topics.sh", "--create", "--topic", topic, "--partitions", "1")

        c = Counters()
        lock = threading.Lock()
        threads = [threading.Thread(target=produce_and_consume, daemon=True,
                                    args=(f"localhost:{port}", tls, topic, stop,
                                          args.produce_interval, c))]
        threads += [threading.Thread(target=churn, args=(port, tls, stop, c, lock), daemon=True)
                    for _ in range(args.churn_workers)]
        for t in threads:
            t.start()
        print(f"soak: {args.duration:.0f} s of load; samples every {args.sample_interval:g} s "
              f"→ {csv_path}", file=sys.stderr)
        rss, fds = [], []
        began = time.monotonic()
        with open(csv_path, "w", newline="") as f:
            out = csv.writer(f)
            out.writerow(SAMPLE_FIELDS)
            next_sample = began
            while True:
                now = time.monotonic()
                if now >= next_sample:
                    r, d = rss_kib(proxy.pid), open_fds(proxy.pid)
                    if r is None or not proxy.alive():
                        c.problems.append("the proxy exited:\n" + proxy.log_tail(20))
                        break
                    rss.append(r)
                    fds.append(d or 0)
                    with lock:
                        row = [round(now - began, 1), r, d, c.produced, c.consumed, c.churned,
                               c.churn_failures]
                    out.writerow(row)
                    f.flush()
                    next_sample += args.sample_interval
                if now - began >= args.duration or stop.is_set():
                    break
                stop.wait(min(1.0, max(0.0, next_sample - now)))
        stop.set()
        for t in threads:
            t.join(timeout=60)

        print(f"\nsoak: {time.monotonic() - began:.0f} s, {len(rss)} samples in {csv_path}")
        print(summary("proxy RSS (KiB)", rss))
        print(summary("proxy open fds ", fds))
        print(f"records produced {c.produced}, consumed back {c.consumed}; connections churned "
              f"{c.churned}, failed {c.churn_failures}")
        if c.first_churn_error is not None:
            print(f"first churn failure: {c.first_churn_error!r}")
        if c.consumed < c.produced:
            c.problems.append(f"{c.produced - c.consumed} records not consumed back")
        if c.produced == 0 or (args.churn_workers and c.churned == 0):
            c.problems.append("no traffic got through")
        for p in c.problems:
            print(f"problem: {p}")
        return 1 if c.problems else 0
    except KeyboardInterrupt:
        return 130
    finally:
        stop.set()
        if proxy is not None:
            proxy.stop()
        cluster.stop()
        if args.keep:
            print(f"soak: working directory kept: {work}", file=sys.stderr)
        else:
            import shutil
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
