"""kafka.consumer reads bounded batches of allow-listed topics on a real broker, and never moves
its group on its own: the same batch is read again until kafka.consumer.commit (what the DAG
interpreter runs once the node's result is recorded) commits its offsets."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from ledgerflow.config import Settings
from ledgerflow.errors import ApplicationError
from ledgerflow.executors.sandbox.refusal import Refused
from tests.executors_unit.builtin_helpers import call

pytestmark = pytest.mark.kafka


@pytest.fixture
def settings(kafka_bootstrap: str, topic_prefix: str) -> Settings:
    return Settings(bootstrap=kafka_bootstrap, prefix=topic_prefix)


@pytest.fixture
def topic(kafka_bootstrap: str) -> Iterator[str]:
    """A two-partition topic of this test's own, under the allow-listed ``feed-`` names."""
    name = f"feed-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(name, 2, 1)])[name].result(30)
    yield name


def write(bootstrap: str, topic: str, values: list[Any], partition: int | None = None) -> None:
    producer = Producer({"bootstrap.servers": bootstrap})
    for value in values:
        raw = value if isinstance(value, bytes) else json.dumps(value).encode()
        if partition is None:
            producer.produce(topic, raw, key=b"k")
        else:
            producer.produce(topic, raw, key=b"k", partition=partition)
    assert producer.flush(30) == 0


async def read(settings: Settings, input: dict[str, Any]) -> Any:
    return await call("kafka.consumer", input, settings=settings, consume_topics=("feed-*",))


async def commit(settings: Settings, read_result: dict[str, Any]) -> Any:
    input = {key: read_result[key] for key in ("topic", "group", "offsets")}
    return await call("kafka.consumer.commit", input, settings=settings, consume_topics=("feed-*",))


async def test_a_batch_is_read_again_until_its_offsets_are_committed(
    settings: Settings, topic: str, kafka_bootstrap: str
) -> None:
    write(kafka_bootstrap, topic, [{"n": n} for n in range(5)], partition=0)
    write(kafka_bootstrap, topic, [{"n": n} for n in range(5, 8)], partition=1)
    group = f"g-{uuid.uuid4().hex[:8]}"
    input = {"topic": topic, "group": group, "max_records": 6, "timeout": 10}

    first = await read(settings, input)
    assert first["count"] == 6 and len(first["items"]) == len(first["records"]) == 6
    assert all(r["key"] == "k" for r in first["records"])
    read_first = {(r["partition"], r["offset"]) for r in first["records"]}
    again = await read(settings, {**input, "max_records": 10, "timeout": 3})  # nothing committed
    assert again["count"] == 8 and read_first < {(r["partition"], r["offset"]) for r in again["records"]}

    assert (await commit(settings, first))["committed"] == first["offsets"]
    rest = await read(settings, {**input, "max_records": 10, "timeout": 3})  # the 2 left, then the timeout
    assert rest["count"] == 2
    assert not read_first & {(r["partition"], r["offset"]) for r in rest["records"]}
    assert {item["n"] for item in first["items"] + rest["items"]} == set(range(8))
    await commit(settings, rest)
    started = time.monotonic()
    empty = await read(settings, {**input, "timeout": 1})
    assert empty["count"] == 0 and empty["offsets"] == {} and time.monotonic() - started < 10


async def test_values_are_json_or_text_as_asked(settings: Settings, topic: str, kafka_bootstrap: str) -> None:
    write(kafka_bootstrap, topic, [{"ok": 1}, b"plain words"], partition=0)
    group = f"g-{uuid.uuid4().hex[:8]}"
    auto = await read(settings, {"topic": topic, "group": group, "max_records": 2, "timeout": 10})
    assert auto["items"] == [{"ok": 1}, "plain words"]
    text = await read(
        settings, {"topic": topic, "group": group, "max_records": 2, "timeout": 10, "value_format": "text"}
    )
    assert text["items"] == ['{"ok": 1}', "plain words"]
    with pytest.raises(ApplicationError) as failure:
        await read(settings, {"topic": topic, "group": group, "max_records": 2, "value_format": "json"})
    assert failure.value.type == "InvalidRecord" and failure.value.non_retryable
    assert f"{topic}/0@1" in str(failure.value)


