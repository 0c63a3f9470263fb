"""The activities live workers serve, as they advertise them on ``<prefix>workers``
(``ledgerflow/schemas/workers.py``): for ``GET /api/v1/node-types`` and DAG registration, so a
DAG may name any served activity without the gateway importing the workers' code.

The topic is compacted and small (a record per worker process): it is read whole, from the
start to its end, at most every ``CACHE_SECONDS``, in a thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, KafkaException, TopicPartition
from pydantic import ValidationError

from ledgerflow import kafkaclients
from ledgerflow.config import Settings
from ledgerflow.schemas.workers import ADVERT_FRESH, WorkerAdvert

log = logging.getLogger("ledgerflow.gateway")

CACHE_SECONDS = 5.0
"""How long one read of the topic answers for."""
READ_TIMEOUT = 5.0


@dataclass
class ServedType:
    """An activity some live worker serves."""

    name: str
    queues: set[str] = field(default_factory=set)
    input_schema: dict[str, Any] | None = None
    dag_node: bool = False
    """Whether a DAG node may name it (one argument a JSON object fits)."""


class ServedActivities:
    """What live workers advertise, read at most every ``CACHE_SECONDS``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._served: dict[str, ServedType] = {}
        self._read_at = float("-inf")
        self._lock = asyncio.Lock()

    async def current(self) -> dict[str, ServedType]:
        """Activity name -> who serves it; empty when the topic cannot be read now."""
        async with self._lock:
            if time.monotonic() - self._read_at > CACHE_SECONDS:
                try:
                    self._served = await asyncio.to_thread(self._read)
                except (KafkaException, TimeoutError) as exc:  # the last answer stands meanwhile
                    log.warning("could not read the workers' adverts: %s", exc)
                self._read_at = time.monotonic()
            return self._served

    def _read(self) -> dict[str, ServedType]:
        topic = self.settings.topic("workers")
        consumer = kafkaclients.consumer(self.settings, None)
        adverts: dict[bytes, WorkerAdvert] = {}
        try:
            found = consumer.list_topics(topic, timeout=READ_TIMEOUT).topics.get(topic)
            if found is None or found.error is not None or not found.partitions:
                why = found.error if found is not None and found.error is not None else "it does not exist"
                log.warning("no worker adverts in %s: %s", topic, why)
                return {}
            partitions = sorted(found.partitions)
            ends = {
                p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=READ_TIMEOUT)[1]
                for p in partitions
            }
            consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
            left = {p for p, end in ends.items() if end > 0}
            deadline = time.monotonic() + READ_TIMEOUT
            while left and time.monotonic() < deadline:
                for message in consumer.consume(500, 0.5):
                    if message.error() is not None:
                        continue
                    partition, offset = int(message.partition() or 0), int(message.offset() or 0)
                    if offset + 1 >= ends[partition]:
                        left.discard(partition)
                    key, value = message.key(), message.value()
                    if not isinstance(key, bytes):
                        continue
                    if value is None:
                        adverts.pop(key, None)  # the worker stopped
                        continue
                    try:
                        adverts[key] = WorkerAdvert.model_validate_json(value)
                    except ValidationError:
                        continue  # not an advert: nothing to offer from it
            if left:
                raise TimeoutError(f"{topic} not read to its end within {READ_TIMEOUT} s")
        finally:
            consumer.close()
        now = time.time()
        served: dict[str, ServedType] = {}
        for advert in adverts.values():
            if now - advert.seen_at > ADVERT_FRESH:
                continue  # a worker that died without saying so
            for activity in advert.activities:
                entry = served.setdefault(activity.name, ServedType(activity.name))
                entry.queues.add(advert.queue)
                entry.input_schema = entry.input_schema or activity.input_schema
                entry.dag_node = entry.dag_node or activity.dag_node
        return served
