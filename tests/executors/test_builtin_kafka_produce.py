"""kafka.produce writes allow-listed topics of the worker's own cluster, on a real broker.

Each refusal is checked for its reason and for the record that did not land: the topic's end
offset did not move, and an input's ``bootstrap`` got no connection.
"""

from __future__ import annotations

import json
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from ledgerflow.config import Settings
from ledgerflow.executors.sandbox.refusal import Refused
from tests.executors_unit.builtin_helpers import call

pytestmark = pytest.mark.kafka


class Topics:
    """Topics made for one test, and their end offsets."""

    def __init__(self, bootstrap: str) -> None:
        self.bootstrap = bootstrap
        self.admin = AdminClient({"bootstrap.servers": bootstrap})
        self.consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"t-{uuid.uuid4().hex}"})

    def make(self, *names: str) -> None:
        for future in self.admin.create_topics([NewTopic(name, 1, 1) for name in names]).values():
            future.result(30)

    def end(self, topic: str) -> int:
        return int(self.consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1])

    def only_record(self, topic: str) -> tuple[bytes | None, bytes | None]:
        self.consumer.assign([TopicPartition(topic, 0, 0)])
        message = self.consumer.poll(10)
        assert message is not None and message.error() is None, message
        return message.key(), message.value()


@pytest.fixture
def topics(kafka_bootstrap: str) -> Iterator[Topics]:
    made = Topics(kafka_bootstrap)
    yield made
    made.consumer.close()


@pytest.fixture
def settings(kafka_bootstrap: str, topic_prefix: str) -> Settings:
    return Settings(bootstrap=kafka_bootstrap, prefix=topic_prefix)


async def produce(input: dict[str, Any], settings: Settings, *patterns: str) -> Any:
    return await call("kafka.produce", input, settings=settings, produce_topics=patterns)


async def refused(input: dict[str, Any], settings: Settings, *patterns: str) -> str:
    with pytest.raises(Refused) as refusal:
        await produce(input, settings, *patterns)
    assert refusal.value.non_retryable
    return refusal.value.reason


async def test_an_allowed_topic_gets_the_record(topics: Topics, settings: Settings) -> None:
    topic = f"orders-{uuid.uuid4().hex[:8]}.done"
    topics.make(topic)
    written = await produce({"topic": topic, "key": "k", "value": {"ok": True}}, settings, "orders-*")
    assert (written["topic"], written["partition"], written["offset"]) == (topic, 0, 0)
    key, value = topics.only_record(topic)
    assert key == b"k" and value is not None and json.loads(value) == {"ok": True}


async def test_a_topic_outside_the_allow_list(topics: Topics, settings: Settings) -> None:
    topic = f"other-{uuid.uuid4().hex[:8]}"
    topics.make(topic)
    reason = await refused({"topic": topic, "value": 1}, settings, "orders.*", "audit")
    assert "is not allowed" in reason and "LEDGERFLOW_PRODUCE_TOPICS" in reason
    assert topics.end(topic) == 0


@pytest.mark.parametrize("name", ["inbox", "changelog", "tasks.default", "events"])
async def test_the_deployments_own_topics_even_when_allowed(
    topics: Topics, settings: Settings, name: str
) -> None:
    topic = settings.topic(name)
    topics.make(topic)
    reason = await refused(
        {"topic": topic, "value": {"kind": "forged"}}, settings, "*", f"{settings.prefix}*"
    )
    assert "one of this deployment's" in reason
    assert topics.end(topic) == 0


async def test_kafkas_internal_topics_even_when_allowed(topics: Topics, settings: Settings) -> None:
    before = topics.end("__consumer_offsets")
    assert "internal to Kafka" in await refused({"topic": "__consumer_offsets", "value": 1}, settings, "*")
    assert topics.end("__consumer_offsets") == before


async def test_a_bootstrap_input_is_refused_and_never_contacted(topics: Topics, settings: Settings) -> None:
    topic = f"orders-{uuid.uuid4().hex[:8]}"
    topics.make(topic)
    with socket.create_server(("127.0.0.1", 0)) as elsewhere:
        elsewhere.settimeout(0.5)
        host, port = elsewhere.getsockname()
        input = {"topic": topic, "value": 1, "bootstrap": f"{host}:{port}"}
        assert "'bootstrap' input is not accepted" in await refused(input, settings, "orders-*")
        with pytest.raises(TimeoutError):
            elsewhere.accept()
    assert topics.end(topic) == 0


async def test_a_record_over_max_record_bytes(
    topics: Topics, kafka_bootstrap: str, topic_prefix: str
) -> None:
    settings = Settings(
        bootstrap=kafka_bootstrap, prefix=topic_prefix, max_record_bytes=4096, max_payload_bytes=1024
    )
    topic = f"orders-{uuid.uuid4().hex[:8]}"
    topics.make(topic)
    reason = await refused({"topic": topic, "key": "k", "value": "x" * 4096}, settings, "orders-*")
    assert "max_record_bytes" in reason
    assert topics.end(topic) == 0
