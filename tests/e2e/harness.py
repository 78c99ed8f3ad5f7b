"""Process, port, TLS and audit-log helpers for the end-to-end suite.

Nothing here knows about a particular Kafka client library (see ``clients.py``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import re
import signal
import socket
import ssl
import struct
import subprocess
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

# The session broker's node id (kafka/cluster.py numbers nodes from 1).
KAFKA_NODE_ID = 1


def kafka_cluster_module():
    """kafka/cluster.py, the Apache Kafka cluster the suite runs against."""
    import sys

    path = str(REPO_ROOT / "kafka")
    if path not in sys.path:
        sys.path.insert(0, path)
    import cluster

    return cluster


def proxy_binary() -> Path:
    """The proxy under test: $KAFKA_MTLS_PROXY_BIN, else the default debug build."""
    env = os.environ.get("KAFKA_MTLS_PROXY_BIN")
    return Path(env) if env else REPO_ROOT / "target" / "debug" / "kafka-mtls-proxy"


# --------------------------------------------------------------------------------------------
# Ports and processes
# --------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def broker_port_base(node_id: int = KAFKA_NODE_ID) -> int:
    """A `first_port` such that `first_port + node_id` is a free port (and not 0)."""
    for _ in range(50):
        port = free_port()
        if port - node_id >= 1024:
            return port - node_id
    raise RuntimeError("no usable port for the per-broker listener")


def tail(path: Path, lines: int = 80) -> str:
    try:
        text = Path(path).read_text(errors="replace")
    except FileNotFoundError:
        return f"<{path} does not exist>"
    # Colour codes and very long lines only hide the story.
    return "\n".join(_shorten(_ANSI.sub("", line)) for line in text.splitlines()[-lines:])


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _shorten(line: str, limit: int = 400) -> str:
    return line if len(line) <= limit else f"{line[:limit]}… ({len(line)} chars)"


# The log file of every process the run started, for the end-of-run summary (conftest).
STARTED_LOGS: list[Path] = []

# What the proxy logs when a client left requests the broker had not answered.
_UNANSWERED = re.compile(r"waiting for the broker's answers in flight.*sent (\d+) ms ago"
                         r"|still unanswered by the broker")


def broker_stalls(logs: list[Path], at_least_ms: int = 5000) -> list[str]:
    """Lines of `logs` where a client gave up on a request the broker had not answered for
    `at_least_ms` (or the proxy's drain timeout ran out): a stalled broker, or a lost answer."""
    found = []
    for path in logs:
        try:
            text = path.read_text(errors="replace")
        except FileNotFoundError:
            continue
        for line in text.splitlines():
            m = _UNANSWERED.search(line)
            if m and (m.group(1) is None or int(m.group(1)) >= at_least_ms):
                found.append(f"{path.name}: {_shorten(line, 300)}")
    return found


class Process:
    """A child process whose stdout+stderr go to a log file; stopped in fixture teardown."""

    def __init__(self, name: str, argv: list[str], log_path: Path, cwd: Path | None = None,
                 env: dict[str, str | None] | None = None):
        self.name = name
        self.argv = [str(a) for a in argv]
        self.log_path = Path(log_path)
        STARTED_LOGS.append(self.log_path)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            self.argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=str(cwd) if cwd else None,
            env={k: v for k, v in {**os.environ, **(env or {})}.items() if v is not None},
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 80) -> str:
        return tail(self.log_path, lines)

    def wait_for_port(self, host: str, port: int, timeout: float = 30.0) -> None:
        """Poll until `host:port` accepts TCP connections; fail early if the process died."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(
                    f"{self.name} exited with {self.proc.returncode} before listening on "
                    f"{host}:{port}\n--- {self.log_path} ---\n{self.log_tail()}"
                )
            try:
                with socket.create_connection((host, port), timeout=0.5):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(
            f"{self.name} did not listen on {host}:{port} within {timeout}s\n"
            f"--- {self.log_path} ---\n{self.log_tail()}"
        )

    def stop(self, timeout: float = 10.0) -> int | None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)
        self._log.close()
        return self.proc.returncode


class LoopServer:
    """A TCP server (TLS when `context` is given) on 127.0.0.1 with its own asyncio loop in a
    thread. Subclasses serve each connection with `async def _serve(self, reader, writer)`;
    `name` says which server did not start."""

    name = "server"

    def __init__(self, context: ssl.SSLContext | None = None):
        self.port = free_port()
        self.context = context
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.server = self.loop.run_until_complete(asyncio.start_server(
            self._serve, "127.0.0.1", self.port, ssl=self.context))
        self.ready.set()
        self.loop.run_forever()

    async def _serve(self, reader, writer):
        raise NotImplementedError

    def start(self):
        self.thread.start()
        assert self.ready.wait(10), f"{self.name} did not start"
        return self

    def stop(self):
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


class LogSince:
    """A text log (a broker's server.log, a proxy's log) from the moment this was made."""

    def __init__(self, path):
        self.path = Path(path)
        self.start = self.path.stat().st_size

    def text(self) -> str:
        with open(self.path, "rb") as f:
            f.seek(self.start)
            return f.read().decode(errors="replace")

    def wait_for(self, pattern: str, timeout: float = 10.0) -> list[str]:
        """Lines after the mark matching the regex `pattern` (waits until there is one)."""
        deadline = time.monotonic() + timeout
        while True:
            found = [line for line in self.text().splitlines() if re.search(pattern, line)]
            if found or time.monotonic() >= deadline:
                return found
            time.sleep(0.1)


# --------------------------------------------------------------------------------------------
# Kafka wire helpers for the fake brokers and shims (just what SASL needs)
# --------------------------------------------------------------------------------------------

SASL_HANDSHAKE, SASL_AUTHENTICATE = 17, 36


def put_uvarint(value: int) -> bytes:
    """An unsigned varint (the lengths of compact strings and arrays)."""
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def read_uvarint(buf: bytes, off: int) -> tuple[int, int]:
    """The unsigned varint at `off`, and the offset after it."""
    value = shift = 0
    while True:
        byte = buf[off]
        off += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, off
        shift += 7


def skip_tagged_fields(buf: bytes, off: int) -> int:
    """The offset after the tagged fields at `off`."""
    count, off = read_uvarint(buf, off)
    for _ in range(count):
        _, off = read_uvarint(buf, off)
        size, off = read_uvarint(buf, off)
        off += size
    return off


def framed(body: bytes) -> bytes:
    """`body` behind its size prefix."""
    return struct.pack(">i", len(body)) + body


async def read_frame(reader, max_size: int | None = None) -> bytes:
    """The next frame from an asyncio stream (without its size prefix); with `max_size`, asserts
    that its size is positive and below it."""
    (size,) = struct.unpack(">i", await reader.readexactly(4))
    if max_size is not None:
        assert 0 < size < max_size, size
    return await reader.readexactly(size)


def run_cli(*args, timeout: float = 60.0) -> subprocess.CompletedProcess:
    """Run the proxy binary with `args`; text output, never raises on a non-zero exit."""
    return subprocess.run(
        [str(proxy_binary()), *[str(a) for a in args]],
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )


# --------------------------------------------------------------------------------------------
# Client TLS material
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ClientTLS:
    """What a client presents: the CA it trusts for the proxy, and optionally its certificate."""

    cafile: Path
    certfile: Path | None
    keyfile: Path | None

    @property
    def name(self) -> str:
        return self.certfile.stem if self.certfile else "<no certificate>"


def ssl_context(tls: ClientTLS) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(tls.cafile))
    if tls.certfile:
        ctx.load_cert_chain(str(tls.certfile), str(tls.keyfile))
    return ctx


# A Kafka ApiVersions v0 request: size, api_key 18, api_version 0, correlation id, client id.
def api_versions_v0_request(correlation_id: int, client_id: bytes = b"e2e-raw") -> bytes:
    body = struct.pack(">hhih", 18, 0, correlation_id, len(client_id)) + client_id
    return struct.pack(">i", len(body)) + body


def recv_exact(sock, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise ConnectionError(f"connection closed after {len(buf)} of {n} bytes")
        buf += chunk
    return buf


@dataclasses.dataclass
class RawAttempt:
    """One raw TLS connection made by the test itself."""

    local_address: str  # "127.0.0.1:PORT", as the proxy sees the client
    handshake_ok: bool
    kafka_ok: bool  # an ApiVersions round trip completed through the proxy
    error: BaseException | None


def raw_tls_attempt(host: str, port: int, tls: ClientTLS, kafka_round_trip: bool = True,
                    timeout: float = 10.0) -> RawAttempt:
    """Connect, do a full TLS handshake, optionally one ApiVersions round trip, then close.

    A refusal under TLS 1.3 arrives as an alert after the client's Finished, so it shows up on
    the first read rather than in `do_handshake`; both are recorded in `error`.
    """
    ctx = ssl_context(tls)
    sock = socket.create_connection((host, port), timeout=timeout)
    local = "%s:%d" % sock.getsockname()[:2]
    handshake_ok = kafka_ok = False
    error = None
    try:
        tls_sock = ctx.wrap_socket(sock, server_hostname="localhost")
        try:
            handshake_ok = True
            if kafka_round_trip:
                tls_sock.sendall(api_versions_v0_request(7))
                size = struct.unpack(">i", recv_exact(tls_sock, 4))[0]
                payload = recv_exact(tls_sock, size)
                (correlation_id,) = struct.unpack(">i", payload[:4])
                (error_code,) = struct.unpack(">h", payload[4:6])
                kafka_ok = correlation_id == 7 and error_code == 0
            else:
                # Make sure the server has processed our Finished (and so our certificate)
                # before closing: wait briefly for an alert or nothing.
                tls_sock.settimeout(0.3)
                try:
                    data = tls_sock.recv(1)
                    if data == b"":
                        raise ConnectionError("proxy closed the connection")
                except (socket.timeout, TimeoutError):
                    pass
        finally:
            tls_sock.close()
    except (ssl.SSLError, OSError) as e:
        error = e
    finally:
        sock.close()
    return RawAttempt(local, handshake_ok, kafka_ok, error)


def open_kafka_connection(port: int, tls: ClientTLS) -> ssl.SSLSocket:
    """A live, admitted connection: TLS handshake and one ApiVersions round trip."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    conn = ssl_context(tls).wrap_socket(sock, server_hostname="localhost")
    conn.sendall(api_versions_v0_request(1))
    size = struct.unpack(">i", recv_exact(conn, 4))[0]
    assert struct.unpack(">i", recv_exact(conn, size)[:4])[0] == 1
    return conn


