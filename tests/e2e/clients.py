"""The same few Kafka operations, driven by two independent client implementations.

* ``KafkaPythonDriver``: kafka-python, a pure-Python protocol implementation.
* ``ConfluentDriver``: confluent-kafka, i.e. librdkafka (bundled in the wheel).

Every method opens its own client and closes it before returning, so no background client is
left reconnecting (and writing audit records) while later tests run. Errors are raised, never
swallowed: a test must be able to fail.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import time
import uuid

from harness import ClientTLS

LIBRARIES = ("kafka-python", "confluent-kafka")

# How long a client waits for one answer before it drops the connection and retries, as Kafka
# clients do. Shorter than the libraries' defaults (30 s, 60 s) so that one request a broker
# never answers (seen once in CI with tansu, on a consumer's first Metadata) costs a retry
# within the 30 s the operations below allow, not the test. Such stalls are not hidden: the
# proxy logs the unanswered request when the client leaves, and the run's summary lists them
# (conftest.py).
REQUEST_TIMEOUT_MS = 15000

# kafka-python gives up on a broker whose ApiVersions answer takes longer than
# `api_version_auto_timeout_ms` (2 s by default) from the connect. Through a proxy with an
# upstream identity that answer waits for the proxy's upstream TLS handshake and SASL login
# (measured over 2 s on a loaded 2-core machine: NoBrokersAvailable), as it would for a broker
# that authenticates slowly. Clients of a real deployment see the same; the tests wait longer.
KAFKA_PYTHON_API_VERSION_TIMEOUT_MS = 15000


@dataclasses.dataclass
class ClusterView:
    topics: set[str]
    brokers: list[tuple[int, str, int]]  # (node id, host, port), as the client sees them
    cluster_id: str | None


@dataclasses.dataclass
class Refusal:
    """How a client experienced being refused."""

    exception: BaseException | None  # what the API call raised (None: it did not raise)
    errors: list[str]  # errors the client reported on the way (error callbacks, logs)
    elapsed: float  # seconds from the start of the attempt to the first refusal signal
    got_metadata: bool


def _detached(exc: BaseException) -> BaseException:
    """The exception without its traceback: the traceback's frames would keep the client
    (and, for librdkafka, its background threads reconnecting) alive as long as we keep it."""
    exc.__traceback__ = None
    exc.__context__ = exc.__cause__ = None
    return exc


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


# --------------------------------------------------------------------------------------------
# kafka-python
# --------------------------------------------------------------------------------------------


class KafkaPythonDriver:
    name = "kafka-python"

    def __init__(self, bootstrap: str, tls: ClientTLS | None):
        self.bootstrap = bootstrap
        self.tls = tls

    def config(self, **extra) -> dict:
        cfg = dict(bootstrap_servers=[self.bootstrap], client_id=f"e2e-{self.name}",
                   request_timeout_ms=REQUEST_TIMEOUT_MS,
                   api_version_auto_timeout_ms=KAFKA_PYTHON_API_VERSION_TIMEOUT_MS)
        if self.tls is not None:
            cfg.update(security_protocol="SSL", ssl_cafile=str(self.tls.cafile),
                       ssl_check_hostname=True)
            if self.tls.certfile is not None:
                cfg.update(ssl_certfile=str(self.tls.certfile), ssl_keyfile=str(self.tls.keyfile))
        cfg.update(extra)
        return cfg

    def cluster(self) -> ClusterView:
        """Metadata for all topics, through the client's metadata path (what a consumer uses;
        the admin path is covered by the Java client and kafka-topics.sh)."""
        from kafka import KafkaConsumer

        consumer = KafkaConsumer(**self.config(group_id=None, enable_auto_commit=False))
        try:
            topics = set(consumer.topics())
            cluster = consumer._client.cluster
            brokers = sorted((b.nodeId, b.host, b.port) for b in cluster.brokers())
            return ClusterView(topics, brokers, cluster.cluster_id)
        finally:
            consumer.close()

    def create_topic(self, topic: str, partitions: int = 1) -> None:
        from kafka import KafkaAdminClient
        from kafka.admin import NewTopic

        admin = KafkaAdminClient(**self.config())
        try:
            admin.create_topics([NewTopic(topic, partitions, 1)], timeout_ms=10000)
        finally:
            admin.close()

    def produce(self, topic: str, records: list[tuple[bytes | None, bytes]], acks=-1,
                partition: int = 0, timeout: float = 30.0) -> list[int]:
        """Send `records` (key, value); return their offsets (-1 each with acks=0)."""
        from kafka import KafkaProducer

        producer = KafkaProducer(**self.config(acks=acks, linger_ms=0, retries=0))
        try:
            futures = [producer.send(topic, key=k, value=v, partition=partition)
                       for k, v in records]
            producer.flush(timeout=timeout)
            return [f.get(timeout=timeout).offset for f in futures]
        finally:
            producer.close(timeout=10)

    def produce_acks0_then_all(self, topic: str, first: list, second: list,
                               timeout: float = 20.0) -> tuple[list, list[int], list[str]]:
        """One producer, one connection: `first` with acks=0, then `second` with acks=all.

        kafka-python's Sender reads `acks` for every produce request it builds, so switching it
        between two flushes sends both kinds of request over the same broker connection.
        Returns the offsets of both and the connection errors the client logged meanwhile.
        """
        from kafka import KafkaProducer

        errors = _LogCapture(min_level=logging.ERROR)
        logger = logging.getLogger("kafka")
        logger.addHandler(errors)
        producer = KafkaProducer(**self.config(acks=0, linger_ms=0, retries=0))
        try:
            futures = [producer.send(topic, key=k, value=v, partition=0) for k, v in first]
            producer.flush(timeout=timeout)
            offsets0 = [f.get(timeout=timeout).offset for f in futures]
            producer._sender.config["acks"] = -1
            futures = [producer.send(topic, key=k, value=v, partition=0) for k, v in second]
            producer.flush(timeout=timeout)
            offsets_all = [f.get(timeout=timeout).offset for f in futures]
            return offsets0, offsets_all, [m for _, m in errors.seen]
        finally:
            producer.close(timeout=10)
            logger.removeHandler(errors)

    def consume(self, topic: str, count: int, partition: int = 0,
                timeout: float = 30.0) -> list[tuple[int, bytes | None, bytes]]:
        """Read the first `count` records of one partition by manual assignment (no group)."""
        from kafka import KafkaConsumer, TopicPartition

        consumer = KafkaConsumer(**self.config(group_id=None, enable_auto_commit=False,
                                               auto_offset_reset="earliest"))
        try:
            tp = TopicPartition(topic, partition)
            consumer.assign([tp])
            consumer.seek_to_beginning(tp)
            out = []
            deadline = time.monotonic() + timeout
            while len(out) < count and time.monotonic() < deadline:
                for records in consumer.poll(timeout_ms=500).values():
                    out.extend((r.offset, r.key, r.value) for r in records)
            return out
        finally:
            consumer.close()

    def commit(self, group: str, topic: str, offset: int, partition: int = 0,
               metadata: str = "e2e") -> tuple[str, int]:
        """Commit `offset` for `group` (no join: manual assignment); return the coordinator
        (host, port) the client was told to use by FindCoordinator."""
        from kafka import KafkaConsumer, TopicPartition
        from kafka.structs import OffsetAndMetadata

        consumer = KafkaConsumer(**self.config(group_id=group, enable_auto_commit=False))
        try:
            tp = TopicPartition(topic, partition)
            consumer.assign([tp])
            consumer.commit({tp: OffsetAndMetadata(offset, metadata, -1)})
            cluster = consumer._client.cluster
            node = cluster.broker_metadata(cluster.coordinator_for_group(group))
            return node.host, node.port
        finally:
            consumer.close(autocommit=False)

    def committed(self, group: str, topic: str, partition: int = 0) -> int | None:
        from kafka import KafkaConsumer, TopicPartition

        consumer = KafkaConsumer(**self.config(group_id=group, enable_auto_commit=False))
        try:
            return consumer.committed(TopicPartition(topic, partition))
        finally:
            consumer.close(autocommit=False)

    def group_consume_and_commit(self, group: str, topic: str, count: int,
                                 timeout: float = 60.0) -> list[tuple[int, bytes | None, bytes]]:
        """Join `group` by subscription (JoinGroup/SyncGroup/Heartbeat through the proxy),
        read `count` records, commit synchronously."""
        from kafka import KafkaConsumer

        consumer = KafkaConsumer(topic, **self.config(
            group_id=group, enable_auto_commit=False, auto_offset_reset="earliest",
            session_timeout_ms=30000, heartbeat_interval_ms=3000, max_poll_interval_ms=120000,
            request_timeout_ms=40000))
        try:
            out = []
            deadline = time.monotonic() + timeout
            while len(out) < count and time.monotonic() < deadline:
                for records in consumer.poll(timeout_ms=1000).values():
                    out.extend((r.offset, r.key, r.value) for r in records)
            if out:
                consumer.commit()
            return out
        finally:
            consumer.close(autocommit=False)

    def attempt(self, timeout: float = 10.0) -> Refusal:
        """Try to bootstrap and fetch metadata; report how (and how fast) it failed.

        kafka-python retries a failed bootstrap until its timeout whatever the cause, so the
        speed of a refusal is measured to the first TLS error it logs, not to the exception.
        """
        from kafka import KafkaConsumer

        capture = _LogCapture()
        logger = logging.getLogger("kafka")
        old_level = logger.level
        logger.setLevel(logging.DEBUG)
        logger.addHandler(capture)
        start = time.monotonic()
        exc = None
        got = False
        try:
            consumer = KafkaConsumer(**self.config(
                group_id=None, enable_auto_commit=False, request_timeout_ms=int(timeout * 1000),
                api_version_auto_timeout_ms=int(timeout * 1000)))
            try:
                got = consumer.topics() is not None
            finally:
                consumer.close()
        except Exception as e:  # noqa: BLE001 - the exception *is* the result
            exc = _detached(e)
        finally:
            logger.removeHandler(capture)
            logger.setLevel(old_level)
        end = time.monotonic()
        first = min((t for t, _ in capture.seen), default=end)
        return Refusal(exc, [m for _, m in capture.seen], first - start, got_metadata=got)


class _LogCapture(logging.Handler):
    """kafka-python reports connection failures only in its logs. By default keep the TLS
    ones; with `min_level`, everything at or above it."""

    def __init__(self, min_level: int | None = None):
        super().__init__(logging.DEBUG)
        self.min_level = min_level
        self.seen: list[tuple[float, str]] = []

    def emit(self, record):
        msg = record.getMessage()
        if self.min_level is not None:
            keep = record.levelno >= self.min_level
        else:
            keep = any(w in msg for w in ("SSL", "ssl", "TLS", "alert", "certificate")) and (
                record.levelno >= logging.INFO or "Error" in msg or "error" in msg)
        if keep:
            self.seen.append((time.monotonic(), msg))


# --------------------------------------------------------------------------------------------
# confluent-kafka (librdkafka)
# --------------------------------------------------------------------------------------------


def _destroy(handle) -> None:
    """confluent-kafka handles are destroyed when the last reference goes (the caller's, when
    its frame ends): collect any cycle now. Never keep a handle reachable from a stored
    exception's traceback (see `_detached`): it would keep reconnecting in later tests."""
    del handle
    gc.collect()


