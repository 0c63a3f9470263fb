"""Kafka from the event loop: acknowledged writes and metadata, without blocking it.

The confluent-kafka producer is served by one poll thread; each write awaits an
asyncio future that the delivery callback resolves (``acks=all``, murmur2, the
same client configuration every Ledgerflow producer uses).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from ledgerflow.api.errors import KafkaUnavailableError, PayloadTooLargeError
from ledgerflow.config import Settings
from ledgerflow.engine.kafka.clients import consumer, plain_producer
from ledgerflow.schemas.lifecycle import LifecycleEvent

_TOO_LARGE = {KafkaError.MSG_SIZE_TOO_LARGE}


@dataclass(frozen=True)
class Delivery:
    topic: str
    partition: int
    offset: int


class AsyncProducer:
    """An idempotent ``acks=all`` producer whose writes are awaitable."""

    def __init__(self, settings: Settings, timeout: float, max_message_bytes: int) -> None:
        self.timeout = timeout
        self.max_message_bytes = max_message_bytes
        self._producer: Producer = plain_producer(
            settings,
            **{
                "message.timeout.ms": int(timeout * 1000),
                "client.id": "ledgerflow-gateway",
            },
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="gateway-producer", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.05)

    async def send(self, topic: str, key: str, value: bytes, partition: int | None = None) -> Delivery:
        """Write one record (to ``partition``, else the key's); return once every in-sync replica has it."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Delivery] = loop.create_future()

        def settle(error: Any, message: Any) -> None:
            if future.done():
                return
            if error is not None:
                if error.code() in _TOO_LARGE:
                    future.set_exception(PayloadTooLargeError(len(value), self.max_message_bytes, "record"))
                else:
                    future.set_exception(KafkaUnavailableError(str(error)))
            else:
                future.set_result(Delivery(message.topic(), message.partition(), message.offset()))

        def on_delivery(error: Any, message: Any) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed while the write was in flight
                loop.call_soon_threadsafe(settle, error, message)

        try:
            if partition is None:
                self._producer.produce(topic, key=key.encode(), value=value, on_delivery=on_delivery)
            else:
                self._producer.produce(
                    topic, key=key.encode(), value=value, partition=partition, on_delivery=on_delivery
                )
        except BufferError as exc:
            raise KafkaUnavailableError(f"the producer's local queue is full ({exc})") from exc
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            if isinstance(error, KafkaError) and error.code() in _TOO_LARGE:
                raise PayloadTooLargeError(len(value), self.max_message_bytes, "record") from exc
            raise KafkaUnavailableError(str(exc)) from exc
        try:
            return await asyncio.wait_for(asyncio.shield(future), self.timeout)
        except TimeoutError as exc:
            raise KafkaUnavailableError(f"write not acknowledged within {self.timeout} s") from exc

    def topics(self, timeout: float) -> dict[str, int]:
        """Topic name -> partition count (a metadata request; blocks: call it in a thread)."""
        metadata = self._producer.list_topics(timeout=timeout)
        return {name: len(topic.partitions) for name, topic in metadata.topics.items()}

    def close(self) -> None:
        self._producer.flush(5)
        self._stop.set()
        self._thread.join(2)


def read_events(
    settings: Settings, limit: int, workflow_id: str | None, partition: int | None, timeout: float
) -> tuple[list[LifecycleEvent], bool]:
    """The last ``limit`` records of the events topic (of one partition, when given), oldest first.

    Blocking; returns ``(events, partial)`` where ``partial`` means the time limit
    cut the read short.
    """
    topic = settings.topic("events")
    reader: Consumer = consumer(settings, None, **{"enable.partition.eof": True})
    deadline = time.monotonic() + timeout
    partial = False
    found: list[LifecycleEvent] = []
    try:
        partitions = [partition] if partition is not None else list(range(settings.partitions))
        assignment = []
        for p in partitions:
            remaining = max(0.1, deadline - time.monotonic())
            try:
                low, high = reader.get_watermark_offsets(
                    TopicPartition(topic, p), timeout=remaining, cached=False
                )
            except KafkaException as exc:
                raise KafkaUnavailableError(f"cannot read {topic!r}: {exc}") from exc
            if high > low:
                assignment.append(TopicPartition(topic, p, max(low, high - limit)))
        if not assignment:
            return [], False
        reader.assign(assignment)
        pending = {tp.partition for tp in assignment}
        while pending:
            if time.monotonic() >= deadline:
                partial = True
                break
            for message in reader.consume(num_messages=500, timeout=0.1):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:  # noqa: SLF001 - librdkafka's name
                        pending.discard(message.partition())
                    continue
                try:
                    event = LifecycleEvent.model_validate_json(message.value() or b"")
                except ValueError:
                    continue
                if workflow_id is None or event.workflow_id == workflow_id:
                    found.append(event)
    finally:
        reader.close()
    found.sort(key=lambda e: e.time)
    return found[-limit:], partial
