"""Protocol drift, caught by the real broker: Apache Kafka 4.x announces API versions newer than
the proxy's protocol crate (kafka-protocol 0.18, Kafka 4.1 schemas) decodes.

What a client sees through the proxy must be the intersection: the broker's range, narrowed to
what the proxy can decode for every API whose answers it rewrites, capped below the KIP-951
versions of Produce and Fetch, without SASL and delegation tokens; every other API keeps the
broker's own range. (Every client library of the suite then negotiates from this answer: their
tests are the proof that it works.)
"""

from __future__ import annotations

import socket
import struct

from harness import api_versions_v0_request, recv_exact, ssl_context

# src/kafka/versions.rs: PROXIED_APIS (newest version the proxy decodes), the advertised caps of
# Produce and Fetch, and REFUSED_APIS. Kept by hand on purpose: a change there is a change of
# what clients may negotiate, and must show up here.
PRODUCE, FETCH, METADATA, API_VERSIONS, FIND_COORDINATOR, DESCRIBE_CLUSTER = 0, 1, 3, 18, 10, 60
PROXY_MAX = {PRODUCE: 13, FETCH: 15, METADATA: 13, FIND_COORDINATOR: 6, API_VERSIONS: 4,
             DESCRIBE_CLUSTER: 2}
REFUSED = {17, 36, 38, 39, 40, 41}  # SaslHandshake, SaslAuthenticate, delegation tokens


def parse_api_versions_v0(payload: bytes) -> tuple[int, dict[int, tuple[int, int]]]:
    """(error code, {api key: (min, max)}) of an ApiVersions v0 response (after its size)."""
    error, count = struct.unpack_from(">hi", payload, 4)
    ranges = {}
    for i in range(count):
        key, low, high = struct.unpack_from(">hhh", payload, 10 + 6 * i)
        ranges[key] = (low, high)
    return error, ranges


def api_versions(sock) -> dict[int, tuple[int, int]]:
    sock.sendall(api_versions_v0_request(42))
    size = struct.unpack(">i", recv_exact(sock, 4))[0]
    payload = recv_exact(sock, size)
    assert struct.unpack_from(">i", payload)[0] == 42
    error, ranges = parse_api_versions_v0(payload)
    assert error == 0, error
    return ranges


def test_clients_see_the_intersection_of_the_brokers_versions_and_the_proxys(
        kafka, proxy, client_tls):
    with socket.create_connection(("127.0.0.1", kafka.nodes[0].ports["PLAINTEXT"]), 10) as s:
        broker = api_versions(s)
    with socket.create_connection(("127.0.0.1", proxy.bootstrap_port), 10) as raw:
        with ssl_context(client_tls("acme-client")).wrap_socket(
                raw, server_hostname="localhost") as s:
            proxied = api_versions(s)

    expected = {}
    for key, (low, high) in broker.items():
        if key in REFUSED:
            continue
        if key in PROXY_MAX:
            high = min(high, PROXY_MAX[key])
        if low <= high:
            expected[key] = (low, high)
    assert proxied == expected, {
        "only through the proxy": {k: v for k, v in proxied.items() if expected.get(k) != v},
        "expected": {k: v for k, v in expected.items() if proxied.get(k) != v}}

    # The drift itself, on this broker: it offers more than the proxy lets through (if the
    # broker ever stops doing so, the narrowing above is untested and this says so).
    newer = {k: broker[k] for k in PROXY_MAX if k in broker and broker[k][1] > PROXY_MAX[k]}
    assert newer, f"Apache Kafka offers nothing newer than the proxy decodes: {broker}"
    assert all(k not in proxied for k in REFUSED)