class ConfluentDriver:
    name = "confluent-kafka"

    def __init__(self, bootstrap: str, tls: ClientTLS | None):
        self.bootstrap = bootstrap
        self.tls = tls
        self.errors: list[tuple[float, object]] = []

    def _on_error(self, err) -> None:
        self.errors.append((time.monotonic(), err))

    def config(self, **extra) -> dict:
        cfg = {
            "bootstrap.servers": self.bootstrap,
            "client.id": f"e2e-{self.name}",
            "error_cb": self._on_error,
            "socket.timeout.ms": REQUEST_TIMEOUT_MS,
        }
        if self.tls is not None:
            cfg.update({"security.protocol": "SSL", "ssl.ca.location": str(self.tls.cafile)})
            if self.tls.certfile is not None:
                cfg.update({"ssl.certificate.location": str(self.tls.certfile),
                            "ssl.key.location": str(self.tls.keyfile)})
        cfg.update(extra)
        return cfg

    def cluster(self) -> ClusterView:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient(self.config())
        try:
            md = admin.list_topics(timeout=20)
            brokers = sorted((b.id, b.host, b.port) for b in md.brokers.values())
            return ClusterView(set(md.topics), brokers, md.cluster_id)
        finally:
            _destroy(admin)

    def create_topic(self, topic: str, partitions: int = 1) -> None:
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient(self.config())
        try:
            futures = admin.create_topics([NewTopic(topic, num_partitions=partitions,
                                                    replication_factor=1)], operation_timeout=10)
            futures[topic].result(timeout=30)
        finally:
            _destroy(admin)

    def _produce(self, producer, topic, records, partition, timeout) -> list[int]:
        reports: list = [None] * len(records)

        def delivered(i):
            def cb(err, msg):
                reports[i] = (err, msg.offset() if err is None else None)
            return cb

        for i, (k, v) in enumerate(records):
            producer.produce(topic, key=k, value=v, partition=partition, on_delivery=delivered(i))
        remaining = producer.flush(timeout)
        assert remaining == 0, f"{remaining} message(s) still undelivered after {timeout}s"
        errors = [r for r in reports if r is None or r[0] is not None]
        assert not errors, f"delivery failures: {errors}"
        return [r[1] for r in reports]

    def produce(self, topic: str, records: list[tuple[bytes | None, bytes]], acks=-1,
                partition: int = 0, timeout: float = 30.0) -> list[int]:
        from confluent_kafka import Producer

        producer = Producer(self.config(**{"acks": acks, "linger.ms": 0,
                                           "enable.idempotence": False}))
        try:
            return self._produce(producer, topic, records, partition, timeout)
        finally:
            _destroy(producer)

    def produce_acks0_then_all(self, topic: str, first: list, second: list,
                               timeout: float = 20.0) -> tuple[list, list[int], list[str]]:
        """librdkafka fixes `acks` per producer handle, so: one acks=0 producer sends `first`,
        then — on that same handle, over its existing connections — a metadata request must be
        answered (a response the proxy mistakenly waited for after acks=0, or a connection it
        dropped, shows up here) and one more acks=0 record is sent; then an acks=all producer
        sends `second`. Returns the offsets and every error librdkafka reported meanwhile
        (a dropped connection is one, even when librdkafka recovers from it by itself)."""
        from confluent_kafka import Producer

        self.errors.clear()
        producer = Producer(self.config(**{"acks": 0, "linger.ms": 0,
                                           "enable.idempotence": False}))
        try:
            offsets0 = self._produce(producer, topic, first, 0, timeout)
            md = producer.list_topics(topic=topic, timeout=timeout)
            assert md.topics[topic].error is None, md.topics[topic].error
            offsets0 += self._produce(producer, topic, first[:1], 0, timeout)
            producer.poll(0.5)  # serve error callbacks
        finally:
            producer = md = None
            gc.collect()
        producer = Producer(self.config(**{"acks": "all", "linger.ms": 0}))
        try:
            offsets_all = self._produce(producer, topic, second, 0, timeout)
        finally:
            producer = None
            gc.collect()
        return offsets0, offsets_all, [str(e) for _, e in self.errors]

    def consume(self, topic: str, count: int, partition: int = 0,
                timeout: float = 30.0) -> list[tuple[int, bytes | None, bytes]]:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

        consumer = Consumer(self.config(**{"group.id": f"e2e-unused-{uuid.uuid4().hex[:8]}",
                                           "enable.auto.commit": False,
                                           "auto.offset.reset": "earliest"}))
        try:
            consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
            out = []
            deadline = time.monotonic() + timeout
            while len(out) < count and time.monotonic() < deadline:
                msg = consumer.poll(0.5)
                if msg is None:
                    continue
                if msg.error():
                    if msg.error().code() == KafkaError._PARTITION_EOF:
                        continue
                    raise KafkaException(msg.error())
                out.append((msg.offset(), msg.key(), msg.value()))
            return out
        finally:
            consumer.close()
            _destroy(consumer)

    def commit(self, group: str, topic: str, offset: int, partition: int = 0,
               metadata: str = "e2e") -> tuple[str, int] | None:
        from confluent_kafka import Consumer, TopicPartition

        consumer = Consumer(self.config(**{"group.id": group, "enable.auto.commit": False}))
        try:
            consumer.assign([TopicPartition(topic, partition)])
            tp = TopicPartition(topic, partition, offset, metadata=metadata)
            result = consumer.commit(offsets=[tp], asynchronous=False)
            bad = [r for r in result if r.error is not None]
            assert not bad, f"commit failed: {bad}"
            return None  # librdkafka does not expose the coordinator's address
        finally:
            consumer.close()
            _destroy(consumer)

    def committed(self, group: str, topic: str, partition: int = 0) -> int | None:
        from confluent_kafka import Consumer, TopicPartition

        consumer = Consumer(self.config(**{"group.id": group, "enable.auto.commit": False}))
        try:
            (tp,) = consumer.committed([TopicPartition(topic, partition)], timeout=30)
            assert tp.error is None, tp.error
            return tp.offset if tp.offset >= 0 else None
        finally:
            consumer.close()
            _destroy(consumer)

    def attempt(self, timeout: float = 10.0) -> Refusal:
        """Try to fetch metadata; report how (and how fast) it failed.

        librdkafka reports a failed connection through the error callback, which is served by
        `poll`: poll until it fires (that is when the client learns it is refused), then ask for
        metadata, which must fail.
        """
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient

        self.errors.clear()
        start = time.monotonic()
        admin = AdminClient(self.config())
        exc = None
        got = False
        try:
            # An asynchronous request makes librdkafka connect now (connections are sparse).
            pending = admin.describe_cluster(request_timeout=timeout)
            deadline = start + timeout
            while not self.errors and not pending.done() and time.monotonic() < deadline:
                admin.poll(0.05)
            if pending.done() and pending.exception() is None:
                got = True
            try:
                md = admin.list_topics(timeout=3)
                got = True
                del md
            except KafkaException as e:
                exc = _detached(e)
        finally:
            admin.poll(0)
            # The exception's traceback holds this frame: drop the handle explicitly, or it
            # lives on (and keeps reconnecting) as long as the exception does.
            pending = admin = None
            gc.collect()
        end = time.monotonic()
        first = min((t for t, _ in self.errors), default=end)
        return Refusal(exc, [str(e) for _, e in self.errors], first - start, got_metadata=got)


DRIVERS = {"kafka-python": KafkaPythonDriver, "confluent-kafka": ConfluentDriver}


def driver(library: str, bootstrap: str, tls: ClientTLS | None):
    return DRIVERS[library](bootstrap, tls)


def unique(prefix: str) -> str:
    return _unique(prefix)
