"""Malformed inbox records go to the dead-letter topic with a reason; the engine keeps going."""

from __future__ import annotations

import json

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from ledgerflow import Client
from ledgerflow.testing.processes import Cluster

pytestmark = pytest.mark.kafka


def test_malformed_records_are_dead_lettered_and_later_ones_processed(
    running: Cluster, client: Client
) -> None:
    inbox = f"{running.prefix}inbox"
    producer = Producer({"bootstrap.servers": running.bootstrap, "partitioner": "murmur2_random"})
    producer.produce(inbox, key=b"bad-1", value=b"{not json")
    producer.produce(
        inbox,
        key=b"bad-2",
        value=json.dumps({"kind": "start_workflow", "workflow_type": "ThreeSteps"}).encode(),
    )
    producer.produce(
        inbox,
        key=b"bad-3",
        value=json.dumps({"kind": "signal_workflow", "workflow_id": "nobody", "name": "x"}).encode(),
    )
    producer.flush(10)
    client.start_workflow("ThreeSteps", 1, id="after-bad")
    assert client.result("after-bad", timeout=30) == 4

    dlq = f"{running.prefix}inbox.dlq"
    consumer = Consumer(
        {
            "bootstrap.servers": running.bootstrap,
            "group.id": "dlq-reader",
            "isolation.level": "read_committed",
        }
    )
    consumer.assign([TopicPartition(dlq, p, 0) for p in range(running.partitions)])
    found: dict[bytes, dict[str, bytes]] = {}
    for _ in range(50):
        message = consumer.poll(0.2)
        if message is not None and not message.error():
            found[message.key()] = dict(message.headers() or [])
        if len(found) == 3:
            break
    consumer.close()
    assert set(found) == {b"bad-1", b"bad-2", b"bad-3"}
    assert b"invalid inbox record" in found[b"bad-1"]["ledgerflow.dlq.reason"]
    assert b"workflow_id" in found[b"bad-2"]["ledgerflow.dlq.reason"]  # names the missing field
    assert b"no open run" in found[b"bad-3"]["ledgerflow.dlq.reason"]
    assert found[b"bad-1"]["ledgerflow.dlq.source"].startswith(inbox.encode())
