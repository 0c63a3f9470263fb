"""Records the kafka.produce built-in may write: to allow-listed topics of the worker's own cluster.

``check_topic`` is the allow-list every Kafka built-in applies (kafka.consumer's too).

The cluster and the client settings are the worker's (its ``Settings``), never the input's: an
input naming a ``bootstrap`` is refused. This deployment's own topics (those starting with its
prefix: inbox, changelog, task queues, events) and Kafka's internal ones (``__*``) are refused
even when the allow-list would match them: a record there would forge commands or state.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer

from ledgerflow.config import Settings
from ledgerflow.errors import PayloadTooLarge
from ledgerflow.executors.aiokafka_config import client_options
from ledgerflow.executors.sandbox.refusal import Refused
from ledgerflow.executors.sandbox.settings import BuiltinSettings, env_name

BUILTIN = "kafka.produce"
KAFKA_INTERNAL = "__"
"""Prefix of Kafka's own topics (``__consumer_offsets``, ``__transaction_state``)."""


def builtin_producer(settings: Settings) -> AIOKafkaProducer:
    """The producer kafka.produce writes with: the worker's cluster, with the worker's settings
    (its TLS and SASL credentials included, so the broker's ACLs apply to it too)."""
    return AIOKafkaProducer(**client_options(settings), acks="all", enable_idempotence=True)


@dataclass(frozen=True)
class Record:
    topic: str
    key: bytes | None
    value: bytes


class TopicSandbox:
    """Writes kafka.produce records within the worker's settings."""

    def __init__(
        self,
        builtin_settings: BuiltinSettings,
        settings: Settings,
        producer: Callable[[Settings], AIOKafkaProducer] = builtin_producer,
    ) -> None:
        self.patterns = builtin_settings.produce_topics
        self.settings = settings
        self.producer = producer

    async def produce(self, input: dict[str, Any]) -> dict[str, Any]:
        """Write ``input``'s record and say where it landed, or ``Refused`` (nothing written)."""
        record = self.record(input)
        producer = self.producer(self.settings)
        await producer.start()
        try:
            meta = await producer.send_and_wait(record.topic, record.value, key=record.key)
        finally:
            await producer.stop()
        return {"topic": meta.topic, "partition": meta.partition, "offset": meta.offset}

    def record(self, input: dict[str, Any]) -> Record:
        """The record ``input`` asks for, once checked against the sandbox."""
        if "bootstrap" in input:
            raise Refused(
                BUILTIN, "the 'bootstrap' input is not accepted: it writes to the worker's own cluster"
            )
        topic = input.get("topic")
        if not isinstance(topic, str) or not topic:
            raise Refused(BUILTIN, "the input has no 'topic' string")
        self._check_topic(topic)
        key = input.get("key")
        if key is not None and not isinstance(key, str):
            raise Refused(BUILTIN, "'key' must be a string")
        value = input.get("value")
        record = Record(
            topic,
            key.encode() if key is not None else None,
            value.encode() if isinstance(value, str) else json.dumps(value).encode(),
        )
        try:
            self.settings.check_size(
                "max_record_bytes",
                len(record.key or b"") + len(record.value),
                lambda: f"the record for topic {topic!r}",
            )
        except PayloadTooLarge as exc:
            raise Refused(BUILTIN, str(exc)) from None
        return record

    def _check_topic(self, topic: str) -> None:
        check_topic(BUILTIN, topic, self.patterns, "produce_topics", self.settings.prefix)


def check_topic(builtin: str, topic: str, patterns: tuple[str, ...], setting: str, prefix: str) -> None:
    """``Refused`` unless ``topic`` matches one of ``patterns`` (the sandbox setting ``setting``)
    and is neither this deployment's (``prefix``) nor Kafka's own."""
    if topic.startswith(prefix):
        raise Refused(builtin, f"topic {topic!r} is one of this deployment's (prefix {prefix!r})")
    if topic.startswith(KAFKA_INTERNAL):
        raise Refused(builtin, f"topic {topic!r} is internal to Kafka")
    if not any(_matches(pattern, topic) for pattern in patterns):
        raise Refused(builtin, f"topic {topic!r} is not allowed (setting {env_name(setting)})")


def _matches(pattern: str, topic: str) -> bool:
    """True when ``topic`` is ``pattern``, or starts with it less its final ``*``."""
    if pattern.endswith("*"):
        return topic.startswith(pattern[:-1])
    return topic == pattern
