"""A client's waits, held on the engine node between its requests: ``POST /internal/watches/{session}``.

A client with hundreds of starts and results awaited at once (``asyncio.gather`` over
``AsyncClient`` calls) adds each wait to its session on the node once; every request of the
session is answered with the session's waits that ended since the last answer, as soon as one
has. Each wait travels to the node once and its answer back once, however many commits it waits
through. (A watch that forgot its waits between requests had the client send every wait still
pending again with each request, and the node parse and register them again: with 500 runs open,
each commit cost the node a look at all of them, measured at an eighth of a core on the HTTP
thread that shares the owner loop's interpreter.)

One request of a session is held at a time: a newer one takes over and the held one is answered
at once (``superseded``) with what it had. The session's waits stay registered for the commits
of their workflows (``CommitNotices``) between requests, so a commit while no request is held is
looked at by the next. A session no request came for in ``WATCH_SESSION_IDLE`` seconds is
dropped with its waits; a client that expects its waits held (``resume``) hears 409 from a node
that does not know the session, and adds them again under a new one.

Everything here runs on the HTTP server's event loop: no locks.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ledgerflow.engine.commits import CommitListener, CommitNotices
from ledgerflow.schemas.owner import (
    MAX_HELD_WAITS,
    MAX_SESSION_WAITS,
    MAX_WATCH_SESSIONS,
    WATCH_SESSION_IDLE,
    WatchAnswerJson,
    WatchItemJson,
    WatchRequestJson,
    WatchResultJson,
)

log = logging.getLogger(__name__)

Look = Callable[[WatchItemJson, bool], WatchAnswerJson | None]
"""A wait's answer if it ended (or, when final, as it stands; never None then), else None."""


class UnknownSession(Exception):
    """The client expects waits held under a session this node does not know (409)."""


class TooManyWaits(Exception):
    """The node holds as many waits or sessions as it may (429): nothing of the request was added."""


@dataclass
class _Held:
    """The request of a session being held."""

    superseded: bool = False
    taken_over: asyncio.Event = field(default_factory=asyncio.Event)
    """Set by the newer request of the session: the held one answers with what it has."""


@dataclass
class _Session:
    listener: CommitListener
    used: float
    waits: dict[int, tuple[WatchItemJson, float]] = field(default_factory=dict)
    """key -> (the wait, its deadline)."""
    by_workflow: dict[str, set[int]] = field(default_factory=dict)
    to_look: set[int] = field(default_factory=set)
    """Keys added, or whose workflow a commit changed, not looked at since."""
    deadlines: list[tuple[float, int]] = field(default_factory=list)
    """A heap of (deadline, key): a wake looks at what is due without scanning every wait. An
    entry whose wait was answered or replaced stays until it comes up, and is skipped then."""
    held: _Held | None = None

    def due(self, now: float) -> list[int]:
        """The keys of the waits whose deadline has come."""
        keys = []
        while self.deadlines and self.deadlines[0][0] <= now:
            deadline, key = heapq.heappop(self.deadlines)
            if self._current(deadline, key):
                keys.append(key)
        return keys

    def next_deadline(self) -> float:
        """The earliest deadline of a wait held (``inf`` with none)."""
        while self.deadlines and not self._current(*self.deadlines[0]):
            heapq.heappop(self.deadlines)
        return self.deadlines[0][0] if self.deadlines else math.inf

    def _current(self, deadline: float, key: int) -> bool:
        held = self.waits.get(key)
        return held is not None and held[1] == deadline


