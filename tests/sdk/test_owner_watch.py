"""The client's side of watch sessions (ledgerflow/owner_watch.py) against the node's side
(ledgerflow/engine/watch_sessions.py), with the HTTP hop replaced by a call: each wait travels
once, a node that lost the session gets the waits again, a failed exchange falls back to the
single long poll. (tests/engine/test_async_client.py runs both over HTTP on a real engine.)"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import aiohttp
from pydantic_core import to_json

from ledgerflow.engine.commits import CommitNotices
from ledgerflow.engine.watch_sessions import TooManyWaits, UnknownSession, WatchSessions
from ledgerflow.owner_reads import OwnerReads, OwnerResponse
from ledgerflow.owner_watch import OwnerWatch
from ledgerflow.schemas.owner import WatchAnswerJson, WatchItemJson, WatchRequestJson


class Node:
    """One engine node: its commit notices, its runs' statuses and its watch sessions."""

    def __init__(self) -> None:
        self.notices = CommitNotices()
        self.status: dict[str, str] = {}
        self.sessions = WatchSessions(self.notices, self.look)
        self.requests: list[WatchRequestJson] = []
        self.failing = False
        self.alone: list[str] = []
        self.refused = 0
        self.generation = 0
        self.first_delay = 0.0

    def look(self, item: WatchItemJson, final: bool) -> WatchAnswerJson | None:
        status = self.status.get(item["workflow_id"], "RUNNING")
        if status == "RUNNING" and not final:
            return None
        return {"key": -1, "status": 200, "body": {"status": status}}

    def close(self, workflow_id: str, status: str = "COMPLETED") -> None:
        self.status[workflow_id] = status
        self.notices.committed({workflow_id})

    def forget_sessions(self) -> None:
        """No session survives (the process restarted between two requests of the client)."""
        self.sessions = WatchSessions(self.notices, self.look)

    def restart(self) -> None:
        """A new process at the same address: the requests it held end without an answer."""
        old = self.sessions
        self.generation += 1
        self.forget_sessions()
        for session in old._sessions.values():
            if session.held is not None:
                session.held.taken_over.set()


class Reads:
    """The parts of ``OwnerReads`` a watch uses, answered by ``Node``."""

    def __init__(self, node: Node) -> None:
        self.node = node

    async def current_owner(self, workflow_id: str) -> str:
        return "http://node"

    async def post(self, operation: str, url: str, body: Any, timeout: float) -> OwnerResponse:
        if self.node.failing:
            raise TimeoutError
        if self.node.first_delay:  # this request overtaken by the next
            delay, self.node.first_delay = self.node.first_delay, 0.0
            await asyncio.sleep(delay)
        self.node.requests.append(body)
        generation = self.node.generation
        try:
            result = await self.node.sessions.poll(url.rsplit("/", 1)[1], body)
            if self.node.generation != generation:
                raise aiohttp.ServerDisconnectedError()
        except UnknownSession:
            self.node.refused += 1
            return OwnerResponse(409, b"{}")
        except TooManyWaits:
            return OwnerResponse(429, b"{}")
        return OwnerResponse(200, to_json(result))

    async def closed(self, workflow_id: str, run_id: str | None, seconds: float) -> Any:
        self.node.alone.append(workflow_id)
        return {"status": self.node.status.get(workflow_id, "RUNNING"), "alone": True}


def watch_of(node: Node) -> OwnerWatch:
    return OwnerWatch(cast(OwnerReads, Reads(node)))


async def test_each_wait_travels_once_however_many_requests_the_session_makes() -> None:
    node = Node()
    watch = watch_of(node)
    waits = [asyncio.ensure_future(watch.closed(f"w{i}", None, 20)) for i in range(30)]
    await asyncio.sleep(0.05)
    for i in range(30):  # thirty commits, thirty answers, in whatever requests were held
        node.close(f"w{i}")
        await asyncio.sleep(0.005)
    answers = await asyncio.wait_for(asyncio.gather(*waits), 5)
    assert [a["status"] for a in answers] == ["COMPLETED"] * 30
    sent = [item["workflow_id"] for body in node.requests for item in body["items"]]
    assert sorted(sent) == sorted(f"w{i}" for i in range(30))  # none sent twice
    assert node.alone == [] and node.sessions.held_waits == 0
    await watch.close()


async def test_a_node_restarted_under_a_held_request_gets_the_waits_again() -> None:
    node = Node()
    watch = watch_of(node)
    waits = [asyncio.ensure_future(watch.closed(wid, None, 20)) for wid in ("a", "b")]
    await asyncio.sleep(0.05)
    node.restart()  # the held request fails: the waits go to a new session, not to single polls
    await asyncio.sleep(0.05)
    node.close("a")
    node.close("b")
    answers = await asyncio.wait_for(asyncio.gather(*waits), 5)
    assert [a["status"] for a in answers] == ["COMPLETED"] * 2
    assert node.alone == [] and node.sessions.held_waits == 0
    await watch.close()


async def test_a_request_overtaken_by_the_next_does_not_lose_the_session() -> None:
    """The request that creates the session may arrive after the next one: that one does not
    ask the node to hold what it has not heard of yet (no 409, no second session)."""
    node = Node()
    node.first_delay = 0.05
    watch = watch_of(node)
    first = asyncio.ensure_future(watch.closed("a", None, 20))
    await asyncio.sleep(0.01)
    second = asyncio.ensure_future(watch.closed("b", None, 20))
    await asyncio.sleep(0.1)
    node.close("a")
    node.close("b")
    await asyncio.wait_for(asyncio.gather(first, second), 5)
    assert node.refused == 0 and len(node.sessions._sessions) == 1 and node.alone == []
    await watch.close()


async def test_a_node_that_lost_the_session_gets_the_waits_again() -> None:
    node = Node()
    watch = watch_of(node)
    node.close("z")
    await watch.closed("z", None, 20)  # the node has answered this session once
    first = asyncio.ensure_future(watch.closed("a", None, 20))
    await asyncio.sleep(0.05)
    node.forget_sessions()  # a request still held on the old one; the next is refused: 409
    node.close("b")
    second = asyncio.ensure_future(watch.closed("b", None, 20))  # resumes: 409, then both again
    assert (await asyncio.wait_for(second, 5))["status"] == "COMPLETED"
    node.close("a")
    assert (await asyncio.wait_for(first, 5))["status"] == "COMPLETED"
    assert node.refused == 1 and node.alone == []
    await watch.close()


async def test_an_exchange_that_fails_twice_falls_back_to_the_single_long_poll() -> None:
    node = Node()
    node.failing = True
    watch = watch_of(node)
    assert await asyncio.wait_for(watch.closed("a", None, 20), 5) == {"status": "RUNNING", "alone": True}
    assert node.alone == ["a"]
    await watch.close()
