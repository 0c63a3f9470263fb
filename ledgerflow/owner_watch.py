"""The client's long polls, many to one session: ``POST /internal/watches/{session}`` on each
engine node.

A client waiting for hundreds of start decisions and results at once (``asyncio.gather`` over
``AsyncClient`` calls) would otherwise hold one HTTP request per wait against the engine,
which serves them on the thread that shares the owner loop's interpreter. Here each wait is
added once to the client's session on its node (``ledgerflow/engine/watch_sessions.py``), with
the other waits made in the same turn of the event loop; the node keeps it, looks at it again at
each commit that changed its workflow, and answers it in whichever request of the session is
held when it ends. While waits are outstanding one request is held on the node; a request that
comes back sends the next, carrying the waits made meanwhile. Each wait travels once, however
many commits it waits through.

Each wait is answered as its single long poll (``OwnerReads.started``, ``OwnerReads.closed``)
would answer it, and falls back to that poll when its partition's owner is not known, has moved,
does not have the route (an older engine), cannot be reached or holds too many waits: the single
poll routes, retries and raises as before. A node that lost the session (it restarted, or the
session idled out) answers 409 and the waits it held are added again under a new session.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal, cast

import aiohttp

from ledgerflow.deadlines import settled_within
from ledgerflow.errors import EngineAuthError, WorkflowNotFoundError
from ledgerflow.owner_reads import OwnerReads
from ledgerflow.schemas.owner import (
    MAX_CLOSED_WAIT,
    MAX_WATCH_ITEMS,
    OwnedRunJson,
    StartOutcomeJson,
    WatchItemJson,
    WatchResultJson,
)

SHORTEST_BATCHED_WAIT = 0.05
"""Seconds below which a wait goes alone (a look, not a wait: batched, it would end every wait it
travelled with at once)."""
ANSWER_MARGIN = 10.0
"""Seconds a node may take beyond a request's hold to answer it."""


class _Fallback(Exception):
    """This wait is better asked alone (``OwnerReads``' single long poll)."""


@dataclass
class _Wait:
    kind: Literal["started", "closed"]
    workflow_id: str
    request_id: str | None
    run_id: str | None
    deadline: float
    future: asyncio.Future[tuple[int, Any]]

    def item(self, key: int, now: float) -> WatchItemJson:
        item: WatchItemJson = {
            "key": key,
            "kind": self.kind,
            "workflow_id": self.workflow_id,
            "run_id": self.run_id,
            "seconds": round(max(0.0, self.deadline - now), 3),
        }
        if self.request_id is not None:
            item["request_id"] = self.request_id
        return item


@dataclass
class _Session:
    """The waits this client holds on one engine node under one session id."""

    url: str
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    keys: itertools.count[int] = field(default_factory=itertools.count)
    outstanding: dict[int, _Wait] = field(default_factory=dict)
    """Added to the node's session, not answered yet."""
    queued: list[_Wait] = field(default_factory=list)
    """To add with the next request."""
    in_flight: int = 0
    flushing: bool = False
    confirmed: bool = False
    """The node answered a request of this session: it holds what was added before. (Until
    then a request does not ask it to: the one creating the session may still be on its way.)"""
    renewed_after_error: bool = False
    """This session took over the waits of one whose request failed: another failure ends it."""

    def awaited(self) -> bool:
        """Whether a wait of this session is still awaited by its caller."""
        waits = itertools.chain(self.queued, self.outstanding.values())
        return any(not wait.future.done() for wait in waits)


