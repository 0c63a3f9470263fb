"""PartitionOffsets: an executor commits only below the oldest task still running."""

from __future__ import annotations

import random

from ledgerflow.executors.offsets import PartitionOffsets


def commit(offsets: PartitionOffsets) -> int | None:
    """What the worker does: ask, and record what it committed."""
    value = offsets.committable()
    if value is not None:
        offsets.committed = value
    return value


def test_nothing_to_commit_before_any_task() -> None:
    assert PartitionOffsets().committable() is None


def test_in_order_completion_commits_one_past_the_last() -> None:
    offsets = PartitionOffsets()
    offsets.started(0)
    assert offsets.committable() is None  # offset 0 still running
    offsets.finished(0)
    assert commit(offsets) == 1
    assert offsets.committable() is None  # nothing new


def test_out_of_order_completion_never_passes_the_oldest_in_flight() -> None:
    offsets = PartitionOffsets()
    for offset in (10, 11, 12, 13):
        offsets.started(offset)
    offsets.finished(12)
    offsets.finished(13)
    assert commit(offsets) == 10  # 10 and 11 still run: resume from 10 on a crash
    offsets.finished(11)
    assert offsets.committable() is None  # 10 still blocks everything
    offsets.finished(10)
    assert commit(offsets) == 14


def test_slow_task_holds_the_watermark_while_others_flow() -> None:
    offsets = PartitionOffsets()
    offsets.started(5)  # slow
    for offset in range(6, 50):
        offsets.started(offset)
        offsets.finished(offset)
        value = offsets.committable()
        assert value is None or value <= 5
    offsets.finished(5)
    assert commit(offsets) == 50


def test_commit_never_moves_backwards() -> None:
    offsets = PartitionOffsets()
    offsets.started(3)
    offsets.finished(3)
    assert commit(offsets) == 4
    offsets.started(4)
    assert offsets.committable() is None
    offsets.finished(4)
    assert commit(offsets) == 5


def test_random_completion_order_is_always_safe() -> None:
    rng = random.Random(7)
    offsets = PartitionOffsets()
    pending = list(range(100, 300))
    for offset in pending:
        offsets.started(offset)
    rng.shuffle(pending)
    done: set[int] = set()
    for offset in pending:
        offsets.finished(offset)
        done.add(offset)
        value = commit(offsets)
        if value is not None:
            # everything below the committed offset has finished
            assert all(o in done for o in range(100, value))
            assert value == 300 or value not in done
    assert offsets.committed == 300


def test_rebase_drops_what_another_worker_committed_past_and_keeps_the_rest_in_flight() -> None:
    offsets = PartitionOffsets()
    for offset in range(3, 10):
        offsets.started(offset)
        if offset not in (3, 7, 9):
            offsets.finished(offset)
    offsets.rebase(8)  # another worker committed 8 meanwhile: 3 and 7 are its business now
    assert offsets.in_flight == {9}
    assert offsets.committable() == 9  # 8 ran here too; 9 still runs and holds the rest back
    offsets.finished(9)
    assert offsets.committable() == 10
