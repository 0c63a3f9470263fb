"""Long polls wake at the commit that changed their workflow, and only then
(ledgerflow/engine/commits.py, engine/loop.changed_workflows)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

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


async def test_a_listener_hears_every_commit_of_its_workflows_until_it_leaves() -> None:
    """A watch session's registration outlives any one request: commits made while nobody waits
    are kept for its next look, and ``unlisten`` leaves nothing behind."""
    notices = CommitNotices()
    listener = commits.CommitListener()
    notices.listen(listener, ["a", "b"])
    notices.committed({"a"})
    notices.committed({"c"})
    await asyncio.sleep(0)  # the wakes arrive through the loop
    assert listener.take_woken() == ({"a"}, False)
    notices.moved()
    await asyncio.sleep(0)
    assert listener.take_woken() == (set(), True)
    notices.unlisten(listener, ["a", "b"])
    notices.committed({"a", "b"})
    await asyncio.sleep(0)
    assert listener.take_woken() == (set(), False)
    assert notices._listening == {}
