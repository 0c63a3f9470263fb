"""Kafka replaced by two small fakes, for the worker's commit logic alone."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import TopicPartition

TASKS = TopicPartition("tasks", 0)
"""The one task partition the fake consumer is assigned."""


class FakeProducer:
    """``send`` records the value and hands back a delivery future the test resolves or fails."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.deliveries: list[asyncio.Future[Any]] = []

    async def send(self, topic: str, value: bytes, key: bytes, partition: int | None) -> asyncio.Future[Any]:
        delivery: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.sent.append(value)
        self.deliveries.append(delivery)
        return delivery


class RecordingConsumer:
    """Assigned ``TASKS``; remembers every commit."""

    def __init__(self) -> None:
        self.commits: list[dict[TopicPartition, int]] = []

    def assignment(self) -> set[TopicPartition]:
        return {TASKS}

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))


class RebalancingConsumer(RecordingConsumer):
    """Also answers ``committed`` from ``broker`` (what the group committed, None: nothing)
    and remembers every ``seek``."""

    def __init__(self, broker: int | None) -> None:
        super().__init__()
        self.broker = broker
        self.seeks: list[tuple[TopicPartition, int | str]] = []

    async def committed(self, tp: TopicPartition) -> int | None:
        return self.broker

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append((tp, offset))

    async def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        self.seeks += [(tp, "beginning") for tp in partitions]
