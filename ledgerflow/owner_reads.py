"""Reads about workflows, answered by the engine node that owns each one's partition.

One client of the engines' internal HTTP API (``ledgerflow/engine/http.py``, its answers typed in
``ledgerflow.schemas.owner``), used by the gateway and, on a private event loop, by the Python
``Client``. It holds what both must get the same way:

- **Routing.** The engine consumer group's membership is the routing table
  (``ledgerflow.routing.OwnerDirectory``). The gateway refreshes it in the background every
  ``ttl`` seconds; the Client reads it again when it is older than that.
- **Retries.** A read whose owner is unknown, answers 421 (the partition is moving) or cannot be
  reached is tried again after a fresh read of the group, within ``budget`` seconds in all;
  after ``attempts`` tries or the budget it fails with ``OwnerUnavailableError``.
- **Ids in URLs.** Every id and query name is one escaped path segment (``path_segment``).
- **Answers.** 404 is ``WorkflowNotFoundError``, 401 ``EngineAuthError``, a failed query
  ``QueryFailedError``, any other unexpected status ``OwnerResponseError``.
- **Every node at once.** Listings and node stats ask every member of the group together and say
  which partitions no node answered for.

aiohttp, not httpx: with a few requests in flight httpx's connection pool became the gateway's
bottleneck (docs/decisions/0004-aiohttp-for-owner-reads.md). Every request carries the engine
token (``ledgerflow.engine_token``) and never goes through a proxy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import aiohttp
import yarl
from pydantic_core import from_json, to_json

from ledgerflow.config import Settings
from ledgerflow.engine_token import bearer
from ledgerflow.errors import (
    EngineAuthError,
    OwnerResponseError,
    OwnerUnavailableError,
    QueryFailedError,
    ScheduleNotFoundError,
    WorkflowNotFoundError,
)
from ledgerflow.paging import merge_listings
from ledgerflow.routing import DirectorySnapshot, OwnerDirectory, path_segment
from ledgerflow.schemas.owner import (
    MAX_CLOSED_WAIT,
    AdmissionJson,
    CountJson,
    HistoryPageJson,
    ListingJson,
    NodeJson,
    OwnedRunJson,
    RunSummaryJson,
    ScheduleSummaryJson,
    StartOutcomeJson,
    UpdateStatusJson,
)
from ledgerflow.visibility import parse as parse_query

log = logging.getLogger("ledgerflow.owner_reads")


class ReadObserver(Protocol):
    """What an operator is shown of the reads (the gateway's Prometheus metrics)."""

    def read(self, operation: str, outcome: str, seconds: float) -> None: ...

    def unavailable(self, kind: str) -> None: ...

    def refreshed(self, trigger: str) -> None: ...


class Directory(Protocol):
    """Where partitions' owners are read from (``OwnerDirectory``: the engine group)."""

    def snapshot(self, refresh: bool = False) -> DirectorySnapshot: ...


class _Unobserved:
    def read(self, operation: str, outcome: str, seconds: float) -> None:
        pass

    def unavailable(self, kind: str) -> None:
        pass

    def refreshed(self, trigger: str) -> None:
        pass


@dataclass(frozen=True)
class OwnerResponse:
    """An engine node's answer, read whole."""

    status_code: int
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")

    def json(self) -> Any:
        """The body parsed (pydantic-core: a client with many runs in flight parses an answer
        at nearly every commit); ValueError when it is not JSON."""
        return from_json(self.body)


@dataclass(frozen=True)
class Member:
    """One engine node of the group, as its membership names it."""

    member_id: str
    url: str
    host: str
    partitions: list[int]

    @staticmethod
    def of(raw: Mapping[str, object]) -> Member:
        partitions = raw.get("partitions")
        return Member(
            member_id=str(raw.get("member_id") or ""),
            url=str(raw.get("url") or ""),
            host=str(raw.get("host") or ""),
            partitions=[int(p) for p in partitions] if isinstance(partitions, list) else [],
        )


@dataclass
class Listing:
    """A page of latest runs merged from every node (``ledgerflow.paging``)."""

    runs: list[RunSummaryJson]
    next_after: str | None
    missing_partitions: list[int] = field(default_factory=list)
    """Partitions no node answered for: their runs are not in the page."""


@dataclass
class Count:
    """How many runs a query matched, across every node."""

    count: int
    missing_partitions: list[int] = field(default_factory=list)


class OwnerReads:
    """Reads routed to partition owners, with a bounded budget (see the module's docstring)."""

    def __init__(
        self,
        settings: Settings,
        engine_token: str | None,
        *,
        budget: float,
        ttl: float,
        attempts: int = 2,
        pause: float = 0.0,
        retry_after: float = 1.0,
        observer: ReadObserver | None = None,
        directory: Directory | None = None,
        request_timeout: float | None = None,
    ) -> None:
        """``budget``: seconds one read may take in all. ``attempts``: tries of a read (the group
        is read again before each after the first), ``pause`` seconds apart. ``retry_after``: what
        ``OwnerUnavailableError`` advises. ``directory``: the engine group unless given.
        ``request_timeout``: seconds one owner may take to answer once reached (default: what
        is left of ``budget``); a slow answer (a query replaying a long history) needs more."""
        self.settings = settings
        self.engine_token = engine_token
        self.budget = budget
        self.ttl = ttl
        self.attempts = attempts
        self.pause = pause
        self.retry_after = retry_after
        self.request_timeout = request_timeout
        self.observer: ReadObserver = observer or _Unobserved()
        self.directory: Directory = directory or OwnerDirectory(settings, ttl=ttl)
        self._http: aiohttp.ClientSession | None = None
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="owner-directory")
        self._snapshot = DirectorySnapshot()
        self._inflight: asyncio.Future[DirectorySnapshot] | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._stale_refresh: asyncio.Future[DirectorySnapshot] | None = None

    # ------------------------------------------------------------- lifecycle
    async def start(self, background: bool = True) -> None:
        """Open the HTTP session; ``background``: read the group now and every ``ttl`` after
        (without, the first read reads it, as any read of a stale snapshot does)."""
        self._http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=200),
            timeout=aiohttp.ClientTimeout(total=self.budget),
            headers=bearer(self.engine_token),
            trust_env=False,
        )
        if not background:
            return
        try:
            await asyncio.wait_for(self.refresh("start"), 5.0)
        except TimeoutError:
            log.warning("engine group membership not readable yet; reads fail until it is")
        self._refresher = asyncio.create_task(self._refresh_forever(), name="owner-directory")

    async def close(self) -> None:
        for task in (self._refresher, self._stale_refresh):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self._http is not None:
            await self._http.close()

    # ------------------------------------------------------------- directory
    @property
    def snapshot(self) -> DirectorySnapshot:
        return self._snapshot

    async def refresh(self, trigger: str = "retry") -> DirectorySnapshot:
        """Read the group's membership now (concurrent callers share one read)."""
        if self._inflight is None or self._inflight.done():
            loop = asyncio.get_running_loop()
            self.observer.refreshed(trigger)
            self._inflight = asyncio.ensure_future(
                loop.run_in_executor(self._executor, lambda: self.directory.snapshot(refresh=True))
            )
        snapshot = await asyncio.shield(self._inflight)
        if snapshot.fetched_at < self._snapshot.fetched_at:
            return self._snapshot
        if snapshot.state == "Unreachable" and self._snapshot.owners:
            # Kafka did not answer: keep routing by the last known owners. That is safe, an
            # engine that no longer owns a partition answers 421.
            snapshot = DirectorySnapshot(
                self._snapshot.owners, self._snapshot.members, snapshot.state, snapshot.fetched_at
            )
        self._snapshot = snapshot
        return self._snapshot

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self.ttl)
            try:
                await self.refresh("timer")
            except Exception:  # keep the last snapshot; the next round tries again
                log.exception("reading the engine group failed")

    async def _current(self, deadline: float) -> DirectorySnapshot:
        """The snapshot to route by. A stale one (no background refresher, or a stalled one)
        is read again behind the read, which routes by the last owners known: stale routing is
        safe (an owner that moved answers 421) and keeps reads working while Kafka does not
        answer. Only with no owner known yet does the read wait for the group (until
        ``deadline``)."""
        limit = self.ttl if self._refresher is None else 2 * self.ttl
        if time.monotonic() - self._snapshot.fetched_at <= limit:
            return self._snapshot
        if self._snapshot.members:
            if self._stale_refresh is None or self._stale_refresh.done():
                self._stale_refresh = asyncio.ensure_future(self.refresh("stale"))
            return self._snapshot
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.refresh("stale"), max(0.0, deadline - time.monotonic()))
        return self._snapshot

    def partition(self, workflow_id: str) -> int:
        """The workflow's shard under the deployment's partitioner (murmur2 unless configured)."""
        return self.settings.partition_of(workflow_id)

    def owner(self, partition: int) -> str | None:
        """The URL of the partition's owner, as last read (None: no owner)."""
        return self._snapshot.owners.get(partition) or None

    async def current_owner(self, workflow_id: str) -> str | None:
        """The URL of the owner of ``workflow_id``'s partition, the group read again behind this
        call when the last read is stale (and waited for, up to ``budget``, when none was made)."""
        snapshot = await self._current(time.monotonic() + self.budget)
        return snapshot.owners.get(self.partition(workflow_id)) or None

    def members(self) -> list[Member]:
        return [Member.of(m) for m in self._snapshot.members]

    def member_of(self, partition: int) -> str | None:
        """The group member id of the partition's owner, as last read."""
        return next((m.member_id for m in self.members() if partition in m.partitions), None)

    # --------------------------------------------------------- typed reads
    async def run(self, workflow_id: str, operation: str = "status") -> OwnedRunJson:
        """The latest run of ``workflow_id`` as its owner has committed it."""
        response = await self._ok(operation, workflow_id, f"/internal/workflows/{path_segment(workflow_id)}")
        return cast(OwnedRunJson, response.json())

    async def closed(self, workflow_id: str, run_id: str | None, seconds: float) -> OwnedRunJson:
        """The latest run of ``workflow_id`` once it is closed or is another run than ``run_id``,
        or as it is after ``seconds`` (the owner holds the answer until then: a long poll)."""
        seconds = min(max(0.0, seconds), MAX_CLOSED_WAIT)
        params: dict[str, Any] = {"seconds": round(seconds, 3)}
        if run_id:
            params["run_id"] = run_id
        path = f"/internal/closed/{path_segment(workflow_id)}"
        response = await self.forward("result", workflow_id, path, params=params, holds=seconds)
        return cast(OwnedRunJson, self._checked(workflow_id, response).json())

    async def started(
        self, workflow_id: str, request_id: str, run_id: str, seconds: float
    ) -> StartOutcomeJson:
        """What the owner made of the start of ``workflow_id`` sent with ``request_id`` (and
        ``run_id``), once it applied or refused it, or after ``seconds`` (``applied`` false: a
        long poll)."""
        seconds = min(max(0.0, seconds), MAX_CLOSED_WAIT)
        params: dict[str, Any] = {"request_id": request_id, "run_id": run_id, "seconds": round(seconds, 3)}
        path = f"/internal/started/{path_segment(workflow_id)}"
        response = await self.forward("start", workflow_id, path, params=params, holds=seconds)
        return cast(StartOutcomeJson, self._checked(workflow_id, response).json())

    async def admission(self, workflow_id: str, request_id: str | None = None) -> AdmissionJson:
        """What a start of ``workflow_id`` would meet: its open run, or a capacity refusal (and
        the run an earlier start with ``request_id`` led to)."""
        path = f"/internal/admission/{path_segment(workflow_id)}"
        params = {"request_id": request_id} if request_id else None
        return cast(AdmissionJson, (await self._ok("start_check", workflow_id, path, params)).json())

    async def update_status(self, workflow_id: str, update_id: str) -> UpdateStatusJson:
        """Where update ``update_id`` of the latest run of ``workflow_id`` stands."""
        path = f"/internal/workflows/{path_segment(workflow_id)}/updates/{path_segment(update_id)}"
        return cast(UpdateStatusJson, (await self._ok("update", workflow_id, path)).json())

    async def history_page(
        self, workflow_id: str, run_id: str | None, offset: int, limit: int
    ) -> HistoryPageJson:
        """Events ``offset + 1`` .. ``offset + limit`` of the latest run (or of ``run_id``)."""
        params: dict[str, Any] = {"offset": offset, "limit": limit}
        if run_id:
            params["run_id"] = run_id
        path = f"/internal/workflows/{path_segment(workflow_id)}/history"
        return cast(HistoryPageJson, (await self._ok("history", workflow_id, path, params=params)).json())

    async def query(self, workflow_id: str, name: str, args: list[Any], shown_id: str | None = None) -> Any:
        """The answer of the run's query handler ``name`` (``args`` as the engine stores payloads);
        a failure names the workflow ``shown_id`` (as the caller named it) if given."""
        path = f"/internal/workflows/{path_segment(workflow_id)}/query/{path_segment(name)}"
        response = await self.forward("query", workflow_id, path, method="POST", body={"args": args})
        if response.status_code == 400:
            raise QueryFailedError(shown_id or workflow_id, _detail(response))
        return self._checked(workflow_id, response).json().get("result")

    async def listing(self, params: dict[str, Any], limit: int) -> Listing:
        """One page of latest runs across every node (``params``: the engine's list filters, or
        its visibility ``query``, whose runs come in start-time order)."""
        query = params.get("query")
        order: tuple[str, bool] = ("workflow_id", False)
        if query is not None:
            order = ("cursor", not parse_query(query).descending)  # VisibilityQueryError: no fan-out
        answers = await self._each_member("/internal/workflows", params)
        covered: set[int] = set()
        pages: list[ListingJson] = []
        for _member, data in answers:
            if data is not None:
                page = cast(ListingJson, data)
                covered.update(int(p) for p in page.get("partitions", []))
                pages.append(page)
        rows, next_after = merge_listings(cast(list[dict[str, Any]], pages), limit, *order)
        missing = sorted(set(range(self.settings.partitions)) - covered)
        return Listing(cast(list[RunSummaryJson], rows), next_after, missing)

    async def count(self, query: str, namespace: str | None) -> Count:
        """How many latest runs across every node ``query`` matches."""
        params: dict[str, Any] = {"query": query}
        if namespace is not None:
            params["namespace"] = namespace
        answers = await self._each_member("/internal/visibility/count", params)
        covered: set[int] = set()
        total = 0
        for _member, data in answers:
            if data is not None:
                answer = cast(CountJson, data)
                covered.update(answer["partitions"])
                total += answer["count"]
        return Count(total, sorted(set(range(self.settings.partitions)) - covered))

    async def schedule(self, schedule_id: str) -> dict[str, Any]:
        """A schedule as its owner describes it (``ScheduleDescription``'s fields)."""
        path = f"/internal/schedules/{path_segment(schedule_id)}"
        try:
            data = (await self._ok("schedule", schedule_id, path)).json()
        except WorkflowNotFoundError:
            raise ScheduleNotFoundError(schedule_id) from None
        data.pop("partition", None)
        return cast(dict[str, Any], data)

    async def schedules(
        self, namespace: str | None, after: str | None, limit: int
    ) -> tuple[list[ScheduleSummaryJson], str | None]:
        """A page of schedules across every node, in id order, and where the next starts."""
        params: dict[str, Any] = {"limit": limit}
        if namespace is not None:
            params["namespace"] = namespace
        if after is not None:
            params["after"] = after
        answers = [data for _member, data in await self._each_member("/internal/schedules", params) if data]
        rows, next_after = merge_listings(answers, limit, "schedule_id", rows_in="schedules")
        return cast(list[ScheduleSummaryJson], rows), next_after

    async def nodes(self) -> list[tuple[Member, NodeJson | None]]:
        """Every node of the group with its stats (None: it did not answer)."""
        answers = await self._each_member("/internal/partitions", None)
        return [(member, cast(NodeJson, data) if data is not None else None) for member, data in answers]

    # ------------------------------------------------------------ forwarding
    async def forward(
        self,
        operation: str,
        workflow_id: str,
        path: str,
        *,
        method: str = "GET",
        params: dict[str, Any] | None = None,
        body: Any = None,
        holds: float = 0.0,
    ) -> OwnerResponse:
        """The owner's answer to ``method path`` (any status but 421 and 404, which raises);
        ``holds``: seconds the owner may hold the answer back (a long poll), on top of the budget."""
        started = time.monotonic()
        partition = self.partition(workflow_id)
        outcome = "unavailable"
        try:
            response = await self._forward(partition, workflow_id, path, method, params, body, started, holds)
            if response.status_code == 404:
                outcome = "not_found"
                raise WorkflowNotFoundError(workflow_id)
            outcome = "ok" if response.status_code < 400 else f"status_{response.status_code}"
            return response
        finally:
            self.observer.read(operation, outcome, time.monotonic() - started)

    async def _ok(
        self, operation: str, workflow_id: str, path: str, params: dict[str, Any] | None = None
    ) -> OwnerResponse:
        response = await self.forward(operation, workflow_id, path, params=params)
        return self._checked(workflow_id, response)

    def _checked(self, workflow_id: str, response: OwnerResponse) -> OwnerResponse:
        if response.status_code == 200:
            return response
        raise OwnerResponseError(workflow_id, response.status_code, _detail(response))

    async def _forward(
        self,
        partition: int,
        workflow_id: str,
        path: str,
        method: str,
        params: dict[str, Any] | None,
        body: Any,
        started: float,
        holds: float = 0.0,
    ) -> OwnerResponse:
        deadline = started + self.budget + holds
        kind, reason = "no_owner", "no owner known"
        snapshot = await self._current(deadline)
        for attempt in range(self.attempts):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                kind, reason = "timeout", f"no answer within {self.budget} s ({reason})"
                break
            if attempt:
                if self.pause:
                    await asyncio.sleep(min(self.pause, remaining))
                try:
                    snapshot = await asyncio.wait_for(self.refresh(), max(0.0, deadline - time.monotonic()))
                except TimeoutError:
                    kind, reason = "timeout", f"group membership not read within {self.budget} s"
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
            url = snapshot.owners.get(partition)
            if not url:
                kind, reason = "no_owner", f"no owner (engine group {snapshot.state})"
                continue
            try:
                timeout = min(self.request_timeout + holds, remaining) if self.request_timeout else remaining
                response = await self._request(method, f"{url}{path}", params, body, timeout)
            except TimeoutError:
                kind, reason = "timeout", f"{url} did not answer within {self.budget} s"
                break
            except aiohttp.ClientError as exc:
                kind, reason = "unreachable", f"{url} unreachable ({type(exc).__name__})"
                continue
            if response.status_code == 421:
                kind, reason = "moving", f"partition moving ({url} no longer owns it)"
                continue
            if response.status_code == 401:
                raise EngineAuthError(url)
            if response.status_code >= 500:
                raise OwnerResponseError(workflow_id, response.status_code, _detail(response))
            return response
        self.observer.unavailable(kind)
        raise OwnerUnavailableError(workflow_id, partition, self.retry_after, reason)

    async def post(self, operation: str, url: str, body: Any, timeout: float) -> OwnerResponse:
        """One POST to the engine node at ``url`` (a path on it), as it answers (no routing, no
        retries: ``ledgerflow.owner_watch`` decides what to do with the answer). Raises
        ``aiohttp.ClientError`` or ``TimeoutError``."""
        started = time.monotonic()
        outcome = "unavailable"
        try:
            response = await self._request("POST", url, None, body, timeout)
            outcome = "ok" if response.status_code < 400 else f"status_{response.status_code}"
            return response
        finally:
            self.observer.read(operation, outcome, time.monotonic() - started)

    async def _request(
        self, method: str, url: str, params: dict[str, Any] | None, body: Any, timeout: float
    ) -> OwnerResponse:
        """One HTTP exchange with an engine node; raises aiohttp.ClientError or TimeoutError."""
        if self._http is None:
            raise RuntimeError("owner reads are not started")
        query = {k: str(v) for k, v in params.items()} if params else None
        # encoded=True: the path is sent as ``path_segment`` escaped it (yarl would otherwise
        # decode %2E and collapse a dot-only workflow id away); an owner never redirects.
        async with self._http.request(
            method,
            yarl.URL(url, encoded=True),
            params=query,
            data=None if body is None else to_json(body),
            headers=None if body is None else {"Content-Type": "application/json"},
            timeout=aiohttp.ClientTimeout(total=timeout),
            allow_redirects=False,
        ) as response:
            return OwnerResponse(response.status, await response.read())

    async def _each_member(
        self, path: str, params: dict[str, Any] | None
    ) -> list[tuple[Member, dict[str, Any] | None]]:
        """GET ``path`` on every group member at once; ``None`` for those that did not answer."""
        snapshot = await self._current(time.monotonic() + self.budget)
        timeout = self.request_timeout or self.budget

        async def one(member: Member) -> tuple[Member, dict[str, Any] | None]:
            if not member.url:
                return member, None
            try:
                response = await self._request("GET", f"{member.url}{path}", params, None, timeout)
            except (aiohttp.ClientError, TimeoutError):
                return member, None
            if response.status_code != 200:
                if response.status_code == 401:  # a token mismatch: this node's part is missing
                    log.warning("engine %s refused the engine token (401)", member.url)
                return member, None
            data = response.json()
            return member, data if isinstance(data, dict) else None

        return list(await asyncio.gather(*(one(Member.of(m)) for m in snapshot.members)))


def _detail(response: OwnerResponse) -> str:
    """The ``detail`` of an engine's error answer (FastAPI's shape), else its text."""
    try:
        data = response.json()
    except ValueError:
        return response.text
    return str(data.get("detail", response.text)) if isinstance(data, dict) else response.text