def is_closed_by_peer(conn: ssl.SSLSocket, timeout: float) -> bool:
    """Whether the proxy has closed `conn` (a request on it gets no answer but EOF or an error)."""
    conn.settimeout(timeout)
    try:
        conn.sendall(api_versions_v0_request(2))
        return conn.recv(4) == b""
    except (ssl.SSLError, OSError):
        return True


# --------------------------------------------------------------------------------------------
# Audit log
# --------------------------------------------------------------------------------------------


class AuditLog:
    """The proxy's audit file: one CloudEvents JSON record per line, written asynchronously."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def records(self) -> list[dict]:
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return []
        out = []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError as e:  # a torn line is a bug, not something to skip
                raise AssertionError(f"{self.path}:{n}: not JSON ({e}): {line!r}") from e
        return out

    def mark(self) -> int:
        """Number of records so far; pass it to `since` / `wait_for`."""
        return len(self.records())

    def since(self, mark: int) -> list[dict]:
        return self.records()[mark:]

    def wait_for(self, mark: int, predicate=lambda r: True, count: int = 1,
                 timeout: float = 10.0) -> list[dict]:
        """Wait until at least `count` records after `mark` satisfy `predicate`; return them."""
        deadline = time.monotonic() + timeout
        while True:
            found = [r for r in self.since(mark) if predicate(r)]
            if len(found) >= count or time.monotonic() >= deadline:
                return found
            time.sleep(0.05)

    def settle(self, quiet: float = 0.5, timeout: float = 10.0) -> int:
        """Wait until no record has been added for `quiet` seconds; return the count."""
        deadline = time.monotonic() + timeout
        last = self.mark()
        last_change = time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.05)
            now = self.mark()
            if now != last:
                last, last_change = now, time.monotonic()
            elif time.monotonic() - last_change >= quiet:
                break
        return last


def by_client_address(address: str):
    return lambda r: r.get("data", {}).get("clientAddress") == address


def status_of(record: dict) -> str | None:
    return record.get("data", {}).get("result", {}).get("status")


def reason_of(record: dict) -> str | None:
    return record.get("data", {}).get("result", {}).get("reason")


def metric(text: str, name: str, **labels) -> float:
    """The value of one Prometheus series (summed over matching label sets); 0 when absent."""
    total = 0.0
    for line in text.splitlines():
        m = re.match(r"^([a-z_]+)(\{[^}]*\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            total += float(m.group(3))
    return total
