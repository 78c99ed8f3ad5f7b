"""Clients under load while something breaks underneath them: an idempotent acks=all producer and
a group consumer (librdkafka) in threads, and what their acknowledgements say about the stall."""

from __future__ import annotations

import gc
import threading
import time

from clients import driver


class Traffic:
    """An idempotent acks=all producer and a group consumer (librdkafka) in threads, one record
    every 20 ms, recording what was acknowledged, what was consumed, and every error."""

    def __init__(self, bootstrap, tls, topic, group):
        self.d = driver("confluent-kafka", bootstrap, tls)
        self.topic, self.group = topic, group
        self.acked: list[tuple[float, bytes]] = []
        self.consumed: list[bytes] = []
        self.logs: list[str] = []
        self.stop = threading.Event()
        # Set once the producer's flush returned: only then is `acked` final, so the consumer
        # may not judge what is missing before it (a record acknowledged during the flush
        # would otherwise be missed by a consumer that had already stopped).
        self.flushed = threading.Event()
        self.threads = [threading.Thread(target=self._produce, daemon=True),
                        threading.Thread(target=self._consume, daemon=True)]

    def _log(self, *args):
        self.logs.append(" ".join(str(a) for a in args))

    def _produce(self):
        from confluent_kafka import Producer

        producer = Producer(self.d.config(**{
            "acks": "all", "enable.idempotence": True, "linger.ms": 5,
            "message.timeout.ms": 120000, "logger": Recorder(self._log)}))

        def delivered(err, msg):
            if err is None:
                self.acked.append((time.monotonic(), msg.value()))
            else:
                self._log("delivery failed", err)

        i = 0
        while not self.stop.is_set():
            producer.produce(self.topic, value=f"r{i:06d}".encode(), on_delivery=delivered)
            producer.poll(0.02)
            i += 1
        try:
            producer.flush(120)
        finally:
            self.flushed.set()
        del producer
        gc.collect()

    def _consume(self):
        from confluent_kafka import Consumer

        consumer = Consumer(self.d.config(**{
            "group.id": self.group, "auto.offset.reset": "earliest",
            "enable.auto.commit": True, "logger": Recorder(self._log)}))
        consumer.subscribe([self.topic])
        idle_since = None
        while True:
            msg = consumer.poll(0.2)
            if msg is not None and not msg.error():
                self.consumed.append(msg.value())
                idle_since = None
            elif msg is not None:
                self._log("consume error", msg.error())
            if self.flushed.is_set():
                # Drain: keep reading until every acknowledged record arrived or 60 s passed.
                idle_since = idle_since or time.monotonic()
                missing = {v for _, v in self.acked} - set(self.consumed)
                if not missing or time.monotonic() - idle_since > 60:
                    break
        consumer.close()
        del consumer
        gc.collect()

    def __enter__(self):
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(150)


class Recorder:
    """A `logging.Logger` stand-in for librdkafka's `logger` setting."""

    def __init__(self, sink):
        self.sink = sink

    def log(self, level, fmt, *args):
        self.sink(fmt % args if args else fmt)


def longest_gap(times: list[float], since: float) -> float:
    times = sorted(t for t in times if t >= since)
    return max((b - a for a, b in zip(times, times[1:])), default=float("inf"))
