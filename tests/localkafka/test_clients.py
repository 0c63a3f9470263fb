"""Every client Ledgerflow meets partitions a workflowId key the same way.

confluent-kafka (``partitioner=murmur2_random``), aiokafka (murmur2 by default)
and Kafka's own Java console producer write records keyed by the same ids to
one 12-partition topic; each id must land on one partition from all three,
and that partition is murmur2(key) as the Java client defines it.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections import defaultdict

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.partitioner import murmur2
from confluent_kafka import Consumer, KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic

from ledgerflow.local.kafka import java_tool_command

pytestmark = pytest.mark.kafka

PARTITIONS = 12
KEYS = [f"wf-{i}" for i in range(16)] + ["order-7f3a9c", "invoice/2024/001", "ü-unicode-id"]


def _create_topic(bootstrap: str, name: str, partitions: int = PARTITIONS) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(name, num_partitions=partitions, replication_factor=1)])
    futures[name].result(timeout=30)


def _java_partition(key: str) -> int:
    """Kafka's Java default partitioner for a keyed record."""
    return (murmur2(key.encode()) & 0x7FFFFFFF) % PARTITIONS


def _produce_confluent(bootstrap: str, topic: str) -> None:
    producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "acks": "all"})
    errors: list[KafkaError] = []

    def on_delivery(err: KafkaError | None, _msg: object) -> None:
        if err is not None:
            errors.append(err)

    for key in KEYS:
        producer.produce(topic, key=key.encode(), value=b"confluent", on_delivery=on_delivery)
    assert producer.flush(30) == 0
    assert errors == []


async def _produce_aiokafka(bootstrap: str, topic: str) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key in KEYS:
            await producer.send_and_wait(topic, key=key.encode(), value=b"aiokafka")
    finally:
        await producer.stop()


def _produce_java(bootstrap: str, topic: str) -> None:
    argv = java_tool_command(
        "org.apache.kafka.tools.ConsoleProducer",
        "--bootstrap-server", bootstrap,
        "--topic", topic,
        "--property", "parse.key=true",
        "--property", "key.separator=:",
    )  # fmt: skip
    lines = "".join(f"{key}:java\n" for key in KEYS)
    result = subprocess.run(argv, input=lines.encode(), capture_output=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr.decode(errors="replace")


def _consume_confluent(bootstrap: str, topic: str, expected: int) -> dict[tuple[str, str], int]:
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"{topic}-confluent",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    seen: dict[tuple[str, str], int] = {}
    deadline = time.monotonic() + 60
    try:
        while len(seen) < expected and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            assert msg.error() is None, msg.error()
            seen[(msg.key().decode(), msg.value().decode())] = msg.partition()
    finally:
        consumer.close()
    return seen


async def _consume_aiokafka(bootstrap: str, topic: str, expected: int) -> dict[tuple[str, str], int]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"{topic}-aiokafka",
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        enable_auto_commit=False,
    )
    await consumer.start()
    seen: dict[tuple[str, str], int] = {}
    try:
        async with asyncio.timeout(60):
            while len(seen) < expected:
                batches = await consumer.getmany(timeout_ms=500)
                for records in batches.values():
                    for rec in records:
                        assert rec.key is not None and rec.value is not None
                        seen[(rec.key.decode(), rec.value.decode())] = rec.partition
    finally:
        await consumer.stop()
    return seen


async def test_same_key_same_partition_from_every_client(kafka_bootstrap: str, topic_prefix: str) -> None:
    topic = f"{topic_prefix}partitioning"
    _create_topic(kafka_bootstrap, topic)

    _produce_confluent(kafka_bootstrap, topic)
    await _produce_aiokafka(kafka_bootstrap, topic)
    await asyncio.to_thread(_produce_java, kafka_bootstrap, topic)

    expected = 3 * len(KEYS)
    by_confluent = await asyncio.to_thread(_consume_confluent, kafka_bootstrap, topic, expected)
    by_aiokafka = await _consume_aiokafka(kafka_bootstrap, topic, expected)
    assert by_confluent == by_aiokafka
    assert len(by_confluent) == expected

    partitions: dict[str, set[int]] = defaultdict(set)
    for (key, _source), partition in by_confluent.items():
        partitions[key].add(partition)
    assert {key: {_java_partition(key)} for key in KEYS} == dict(partitions)
    # the keys really spread over the topic, so the check means something
    assert len({_java_partition(key) for key in KEYS}) >= 6
