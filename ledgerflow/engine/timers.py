"""Durable timers: an index in the partition store, ordered by fire time.

The store holds the truth (keys sort by fire time); the timers due within the
next ``WINDOW`` seconds are mirrored in a heap, so finding due timers costs
nothing per batch, while a partition holding a million far-off timers (7-day
signal timeouts, retention of closed runs) neither loads them at start nor
keeps them in memory. Timers fire inside the owner's next transaction, so after
a failover the new owner has them all. A timer that no longer matters (its
activity completed, its run closed) is dropped when it fires.
"""

from __future__ import annotations

import heapq
import logging
import math

from ledgerflow.engine.state import keys
from ledgerflow.engine.state.models import TimerEntry
from ledgerflow.engine.state.store import PartitionStore, StoreTransaction

log = logging.getLogger("ledgerflow.engine")
MAX_FIRE_AT = 253402300799.0
"""9999-12-31: later (or infinite) fire times are refused rather than overflowing the key."""


WINDOW = 60.0
"""Seconds ahead of now whose timers are kept in memory."""


class TimerIndex:
    """Timers of one partition: a heap of those due before the horizon, the rest in the store."""

    def __init__(self, store: PartitionStore) -> None:
        """An index over the store's timers; they are read in as they come within the window."""
        self._store = store
        self._heap: list[tuple[float, bytes]] = []
        self._horizon_ms = -1
        """Every stored timer due at or before this millisecond is in the heap (or was fired)."""

    def add(self, txn: StoreTransaction, entry: TimerEntry) -> None:
        if not math.isfinite(entry.fire_at) or entry.fire_at > MAX_FIRE_AT:
            raise ValueError(f"a timer cannot fire at {entry.fire_at!r} (seconds since the epoch)")
        key = keys.timer_key(entry.fire_at, entry.workflow_id, entry.tag)
        txn.put(key, entry.model_dump_json().encode())
        if keys.timer_millis(key) <= self._horizon_ms:
            heapq.heappush(self._heap, (entry.fire_at, key))

    def holds(self, txn: StoreTransaction, entry: TimerEntry) -> bool:
        """True when a timer with ``entry``'s key (fire time, workflow, tag) is set."""
        return txn.get(keys.timer_key(entry.fire_at, entry.workflow_id, entry.tag)) is not None

    def cancel(self, txn: StoreTransaction, fire_at: float, workflow_id: str, tag: str) -> None:
        """Delete a timer set by ``add``; its heap entry is skipped when it comes due."""
        txn.delete(keys.timer_key(fire_at, workflow_id, tag))

    def next_fire_at(self) -> float | None:
        """When the next timer fires, or when the window must move on (whichever is first)."""
        horizon = self._horizon_ms / 1000
        return min(self._heap[0][0], horizon) if self._heap else horizon

    def pop_due(self, txn: StoreTransaction, now: float, limit: int) -> list[TimerEntry]:
        """Remove and return up to ``limit`` timers due at ``now``."""
        if now + WINDOW / 2 > self._horizon_ms / 1000:
            self._advance(txn, now + WINDOW)
        due: list[TimerEntry] = []
        while self._heap and self._heap[0][0] <= now and len(due) < limit:
            _, key = heapq.heappop(self._heap)
            raw = txn.get(key)
            if raw is None:  # cancelled, or a duplicate heap entry
                continue
            txn.delete(key)
            entry = _read(key, raw)
            if entry is not None:
                due.append(entry)
        return due

    def _advance(self, txn: StoreTransaction, horizon: float) -> None:
        """Read the timers due up to ``horizon`` into the heap: committed ones from the store,
        and those written by the transaction in progress."""
        low, high = self._horizon_ms, int(horizon * 1000)
        found = dict(self._store.scan_range(keys.timer_bound(low + 1), keys.timer_bound(high + 1)))
        found.update(
            (key, value)
            for key, value in txn.changes.items()
            if value is not None and key.startswith(keys.TIMER) and low < keys.timer_millis(key) <= high
        )
        for key, value in found.items():
            entry = _read(key, value)
            if entry is None:
                txn.delete(key)
            else:
                heapq.heappush(self._heap, (entry.fire_at, key))
        self._horizon_ms = high

    def __len__(self) -> int:
        """Timers due within the window (the ones in memory)."""
        return len(self._heap)


def _read(key: bytes, raw: bytes) -> TimerEntry | None:
    """The timer stored under ``key``, or None (logged; the caller deletes it) when it cannot be
    read back: one bad entry must not fail every batch of its partition, forever."""
    try:
        return TimerEntry.model_validate_json(raw)
    except ValueError as exc:
        log.error("dropping a timer that cannot be read back, %r: %s", key[:120], str(exc)[:500])
        return None
