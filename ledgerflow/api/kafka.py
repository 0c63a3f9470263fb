"""Kafka from the event loop: acknowledged writes and metadata, without blocking it.

The confluent-kafka producer is served by one poll thread; each write awaits an
asyncio future that the delivery callback resolves (``acks=all``, murmur2, the
same client configuration every Ledgerflow producer uses).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from ledgerflow.api.errors import KafkaUnavailableError, PayloadTooLargeError
from ledgerflow.config import Settings
from ledgerflow.kafkaclients import plain_producer

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
