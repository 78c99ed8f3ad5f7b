"""A cluster that is down: through the proxy, librdkafka reconnects no more often than directly.

No broker runs here: the cluster is a closed port. Directly, librdkafka's connects are refused.
Through the proxy they must be refused the same way: once the proxy knows the broker is down it
closes the listener, so the kernel refuses the connects as it refuses them at the broker's own
port. (A handshake then a close counts, to librdkafka, as a connection that worked: it retried
every ~50 ms, 6x the direct rate; a reset right after accept was still 1.2-2x.)
"""

from __future__ import annotations

import pytest

from conftest import _PROCESSES
from reconnects import DownProxy, closed_port, librdkafka_connects

WINDOW_S = 10.0


def allowed(direct: int) -> int:
    """The connection that completes the handshake before the proxy knows the broker is down,
    the one that closes the listener, and librdkafka's own variation between two windows of the
    same failure (its re-bootstrap timers: 32-37 direct connects in five 10 s runs)."""
    return direct + 3 + direct // 2


@pytest.fixture()
def down_proxy(proxy_bin, pki, tmp_path):
    proxy = DownProxy(proxy_bin, pki, tmp_path)
    _PROCESSES["proxy-down"] = proxy.proc
    try:
        yield proxy
    finally:
        proxy.stop()
        _PROCESSES.pop("proxy-down", None)


def test_librdkafka_reconnects_no_faster_through_the_proxy_than_directly(down_proxy, client_tls):
    direct = librdkafka_connects(f"127.0.0.1:{closed_port()}", None, WINDOW_S)
    proxied = librdkafka_connects(down_proxy.bootstrap, client_tls("acme-client"), WINDOW_S)
    accepted = down_proxy.accepted()
    refused = down_proxy.refused_upstream_down()
    detail = (f"direct {direct}, proxied {proxied}, proxy accepted {accepted}, "
              f"refused before the handshake {refused}")
    assert direct["connects"] >= 3, f"the direct baseline made too few attempts: {detail}"
    assert proxied["connects"] <= allowed(direct["connects"]), detail
    # The proxy took the first attempts only: one learnt the broker was down (handshake, then
    # a close), the next was reset before the handshake and closed the listener; the kernel
    # refused every later one.
    assert accepted <= 3, detail
    assert refused >= accepted - 2, detail
