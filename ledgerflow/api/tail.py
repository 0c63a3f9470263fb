"""The gateway's one reader of the events and cluster topics, shared by every request.

``GET /api/v1/events`` and ``/cluster/events`` used to open a Kafka consumer per
request. Here one consumer, in one thread, follows the tail of every partition of
both topics and keeps each partition's latest records in a ring bounded by count
(the most a request may ask for) and by bytes (``events_buffer_bytes`` split among
the partitions). A request asks Kafka where each partition it reads ends (read
committed, one request for all of them), waits until the reader got there, so it
sees every event committed before it arrived, and answers from the rings.

The reader starts with the first request and lets go of its consumer and records
after ``TAIL_IDLE_SECONDS`` without one, so a gateway nobody asks for events does not
follow the topics.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import Consumer, IsolationLevel, KafkaError, KafkaException, Message, TopicPartition
from confluent_kafka.admin._listoffsets import OffsetSpec  # not re-exported by name
from prometheus_client import Counter

from ledgerflow import kafkaclients as clients
from ledgerflow import namespaces
from ledgerflow.api.errors import KafkaUnavailableError
from ledgerflow.api.settings import GatewaySettings
from ledgerflow.cluster import mark_failovers
from ledgerflow.config import PAGE_LIMIT
from ledgerflow.kafkaclients import consumer
from ledgerflow.schemas.lifecycle import LifecycleEvent

log = logging.getLogger("ledgerflow.gateway.tail")

TAIL_IDLE_SECONDS = 60.0
"""Without a request for this long, the reader closes its consumer and drops its records."""
EVENTS_WINDOW = PAGE_LIMIT
"""Records kept per events partition: the largest ``limit`` of ``GET /events``."""
CLUSTER_WINDOW = 4 * PAGE_LIMIT
"""Records kept of the cluster topic: four times the largest ``limit``, so that failover
marking sees the previous owners of the partitions the answer shows."""
OFFSET_TAIL_BASE = -2000
"""librdkafka's logical offset for "``n`` records before the end": ``OFFSET_TAIL_BASE - n``."""


@dataclass
class Ring:
    """The latest records of one partition, parsed, bounded by count and by bytes."""

    max_records: int
    max_bytes: int
    records: deque[Any] = field(default_factory=deque)
    sizes: deque[int] = field(default_factory=deque)
    size: int = 0
    trimmed: bool = False
    """Records were dropped for bytes: it may hold fewer than the partition's last ``max_records``."""
    position: int | None = None
    """The next offset to read (every record before it was seen); None until the first read."""

    def add(self, record: Any, size: int) -> None:
        self.records.append(record)
        self.sizes.append(size)
        self.size += size
        while len(self.records) > self.max_records:
            self._drop()
        while self.size > self.max_bytes and len(self.records) > 1:
            self._drop()
            self.trimmed = True

    def _drop(self) -> None:
        self.records.popleft()
        self.size -= self.sizes.popleft()

    def holds(self, wanted: int) -> bool:
        """Whether it has the partition's last ``wanted`` records (or all of them)."""
        return len(self.records) >= wanted or not self.trimmed


@dataclass(frozen=True)
class TailedTopic:
    name: str
    partitions: int
    window: int
    parse: Callable[[bytes], Any]


