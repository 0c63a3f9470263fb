"""Partition assignment: restore on assign, close on revoke or loss."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import Consumer

from ledgerflow.engine import metrics
from ledgerflow.engine.processor import EngineContext, PartitionProcessor
from ledgerflow.engine.state.recovery import RestoreResult, open_and_restore

log = logging.getLogger("ledgerflow.engine.rebalance")


@dataclass
class PartitionManager:
    """The partitions this node owns, each with its processor."""

    ctx: EngineContext
    data_dir: Path
    restore_consumer: Consumer
    lock: threading.RLock
    processors: dict[int, PartitionProcessor] = field(default_factory=dict)
    restores: dict[int, RestoreResult] = field(default_factory=dict)
    restoring: set[int] = field(default_factory=set)
    moves: list[dict[str, object]] = field(default_factory=list)
    assigned_once: bool = False
    """True after the group's first assignment reached this node (even an empty one)."""
    publish: Callable[[dict[str, object]], None] = lambda _event: None
    """Sends a cluster event (see ledgerflow.cluster) to the cluster topic."""

    def assign(self, partitions: list[int]) -> None:
        started = time.time()
        self.assigned_once = True
        if partitions:
            # Before the restore, so a node that dies restoring still shows as their holder.
            self.publish({"type": "PARTITIONS_ASSIGNING", "partitions": sorted(partitions), "at": started})
        restored_before = {p: self.restores.get(p) for p in partitions}
        self.restoring.update(partitions)
        for p in partitions:
            if p in self.processors:
                continue
            store, result = open_and_restore(
                self.data_dir / f"partition-{p}",
                self.restore_consumer,
                self.ctx.settings.topic("changelog"),
                p,
            )
            with self.lock:
                self.processors[p] = PartitionProcessor(p, store, self.ctx)
                self.restores[p] = result
                self.restoring.discard(p)
        metrics.OWNED_PARTITIONS.set(len(self.processors))
        metrics.REBALANCES.labels(change="assigned").inc()
        restored = {
            p: r.records
            for p in partitions
            if (r := self.restores.get(p)) is not None and r is not restored_before[p]
        }
        self._record("assigned", partitions, started, restored_records=restored)

    def revoke(self, partitions: list[int], reason: str) -> None:
        started = time.time()
        with self.lock:
            for p in partitions:
                processor = self.processors.pop(p, None)
                if processor is not None:
                    processor.store.close()
                self.restoring.discard(p)
        metrics.OWNED_PARTITIONS.set(len(self.processors))
        metrics.REBALANCES.labels(change=reason).inc()
        self._record(reason, partitions, started)

    def close(self) -> None:
        self.revoke(list(self.processors), "closed")

    def _record(self, change: str, partitions: list[int], started: float, **extra: object) -> None:
        entry: dict[str, object] = {
            "change": change,
            "partitions": sorted(partitions),
            "at": started,
            "seconds": time.time() - started,
            **extra,
        }
        self.moves.append(entry)
        del self.moves[:-200]
        log.info("partitions %s: %s in %.3f s", change, sorted(partitions), entry["seconds"])
        if partitions:
            self.publish({"type": f"PARTITIONS_{change.upper()}", **entry})
