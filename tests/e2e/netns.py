"""A network namespace joined to the host by a veth pair, made by the test and always removed.

One Kafka node runs inside the namespace; the host's end of the pair carries the address the
other nodes bind, so every byte to or from that node (the proxy's and the other brokers') crosses
the pair, and the test can cut it. Private addresses (10.213.0.0/16) on this machine only.

A cut takes the namespace's end of the pair down: the host's end loses its carrier and drops
whatever is sent to it, silently (no RST, no ICMP: the neighbour entries are static), which is
what a pulled cable or a crashed host looks like to the proxy.
"""

from __future__ import annotations

import contextlib
import dataclasses
import ipaddress
import json
import os
import random
import shutil
import subprocess

import pytest


class NetnsError(Exception):
    """An `ip` command failed; the message has its stderr."""


def ip(*args: str, netns: str | None = None) -> str:
    argv = ["ip", *(["-n", netns] if netns else []), *args]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=10,
                            stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise NetnsError(f"`{' '.join(argv)}` exited {result.returncode}: {result.stderr.strip()}")
    return result.stdout


@dataclasses.dataclass(frozen=True)
class VethLink:
    netns: str
    host_if: str
    ns_if: str
    host_addr: str  # on the host's end: the address the host-side nodes bind
    ns_addr: str  # inside the namespace: the address its node binds

    def cut(self) -> None:
        ip("link", "set", self.ns_if, "down", netns=self.netns)

    def restore(self) -> None:
        ip("link", "set", self.ns_if, "up", netns=self.netns)

    def forget_connections(self) -> None:
        """Destroy every TCP socket inside the namespace without a word reaching the host (the
        link is cut first): the namespace's side of each connection vanishes, as in a crashed
        host, and the host's side is left half-open."""
        result = subprocess.run(["ip", "netns", "exec", self.netns, "ss", "-K", "-tnaH"],
                                capture_output=True, text=True, timeout=10,
                                stdin=subprocess.DEVNULL)
        if result.returncode != 0:
            raise NetnsError(f"ss -K in {self.netns} exited {result.returncode}: "
                             f"{result.stderr.strip()}")


def _mac(dev: str, netns: str | None = None) -> str:
    return json.loads(ip("-j", "link", "show", "dev", dev, netns=netns))[0]["address"]


def _free_subnet() -> ipaddress.IPv4Network:
    """A /30 in 10.213.0.0/16 that no interface on this machine uses."""
    used = [ipaddress.ip_interface(a["local"] + "/" + str(a["prefixlen"])).network
            for link in json.loads(ip("-j", "-4", "addr", "show"))
            for a in link.get("addr_info", [])]
    for _ in range(100):
        candidate = ipaddress.ip_network(
            f"10.213.{random.randrange(256)}.{4 * random.randrange(64)}/30")
        if not any(candidate.overlaps(u) for u in used):
            return candidate
    raise NetnsError("no free /30 in 10.213.0.0/16")


@contextlib.contextmanager
def veth_namespace():
    """A fresh namespace and veth pair with unique names; removed on the way out, whatever
    happened. Skips (saying why) only where this machine cannot make them."""
    if shutil.which("ip") is None or shutil.which("ss") is None:
        pytest.skip("fault tests need iproute2 (`ip`, `ss`) to make a network namespace")
    if os.geteuid() != 0:
        pytest.skip("fault tests need root to make a network namespace (`ip netns add`)")
    # Unique per run (pid) and per call (random): two runs on one machine cannot collide.
    # Interface names are at most 15 bytes.
    tag = f"{os.getpid() % 100000:05d}{random.randrange(100):02d}"
    netns, host_if, ns_if = f"kmp-faults-{tag}", f"kmpf{tag}h", f"kmpf{tag}n"
    try:
        ip("netns", "add", netns)
    except NetnsError as e:
        pytest.skip(f"this kernel refuses network namespaces: {e}")
    try:
        subnet = _free_subnet()
        host_addr, ns_addr = (str(a) for a in subnet.hosts())
        ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if, "netns", netns)
        ip("addr", "add", f"{host_addr}/30", "dev", host_if)
        ip("addr", "add", f"{ns_addr}/30", "dev", ns_if, netns=netns)
        ip("link", "set", host_if, "up")
        ip("link", "set", ns_if, "up", netns=netns)
        ip("link", "set", "lo", "up", netns=netns)
        # Static neighbours: during a cut nothing is resolved, so nothing fails fast with
        # "host unreachable" — packets just vanish.
        ip("neigh", "replace", ns_addr, "lladdr", _mac(ns_if, netns), "dev", host_if,
           "nud", "permanent")
        ip("neigh", "replace", host_addr, "lladdr", _mac(host_if), "dev", ns_if,
           "nud", "permanent", netns=netns)
        yield VethLink(netns, host_if, ns_if, host_addr, ns_addr)
    finally:
        # Deleting one end deletes the pair; then the namespace. Errors here must not hide
        # the test's own.
        subprocess.run(["ip", "link", "del", host_if], capture_output=True, timeout=10)
        subprocess.run(["ip", "netns", "del", netns], capture_output=True, timeout=10)
