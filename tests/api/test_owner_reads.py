"""The owner-read protocol the gateway and the Python client share (``ledgerflow.owner_reads``),
against real HTTP servers standing in for engine nodes: retries when a partition moves, ids
escaped, errors named, listings that say which partitions no node answered for.

The routing table is given (a scripted directory); reading it from the engine group is covered
by the gateway's and the client's tests on a real cluster.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from ledgerflow.config import Settings
from ledgerflow.errors import (
    EngineAuthError,
    OwnerResponseError,
    OwnerUnavailableError,
    QueryFailedError,
    WorkflowNotFoundError,
)
from ledgerflow.owner_reads import OwnerReads
from ledgerflow.routing import DirectorySnapshot

SETTINGS = Settings(bootstrap="127.0.0.1:1", partitions=4)


@dataclass
class ScriptedDirectory:
    """The engine group as a list of snapshots, one per read (the last one repeats)."""

    snapshots: list[DirectorySnapshot]
    reads: int = 0

    def snapshot(self, refresh: bool = False) -> DirectorySnapshot:
        shown = self.snapshots[min(self.reads, len(self.snapshots) - 1)]
        self.reads += 1
        return DirectorySnapshot(shown.owners, shown.members, shown.state, time.monotonic())


@dataclass
class Node:
    """An engine node's internal API, answering what the test scripts."""

    answer: Callable[[web.Request], web.Response]
    paths: list[str] = field(default_factory=list)
    server: TestServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("")).rstrip("/")


@pytest.fixture
async def nodes() -> AsyncIterator[Callable[[Callable[[web.Request], web.Response]], Any]]:
    started: list[TestServer] = []

    async def start(answer: Callable[[web.Request], web.Response]) -> Node:
        node = Node(answer)

        async def handle(request: web.Request) -> web.Response:
            node.paths.append(request.raw_path)
            return node.answer(request)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        node.server = TestServer(app, host="127.0.0.1")
        await node.server.start_server()
        started.append(node.server)
        return node

    yield start
    for server in started:
        await server.close()


def owning(url: str, partitions: range = range(4)) -> DirectorySnapshot:
    member = {"member_id": f"m-{url}", "url": url, "host": "h", "partitions": list(partitions)}
    return DirectorySnapshot({p: url for p in partitions}, [member], "Stable", 0.0)


async def reads_over(*snapshots: DirectorySnapshot, attempts: int = 2) -> OwnerReads:
    reads = OwnerReads(
        SETTINGS,
        "token",
        budget=2.0,
        ttl=60.0,
        attempts=attempts,
        directory=ScriptedDirectory(list(snapshots)),
    )
    await reads.start(background=False)
    return reads


def run_json(workflow_id: str) -> dict[str, Any]:
    return {"workflow_id": workflow_id, "run_id": "r1", "status": "RUNNING", "partition": 0}


async def test_a_read_follows_a_moved_partition_to_its_new_owner(nodes: Any) -> None:
    old = await nodes(lambda r: web.json_response({"detail": "not mine"}, status=421))
    new = await nodes(lambda r: web.json_response(run_json("order-1")))
    reads = await reads_over(owning(old.url), owning(new.url))
    try:
        run = await reads.run("order-1")
    finally:
        await reads.close()
    assert run["run_id"] == "r1"
    assert len(old.paths) == 1 and len(new.paths) == 1


async def test_a_read_with_no_owner_after_its_attempts_is_unavailable_naming_why(nodes: Any) -> None:
    moving = await nodes(lambda r: web.json_response({}, status=421))
    reads = await reads_over(owning(moving.url))
    try:
        with pytest.raises(OwnerUnavailableError, match="partition moving") as caught:
            await reads.run("order-1")
    finally:
        await reads.close()
    assert caught.value.partition == SETTINGS.partition_of("order-1")
    assert len(moving.paths) == 2  # the gateway's policy: one retry


async def test_ids_and_query_names_travel_as_one_escaped_path_segment(nodes: Any) -> None:
    node = await nodes(lambda r: web.json_response({"result": 7}))
    reads = await reads_over(owning(node.url))
    try:
        assert await reads.query("acme/a b..", "totals/by day", []) == 7
        await reads.history_page("..", None, 0, 10)
    finally:
        await reads.close()
    assert node.paths[0] == "/internal/workflows/acme%2Fa%20b../query/totals%2Fby%20day"
    assert node.paths[1].startswith("/internal/workflows/%2E%2E/history?")


@pytest.mark.parametrize(
    ("status", "body", "error", "message"),
    [
        (404, {"detail": "workflow 'x' not found"}, WorkflowNotFoundError, "not found"),
        (401, {"detail": "token"}, EngineAuthError, "LEDGERFLOW_ENGINE_TOKEN_FILE"),
        (500, {"detail": "boom"}, OwnerResponseError, "answered 500: boom"),
        (400, {"detail": "no query handler 'q'"}, QueryFailedError, "no query handler 'q'"),
    ],
)
async def test_an_owners_error_answer_is_a_named_error(
    nodes: Any, status: int, body: dict[str, str], error: type[Exception], message: str
) -> None:
    node = await nodes(lambda r: web.json_response(body, status=status))
    reads = await reads_over(owning(node.url))
    try:
        with pytest.raises(error, match=message):
            await reads.query("x", "q", [])
    finally:
        await reads.close()


async def test_a_listing_names_the_partitions_no_node_answered_for(nodes: Any) -> None:
    def page(request: web.Request) -> web.Response:
        rows = [{"workflow_id": "b", "partition": 0}, {"workflow_id": "a", "partition": 1}]
        return web.json_response({"node": "n1", "partitions": [0, 1], "runs": rows, "next_after": None})

    alive = await nodes(page)
    down = await nodes(lambda r: web.json_response({}, status=503))
    members = [
        {"member_id": "m1", "url": alive.url, "host": "h", "partitions": [0, 1]},
        {"member_id": "m2", "url": down.url, "host": "h", "partitions": [2, 3]},
    ]
    owners = {0: alive.url, 1: alive.url, 2: down.url, 3: down.url}
    reads = await reads_over(DirectorySnapshot(owners, members, "Stable", 0.0))
    try:
        listing = await reads.listing({"limit": 10}, 10)
    finally:
        await reads.close()
    assert [r["workflow_id"] for r in listing.runs] == ["a", "b"]
    assert listing.missing_partitions == [2, 3]
    assert listing.next_after is None


@dataclass
class StalledDirectory:
    """The group read once, then Kafka stops answering: every later read hangs for a while."""

    first: DirectorySnapshot
    reads: int = 0

    def snapshot(self, refresh: bool = False) -> DirectorySnapshot:
        self.reads += 1
        if self.reads > 1:
            time.sleep(3.0)
            return DirectorySnapshot(state="Unreachable", fetched_at=time.monotonic())
        return DirectorySnapshot(self.first.owners, self.first.members, "Stable", time.monotonic())


async def test_reads_go_on_by_the_last_known_owners_while_kafka_does_not_answer(nodes: Any) -> None:
    node = await nodes(lambda r: web.json_response(run_json("order-1")))
    directory = StalledDirectory(owning(node.url))
    reads = OwnerReads(SETTINGS, "token", budget=1.0, ttl=0.05, directory=directory)
    await reads.start(background=False)
    try:
        await reads.run("order-1")  # the first read reads the group
        time.sleep(0.1)  # the snapshot is stale now, and re-reading it hangs
        started = time.monotonic()
        for _ in range(3):
            assert (await reads.run("order-1"))["run_id"] == "r1"
        assert time.monotonic() - started < 0.5
    finally:
        await reads.close()
