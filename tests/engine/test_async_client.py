"""The asyncio client on a real broker and engine: starts the engine decides (no read first),
results pushed by the owner, and the same paths under the synchronous Client."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from ledgerflow import AsyncClient, WorkflowAlreadyStartedError
from ledgerflow import async_client as async_client_module
from ledgerflow.errors import CapacityError
from ledgerflow.local.processes import Cluster
from tests.fixtures import ACTS, FLOWS, assert_invariants

pytestmark = pytest.mark.kafka


async def test_many_starts_and_results_awaited_together_on_one_loop(running: Cluster) -> None:
    async with running.async_client() as client:
        handles = await asyncio.gather(
            *(client.start_workflow("ThreeSteps", i, id=f"many-{i}") for i in range(40))
        )
        assert not any(h.already_started for h in handles)
        results = await asyncio.gather(*(h.result(timeout=60) for h in handles))
        assert results == [i + 3 for i in range(40)]
        with pytest.raises(WorkflowAlreadyStartedError, match="COMPLETED"):
            await client.start_workflow("ThreeSteps", 0, id="many-0", id_reuse_policy="reject_duplicate")


async def test_the_engine_decides_between_two_clients_starting_one_id(running: Cluster) -> None:
    """Two clients start each id at once with ``id_conflict_policy="fail"``: one gets the run,
    the other the engine's refusal naming that run. (A client that read the id's state first
    and then sent would let both through its check, and hand one caller a run that never
    starts.)"""
    async with running.async_client() as first, running.async_client() as second:
        for i in range(8):
            outcomes = await asyncio.gather(
                first.start_workflow("SignalCounter", id=f"race-{i}", id_conflict_policy="fail"),
                second.start_workflow("SignalCounter", id=f"race-{i}", id_conflict_policy="fail"),
                return_exceptions=True,
            )
            won = [o for o in outcomes if not isinstance(o, BaseException)]
            lost = [o for o in outcomes if isinstance(o, BaseException)]
            assert len(won) == 1 and len(lost) == 1, outcomes
            assert isinstance(lost[0], WorkflowAlreadyStartedError), lost[0]
            assert lost[0].run_id == won[0].run_id and lost[0].status == "RUNNING"
            assert (await first.describe(f"race-{i}"))["run_id"] == won[0].run_id
            await first.signal(f"race-{i}", "done")
            assert await won[0].result(timeout=30) == []


async def test_a_capacity_refusal_is_raised_and_the_same_request_starts_once_capacity_frees(
    cluster: Cluster,
) -> None:
    engine = cluster.engine([FLOWS], extra=["--max-open-workflows", "1"])
    cluster.worker([ACTS])
    engine.wait_ready()
    async with cluster.async_client() as client:
        await client.start_workflow("SignalCounter", id="holder")
        with pytest.raises(CapacityError, match="limit 1"):
            await client.start_workflow("ThreeSteps", 1, id="later", request_id="later-once")
        await client.signal("holder", "done")
        assert await client.result("holder", timeout=30) == []
        # the refusal of the first send is not taken for the decision on this one
        handle = await client.start_workflow("ThreeSteps", 1, id="later", request_id="later-once")
        assert await handle.result(timeout=30) == 4
        repeat = await client.start_workflow("ThreeSteps", 1, id="later", request_id="later-once")
        assert (repeat.run_id, repeat.already_started) == (handle.run_id, True)


async def test_a_start_the_engine_decides_later_is_answered_through_its_result(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no engine up, ``start_workflow`` returns once its wait for a decision is over; the
    handle's ``result`` then learns what the engine made of the start: the run's result, or
    the refusal."""
    monkeypatch.setattr(async_client_module, "START_DECISION_WAIT", 1.0)
    engine = cluster.engine([FLOWS])
    cluster.worker([ACTS])
    engine.wait_ready()
    async with cluster.async_client() as client:
        await client.start_workflow("SignalCounter", id="held")
        engine.stop()
        waiting = await client.start_workflow("ThreeSteps", 5, id="waiting")
        refused = await client.start_workflow("SignalCounter", id="held", id_conflict_policy="fail")
        engine.start()
        assert await waiting.result(timeout=60) == 8
        with pytest.raises(WorkflowAlreadyStartedError):
            await refused.result(timeout=60)
    with cluster.client() as sync:
        assert_invariants(sync, "waiting")
        sync.signal("held", "done")
        assert sync.result("held", timeout=30) == []


