"""Forward a read about workflow X to the engine that owns partition(X).

The routing table is the engine consumer group's membership (see
``ledgerflow.routing.OwnerDirectory``), read in the background every
``directory_ttl`` seconds so a read costs no Kafka round trip. A read whose
owner is unknown, answers 421 (the partition is moving) or cannot be reached
gets one retry after a fresh read of the group; after that, or when the
``owner_timeout`` budget is spent, it fails with ``OwnerUnavailableError``
(503 + Retry-After). It never waits longer than the budget.

Forwarding uses aiohttp, not httpx: with a few requests in flight httpx's connection
pool becomes the gateway's bottleneck (docs/decisions/0004-aiohttp-for-owner-reads.md).
Every request carries the engine token (``ledgerflow.engine_token``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import aiohttp
import yarl
from prometheus_client import CollectorRegistry, Counter, Histogram

from ledgerflow.api.errors import OwnerResponseError
from ledgerflow.api.settings import GatewaySettings
from ledgerflow.engine_token import bearer
from ledgerflow.errors import OwnerUnavailableError, WorkflowNotFoundError
from ledgerflow.routing import DirectorySnapshot, OwnerDirectory

log = logging.getLogger("ledgerflow.gateway.routing")

ROUTING_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass(frozen=True)
class OwnerResponse:
    """An engine node's answer, read whole."""

    status_code: int
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")

    def json(self) -> Any:
        return json.loads(self.body)


class RoutingMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.latency = Histogram(
            "workflow_routing_latency_seconds",
            "Time to answer a read forwarded to a partition owner (lookup, retries and the owner's reply).",
            ["operation", "outcome"],
            registry=registry,
            buckets=ROUTING_BUCKETS,
        )
        self.unavailable = Counter(
            "ledgerflow_gateway_owner_unavailable_total",
            "Reads answered 503 because the partition owner was unknown, moving or unreachable.",
            ["reason"],
            registry=registry,
        )
        self.refreshes = Counter(
            "ledgerflow_gateway_directory_refreshes_total",
            "Reads of the engine group's membership.",
            ["trigger"],
            registry=registry,
        )


