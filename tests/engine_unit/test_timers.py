"""The timer index keeps only the next minute's timers in memory, and never fires one early."""

from __future__ import annotations

from pathlib import Path

from ledgerflow.engine.state import keys
from ledgerflow.engine.state.models import TimerEntry
from ledgerflow.engine.state.store import PartitionStore, StoreTransaction
from ledgerflow.engine.timers import WINDOW, TimerIndex

NOW = 1_795_000_000.0
WEEK = 7 * 24 * 3600.0


def timer(workflow_id: str, fire_at: float) -> TimerEntry:
    return TimerEntry(workflow_id=workflow_id, run_id="r", kind="timer", seq=1, fire_at=fire_at)


def commit(store: PartitionStore, txn: StoreTransaction) -> StoreTransaction:
    store.write(txn.changes, None)
    return StoreTransaction(store)


def test_far_timers_stay_in_the_store_until_they_come_near(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "p")
    index = TimerIndex(store)
    txn = StoreTransaction(store)
    assert index.pop_due(txn, NOW, 100) == []
    index.add(txn, timer("soon", NOW + 5))
    index.add(txn, timer("next-week", NOW + WEEK))
    assert len(index) == 1, "a timer a week out was kept in memory"
    txn = commit(store, txn)
    assert [t.workflow_id for t in index.pop_due(txn, NOW + 5, 100)] == ["soon"]
    assert index.next_fire_at() is not None and index.next_fire_at() <= NOW + WINDOW  # wakes to move on
    assert index.pop_due(txn, NOW + WEEK - 1, 100) == []
    assert len(index) == 1
    assert [t.workflow_id for t in index.pop_due(txn, NOW + WEEK, 100)] == ["next-week"]


def test_a_restarted_index_finds_stored_timers_and_fires_none_early(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "p")
    txn = StoreTransaction(store)
    TimerIndex(store).add(txn, timer("overdue", NOW - 100))
    TimerIndex(store).add(txn, timer("exact", NOW + 10.0005))
    TimerIndex(store).add(txn, timer("far", NOW + WEEK))
    txn = commit(store, txn)
    index = TimerIndex(store)  # as after a restart or a takeover
    assert index.next_fire_at() is not None and index.next_fire_at() <= NOW  # reads the store at once
    assert [t.workflow_id for t in index.pop_due(txn, NOW, 100)] == ["overdue"]
    assert index.pop_due(txn, NOW + 10.0004, 100) == [], "fired before its time"
    assert [t.workflow_id for t in index.pop_due(txn, NOW + 10.0005, 100)] == ["exact"]
    assert len(index) == 0


def test_timers_written_by_the_open_transaction_are_found_when_the_window_moves(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "p")
    index = TimerIndex(store)
    txn = StoreTransaction(store)
    index.pop_due(txn, NOW, 100)
    index.add(txn, timer("later", NOW + 2 * WINDOW))  # beyond the window, not committed yet
    assert [t.workflow_id for t in index.pop_due(txn, NOW + 2 * WINDOW, 100)] == ["later"]


def test_a_cancelled_timer_does_not_fire(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "p")
    index = TimerIndex(store)
    txn = StoreTransaction(store)
    entry = timer("w", NOW + 3)
    index.add(txn, entry)
    txn = commit(store, txn)
    index.cancel(txn, entry.fire_at, entry.workflow_id, entry.tag)
    assert index.pop_due(txn, NOW + 10, 100) == []


def test_a_timer_that_cannot_be_read_back_is_dropped_and_the_others_fire(tmp_path: Path) -> None:
    """One bad entry must not fail every batch of its partition (it used to, forever)."""
    store = PartitionStore(tmp_path / "p")
    index = TimerIndex(store)
    txn = StoreTransaction(store)
    index.add(txn, timer("good", NOW + 1))
    bad = keys.timer_key(NOW + 1, "bad", "timer:r:1:0")
    txn.put(bad, b'{"workflow_id": "bad", "fire_at": ' + b"[" * 300 + b"]" * 300 + b"}")
    txn = commit(store, txn)
    restarted = TimerIndex(store)  # reads both from the store
    assert [t.workflow_id for t in restarted.pop_due(txn, NOW + 1, 100)] == ["good"]
    assert txn.get(bad) is None, "the unreadable timer was kept, to fail again"
