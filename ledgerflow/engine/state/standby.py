"""Standby replicas: warm copies of the partitions this node does not own.

With ``engine --standby``, a background thread tails the changelog of every partition the
node does not own into its local RocksDB folder, checkpoint included. When the node takes
such a partition over (a failover, a rebalance), the restore reads only the tail after that
checkpoint instead of the whole changelog.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, KafkaError, Message, TopicPartition

from ledgerflow import kafkaclients as clients
from ledgerflow.config import Settings
from ledgerflow.engine.state.store import PartitionStore, store_path

log = logging.getLogger("ledgerflow.engine.standby")


class StandbyReplicas:
    """Tails the changelog of partitions handed to ``sync`` as not owned."""

    def __init__(self, settings: Settings, data_dir: Path) -> None:
        self.settings = settings
        self.data_dir = data_dir
        self.topic = settings.topic("changelog")
        self._consumer = clients.consumer(settings, None, **{"fetch.wait.max.ms": 100})
        self._stores: dict[int, PartitionStore] = {}
        # One lock for the consumer and the stores: the tailing thread and the owner loop
        # (taking a partition over) never use them at the same time.
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._tail, name="standby", daemon=True)
        self.applied = 0
        """Changelog records applied to standby copies (for observability and tests)."""

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        with self._lock:
            self._release(list(self._stores))
            self._consumer.close()

    def sync(self, owned: set[int]) -> None:
        """Watch every partition not in ``owned``; let go of the owned ones."""
        with self._lock:
            self._release([p for p in self._stores if p in owned])
            watch = [p for p in range(self.settings.partitions) if p not in owned and p not in self._stores]
            additions = []
            for p in watch:
                store = PartitionStore(store_path(self.data_dir, self.topic, p))
                checkpoint = store.changelog_offset()
                self._stores[p] = store
                additions.append(
                    TopicPartition(
                        self.topic, p, checkpoint + 1 if checkpoint is not None else OFFSET_BEGINNING
                    )
                )
            if additions:
                self._consumer.incremental_assign(additions)

    def release(self, partitions: list[int]) -> None:
        """Close the copies of partitions this node is about to own (before its restore opens them)."""
        with self._lock:
            self._release([p for p in partitions if p in self._stores])

    def _release(self, partitions: list[int]) -> None:
        if not partitions:
            return
        self._consumer.incremental_unassign([TopicPartition(self.topic, p) for p in partitions])
        for p in partitions:
            self._stores.pop(p).close()

    def _tail(self) -> None:
        while not self._stop.is_set():
            with self._lock:
                applied = self._apply(self._consumer.consume(num_messages=2000, timeout=0))
            if not applied:
                self._stop.wait(0.05)

    def _apply(self, messages: list[Message]) -> int:
        changes: dict[int, dict[bytes, bytes | None]] = {}
        last: dict[int, int] = {}
        for message in messages:
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:  # noqa: SLF001
                    log.warning("standby read error: %s", error)
                continue
            p, offset, key = message.partition(), message.offset(), message.key()
            if p is None or offset is None or key is None or p not in self._stores:
                continue
            changes.setdefault(p, {})[key] = message.value()
            last[p] = offset
        for p, batch in changes.items():
            self._stores[p].write(batch, last[p])
            self.applied += len(batch)
        return len(messages)
