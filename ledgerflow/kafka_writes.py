"""Kafka writes from an event loop: each write awaits its acknowledgement, none blocks the loop.

One confluent-kafka producer (``acks=all``, idempotent, murmur2: the client configuration
every Ledgerflow producer uses) served by one poll thread; each write awaits an asyncio future
its delivery callback resolves. Writes made together are batched by librdkafka itself
(``linger.ms``), so many concurrent writes cost a few requests, and one write waits for no batch.

Used by the gateway (``ledgerflow.api.kafka``) and the asyncio client. Not confluent-kafka's
``aio.AIOProducer``: it buffers writes in Python until 1,000 are waiting or a timer of at least
100 ms fires, which adds that delay to a lone start (docs/decisions/0008-async-client.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from ledgerflow.config import Settings
from ledgerflow.deadlines import settled_within
from ledgerflow.errors import KafkaWriteError
from ledgerflow.kafkaclients import plain_producer

_TOO_LARGE = {KafkaError.MSG_SIZE_TOO_LARGE}


@dataclass(frozen=True)
class Delivery:
    topic: str
    partition: int
    offset: int


class KafkaWriter:
    """An idempotent ``acks=all`` producer whose writes are awaitable.

    Raises ``KafkaWriteError`` (``too_large`` set for a record the broker refuses for its size)
    when a write is not acknowledged within ``timeout`` seconds or fails.
    """

    def __init__(self, settings: Settings, timeout: float, client_id: str) -> None:
        self.timeout = timeout
        self._producer: Producer = plain_producer(
            settings, **{"message.timeout.ms": int(timeout * 1000), "client.id": client_id}
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name=f"{client_id}-producer", daemon=True)
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
                future.set_exception(KafkaWriteError(topic, str(error), error.code() in _TOO_LARGE))
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
            raise KafkaWriteError(topic, f"the producer's local queue is full ({exc})") from exc
        except KafkaException as exc:
            error = exc.args[0] if exc.args else None
            too_large = isinstance(error, KafkaError) and error.code() in _TOO_LARGE
            raise KafkaWriteError(topic, str(exc), too_large) from exc
        try:
            return await settled_within(future, self.timeout)
        except TimeoutError as exc:
            raise KafkaWriteError(topic, f"not acknowledged within {self.timeout} s") from exc

    def topics(self, timeout: float) -> dict[str, int]:
        """Topic name -> partition count (a metadata request; blocks: call it in a thread)."""
        metadata = self._producer.list_topics(timeout=timeout)
        return {name: len(topic.partitions) for name, topic in metadata.topics.items()}

    def close(self, timeout: float = 5.0) -> None:
        """Flush what was written (blocks up to ``timeout`` s) and stop the poll thread."""
        self._producer.flush(timeout)
        self._stop.set()
        self._thread.join(2)
