"""How often a client reconnects to a cluster that is down: directly, and through the proxy.

A client facing a down broker must back off (`reconnect.backoff.ms` doubling up to
`reconnect.backoff.max.ms`); through the proxy it must not reconnect more often than it does
directly. Counts, not timings:

- librdkafka's connection attempts: one `Connecting to …` line of its `broker` debug log per
  attempt, whatever the attempt's outcome.
- the proxy counts the connections it accepted: `kafka_mtls_proxy_connections_total` on its
  admin port.

Used by `test_upstream_down.py` and by `scripts/measure-reconnects`.
"""

from __future__ import annotations

import logging
import time
import urllib.request
from pathlib import Path

from harness import ClientTLS, Process, broker_port_base, free_port, KAFKA_NODE_ID, metric


def closed_port() -> int:
    """A local port nothing listens on: a connect there is refused, as to a stopped broker."""
    return free_port()


def librdkafka_connects(bootstrap: str, tls: ClientTLS | None, seconds: float) -> dict:
    """A librdkafka producer with one message to deliver, against `bootstrap` for `seconds`:
    how many TCP connection attempts it made, counted from its own `broker` debug log (one
    `Connecting to …` line per attempt, whatever the attempt's outcome)."""
    from confluent_kafka import Producer

    attempts: list[float] = []

    class Count(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            if "Connecting to " in record.getMessage():
                attempts.append(time.monotonic())

    logger = logging.getLogger(f"librdkafka-connects-{time.monotonic_ns()}")
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    logger.addHandler(Count())
    cfg = {
        "bootstrap.servers": bootstrap,
        "client.id": "reconnect-count",
        "debug": "broker",
        "logger": logger,
        "error_cb": lambda _err: None,
        "message.timeout.ms": int(seconds * 1000) + 60_000,
    }
    if tls is not None:
        cfg.update({"security.protocol": "SSL", "ssl.ca.location": str(tls.cafile),
                    "ssl.certificate.location": str(tls.certfile),
                    "ssl.key.location": str(tls.keyfile)})
    producer = Producer(cfg)
    started = time.monotonic()
    producer.produce("reconnect-count", b"x")
    while time.monotonic() < started + seconds:
        producer.poll(0.1)
    in_window = [t for t in attempts if t < started + seconds]
    del producer
    return {"connects": len(in_window), "seconds": seconds}


def proxy_metrics(admin: str) -> str:
    with urllib.request.urlopen(f"{admin}/metrics", timeout=5) as r:
        return r.read().decode()


class DownProxy:
    """The proxy in front of a cluster that is down (its bootstrap server a closed port)."""

    def __init__(self, proxy_bin: Path, pki: Path, workdir: Path, health_yaml: str = ""):
        from conftest import proxy_config

        self.port, self.admin_port = free_port(), free_port()
        upstream = f"127.0.0.1:{closed_port()}"
        config = workdir / "proxy.yaml"
        config.write_text(
            proxy_config(bootstrap_port=self.port, first_port=broker_port_base(KAFKA_NODE_ID),
                         pki=pki, upstream_bootstrap=upstream, audit_path=workdir / "audit.log",
                         upstream_yaml=health_yaml)
            + f"admin:\n  listen: 127.0.0.1:{self.admin_port}\n")
        self.log = workdir / "proxy.log"
        self.proc = Process("proxy-down", [proxy_bin, "run", "--config", config], self.log,
                            cwd=workdir, env={"NO_COLOR": "1", "RUST_LOG": None})
        self.proc.wait_for_port("127.0.0.1", self.admin_port, timeout=30)
        self.admin = f"http://127.0.0.1:{self.admin_port}"
        self.bootstrap = f"localhost:{self.port}"

    def accepted(self) -> float:
        return metric(proxy_metrics(self.admin), "kafka_mtls_proxy_connections_total")

    def refused_upstream_down(self) -> float:
        return metric(proxy_metrics(self.admin), "kafka_mtls_proxy_connections_refused_total",
                      reason="upstream_down")

    def stop(self) -> None:
        self.proc.stop()
