"""Three nodes, one killed with SIGKILL: acks=all writes still all land, nothing is lost.

Needs the tuned ``broker.session.timeout.ms`` (3 s) of the launcher to move
leaders off the dead node quickly; with Kafka's 9 s default the flush below
waits that long.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from ledgerflow import kafkaclients as clients
from ledgerflow.config import Settings
from ledgerflow.engine.checkpoint import CALL_TIMEOUT
from ledgerflow.engine.errors import StuckCallError
from ledgerflow.engine.kafka.watchdog import CallGuard
from ledgerflow.engine.loop import STUCK_CALL_AFTER
from tests.fixtures import started_kafka

pytestmark = [pytest.mark.kafka, pytest.mark.cluster]

RECORDS = 3000
PARTITIONS = 6


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z")


def _create_replicated_topic(bootstrap: str, name: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topic = NewTopic(
        name,
        num_partitions=PARTITIONS,
        replication_factor=3,
        config={"min.insync.replicas": "2"},
    )
    admin.create_topics([topic])[name].result(timeout=30)
    # wait until every partition has a leader and a full ISR
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        parts = admin.list_topics(name, timeout=10).topics[name].partitions
        if len(parts) == PARTITIONS and all(p.leader >= 0 and len(p.isrs) == 3 for p in parts.values()):
            return
        time.sleep(0.2)
    raise AssertionError(f"{name} never got full ISRs")


def _produce_all(bootstrap: str, topic: str) -> tuple[int, list[KafkaError]]:
    producer = Producer(
        {
            "bootstrap.servers": bootstrap,
            "acks": "all",
            "enable.idempotence": True,
            "partitioner": "murmur2_random",
            "linger.ms": 5,
            "message.timeout.ms": 60000,
        }
    )
    delivered = 0
    errors: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, _msg: Message) -> None:
        nonlocal delivered
        if err is None:
            delivered += 1
        else:
            errors.append(err)

    for i in range(RECORDS):
        producer.produce(topic, key=f"wf-{i % 97}".encode(), value=str(i).encode(), on_delivery=on_delivery)
        producer.poll(0)
    remaining = producer.flush(90)
    assert remaining == 0, f"{remaining} records never got a delivery report"
    return delivered, errors


def _consume_all(bootstrap: str, topic: str) -> list[int]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"{topic}-reader",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    values: list[int] = []
    deadline = time.monotonic() + 60
    try:
        while len(values) < RECORDS and time.monotonic() < deadline:
            for msg in consumer.consume(500, timeout=0.5):
                assert msg.error() is None, msg.error()
                values.append(int(msg.value()))
    finally:
        consumer.close()
    return values


def test_acks_all_survives_kill_9_of_one_broker(tmp_path: Path, topic_prefix: str) -> None:
    kafka = started_kafka(tmp_path / "kafka", brokers=3)
    started = time.monotonic()
    try:
        bootstrap = kafka.up()  # already running: answers its bootstrap at once
        pids = kafka.broker_pids()
        assert len(pids) == 3
        topic = f"{topic_prefix}replicated"
        _create_replicated_topic(bootstrap, topic)

        killed = kafka.kill_broker(1)
        assert killed == pids[1]
        assert not _alive(killed)
        assert kafka.status().state == "degraded"

        t0 = time.monotonic()
        delivered, errors = _produce_all(bootstrap, topic)
        produce_seconds = time.monotonic() - t0
        assert errors == []
        assert delivered == RECORDS

        values = _consume_all(bootstrap, topic)
        assert sorted(values) == list(range(RECORDS))  # all, each once
        print(
            f"produce after kill -9: {produce_seconds:.1f} s; test so far {time.monotonic() - started:.1f} s"
        )
    finally:
        kafka.down()
    assert kafka.status().state == "stopped"
    assert not any(_alive(pid) for pid in pids)


def _consume_some(bootstrap: str, topic: str, group: str) -> tuple[Consumer, list[Message]]:
    """A group member of ``topic`` holding a few records (the engine's position before a commit)."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
        }
    )
    consumer.subscribe([topic])
    messages: list[Message] = []
    deadline = time.monotonic() + 60
    while len(messages) < 10 and time.monotonic() < deadline:
        messages += [m for m in consumer.consume(100, 1) if m.error() is None]
    assert messages, f"nothing consumed from {topic}"
    return consumer, messages