class OwnerRouter:
    """partition -> owner URL, and forwarding with a bounded budget."""

    def __init__(self, settings: GatewaySettings, metrics: RoutingMetrics, engine_token: str | None) -> None:
        self.settings = settings
        self.metrics = metrics
        self.engine_token = engine_token
        self._http: aiohttp.ClientSession | None = None
        self.directory = OwnerDirectory(settings, ttl=settings.directory_ttl)
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="owner-directory")
        self._snapshot = DirectorySnapshot()
        self._inflight: asyncio.Future[DirectorySnapshot] | None = None
        self._task: asyncio.Task[None] | None = None

    # ------------------------------------------------------------- directory
    async def start(self) -> None:
        self._http = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=200),
            timeout=aiohttp.ClientTimeout(total=self.settings.owner_timeout),
            headers=bearer(self.engine_token),
            # Never through HTTP(S)_PROXY: engine reads carry the engine token and run data,
            # and go straight to the engine pods.
            trust_env=False,
        )
        try:
            await asyncio.wait_for(self.refresh("start"), 5.0)
        except TimeoutError:
            log.warning("engine group membership not readable yet; reads answer 503 until it is")
        self._task = asyncio.create_task(self._refresh_forever(), name="owner-directory")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._executor.shutdown(wait=False, cancel_futures=True)
        if self._http is not None:
            await self._http.close()

    async def _request(
        self, method: str, url: str, params: dict[str, Any] | None, body: Any, timeout: float
    ) -> OwnerResponse:
        """One HTTP exchange with an engine node; raises aiohttp.ClientError or TimeoutError."""
        if self._http is None:
            raise RuntimeError("the owner router is not started")
        query = {k: str(v) for k, v in params.items()} if params else None
        # encoded=True: the path is sent as ``path_segment`` escaped it (yarl would otherwise
        # decode %2E and collapse a dot-only workflow id away); an owner never redirects.
        async with self._http.request(
            method,
            yarl.URL(url, encoded=True),
            params=query,
            json=body,
            timeout=aiohttp.ClientTimeout(total=timeout),
            allow_redirects=False,
        ) as response:
            return OwnerResponse(response.status, await response.read())

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.directory_ttl)
            try:
                await self.refresh("timer")
            except Exception:  # keep the last snapshot; the next round tries again
                log.exception("reading the engine group failed")

    @property
    def snapshot(self) -> DirectorySnapshot:
        return self._snapshot

    async def refresh(self, trigger: str = "retry") -> DirectorySnapshot:
        """Read the group's membership now (concurrent callers share one read)."""
        if self._inflight is None or self._inflight.done():
            loop = asyncio.get_running_loop()
            self.metrics.refreshes.labels(trigger).inc()
            self._inflight = asyncio.ensure_future(
                loop.run_in_executor(self._executor, lambda: self.directory.snapshot(refresh=True))
            )
        snapshot = await asyncio.shield(self._inflight)
        if snapshot.fetched_at < self._snapshot.fetched_at:
            return self._snapshot
        if snapshot.state == "Unreachable" and self._snapshot.owners:
            # Kafka did not answer: keep routing by the last known owners. That is safe,
            # an engine that no longer owns a partition answers 421, and reads keep working
            # while the group cannot be described.
            snapshot = DirectorySnapshot(
                self._snapshot.owners, self._snapshot.members, snapshot.state, snapshot.fetched_at
            )
        self._snapshot = snapshot
        return self._snapshot

    def partition(self, workflow_id: str) -> int:
        """The workflow's shard under the deployment's partitioner (murmur2 unless configured)."""
        return self.settings.partition_of(workflow_id)

    def owner(self, partition: int) -> str | None:
        return self._snapshot.owners.get(partition) or None

    def member_of(self, partition: int) -> str | None:
        for member in self._snapshot.members:
            partitions = member.get("partitions")
            if isinstance(partitions, list) and partition in partitions:
                return str(member.get("member_id"))
        return None

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
    ) -> OwnerResponse:
        """The owner's answer (any status but 421 and 404); raise on 404 and when no owner answers."""
        started = time.monotonic()
        partition = self.partition(workflow_id)
        outcome = "unavailable"
        try:
            response = await self._forward(partition, workflow_id, path, method, params, body, started)
            if response.status_code == 404:
                outcome = "not_found"
                raise WorkflowNotFoundError(workflow_id)
            outcome = "ok" if response.status_code < 400 else f"status_{response.status_code}"
            return response
        finally:
            self.metrics.latency.labels(operation, outcome).observe(time.monotonic() - started)

    async def _forward(
        self,
        partition: int,
        workflow_id: str,
        path: str,
        method: str,
        params: dict[str, Any] | None,
        body: Any,
        started: float,
    ) -> OwnerResponse:
        budget = self.settings.owner_timeout
        deadline = started + budget
        reason = "no owner known"
        kind = "no_owner"
        for attempt in range(2):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                kind, reason = "timeout", f"no answer within {budget} s ({reason})"
                break
            if attempt:
                try:
                    await asyncio.wait_for(self.refresh(), remaining)
                except TimeoutError:
                    kind, reason = "timeout", f"group membership not read within {budget} s"
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
            url = self.owner(partition)
            if not url:
                kind = "no_owner"
                reason = f"no owner (engine group {self._snapshot.state})"
                continue
            try:
                response = await self._request(method, f"{url}{path}", params, body, remaining)
            except TimeoutError:
                kind, reason = "timeout", f"{url} did not answer within {budget} s"
                break
            except aiohttp.ClientError as exc:
                kind, reason = "unreachable", f"{url} unreachable ({type(exc).__name__})"
                continue
            if response.status_code == 421:
                kind, reason = "moving", f"partition moving ({url} no longer owns it)"
                continue
            if response.status_code >= 500:
                raise OwnerResponseError(workflow_id, response.status_code, response.text)
            return response
        self.metrics.unavailable.labels(kind).inc()
        raise OwnerUnavailableError(workflow_id, partition, float(self.settings.retry_after), reason)

    # --------------------------------------------------------- every member
    async def each_member(
        self, path: str, params: dict[str, Any] | None = None
    ) -> list[tuple[dict[str, object], dict[str, Any] | None]]:
        """GET ``path`` on every group member at once; ``None`` for those that did not answer."""
        snapshot = self._snapshot
        if time.monotonic() - snapshot.fetched_at > 2 * self.settings.directory_ttl:
            with contextlib.suppress(TimeoutError):
                snapshot = await asyncio.wait_for(self.refresh("stale"), self.settings.owner_timeout)

        async def one(member: dict[str, object]) -> tuple[dict[str, object], dict[str, Any] | None]:
            url = str(member.get("url") or "")
            if not url:
                return member, None
            timeout = self.settings.owner_timeout
            try:
                response = await self._request("GET", f"{url}{path}", params, None, timeout)
            except (aiohttp.ClientError, TimeoutError):
                return member, None
            if response.status_code != 200:
                return member, None
            data = response.json()
            return member, data if isinstance(data, dict) else None

        return list(await asyncio.gather(*(one(m) for m in snapshot.members)))
