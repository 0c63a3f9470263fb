"""Watch sessions (ledgerflow/engine/watch_sessions.py): a client's waits stay on the node between
its requests, each looked at when added and then only at the commits of its workflow."""

from __future__ import annotations

import asyncio
import time
from collections import Counter

import pytest

from ledgerflow.engine import watch_sessions
from ledgerflow.engine.commits import CommitNotices
from ledgerflow.engine.watch_sessions import TooManyWaits, UnknownSession, WatchSessions
from ledgerflow.schemas.owner import WATCH_SESSION_IDLE, WatchAnswerJson, WatchItemJson, WatchRequestJson


class Runs:
    """Run statuses the fake look reads, and how often each workflow was looked at."""

    def __init__(self) -> None:
        self.status: dict[str, str] = {}
        self.looks: Counter[str] = Counter()

    def look(self, item: WatchItemJson, final: bool) -> WatchAnswerJson | None:
        wid = item["workflow_id"]
        self.looks[wid] += 1
        if self.status.get(wid) == "BROKEN":
            raise RuntimeError("the store is closing")
        status = self.status.get(wid, "RUNNING")
        if status == "RUNNING" and not final:
            return None
        return {"key": -1, "status": 200, "body": status}


def wait(key: int, workflow_id: str, seconds: float = 5.0) -> WatchItemJson:
    return {"key": key, "kind": "closed", "workflow_id": workflow_id, "run_id": None, "seconds": seconds}


def request(*items: WatchItemJson, seconds: float = 5.0, resume: bool = False) -> WatchRequestJson:
    return {"seconds": seconds, "resume": resume, "items": list(items)}


async def settle() -> None:
    for _ in range(5):  # commit wakes arrive through the loop
        await asyncio.sleep(0)


async def test_a_wait_is_looked_at_when_added_then_only_at_the_commits_of_its_workflow() -> None:
    notices, runs = CommitNotices(), Runs()
    sessions = WatchSessions(notices, runs.look)
    held = asyncio.ensure_future(sessions.poll("s", request(wait(0, "a"), wait(1, "b"))))
    await settle()
    notices.committed({"c"})  # another workflow: nobody looks
    await settle()
    assert not held.done() and runs.looks == {"a": 1, "b": 1}
    runs.status["a"] = "COMPLETED"
    notices.committed({"a"})
    result = await asyncio.wait_for(held, 2)
    assert result == {"answers": [{"key": 0, "status": 200, "body": "COMPLETED"}], "superseded": False}
    assert runs.looks == {"a": 2, "b": 1}
    # a commit while no request of the session is held is looked at by the next one
    runs.status["b"] = "FAILED"
    notices.committed({"b"})
    await settle()
    result = await asyncio.wait_for(sessions.poll("s", request(resume=True)), 2)
    assert result["answers"] == [{"key": 1, "status": 200, "body": "FAILED"}]
    assert runs.looks == {"a": 2, "b": 2} and sessions.held_waits == 0
    assert notices._listening == {}  # no registration outlives its waits


async def test_a_newer_request_of_the_session_takes_over_the_held_one() -> None:
    notices, runs = CommitNotices(), Runs()
    sessions = WatchSessions(notices, runs.look)
    first = asyncio.ensure_future(sessions.poll("s", request(wait(0, "a"))))
    await settle()
    second = asyncio.ensure_future(sessions.poll("s", request(wait(1, "b"), resume=True)))
    assert await asyncio.wait_for(first, 2) == {"answers": [], "superseded": True}
    runs.status["a"] = "COMPLETED"  # the first request's wait is answered by the held one
    notices.committed({"a"})
    assert (await asyncio.wait_for(second, 2))["answers"][0]["key"] == 0
    assert sessions.held_waits == 1


async def test_each_wait_is_answered_as_it_stands_at_its_own_deadline() -> None:
    notices, runs = CommitNotices(), Runs()
    sessions = WatchSessions(notices, runs.look)
    began = time.monotonic()
    result = await sessions.poll("s", request(wait(0, "short", 0.2), wait(1, "long", 5.0)))
    assert result["answers"] == [{"key": 0, "status": 200, "body": "RUNNING"}]
    assert 0.15 < time.monotonic() - began < 2
    assert sessions.held_waits == 1  # the long one is held on for the next request
    began = time.monotonic()
    assert (await sessions.poll("s", request(seconds=0.2, resume=True)))["answers"] == []
    assert time.monotonic() - began < 2  # the request's own hold ended it


