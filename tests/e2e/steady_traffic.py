"""Clients that keep producing and consuming while something happens underneath them (KIP-368
re-authentication, key rotation): a producer and a consumer per library on one topic, one record
at a time, every record consumed back, every problem the client reported collected."""

from __future__ import annotations

import logging
import time

from clients import _LogCapture, driver, unique


def steady_phase(step, drain, seconds, mark, sent, received):
    """`step(0)` to warm up, `drain()` until that record is `received` (15 s at most), `mark()`,
    `step(1)`, `step(2)`, … for `seconds`, `mark()` again, then `drain()` until every record
    `sent` is `received` (10 s at most)."""
    step(0)
    # Warm up until the first record is consumed back: then every connection the clients need
    # is open, and any connection opened later is a reconnect.
    end = time.monotonic() + 15
    while not received and time.monotonic() < end:
        drain()
    assert received, "the warm-up record was not consumed within 15 s"
    mark()  # the steady phase starts
    deadline = time.monotonic() + seconds
    i = 1
    while time.monotonic() < deadline:
        step(i)
        i += 1
    mark()  # the steady phase ends; closing the clients below closes their connections
    end = time.monotonic() + 10
    while len(received) < len(sent) and time.monotonic() < end:
        drain()


def keep_busy_kafka_python(bootstrap, tls, topic, seconds, mark):
    """A kafka-python producer (acks=1) and consumer (manual assignment) on one topic: one
    record per step for `seconds`, each consumed back. `mark()` is called when the steady
    phase starts (after a warm-up record) and when it ends. Returns (sent, received, problems):
    problems are the warnings and errors kafka-python logged (a dropped connection is one)."""
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    d = driver("kafka-python", bootstrap, tls)
    capture = _LogCapture(min_level=logging.WARNING)
    logger = logging.getLogger("kafka")
    logger.addHandler(capture)
    producer = KafkaProducer(**d.config(acks=1, linger_ms=0, retries=0))
    consumer = KafkaConsumer(**d.config(group_id=None, enable_auto_commit=False,
                                        auto_offset_reset="earliest"))
    sent, received = [], []
    try:
        consumer.assign([TopicPartition(topic, 0)])

        def poll(timeout_ms):
            for batch in consumer.poll(timeout_ms=timeout_ms).values():
                received.extend(r.value for r in batch)

        def step(i):
            value = f"record-{i}".encode()
            producer.send(topic, value=value, partition=0).get(timeout=10)
            sent.append(value)
            poll(50)

        steady_phase(step, lambda: poll(200), seconds, mark, sent, received)
    finally:
        producer.close(timeout=5)
        consumer.close()
        logger.removeHandler(capture)
    return sent, received, [m for _, m in capture.seen]


def keep_busy_confluent(bootstrap, tls, topic, seconds, mark):
    """The same with librdkafka (confluent-kafka): producer acks=1, consumer by assignment (its
    group, which it never joins, is under the `e2e-` prefix the pools may use)."""
    import gc

    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition

    d = driver("confluent-kafka", bootstrap, tls)
    producer = Producer(d.config(**{"acks": 1, "linger.ms": 0, "enable.idempotence": False}))
    consumer = Consumer(d.config(**{"group.id": unique("e2e-steady-unused"),
                                    "enable.auto.commit": False,
                                    "auto.offset.reset": "earliest"}))
    sent, received, problems = [], [], []

    def poll(timeout):
        msg = consumer.poll(timeout)
        if msg is None:
            return
        if msg.error():
            if msg.error().code() != KafkaError._PARTITION_EOF:
                problems.append(str(msg.error()))
            return
        received.append(msg.value())

    def delivered(err, _msg):
        if err is not None:
            problems.append(str(err))

    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        # librdkafka talks to the group coordinator on a connection of its own, opened once
        # FindCoordinator is answered: ask the coordinator something now, so that connection
        # is not opened (late, on a loaded machine) during the steady phase.
        consumer.committed([TopicPartition(topic, 0)], timeout=15)

        def step(i):
            value = f"record-{i}".encode()
            producer.produce(topic, value=value, partition=0, on_delivery=delivered)
            assert producer.flush(10) == 0, "a record was not delivered within 10 s"
            sent.append(value)
            poll(0.05)

        steady_phase(step, lambda: poll(0.2), seconds, mark, sent, received)
    finally:
        consumer.close()
        producer = consumer = None
        gc.collect()
    return sent, received, problems + [str(e) for _, e in d.errors]
