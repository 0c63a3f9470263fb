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
        self._changed = threading.Condition()
        self._requested = 0
        self._served = 0
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
        """Read the topic forever; also answer catch-up requests (only this thread uses the consumer)."""
        tp = TopicPartition(self.settings.topic("definitions"), 0)
        target: tuple[int, int] | None = None  # (request number, high watermark to reach)
        while not self._stop.is_set():
            for message in self._consumer.consume(num_messages=500, timeout=0.05):
                error = message.error()
                if error is not None:
                    if error.code() != KafkaError._PARTITION_EOF:  # noqa: SLF001
                        log.warning("definitions read error: %s", error)
                    continue
                self._apply(message.key(), message.value())
            with self._changed:
                requested = self._requested
            if target is None and requested > self._served:
                try:
                    _, high = self._consumer.get_watermark_offsets(tp, timeout=2, cached=False)
                except Exception as exc:  # broker unreachable: give up on this request
                    log.warning("definitions catch-up failed: %s", exc)
                    high = -1
                target = (requested, high)
            if target is not None and self._read_position(tp) >= target[1]:
                with self._changed:
                    self._served = target[0]
                    self._changed.notify_all()
                target = None

    def _apply(self, raw_key: bytes | None, value: bytes | None) -> None:
        key = (raw_key or b"").decode()
        with self._changed:
            if value is None:
                self._definitions.pop(key, None)
                return
            try:
                self._definitions[key] = DagDefinition.model_validate_json(value)
            except ValueError as exc:
                log.error("bad definition %r in topic: %s", key, exc)

    def get(self, definition_id: str, wait: float = 2.0) -> DagDefinition | None:
        """The definition, reading up to the topic's current end first if it is not known yet."""
        found = self._definitions.get(definition_id)
        if found is not None or wait <= 0 or self._thread is None:
            return found
        deadline = time.monotonic() + wait
        with self._changed:
            self._requested += 1
            request = self._requested
            while self._served < request and time.monotonic() < deadline:
                self._changed.wait(0.05)
        return self._definitions.get(definition_id)

    def _read_position(self, tp: TopicPartition) -> int:
        # The consumer's position, not the last record's offset + 1: transaction
        # markers take offsets too, and the position moves past them.
        position = self._consumer.position([tp])[0].offset
        return int(position) if position >= 0 else 0

    def all(self) -> list[DagDefinition]:
        return list(self._definitions.values())
