"""A worker's adverts: which activities it serves on its queue (``ledgerflow/schemas/workers.py``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from typing import Any

from aiokafka import AIOKafkaProducer
from confluent_kafka import KafkaException
from pydantic import TypeAdapter

from ledgerflow import activity, kafkaclients
from ledgerflow.config import Settings
from ledgerflow.dag.node_types import ALL_BUILTINS, KAFKA_CONSUMER_COMMIT
from ledgerflow.schemas.workers import ADVERT_EVERY, ServedActivity, WorkerAdvert, advert_key

log = logging.getLogger("ledgerflow.worker")
TOMBSTONE_WAIT = 3.0
"""Seconds a stopping worker waits for its tombstone to be written (else its advert ages out)."""


def worker_name() -> str:
    """This process, as its adverts name it: host, pid and a random part (pids are reused)."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


def input_schema(definition: activity.ActivityDefinition) -> dict[str, Any] | None:
    """The JSON Schema of an activity's arguments, from its type hints; None when it has none."""
    types = definition.param_types
    if not types:
        return None
    try:
        if len(types) == 1:
            return TypeAdapter(types[0]).json_schema()
        schemas = [TypeAdapter(t).json_schema() for t in types]
        return {"type": "array", "prefixItems": schemas, "minItems": len(schemas), "maxItems": len(schemas)}
    except Exception:  # a hint pydantic cannot describe: the activity is served all the same
        return None


def served(activities: dict[str, activity.ActivityDefinition]) -> list[ServedActivity]:
    """The worker's own activities (the built-ins are published by the gateway itself)."""
    own = sorted(name for name in activities if name not in ALL_BUILTINS and name != KAFKA_CONSUMER_COMMIT)
    adverts = []
    for name in own:
        schema = input_schema(activities[name])
        one = len(activities[name].param_types) == 1
        takes_object = schema is None or schema.get("type") in (None, "object")
        adverts.append(ServedActivity(name=name, input_schema=schema, dag_node=one and takes_object))
    return adverts


class Advertiser:
    """Writes the worker's advert on start and every ``ADVERT_EVERY`` seconds, a tombstone on stop.

    An advert that cannot be written is logged and tried again at the next turn: the worker
    serves its queue either way (only the gateway's palette lags)."""

    def __init__(self, settings: Settings, queue: str, activities: list[ServedActivity]) -> None:
        self.settings = settings
        self.topic = settings.topic("workers")
        self.queue = queue
        self.activities = activities
        self.worker = worker_name()
        self.key = advert_key(queue, self.worker)

    async def run(self, producer: AIOKafkaProducer, stop: asyncio.Event) -> None:
        # Written only once the engine created the topic: a write to a missing one may have the
        # broker create it (auto.create.topics.enable) with another layout than the engine's.
        while not stop.is_set() and not await asyncio.to_thread(self._topic_exists):
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), ADVERT_EVERY)
        if stop.is_set():
            return
        while not stop.is_set():
            advert = WorkerAdvert(
                worker=self.worker, queue=self.queue, activities=self.activities, seen_at=time.time()
            )
            await self._send(producer, advert.model_dump_json().encode())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), ADVERT_EVERY)
        # gone: the gateway stops offering what it served (briefly: a stop must not wait on Kafka)
        await self._send(producer, None, TOMBSTONE_WAIT)

    def _topic_exists(self) -> bool:
        try:  # a metadata request that may not create the topic (librdkafka's producer default would)
            admin = kafkaclients.admin(self.settings, **{"allow.auto.create.topics": False})
            found = admin.list_topics(self.topic, timeout=10).topics.get(self.topic)
        except KafkaException as exc:
            log.warning("could not look for %s: %s", self.topic, exc)
            return False
        exists = found is not None and found.error is None and bool(found.partitions)
        if not exists:
            log.warning("%s does not exist (yet): this worker's activities are not advertised", self.topic)
        return exists

    async def _send(self, producer: AIOKafkaProducer, value: bytes | None, wait: float = 5.0) -> None:
        try:
            await asyncio.wait_for(producer.send_and_wait(self.topic, value, key=self.key), wait)
        except Exception as exc:
            log.warning("could not write this worker's advert to %s: %s", self.topic, exc)
