"""The gateway's Kafka writes: ``ledgerflow.kafka_writes.KafkaWriter``, its errors answered as
the gateway's (413 for a record the broker refuses for its size, 503 otherwise)."""

from __future__ import annotations

from ledgerflow.api.errors import KafkaUnavailableError, PayloadTooLargeError
from ledgerflow.config import Settings
from ledgerflow.errors import KafkaWriteError
from ledgerflow.kafka_writes import Delivery, KafkaWriter


class AsyncProducer:
    """An idempotent ``acks=all`` producer whose writes are awaitable."""

    def __init__(self, settings: Settings, timeout: float, max_message_bytes: int) -> None:
        self.timeout = timeout
        self.max_message_bytes = max_message_bytes
        self._writer = KafkaWriter(settings, timeout, "ledgerflow-gateway")

    async def send(self, topic: str, key: str, value: bytes, partition: int | None = None) -> Delivery:
        """Write one record (to ``partition``, else the key's); return once every in-sync replica has it."""
        try:
            return await self._writer.send(topic, key, value, partition)
        except KafkaWriteError as exc:
            if exc.too_large:
                raise PayloadTooLargeError(len(value), self.max_message_bytes, "record") from exc
            raise KafkaUnavailableError(exc.reason) from exc

    def topics(self, timeout: float) -> dict[str, int]:
        """Topic name -> partition count (a metadata request; blocks: call it in a thread)."""
        return self._writer.topics(timeout)

    def close(self) -> None:
        self._writer.close()
