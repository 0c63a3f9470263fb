"""Long polls wake at the commit that changed their workflow, and only then
(ledgerflow/engine/commits.py, engine/loop.changed_workflows)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from ledgerflow.engine import commits
from ledgerflow.engine.checkpoint import StoreChanges
from ledgerflow.engine.commits import CommitNotices
from ledgerflow.engine.loop import changed_workflows
from ledgerflow.engine.state import keys
from ledgerflow.engine.state.store import PartitionStore


async def woken(notices: CommitNotices, workflow_id: str, poke: object, timeout: float = 0.3) -> bool:
    """Whether a read listening on ``workflow_id`` wakes before ``timeout`` after ``poke()``."""
    with notices.listening(workflow_id) as commit:
        asyncio.get_running_loop().call_soon(poke)  # type: ignore[arg-type]
        started = time.monotonic()
        await commit.wait(timeout)
        return time.monotonic() - started < timeout / 2


async def test_a_commit_wakes_the_reads_of_the_workflows_it_changed_and_no_other() -> None:
    notices = CommitNotices()
    assert await woken(notices, "a", lambda: notices.committed({"a", "c"}))
    assert not await woken(notices, "a", lambda: notices.committed({"b"}))
    assert await woken(notices, "a", notices.moved)  # a partition moved: every read looks again
    assert notices._listening == {}


def test_the_changed_workflows_are_read_from_run_and_request_keys(tmp_path: Path) -> None:
    store = PartitionStore(tmp_path / "p0")
    changes: dict[bytes, bytes | None] = {
        keys.run_key("ns/a"): b"{}",
        keys.request_key("b", "q1"): b"r1",
        keys.history_key("c", "r", 1): b"{}",  # history alone: its run state changed too, or nothing waits
        keys.OPEN_RUNS: b"1",
    }
    assert changed_workflows([StoreChanges(0, store, changes)]) == {"ns/a", "b"}
    store.close()


def test_commits_are_numbered_so_a_wait_carried_over_is_looked_at_only_after_a_change() -> None:
    notices = CommitNotices()
    notices.committed({"a"})
    looked = notices.sequence  # a look made now sees commit 1
    assert not notices.changed_since("a", looked)
    notices.committed({"b"})
    assert not notices.changed_since("a", looked) and notices.changed_since("b", looked)
    notices.committed({"a"})
    assert notices.changed_since("a", looked)
    after_move = notices.sequence
    notices.moved()  # a partition moved: every wait is looked at again
    assert notices.changed_since("c", after_move)
    assert CommitNotices().epoch != notices.epoch  # a number from another process means nothing


def test_a_forgotten_change_still_counts_as_a_change(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(commits, "REMEMBERED_CHANGES", 2)
    notices = CommitNotices()
    looked = notices.sequence
    for wid in ("a", "b", "c"):  # "a" is pushed out of what is remembered
        notices.committed({wid})
    assert notices.changed_since("a", looked)
    assert not notices.changed_since("a", notices.sequence)