def test_the_call_guard_gets_an_engine_out_of_a_commit_whose_group_coordinator_hangs_then_dies(
    tmp_path: Path, topic_prefix: str
) -> None:
    """What each engine batch does (ledgerflow/engine/checkpoint.py): a transaction whose consumed offsets are
    sent to the group coordinator through the engine's CallGuard. That broker hangs (SIGSTOP) with
    the request in flight and is killed -9 five seconds later, its partitions led by the other two
    by then. librdkafka 2.16.0 often never returns from the call, whatever its timeout, and
    fencing the producer does not free it either (issues 5456 and 5511; in a chaos run an engine
    sat in it 3 minutes and held its whole group). The guard must hand control back within its
    limit and a margin, and what the engine does next must work: a new producer with the same
    transactional id commits the batch again, offsets included, to the new coordinator."""
    kafka = started_kafka(tmp_path / "kafka", brokers=3)
    try:
        bootstrap = kafka.up()  # already running: answers its bootstrap at once
        source, sink, group = f"{topic_prefix}in", f"{topic_prefix}out", f"{topic_prefix}engine"
        _create_replicated_topic(bootstrap, source)
        _create_replicated_topic(bootstrap, sink)
        filler = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random"})
        for i in range(100):
            filler.produce(source, key=f"wf-{i}".encode(), value=b"start")
        assert filler.flush(30) == 0
        consumer, messages = _consume_some(bootstrap, source, group)
        settings = Settings(bootstrap=bootstrap)
        tid = f"{group}-t"
        producer = clients.transactional_producer(settings, tid)
        producer.init_transactions(30)
        last = messages[-1]
        offsets = [TopicPartition(source, last.partition() or 0, (last.offset() or 0) + 1)]
        producer.begin_transaction()  # one whole transaction first, as an engine has done before
        producer.produce(sink, value=b"step")
        producer.send_offsets_to_transaction(offsets, consumer.consumer_group_metadata(), CALL_TIMEOUT)
        producer.commit_transaction(30)

        admin = AdminClient({"bootstrap.servers": bootstrap})
        coordinator = admin.describe_consumer_groups([group])[group].result(30).coordinator.id
        producer.begin_transaction()
        producer.produce(sink, value=b"step")
        hung = kafka.status().brokers[coordinator - 1].pid
        assert hung is not None
        guard = CallGuard(STUCK_CALL_AFTER)
        os.kill(hung, signal.SIGSTOP)
        threading.Timer(5, kafka.kill_broker, args=(coordinator - 1,)).start()
        started = time.monotonic()
        metadata = consumer.consumer_group_metadata()
        try:
            guard.call(
                "send_offsets_to_transaction",
                lambda: producer.send_offsets_to_transaction(offsets, metadata, CALL_TIMEOUT),
            )
            outcome = "sent"
        except (KafkaException, StuckCallError) as exc:
            outcome = f"{type(exc).__name__}: {exc}"
        seconds = time.monotonic() - started
        assert seconds < STUCK_CALL_AFTER + 5, f"the guard took {seconds:.0f} s"

        # The engine's next step after a failed or stuck commit: a new producer, the batch again.
        replacement = clients.transactional_producer(settings, tid)
        replacement.init_transactions(30)
        replacement.begin_transaction()
        replacement.produce(sink, value=b"step again")
        again = consumer.consumer_group_metadata()
        guard.call(
            "send_offsets_to_transaction",
            lambda: replacement.send_offsets_to_transaction(offsets, again, CALL_TIMEOUT),
        )
        guard.call("commit_transaction", lambda: replacement.commit_transaction(CALL_TIMEOUT))
        guard.close()
        committed = consumer.committed([TopicPartition(source, offsets[0].partition)], timeout=30)
        assert committed[0].offset == offsets[0].offset
        print(
            f"send_offsets_to_transaction: {outcome} after {seconds:.1f} s; committed again by a new producer"
        )
        consumer.close()
    finally:
        kafka.down()
