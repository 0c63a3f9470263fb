"""Partition assignment: restore on assign, close on revoke or loss."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import Consumer

from ledgerflow.engine import metrics
from ledgerflow.engine.context import EngineContext
from ledgerflow.engine.processor import PartitionProcessor
from ledgerflow.engine.state.keys import OWNER_KEY
from ledgerflow.engine.state.recovery import RestoreResult, open_and_restore
from ledgerflow.engine.state.standby import StandbyReplicas
from ledgerflow.engine.state.store import store_path
from ledgerflow.errors import DeploymentMovedError

log = logging.getLogger("ledgerflow.engine.rebalance")


@dataclass
class PartitionManager:
    """The partitions this node owns, each with its processor."""

    ctx: EngineContext
    data_dir: Path
    restore_consumer: Consumer
    processors: dict[int, PartitionProcessor] = field(default_factory=dict)
    restores: dict[int, RestoreResult] = field(default_factory=dict)
    restoring: set[int] = field(default_factory=set)
    moves: list[dict[str, object]] = field(default_factory=list)
    lag: dict[int, int] = field(default_factory=dict)
    """Inbox records not yet applied, per owned partition (as of the last batch)."""
    assigned_once: bool = False
    """True after the group's first assignment reached this node (even an empty one)."""
    publish: Callable[[dict[str, object]], None] = lambda _event: None
    fence: Callable[[str], bool] | None = None
    """Aborts a crashed previous owner's transaction (see recovery); None to only wait it out."""
    standby: StandbyReplicas | None = None
    """Warm copies of the partitions not owned here (``engine --standby``)."""
    live_producers: Callable[[], set[str] | None] | None = None
    """Transactional ids of the engines now in the group (None when it cannot be told)."""
    """Sends a cluster event (see ledgerflow.cluster) to the cluster topic."""

    def assign(self, partitions: list[int]) -> None:
        started = time.time()
        self.assigned_once = True
        if partitions:
            # Before the restore, so a node that dies restoring still shows as their holder.
            self.publish({"type": "PARTITIONS_ASSIGNING", "partitions": sorted(partitions), "at": started})
        restored_before = {p: self.restores.get(p) for p in partitions}
        if self.standby is not None:
            self.standby.release(partitions)  # its copies become the restore's starting point
        self.restoring.update(partitions)
        for p in partitions:
            if p not in self.processors:
                self._open(p, self.fence)
        self._fence_dead_owners(partitions)
        if self.standby is not None:
            self.standby.sync(set(self.processors))
        metrics.OWNED_PARTITIONS.set(len(self.processors))
        metrics.REBALANCES.labels(change="assigned").inc()
        restored = {
            p: r.records
            for p in partitions
            if (r := self.restores.get(p)) is not None and r is not restored_before[p]
        }
        self._record("assigned", partitions, started, restored_records=restored)

    def _open(self, p: int, fence: Callable[[str], bool] | None) -> None:
        """Open partition ``p``'s store, caught up with its changelog, and its processor."""
        store, result = open_and_restore(
            store_path(self.data_dir, self.ctx.settings.topic("changelog"), p),
            self.restore_consumer,
            self.ctx.settings.topic("changelog"),
            p,
            fence=fence,
        )
        if (moved_to := store.moved_to()) is not None:
            store.close()
            raise DeploymentMovedError(self.ctx.settings.prefix, moved_to)
        self.processors[p] = PartitionProcessor(p, store, self.ctx)
        self.restores[p] = result
        self.restoring.discard(p)

    def reload(self, partitions: list[int], reason: str) -> None:
        """Drop what the processors of ``partitions`` hold in memory and open them again from
        their stores and changelogs, as of the last commit (after a failed one: ``reason``).
        The partitions stay owned here; only a failed restore gives them up."""
        started = time.time()
        for p in partitions:
            self._close(p)
        self.restoring.update(partitions)
        try:
            for p in partitions:
                # No fencing: this node is the partition's owner, or lost it to a live one that
                # the next poll will tell it about (its open transaction must not be aborted).
                self._open(p, None)
        except Exception:
            for p in partitions:
                self._close(p)
            metrics.OWNED_PARTITIONS.set(len(self.processors))
            raise
        metrics.REBALANCES.labels(change="reloaded").inc()
        self._record("reloaded", partitions, started, reason=reason[:500])

    def _close(self, p: int) -> None:
        processor = self.processors.pop(p, None)
        self.lag.pop(p, None)
        if processor is not None:
            processor.cache.clear()
            processor.store.close()
        self.restoring.discard(p)

    def _fence_dead_owners(self, partitions: list[int]) -> None:
        """Fence previous owners that left the group without giving their partitions up.

        A node killed inside a transaction leaves it open until ``transaction.timeout.ms``,
        and read_committed readers of every topic it wrote (task queues, events, the
        changelog) wait behind it. Fencing its transactional id aborts it at once.
        """
        if self.fence is None or self.live_producers is None:
            return
        own = self.ctx.transactional_id
        previous: dict[str, list[int]] = {}
        for p in partitions:
            processor = self.processors.get(p)
            owner = processor.store.get(OWNER_KEY) if processor else None
            if owner is not None and owner.decode() != own:
                previous.setdefault(owner.decode(), []).append(p)
        live = self.live_producers() if previous else None
        if live is None:
            return
        for dead in sorted(set(previous) - live):
            held = sorted(previous[dead])
            log.warning("fencing %s: it owned partitions %s and left the group", dead, held)
            metrics.FAILOVERS.inc()
            if self.fence(dead):
                self.publish({"type": "OWNER_FENCED", "fenced": dead, "partitions": held, "at": time.time()})

    def revoke(self, partitions: list[int], reason: str) -> None:
        started = time.time()
        for p in partitions:
            self._close(p)
        if self.standby is not None and reason != "closed":
            self.standby.sync(set(self.processors))  # keep what we gave up warm
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
