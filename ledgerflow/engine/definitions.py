"""Registered DAG definitions: a compacted topic every engine (and gateway) reads in full.

Definitions are few and small, and any partition may start a run of one, so
each node keeps them all in memory, like a Kafka Streams global table.
"""

from __future__ import annotations

import logging
import threading

from confluent_kafka import KafkaError, TopicPartition

from ledgerflow import kafkaclients as clients
from ledgerflow.config import Settings
from ledgerflow.schemas.dag import DagDefinition

log = logging.getLogger("ledgerflow.definitions")


class DefinitionTable:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._definitions: dict[str, DagDefinition] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._consumer = clients.consumer(settings, None, **{"enable.partition.eof": False})

    def start(self) -> None:
        topic = self.settings.topic("definitions")
        self._consumer.assign([TopicPartition(topic, 0, 0)])
        self._thread = threading.Thread(target=self._tail, name="definitions", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        self._consumer.close()

    def _tail(self) -> None:
        """Read the topic forever (only this thread uses the consumer)."""
        while not self._stop.is_set():
            for message in self._consumer.consume(num_messages=500, timeout=0.05):
                error = message.error()
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:  # noqa: SLF001
                        log.warning("definitions read error: %s", error)
                    continue
                self._apply(message.key(), message.value())

    def _apply(self, raw_key: bytes | None, value: bytes | None) -> None:
        key = (raw_key or b"").decode()
        if value is None:
            self._definitions.pop(key, None)
            return
        try:
            self._definitions[key] = DagDefinition.model_validate_json(value)
        except Exception as exc:  # whatever a record holds, this thread must go on reading
            log.error("bad definition %r in topic: %s", key, exc)

    def get(self, definition_id: str) -> DagDefinition | None:
        """The definition as read so far; never waits (the owner loop calls this).

        A start that names a definition not read yet is retried by the processor for a
        few seconds (``UNKNOWN_TYPE_GRACE``) rather than waited for here.
        """
        return self._definitions.get(definition_id)

    def all(self) -> list[DagDefinition]:
        return list(self._definitions.values())
