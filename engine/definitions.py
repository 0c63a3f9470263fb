"""Registered DAG definitions: a compacted topic every engine (and gateway) reads in full.

Definitions are few and small, and any partition may start a run of one, so
each node keeps them all in memory, like a Kafka Streams global table.
"""

from __future__ import annotations

import logging
import threading
import time

from confluent_kafka import KafkaError, TopicPartition

from ledgerflow.config import Settings
from ledgerflow.engine.kafka import clients
from ledgerflow.schemas.dag import DagDefinition

log = logging.getLogger("ledgerflow.definitions")


class DefinitionTable:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._definitions: dict[str, DagDefinition] = {}
        self._position = 0
        self._changed = threading.Condition()
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
        while not self._stop.is_set():
            for message in self._consumer.consume(num_messages=500, timeout=0.2):
                error = message.error()
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:  # noqa: SLF001
                        log.warning("definitions read error: %s", error)
                    continue
                key = (message.key() or b"").decode()
                value = message.value()
                with self._changed:
                    if value is None:
                        self._definitions.pop(key, None)
                    else:
                        try:
                            self._definitions[key] = DagDefinition.model_validate_json(value)
                        except ValueError as exc:
                            log.error("bad definition %r in topic: %s", key, exc)
                    self._position = message.offset() + 1
                    self._changed.notify_all()

    def get(self, definition_id: str, wait: float = 5.0) -> DagDefinition | None:
        """The definition, reading up to the topic's current end first if it is not known yet."""
        found = self._definitions.get(definition_id)
        if found is not None or wait <= 0:
            return found
        tp = TopicPartition(self.settings.topic("definitions"), 0)
        try:
            _, high = self._consumer.get_watermark_offsets(tp, timeout=wait, cached=False)
        except Exception:  # broker unreachable: answer with what we have
            return None
        deadline = time.monotonic() + wait
        with self._changed:
            while self._position < high and time.monotonic() < deadline:
                self._changed.wait(0.1)
        return self._definitions.get(definition_id)

    def all(self) -> list[DagDefinition]:
        return list(self._definitions.values())