class EventTail:
    """Tails of the events and cluster topics for every request of one gateway process."""

    def __init__(self, settings: GatewaySettings, starts: Counter) -> None:
        self.settings = settings
        self.starts = starts
        """Counts the reader's starts (its first request, or the first after it idled)."""
        self.events = TailedTopic(
            settings.topic("events"), settings.partitions, EVENTS_WINDOW, LifecycleEvent.model_validate_json
        )
        self.cluster = TailedTopic(settings.topic("cluster"), 1, CLUSTER_WINDOW, json.loads)
        self._ring_bytes = settings.events_buffer_bytes // (self.events.partitions + self.cluster.partitions)
        self._admin = clients.admin(settings)
        self._lock = threading.Lock()
        """Guards the rings, the reader thread's handle and the time of the last request."""
        self._rings: dict[tuple[str, int], Ring] = {}
        self._thread: threading.Thread | None = None
        self._last_request = 0.0
        self._stop = threading.Event()

    # ------------------------------------------------------------------ requests
    async def lifecycle_events(
        self,
        limit: int,
        workflow_id: str | None,
        partition: int | None,
        timeout: float,
        namespace: str | None = None,
    ) -> tuple[list[LifecycleEvent], bool]:
        """The latest ``limit`` lifecycle events (of one workflow, on its partition; of one
        namespace), oldest first, and whether the answer may be missing some (the wait ran out,
        or records were dropped for the memory bound)."""
        partitions = [partition] if partition is not None else list(range(self.events.partitions))
        caught_up = await self._catch_up(self.events, partitions, timeout)

        def wanted(event: LifecycleEvent) -> bool:
            if workflow_id is not None and event.workflow_id != workflow_id:
                return False
            return namespace is None or namespaces.namespace_of(event.workflow_id) == namespace

        found: list[LifecycleEvent] = []
        complete = True
        with self._lock:  # newest first, each partition only until it gave ``limit`` matches
            for p in partitions:
                ring = self._ring(self.events, p)
                taken = list(itertools.islice((e for e in reversed(ring.records) if wanted(e)), limit))
                found += reversed(taken)  # oldest first, as sorting by time keeps ties in order
                complete = complete and (len(taken) == limit or ring.holds(self.events.window))
        found.sort(key=lambda e: e.time)
        return found[-limit:], not (caught_up and complete)

    async def cluster_events(self, limit: int, timeout: float) -> list[dict[str, Any]]:
        """The latest ``limit`` cluster events, oldest first, with failovers marked."""
        await self._catch_up(self.cluster, [0], timeout)
        with self._lock:
            window = [dict(e) for e in self._ring(self.cluster, 0).records]  # marking adds keys
        return mark_failovers(window)[-limit:]

    def _ring(self, topic: TailedTopic, partition: int) -> Ring:
        return self._rings.get((topic.name, partition)) or Ring(topic.window, self._ring_bytes)

    async def _catch_up(self, topic: TailedTopic, partitions: list[int], timeout: float) -> bool:
        """Wait until the reader has read every record committed before now; False when
        ``timeout`` ran out first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        self._wake()
        ends = await self._end_offsets(topic.name, partitions, timeout)
        while True:
            with self._lock:
                behind = [
                    p
                    for p in partitions
                    if (ring := self._rings.get((topic.name, p))) is None
                    or ring.position is None
                    or ring.position < ends[p]
                ]
            if not behind:
                return True
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.01)

    async def _end_offsets(self, topic: str, partitions: list[int], timeout: float) -> dict[int, int]:
        """Where each partition ends for a read-committed reader (one request to Kafka)."""
        latest = OffsetSpec.latest()  # type: ignore[no-untyped-call]
        futures = self._admin.list_offsets(
            {TopicPartition(topic, p): latest for p in partitions},
            isolation_level=IsolationLevel.READ_COMMITTED,
            request_timeout=timeout,
        )
        try:
            answers = await asyncio.wait_for(
                asyncio.gather(*(asyncio.wrap_future(f) for f in futures.values())), timeout
            )
        except (KafkaException, TimeoutError) as exc:
            raise KafkaUnavailableError(f"cannot read {topic!r}: {exc}") from exc
        return {tp.partition: answer.offset for tp, answer in zip(futures, answers, strict=True)}

    # -------------------------------------------------------------------- reader
    def _wake(self) -> None:
        """Note a request; start the reader (and its rings) if it is not running."""
        with self._lock:
            self._last_request = time.monotonic()
            if self._thread is not None:
                return
            for topic in (self.events, self.cluster):
                for p in range(topic.partitions):
                    self._rings[(topic.name, p)] = Ring(topic.window, self._ring_bytes)
            self._thread = threading.Thread(target=self._follow, name="gateway-event-tail", daemon=True)
            self._thread.start()
            self.starts.inc()

    def _follow(self) -> None:
        reader: Consumer | None = None
        try:
            reader = self._open()
            while not self._stop.is_set() and not self._idle():
                for message in reader.consume(num_messages=500, timeout=0.1):
                    self._take(message)
        except Exception:
            log.exception("the event tail stopped; the next request starts it again")
            with self._lock:
                self._thread = None
                self._rings.clear()
        finally:
            if reader is not None:
                reader.close()

    def _idle(self) -> bool:
        """True (and the reader's rings dropped) when no request came for a while."""
        with self._lock:
            if time.monotonic() - self._last_request < TAIL_IDLE_SECONDS:
                return False
            self._thread = None
            self._rings.clear()
            return True

    def _open(self) -> Consumer:
        reader = consumer(
            self.settings,
            None,
            **{
                "enable.partition.eof": True,
                "client.id": "ledgerflow-gateway-event-tail",
                "queued.max.messages.kbytes": 16384,  # librdkafka's prefetch, 64 MiB by default
            },
        )
        reader.assign(
            [
                TopicPartition(topic.name, p, OFFSET_TAIL_BASE - topic.window)
                for topic in (self.events, self.cluster)
                for p in range(topic.partitions)
            ]
        )
        return reader

    def _take(self, message: Message) -> None:
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        if topic is None or partition is None or offset is None:
            return
        error = message.error()
        if error is not None and error.code() != KafkaError._PARTITION_EOF:  # noqa: SLF001
            log.warning("event tail: %s", error)
            return
        tailed = self.events if topic == self.events.name else self.cluster
        record = None
        if error is None:
            value = message.value() or b""
            try:
                record = (tailed.parse(value), len(value))
            except ValueError:
                record = None  # not an event: skipped, as every reader of the topic does
        with self._lock:
            ring = self._rings.get((topic, partition))
            if ring is None:
                return
            if record is not None:
                ring.add(*record)
            ring.position = offset if error is not None else offset + 1

    def close(self) -> None:
        self._stop.set()
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join(2)