async def test_a_new_group_from_latest_reads_only_what_comes_after(
    settings: Settings, topic: str, kafka_bootstrap: str
) -> None:
    write(kafka_bootstrap, topic, [{"old": True}], partition=0)
    group = f"g-{uuid.uuid4().hex[:8]}"
    input = {"topic": topic, "group": group, "start": "latest", "timeout": 2}
    latest = await read(settings, input)
    assert latest["count"] == 0 and latest["offsets"] == {"0": 1, "1": 0}  # where the group begins
    await commit(settings, latest)
    write(kafka_bootstrap, topic, [{"new": True}], partition=0)
    after = await read(settings, input)  # written after the group began, before its next read
    assert after["items"] == [{"new": True}]


@pytest.mark.parametrize(
    ("input", "reason"),
    [
        ({"topic": "orders.secret", "group": "g"}, "is not allowed (setting LEDGERFLOW_CONSUME_TOPICS)"),
        ({"topic": "__consumer_offsets", "group": "g"}, "internal to Kafka"),
    ],
)
async def test_topics_outside_the_allow_list_are_refused(
    settings: Settings, input: dict[str, Any], reason: str
) -> None:
    with pytest.raises(Refused) as refusal:
        await call("kafka.consumer", input, settings=settings, consume_topics=("feed-*", "__*"))
    assert reason in refusal.value.reason and refusal.value.non_retryable


async def test_the_deployments_own_topics_are_refused(settings: Settings) -> None:
    own = f"{settings.prefix}inbox"
    with pytest.raises(Refused) as refusal:
        await call("kafka.consumer", {"topic": own, "group": "g"}, settings=settings, consume_topics=("*",))
    assert "one of this deployment's" in refusal.value.reason
    with pytest.raises(Refused):  # the commit is held to the same rules
        await call(
            "kafka.consumer.commit",
            {"topic": own, "group": "g", "offsets": {"0": 1}},
            settings=settings,
            consume_topics=("*",),
        )


async def test_a_nodes_group_is_one_of_the_deployments(
    settings: Settings, topic: str, kafka_bootstrap: str
) -> None:
    """Whatever a node names, its Kafka group is ``<prefix>consumer.<group>``: it never moves an
    application's group, nor another deployment's."""
    write(kafka_bootstrap, topic, [{"n": 1}], partition=0)
    app_group = f"app-{uuid.uuid4().hex[:8]}"
    batch = await read(settings, {"topic": topic, "group": app_group, "timeout": 3})
    await commit(settings, batch)
    probe = Consumer(
        {"bootstrap.servers": kafka_bootstrap, "group.id": f"{settings.prefix}consumer.{app_group}"}
    )
    assert probe.committed([TopicPartition(topic, 0)], timeout=10)[0].offset == 1
    probe.close()
    untouched = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": app_group})
    assert untouched.committed([TopicPartition(topic, 0)], timeout=10)[0].offset < 0
    untouched.close()


async def test_a_topic_that_does_not_exist_fails_the_node(settings: Settings) -> None:
    with pytest.raises(ApplicationError) as failure:
        await read(settings, {"topic": f"feed-missing-{uuid.uuid4().hex[:6]}", "group": "g", "timeout": 1})
    assert failure.value.type == "TopicNotFound" and failure.value.non_retryable


async def test_a_batch_ends_before_the_record_past_max_bytes(
    settings: Settings, topic: str, kafka_bootstrap: str
) -> None:
    write(kafka_bootstrap, topic, [{"pad": "x" * 90} for _ in range(3)], partition=0)  # ~100 bytes each
    input = {"topic": topic, "group": f"g-{uuid.uuid4().hex[:8]}", "max_bytes": 250, "timeout": 5}
    first = await read(settings, input)
    assert first["count"] == 2 and first["offsets"] == {"0": 2}
    await commit(settings, first)
    assert (await read(settings, input))["count"] == 1  # the one left out comes next
