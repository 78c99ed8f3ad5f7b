"""Advertised addresses apart from bound ones: the proxy behind a port-mapping load balancer (a
Kubernetes Service, a NodePort), telling clients the balancer's ports (`listener.advertised`).

A TCP forwarder here stands for the balancer: clients reach the proxy only through it, so a
client that were told a bound port would fail to connect to it.
"""

from __future__ import annotations

import socket
import threading

import pytest

from clients import LIBRARIES, driver, unique
from conftest import _PROCESSES, proxy_config
from harness import KAFKA_NODE_ID, Process, broker_port_base, free_port


class Forwarder:
    """Relays every connection on `listen_port` to `target_port` (127.0.0.1), both ways."""

    def __init__(self, listen_port: int, target_port: int):
        self.target_port = target_port
        self.server = socket.create_server(("127.0.0.1", listen_port))
        self.accepted = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            self.accepted += 1
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src, dst):
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.server.close()


@pytest.fixture(scope="module")
def behind_a_balancer(proxy_bin, pki, kafka, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("advertised")
    port, first_port = free_port(), broker_port_base(KAFKA_NODE_ID)
    lb_port, lb_first_port = free_port(), broker_port_base(KAFKA_NODE_ID)
    config = workdir / "proxy.yaml"
    text = proxy_config(bootstrap_port=port, first_port=first_port, pki=pki,
                        upstream_bootstrap=kafka.bootstrap(), audit_path=workdir / "audit.log")
    text = text.replace("  advertised_host: localhost\n",
                        f"  advertised_host: localhost\n  advertised:\n"
                        f"    first_port: {lb_first_port}\n", 1)
    config.write_text(text)
    proc = Process("proxy-advertised", [proxy_bin, "run", "--config", config],
                   workdir / "proxy.log", cwd=workdir, env={"NO_COLOR": "1", "RUST_LOG": None})
    _PROCESSES["proxy-advertised"] = proc
    forwarders = [Forwarder(lb_port, port),
                  Forwarder(lb_first_port + KAFKA_NODE_ID, first_port + KAFKA_NODE_ID)]
    try:
        proc.wait_for_port("127.0.0.1", port, timeout=30)
        yield {"bootstrap": f"localhost:{lb_port}", "broker_port": lb_first_port + KAFKA_NODE_ID,
               "bound_port": first_port + KAFKA_NODE_ID, "forwarders": forwarders}
    finally:
        for f in forwarders:
            f.close()
        proc.stop()
        _PROCESSES.pop("proxy-advertised", None)


@pytest.mark.parametrize("library", LIBRARIES)
def test_clients_are_told_the_advertised_ports_and_work_through_them(
        library, kafka, behind_a_balancer, client_tls):
    lb = behind_a_balancer
    client = driver(library, lb["bootstrap"], client_tls("acme-client"))
    view = client.cluster()
    assert view.brokers == [(KAFKA_NODE_ID, "localhost", lb["broker_port"])], view.brokers
    assert all(port != lb["bound_port"] for _, _, port in view.brokers)

    topic = unique("advertised")
    client.create_topic(topic)
    records = [(b"k", b"through the balancer"), (None, b"and back")]
    client.produce(topic, records)
    got = client.consume(topic, len(records))
    assert [(k, v) for _, k, v in got] == records
    # The data went through the balancer's broker port: the one the client was told.
    assert lb["forwarders"][1].accepted >= 1