def test_the_client_is_the_async_client_on_its_own_loop(running: Cluster) -> None:
    """The synchronous Client takes the AsyncClient's paths: the engine's refusal, the handle of
    the run the engine chose."""
    with running.client() as client:
        first = client.start_workflow("SignalCounter", id="sync-1")
        again = client.start_workflow("SignalCounter", id="sync-1")
        assert (again.run_id, again.already_started) == (first.run_id, True)
        with pytest.raises(WorkflowAlreadyStartedError) as refused:
            client.start_workflow("SignalCounter", id="sync-1", id_conflict_policy="fail")
        assert refused.value.run_id == first.run_id
        client.signal("sync-1", "done")
        assert first.result(timeout=30) == []


async def test_connect_builds_a_connected_client(running: Cluster) -> None:
    client = await AsyncClient.connect(
        running.bootstrap, running.prefix, partitions=running.partitions, engine_token=running.engine_token
    )
    try:
        handle = await client.start_workflow("ThreeSteps", 2, id="connected")
        assert await handle.result(timeout=30) == 5
    finally:
        await client.close()


def test_a_watch_session_holds_its_waits_between_requests_and_answers_each_once(running: Cluster) -> None:
    """``POST /internal/watches/{session}`` (what the clients' long polls travel in): the waits
    that ended come back as soon as one has; the others stay held on the node for the session's
    next request; a wait past its own seconds is answered as it stands; a session the node does
    not hold is a 409 when the client expects it held; a malformed request is a 422 naming the
    field."""
    engine = running.nodes[0]
    with running.client() as client:
        done = client.start_workflow("ThreeSteps", 1, id="watched-done")
        assert done.result(timeout=30) == 4
        open_run = client.start_workflow("SignalCounter", id="watched-open")
        items = [
            {
                "key": 0,
                "kind": "closed",
                "workflow_id": "watched-open",
                "run_id": open_run.run_id,
                "seconds": 20,
            },
            {"key": 1, "kind": "closed", "workflow_id": "watched-done", "run_id": done.run_id, "seconds": 20},
            {"key": 2, "kind": "started", "workflow_id": "watched-none", "request_id": "q", "seconds": 0.3},
        ]

        def watch(session: str, body: dict[str, object]) -> httpx.Response:
            url = f"{engine.url}/internal/watches/{session}"
            return httpx.post(url, json=body, headers=engine.headers, timeout=25)

        started = time.monotonic()
        answers = watch("s1", {"seconds": 5, "resume": False, "items": items}).json()["answers"]
        assert time.monotonic() - started < 2, "an ended wait was held"
        assert [(a["key"], a["status"], a["body"]["status"]) for a in answers] == [(1, 200, "COMPLETED")]
        # the short wait, held on by the node, is answered as it stands at its own deadline
        answers = watch("s1", {"seconds": 5, "resume": True, "items": []}).json()["answers"]
        assert [a["key"] for a in answers] == [2]
        assert answers[0]["body"]["applied"] is False and answers[0]["body"]["refusal"] is None
        # the open run's wait is still held: a signal closes it, and the next request hears it
        client.signal("watched-open", "done")
        answers = watch("s1", {"seconds": 20, "resume": True, "items": []}).json()["answers"]
        assert [(a["key"], a["body"]["status"]) for a in answers] == [(0, "COMPLETED")]
        assert open_run.result(timeout=30) == []
        lost = watch("never-seen", {"seconds": 1, "resume": True, "items": []})
        assert lost.status_code == 409, lost.text
        too_many = watch("s2", {"seconds": 1, "resume": False, "items": [items[0]] * 2001})
        assert too_many.status_code == 422
        nope = watch("s2", {"seconds": 1, "resume": False, "items": [{**items[0], "kind": "nope"}]})
        assert nope.status_code == 422 and "kind" in nope.text
        odd = watch("s2", {"seconds": 1, "resume": False, "items": [{**items[0], "workflow_id": "a\nb"}]})
        assert odd.status_code == 422 and "workflow_id" in odd.text, odd.text
        assert watch("bad/session", {"seconds": 1, "resume": False, "items": []}).status_code in (404, 422)
        assert watch("bad.session", {"seconds": 1, "resume": False, "items": []}).status_code == 422