async def test_a_resumed_session_the_node_does_not_hold_is_refused() -> None:
    sessions = WatchSessions(CommitNotices(), Runs().look)
    with pytest.raises(UnknownSession):
        await sessions.poll("lost", request(wait(0, "a"), resume=True))
    assert sessions.held_waits == 0


async def test_past_its_limits_a_request_adds_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watch_sessions, "MAX_SESSION_WAITS", 2)
    monkeypatch.setattr(watch_sessions, "MAX_WATCH_SESSIONS", 1)
    notices = CommitNotices()
    sessions = WatchSessions(notices, Runs().look)
    await sessions.poll("s", request(wait(0, "a"), seconds=0))
    with pytest.raises(TooManyWaits, match="at most 2 waits"):
        await sessions.poll("s", request(wait(1, "b"), wait(2, "c"), seconds=0, resume=True))
    with pytest.raises(TooManyWaits, match="at most 1 watch sessions"):
        await sessions.poll("t", request(wait(0, "d"), seconds=0))
    assert sessions.held_waits == 1 and set(notices._listening) == {"a"}


async def test_a_session_idle_past_its_time_is_dropped_with_its_waits() -> None:
    now = [1000.0]
    notices = CommitNotices()
    sessions = WatchSessions(notices, Runs().look, clock=lambda: now[0])
    await sessions.poll("idle", request(wait(0, "a", 30), seconds=0))
    now[0] += WATCH_SESSION_IDLE + 1
    await sessions.poll("busy", request(wait(0, "b", 30), seconds=0))
    assert sessions.held_waits == 1 and set(notices._listening) == {"b"}
    with pytest.raises(UnknownSession):  # its client hears it and adds its waits again
        await sessions.poll("idle", request(resume=True, seconds=0))


async def test_a_key_sent_again_replaces_its_wait() -> None:
    notices, runs = CommitNotices(), Runs()
    sessions = WatchSessions(notices, runs.look)
    await sessions.poll("s", request(wait(0, "a"), seconds=0))
    await sessions.poll("s", request(wait(0, "b"), seconds=0, resume=True))
    assert sessions.held_waits == 1 and set(notices._listening) == {"b"}


async def test_a_newer_request_takes_over_even_before_the_held_one_began_to_wait() -> None:
    sessions = WatchSessions(CommitNotices(), Runs().look)
    # Both scheduled at once: the second runs while the first's wait is still to begin.
    first = asyncio.ensure_future(sessions.poll("s", request(wait(0, "a"))))
    second = asyncio.ensure_future(sessions.poll("s", request(wait(1, "b"), resume=True)))
    assert await asyncio.wait_for(first, 1) == {"answers": [], "superseded": True}
    second.cancel()


async def test_a_look_that_fails_answers_its_wait_alone_and_the_rest_hold_on() -> None:
    notices, runs = CommitNotices(), Runs()
    sessions = WatchSessions(notices, runs.look)
    held = asyncio.ensure_future(sessions.poll("s", request(wait(0, "a"), wait(1, "b"))))
    await settle()
    runs.status["a"] = "BROKEN"
    runs.status["b"] = "COMPLETED"
    notices.committed({"a", "b"})
    result = await asyncio.wait_for(held, 2)
    by_key = {answer["key"]: answer for answer in result["answers"]}
    assert by_key[0]["status"] == 500 and "the store is closing" in by_key[0]["body"]
    assert by_key[1] == {"key": 1, "status": 200, "body": "COMPLETED"}
    assert sessions.held_waits == 0 and notices._listening == {}


async def test_a_refused_request_leaves_no_session_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(watch_sessions, "MAX_SESSION_WAITS", 1)
    sessions = WatchSessions(CommitNotices(), Runs().look)
    with pytest.raises(TooManyWaits):
        await sessions.poll("s", request(wait(0, "a"), wait(1, "b"), seconds=0))
    assert sessions._sessions == {}


async def test_a_replaced_wait_keeps_its_new_deadline_not_the_old_one() -> None:
    runs = Runs()
    sessions = WatchSessions(CommitNotices(), runs.look)
    await sessions.poll("s", request(wait(0, "a", 0.1), seconds=0))
    await sessions.poll("s", request(wait(0, "a", 5.0), seconds=0, resume=True))
    result = await sessions.poll("s", request(seconds=0.4, resume=True))
    assert result["answers"] == [] and sessions.held_waits == 1  # the 0.1 s deadline is gone
