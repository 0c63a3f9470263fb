"""Durable timers: an index in the partition store, ordered by fire time.

The store holds the truth; a heap mirrors it in memory so finding due timers
costs nothing per batch. Timers fire inside the owner's next transaction, so
after a failover the new owner has them all. A timer that no longer matters
(its activity completed, its run closed) is dropped when it fires.
"""

from __future__ import annotations

import heapq
import math

from ledgerflow.engine.state import keys
from ledgerflow.engine.state.models import TimerEntry
from ledgerflow.engine.state.store import PartitionStore, StoreTransaction

MAX_FIRE_AT = 253402300799.0
"""9999-12-31: later (or infinite) fire times are refused rather than overflowing the key."""


class TimerIndex:
    """Timers of one partition."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, bytes]] = []

    @classmethod
    def load(cls, store: PartitionStore) -> TimerIndex:
        index = cls()
        for key, value in store.scan(keys.TIMER):
            entry = TimerEntry.model_validate_json(value)
            index._heap.append((entry.fire_at, key))
        heapq.heapify(index._heap)
        return index

    def add(self, txn: StoreTransaction, entry: TimerEntry) -> None:
        if not math.isfinite(entry.fire_at) or entry.fire_at > MAX_FIRE_AT:
            raise ValueError(f"a timer cannot fire at {entry.fire_at!r} (seconds since the epoch)")
        key = keys.timer_key(entry.fire_at, entry.workflow_id, entry.tag)
        txn.put(key, entry.model_dump_json().encode())
        heapq.heappush(self._heap, (entry.fire_at, key))

    def cancel(self, txn: StoreTransaction, fire_at: float, workflow_id: str, tag: str) -> None:
        """Delete a timer set by ``add``; its heap entry is skipped when it comes due."""
        txn.delete(keys.timer_key(fire_at, workflow_id, tag))

    def next_fire_at(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def pop_due(self, txn: StoreTransaction, now: float, limit: int) -> list[TimerEntry]:
        """Remove and return up to ``limit`` timers due at ``now``."""
        due: list[TimerEntry] = []
        while self._heap and self._heap[0][0] <= now and len(due) < limit:
            _, key = heapq.heappop(self._heap)
            raw = txn.get(key)
            if raw is None:  # cancelled, or a duplicate heap entry
                continue
            txn.delete(key)
            due.append(TimerEntry.model_validate_json(raw))
        return due

    def __len__(self) -> int:
        return len(self._heap)