class WatchSessions:
    """Every client's watch session on this node."""

    def __init__(
        self, notices: CommitNotices, look: Look, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._notices = notices
        self._look = look
        self._clock = clock
        self._sessions: dict[str, _Session] = {}
        self._held_waits = 0
        self._swept = clock()

    @property
    def held_waits(self) -> int:
        """Waits held across every session."""
        return self._held_waits

    async def poll(self, session_id: str, request: WatchRequestJson) -> WatchResultJson:
        """Add ``request``'s waits to the session, then answer the session's waits that ended,
        as soon as one has (or ``seconds``, or a newer request of the session, end the hold)."""
        now = self._clock()
        self._sweep(now)
        session = self._session(session_id, request)
        self._add(session, request["items"], now)
        if session.held is not None:  # one request held at a time: the newer takes over
            session.held.superseded = True
            session.held.taken_over.set()
        held = session.held = _Held()
        hold_ends = now + request["seconds"]
        answers: list[WatchAnswerJson] = []
        try:
            while True:
                now = self._clock()
                changed, everything = session.listener.take_woken()  # before the looks: no commit is missed
                if everything:
                    session.to_look.update(session.waits)
                else:
                    session.to_look.update(key for wid in changed for key in session.by_workflow.get(wid, ()))
                session.to_look.update(session.due(now))
                while session.to_look:
                    answer = self._look_at(session, session.to_look.pop(), now)
                    if answer is not None:
                        answers.append(answer)
                if answers or held.superseded or not session.waits or now >= hold_ends:
                    return {"answers": answers, "superseded": held.superseded}
                await self._wait(session, held, min(hold_ends, session.next_deadline()) - now)
        finally:
            if session.held is held:
                session.held = None
            session.used = self._clock()

    @staticmethod
    async def _wait(session: _Session, held: _Held, timeout: float) -> None:
        """Until a commit changed one of the session's workflows, a newer request took over, or
        ``timeout`` seconds. (The held request waits on its own event too: the newer one takes
        the commit notices it finds, clearing the session's, before this wait may have begun.)"""
        waits = [
            asyncio.ensure_future(session.listener.event.wait()),
            asyncio.ensure_future(held.taken_over.wait()),
        ]
        try:
            await asyncio.wait(waits, timeout=max(0.0, timeout), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()

    def _session(self, session_id: str, request: WatchRequestJson) -> _Session:
        session = self._sessions.get(session_id)
        if session is None and request["resume"]:
            raise UnknownSession(session_id)
        if session is None and len(self._sessions) >= MAX_WATCH_SESSIONS:
            raise TooManyWaits(f"this node keeps at most {MAX_WATCH_SESSIONS} watch sessions")
        added = len(request["items"])
        held = len(session.waits) if session is not None else 0
        if held + added > MAX_SESSION_WAITS or self._held_waits + added > MAX_HELD_WAITS:
            raise TooManyWaits(
                f"a session holds at most {MAX_SESSION_WAITS} waits, this node {MAX_HELD_WAITS} in all"
            )
        if session is None:
            session = self._sessions[session_id] = _Session(CommitListener(), self._clock())
        return session

    def _add(self, session: _Session, items: list[WatchItemJson], now: float) -> None:
        for item in items:
            key = item["key"]
            if key in session.waits:  # a key sent again replaces its wait
                self._remove(session, key)
            wid = item["workflow_id"]
            if wid not in session.by_workflow:
                self._notices.listen(session.listener, (wid,))  # before its first look
                session.by_workflow[wid] = set()
            session.by_workflow[wid].add(key)
            deadline = now + item["seconds"]
            session.waits[key] = (item, deadline)
            heapq.heappush(session.deadlines, (deadline, key))
            session.to_look.add(key)
            self._held_waits += 1

    def _look_at(self, session: _Session, key: int, now: float) -> WatchAnswerJson | None:
        held = session.waits.get(key)
        if held is None:
            return None
        item, deadline = held
        final = deadline <= now
        try:
            answer = self._look(item, final)
        except Exception as exc:  # this wait alone: its caller asks on its own
            log.exception("watch look failed", extra={"workflowId": item["workflow_id"]})
            answer = {"key": key, "status": 500, "body": f"{type(exc).__name__}: {exc}"}
        if answer is None and final:  # a look owes an answer at the deadline: never hold on
            answer = {"key": key, "status": 500, "body": "no answer at the wait's deadline"}
        if answer is not None:
            answer["key"] = key
            self._remove(session, key)
        return answer

    def _remove(self, session: _Session, key: int) -> None:
        item, _ = session.waits.pop(key)
        self._held_waits -= 1
        session.to_look.discard(key)
        wid = item["workflow_id"]
        keys = session.by_workflow[wid]
        keys.discard(key)
        if not keys:
            del session.by_workflow[wid]
            self._notices.unlisten(session.listener, (wid,))

    def _sweep(self, now: float) -> None:
        """Drop the sessions idle past ``WATCH_SESSION_IDLE`` (at most once a second)."""
        if now - self._swept < 1.0:
            return
        self._swept = now
        idle = [
            sid
            for sid, session in self._sessions.items()
            if session.held is None and now - session.used > WATCH_SESSION_IDLE
        ]
        for session_id in idle:
            self._drop(session_id)

    def _drop(self, session_id: str) -> None:
        session = self._sessions.pop(session_id)
        self._notices.unlisten(session.listener, list(session.by_workflow))
        self._held_waits -= len(session.waits)
