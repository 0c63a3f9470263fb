"""The client's long polls, many to one request: ``POST /internal/watch`` on each engine node.

A client waiting for hundreds of start decisions and results at once (``asyncio.gather`` over
``AsyncClient`` calls) would otherwise hold one HTTP request per wait against the engine,
which serves them on the thread that shares the owner loop's interpreter: measured, two or three
requests per workflow cost the engine more than running the workflow did. Here the waits made in
one turn of the event loop for one node travel as one request; the node answers the ones that
ended as soon as one has (looking again only at the workflows each commit changed), and those
still waiting go out again with the next turn's, each with the node's ``since``: it looks at
them again only once their workflow changed, so a wait costs the node a look per change, not one
per request it travels in. Each wait is answered as its single long poll
(``OwnerReads.started``, ``OwnerReads.closed``) would answer it, and falls back to that poll when
its partition's owner is not known, has moved, does not have the route (an older engine) or
cannot be reached: the single poll routes, retries and raises as before.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, cast

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
    item: WatchItemJson
    deadline: float
    future: asyncio.Future[tuple[int, Any]]
    since: str | None = None
    """The node's ``since`` when this wait went unanswered: it looks again only after a change."""


class OwnerWatch:
    """Batches ``started`` and ``closed`` long polls per engine node (see the module's docstring)."""

    def __init__(self, reads: OwnerReads) -> None:
        self._reads = reads
        self._queued: dict[str, list[_Wait]] = {}
        self._unsupported: set[str] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    async def started(
        self, workflow_id: str, request_id: str, run_id: str, seconds: float
    ) -> StartOutcomeJson:
        """As ``OwnerReads.started``."""
        item: WatchItemJson = {
            "kind": "started",
            "workflow_id": workflow_id,
            "request_id": request_id,
            "run_id": run_id,
        }
        body = await self._wait(
            item, seconds, lambda left: self._reads.started(workflow_id, request_id, run_id, left)
        )
        return cast(StartOutcomeJson, body)

    async def closed(self, workflow_id: str, run_id: str | None, seconds: float) -> OwnedRunJson:
        """As ``OwnerReads.closed``."""
        item: WatchItemJson = {"kind": "closed", "workflow_id": workflow_id, "run_id": run_id}
        body = await self._wait(item, seconds, lambda left: self._reads.closed(workflow_id, run_id, left))
        return cast(OwnedRunJson, body)

    async def close(self) -> None:
        """Stop: what waits now falls back to the single long poll (which, once the reads are
        closed too, raises as any read would)."""
        self._closed = True
        for queued in self._queued.values():
            self._settle_all(queued, _Fallback())
        self._queued.clear()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _wait(
        self, item: WatchItemJson, seconds: float, alone: Callable[[float], Awaitable[Any]]
    ) -> Any:
        """``item`` answered by a batched request, or by ``alone(seconds left)``."""
        deadline = time.monotonic() + min(seconds, MAX_CLOSED_WAIT)
        url = await self._reads.current_owner(item["workflow_id"])
        if self._closed or url is None or url in self._unsupported or seconds < SHORTEST_BATCHED_WAIT:
            return await alone(seconds)
        loop = asyncio.get_running_loop()
        wait = _Wait(item, deadline, loop.create_future())
        self._enqueue(url, [wait])
        try:
            # bounded: whatever befalls the batch, this caller hears within its hold and a margin
            status, body = await settled_within(wait.future, deadline - time.monotonic() + ANSWER_MARGIN)
        except (_Fallback, TimeoutError):
            wait.future.cancel()  # if its batch still answers, nobody is left to hear it
            return await alone(max(0.0, deadline - time.monotonic()))
        if status == 200:
            return body
        if status == 404:
            raise WorkflowNotFoundError(item["workflow_id"])
        # 421 (moved) or another answer: the single poll routes and retries
        return await alone(max(0.0, deadline - time.monotonic()))

    def _enqueue(self, url: str, waits: list[_Wait]) -> None:
        queued = self._queued.setdefault(url, [])
        first = not queued
        queued.extend(w for w in waits if not w.future.done())
        if first and queued:  # one request for everything queued in this turn of the loop
            asyncio.get_running_loop().call_soon(self._flush, url)

    def _flush(self, url: str) -> None:
        waits = self._queued.pop(url, [])
        if self._closed:
            self._settle_all(waits, _Fallback())
            return
        for start in range(0, len(waits), MAX_WATCH_ITEMS):
            task = asyncio.ensure_future(self._send(url, waits[start : start + MAX_WATCH_ITEMS]))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, url: str, waits: list[_Wait]) -> None:
        try:
            await self._exchange(url, waits)
        except BaseException:
            self._settle_all(waits, _Fallback())  # cancelled or failed: each wait asks alone
            raise

    async def _exchange(self, url: str, waits: list[_Wait]) -> None:
        """One watch request for ``waits``: each held up to its own deadline, the request up to
        the furthest (an early answer for one does not end the others' waits)."""
        now = time.monotonic()
        holds = [round(max(0.0, w.deadline - now), 3) for w in waits]
        items: list[WatchItemJson] = []
        for wait, held in zip(waits, holds, strict=True):
            item: WatchItemJson = {**wait.item, "seconds": held}
            if wait.since is not None:
                item["since"] = wait.since
            items.append(item)
        hold = max(holds)
        body = {"seconds": hold, "items": items}
        try:
            response = await self._reads.post("watch", f"{url}/internal/watch", body, hold + ANSWER_MARGIN)
        except (aiohttp.ClientError, TimeoutError):
            self._settle_all(waits, _Fallback())
            return
        if response.status_code == 401:
            self._settle_all(waits, EngineAuthError(url))
            return
        if response.status_code != 200:
            if response.status_code in (404, 405):
                self._unsupported.add(url)  # an engine from before this route
            self._settle_all(waits, _Fallback())
            return
        result = cast(WatchResultJson, response.json())
        answered: set[int] = set()
        for answer in result["answers"]:
            index = answer["index"]
            if 0 <= index < len(waits) and not waits[index].future.done():
                waits[index].future.set_result((answer["status"], answer["body"]))
            answered.add(index)
        # What still waits goes out again with the next turn's waits, marked with what the node
        # saw of it: the node looks at it again only once its workflow changed.
        left = [w for i, w in enumerate(waits) if i not in answered]
        for wait in left:
            wait.since = result.get("since")
        self._enqueue(url, left)

    @staticmethod
    def _settle_all(waits: list[_Wait], error: Exception) -> None:
        for wait in waits:
            if not wait.future.done():
                wait.future.set_exception(error)