class OwnerWatch:
    """Holds ``started`` and ``closed`` long polls in one session per engine node (see the
    module's docstring)."""

    def __init__(self, reads: OwnerReads) -> None:
        self._reads = reads
        self._sessions: dict[str, _Session] = {}
        self._unsupported: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    async def started(
        self, workflow_id: str, request_id: str, run_id: str, seconds: float
    ) -> StartOutcomeJson:
        """As ``OwnerReads.started``."""
        body = await self._wait(
            "started",
            workflow_id,
            request_id,
            run_id,
            seconds,
            lambda left: self._reads.started(workflow_id, request_id, run_id, left),
        )
        return cast(StartOutcomeJson, body)

    async def closed(self, workflow_id: str, run_id: str | None, seconds: float) -> OwnedRunJson:
        """As ``OwnerReads.closed``."""
        body = await self._wait(
            "closed",
            workflow_id,
            None,
            run_id,
            seconds,
            lambda left: self._reads.closed(workflow_id, run_id, left),
        )
        return cast(OwnedRunJson, body)

    async def close(self) -> None:
        """Stop: what waits now falls back to the single long poll (which, once the reads are
        closed too, raises as any read would)."""
        self._closed = True
        for session in self._sessions.values():
            self._settle(session, _Fallback())
        self._sessions.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _wait(
        self,
        kind: Literal["started", "closed"],
        workflow_id: str,
        request_id: str | None,
        run_id: str | None,
        seconds: float,
        alone: Callable[[float], Awaitable[Any]],
    ) -> Any:
        """The wait's answer from the node's session, or ``alone(seconds left)``."""
        deadline = time.monotonic() + min(seconds, MAX_CLOSED_WAIT)
        url = await self._reads.current_owner(workflow_id)
        if self._closed or url is None or url in self._unsupported or seconds < SHORTEST_BATCHED_WAIT:
            return await alone(seconds)
        wait = _Wait(
            kind, workflow_id, request_id, run_id, deadline, asyncio.get_running_loop().create_future()
        )
        session = self._sessions.get(url)
        if session is None:
            session = self._sessions[url] = _Session(url)
        session.queued.append(wait)
        self._flush_soon(session)
        try:
            # bounded: whatever befalls the session, this caller hears within its hold and a margin
            status, body = await settled_within(wait.future, deadline - time.monotonic() + ANSWER_MARGIN)
        except (_Fallback, TimeoutError):
            wait.future.cancel()  # if the node still answers it, nobody is left to hear it
            return await alone(max(0.0, deadline - time.monotonic()))
        if status == 200:
            return body
        if status == 404:
            raise WorkflowNotFoundError(workflow_id)
        # 421 (moved) or another answer: the single poll routes and retries
        return await alone(max(0.0, deadline - time.monotonic()))

    def _flush_soon(self, session: _Session) -> None:
        """One request for what this turn of the loop queued (or, with nothing held, a poll)."""
        if not session.flushing:
            session.flushing = True
            asyncio.get_running_loop().call_soon(self._flush, session)

    def _flush(self, session: _Session) -> None:
        session.flushing = False
        if self._sessions.get(session.url) is not session:
            return  # replaced meanwhile: its waits went with the new session or were settled
        if self._closed:
            self._settle(session, _Fallback())
            return
        if not session.queued and (session.in_flight or not session.awaited()):
            return  # only outstanding waits, which a held request covers, or nothing awaited
        added = session.queued[:MAX_WATCH_ITEMS]
        del session.queued[:MAX_WATCH_ITEMS]
        if session.queued:
            self._flush_soon(session)  # the rest in the next request
        task = asyncio.ensure_future(self._send(session, added))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _send(self, session: _Session, added: list[_Wait]) -> None:
        session.in_flight += 1
        try:
            await self._exchange(session, added)
        except BaseException:
            self._end(session, _Fallback())  # cancelled or failed: each wait asks alone
            raise
        finally:
            session.in_flight -= 1
        if session.in_flight == 0 and session.awaited():
            self._flush_soon(session)  # a request held while waits are outstanding

    async def _exchange(self, session: _Session, added: list[_Wait]) -> None:
        """One request of ``session``: adds ``added``, then held until the session's waits that
        ended are answered (each wait ends by its own deadline, answered as it stands)."""
        now = time.monotonic()
        resume = session.confirmed and bool(session.outstanding)  # the node should hold them
        keyed = {next(session.keys): wait for wait in added if not wait.future.done()}
        session.outstanding.update(keyed)
        body = {
            "seconds": MAX_CLOSED_WAIT,
            "resume": resume,
            "items": [wait.item(key, now) for key, wait in keyed.items()],
        }
        url = f"{session.url}/internal/watches/{session.id}"
        try:
            response = await self._reads.post("watch", url, body, MAX_CLOSED_WAIT + ANSWER_MARGIN)
        except (aiohttp.ClientError, TimeoutError):
            # the node restarted, or the answer was lost on the way: once, add the waits again
            # under a new session; a second failure sends them to the single long poll
            if session.renewed_after_error:
                self._end(session, _Fallback())
            else:
                self._renew(session, after_error=True)
            return
        status = response.status_code
        if status == 409:  # the node lost the session: add what it held again, under a new one
            self._renew(session)
            return
        if status == 429:  # the node holds all it may: these waits ask alone
            for key in keyed:
                session.outstanding.pop(key, None)
            self._settle_waits(keyed.values(), _Fallback())
            return
        if status != 200:
            if status in (404, 405):
                self._unsupported.add(session.url)  # an engine from before this route
            self._end(session, EngineAuthError(session.url) if status == 401 else _Fallback())
            return
        session.confirmed = True
        session.renewed_after_error = False
        result = cast(WatchResultJson, response.json())
        for answer in result["answers"]:
            wait = session.outstanding.pop(answer["key"], None)
            if wait is not None and not wait.future.done():
                wait.future.set_result((answer["status"], answer["body"]))

    def _renew(self, session: _Session, after_error: bool = False) -> None:
        """``session``'s waits, outstanding and queued, added again under a new session id."""
        if self._sessions.get(session.url) is not session:
            return
        renewed = self._sessions[session.url] = _Session(session.url, renewed_after_error=after_error)
        waits = itertools.chain(session.outstanding.values(), session.queued)
        renewed.queued = [wait for wait in waits if not wait.future.done()]
        session.outstanding.clear()
        session.queued.clear()
        self._flush_soon(renewed)

    def _end(self, session: _Session, error: Exception) -> None:
        """Settle every wait of ``session`` with ``error``; later waits go in a new session."""
        self._settle(session, error)
        if self._sessions.get(session.url) is session:
            del self._sessions[session.url]

    def _settle(self, session: _Session, error: Exception) -> None:
        self._settle_waits([*session.outstanding.values(), *session.queued], error)
        session.outstanding.clear()
        session.queued.clear()

    @staticmethod
    def _settle_waits(waits: Any, error: Exception) -> None:
        for wait in waits:
            if not wait.future.done():
                wait.future.set_exception(error)
