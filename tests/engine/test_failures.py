"""The failures the engine exists for: kill -9 of engines and workers, changed code, restarts."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from ledgerflow import Client, WorkflowFailedError
from ledgerflow.cluster import read_events
from ledgerflow.config import Settings
from ledgerflow.local.processes import Cluster, NodeProcess
from ledgerflow.schemas import events as ev
from ledgerflow.schemas.commands import StartWorkflow
from tests.fixtures import ACTS, FLOWS, assert_invariants, lifecycle_counts, owned, settled_shares
from tests.waits import wait_until

pytestmark = pytest.mark.kafka


def test_kill_an_engine_mid_run_and_every_workflow_completes_once(cluster: Cluster, client: Client) -> None:
    a = cluster.engine([FLOWS], name="engine-a")
    b = cluster.engine([FLOWS], name="engine-b")
    a.wait_ready()
    b.wait_ready()
    settled_shares([a, b], cluster.partitions)  # so that the engine killed below owns something
    ids = [f"fo-{i}" for i in range(200)]
    for i, workflow_id in enumerate(ids):
        client.send(workflow_id, StartWorkflow(workflow_id=workflow_id, workflow_type="Mixed", input=i))
    a_partitions = owned(a)
    a_node = httpx.get(f"{a.url}/health").json()["node"]
    # a must die with work in hand: runs on its partitions RUNNING with an activity outstanding.
    # No worker runs yet, so they stay open however slowly this machine answers; a dies as
    # the worker starts taking the tasks a dispatched, and b applies their results.
    open_on_a = wait_until(
        lambda: open_runs(a, len(ids)), "engine-a to hold RUNNING runs with pending activities", 60
    )
    cluster.worker([ACTS], concurrency=100)
    a.kill()
    killed_at = time.time()
    assert {client.settings.partition_of(w) for w in open_on_a} <= set(a_partitions), open_on_a
    for i, workflow_id in enumerate(ids):
        assert client.result(workflow_id, timeout=90) == i + 2, workflow_id
    # a run closed after the kill was open when a died: another engine finished it
    closed_after = [w for w in open_on_a if client.history(w)[-1].time > killed_at]
    print(f"{len(open_on_a)} runs open on engine-a just before kill -9, {len(closed_after)} closed after it")
    assert closed_after, f"every run open on engine-a closed before the kill: {open_on_a}"
    for workflow_id in ids:
        assert_invariants(client, workflow_id)
    completed = lifecycle_counts(cluster, "WORKFLOW_COMPLETED", set(ids))
    assert set(completed) == set(ids)
    assert set(completed.values()) == {1}, "a workflow completed more than once"
    events = read_events(Settings(bootstrap=cluster.bootstrap, prefix=cluster.prefix), limit=50)
    failovers = [e for e in events if a_node in e.get("failover_from", [])]
    assert failovers, f"no failover from {a_node} among {events}"
    assert failovers[-1]["node"] != a_node


def test_killed_worker_activity_runs_again_after_its_timeout(
    cluster: Cluster, client: Client, tmp_path: Path
) -> None:
    engine = cluster.engine([FLOWS])
    worker = cluster.worker([ACTS], name="worker-a")
    engine.wait_ready()
    markers = tmp_path / "m"
    markers.mkdir()
    client.start_workflow("CrashSafe", str(markers), id="crash-safe")
    wait_until((markers / "runs").exists, "the activity to start on worker-a", 20, interval=0.05)
    worker.kill()
    cluster.worker([ACTS], name="worker-b")
    assert client.result("crash-safe", timeout=60).startswith("run ")
    runs = (markers / "runs").read_text().split()  # the worker process of each run
    assert len(runs) >= 2 and runs[0] != runs[-1], "the activity did not run again on the new worker"
    history = client.history("crash-safe")
    failures = [e for e in history if e.kind == "activity_attempt_failed"]
    assert failures and failures[0].failure.type == "StartToCloseTimeout"
    assert_invariants(client, "crash-safe")


def test_a_bad_deploy_blocks_its_runs_open_and_the_fixed_deploy_completes_them(
    cluster: Cluster, client: Client
) -> None:
    """Temporal's answer to non-deterministic code: the run is not failed; it stays open, says
    why, holds what arrives for it, and goes on once code that replays it is deployed."""
    engine = cluster.engine([FLOWS])
    cluster.worker([ACTS])
    engine.wait_ready()
    client.start_workflow("Versioned", 1, id="versioned")
    wait_until(
        lambda: any(e.kind == "activity_completed" for e in client.history("versioned")),
        "the first activity of 'versioned' to complete",
        20,
    )
    engine.stop()
    engine.env["LEDGERFLOW_TEST_VERSION"] = "2"  # deploy a changed workflow, without a patch
    engine.start()
    engine.wait_ready()
    client.signal("versioned", "go")
    blocked = wait_until(
        lambda: client.describe("versioned").get("blocked"), "the run to be blocked by the bad code", 30
    )
    assert "NonDeterminismError" in blocked and "'add_one'" in blocked and "'double'" in blocked, blocked
    state = client.describe("versioned")
    assert state["status"] == "RUNNING" and len(state["held"]) == 1  # the signal waits, kept
    client.start_workflow("ThreeSteps", 1, id="after-nd")
    assert client.result("after-nd", timeout=30) == 4  # the other runs carry on
    engine.stop()
    del engine.env["LEDGERFLOW_TEST_VERSION"]  # the fixed deploy
    engine.start()
    engine.wait_ready()
    assert client.result("versioned", timeout=90) == 3  # the held signal reached the code
    assert client.describe("versioned")["blocked"] is None
    assert_invariants(client, "versioned")


def test_a_run_failed_by_a_bug_is_reset_after_the_fix_and_completes(cluster: Cluster, client: Client) -> None:
    """Temporal's reset: once the fix is deployed, the failed run is taken back to the failed
    step's outcome; the new run keeps what came before (the first activity is not run again)
    and runs the step again."""
    engine = cluster.engine([FLOWS])
    buggy = cluster.worker([ACTS], env={"LEDGERFLOW_TEST_BUG": "1"})
    engine.wait_ready()
    client.start_workflow("BuggyStep", 1, id="buggy")
    with pytest.raises(WorkflowFailedError) as failed:
        client.result("buggy", timeout=30)
    assert failed.value.failure.cause is not None and failed.value.failure.cause.type == "Bug"
    old = client.fetch_history("buggy")
    failed_step = next(e.index for e in old.events if isinstance(e, ev.ActivityFailed))
    with pytest.raises(
        ValueError, match="activity_scheduled; a run is reset to an event its code reacted to"
    ):
        client.reset("buggy", failed_step - 1)

    buggy.stop()
    cluster.worker([ACTS], name="worker-fixed")  # the fix is deployed
    handle = client.reset("buggy", failed_step, reason="off-by-one fixed")
    assert handle.run_id != old.run_id
    assert handle.result(timeout=30) == 3
    new = client.fetch_history("buggy")
    assert new.run_id == handle.run_id and new.events[: failed_step - 1] == old.events[: failed_step - 1]
    reset = new.events[failed_step - 1]
    assert isinstance(reset, ev.WorkflowReset) and (reset.reset_run_id, reset.reason) == (
        old.run_id,
        "off-by-one fixed",
    )
    scheduled = [e for e in new.events if isinstance(e, ev.ActivityScheduled)]
    assert [e.activity_type for e in scheduled] == ["add_one", "buggy_add_one"], "add_one did not run again"
    assert client.describe("buggy")["previous_runs"] == [old.run_id]
    assert_invariants(client, "buggy")


def open_runs(engine: NodeProcess, limit: int) -> list[str]:
    """Workflow ids an engine lists as RUNNING with at least one activity outstanding."""
    params: dict[str, str | int] = {"status": "RUNNING", "limit": limit}
    rows = engine.get("/internal/workflows", params=params).json()["runs"]
    return [str(r["workflow_id"]) for r in rows if r["pending_activities"]]


def partitions_of(engine: NodeProcess) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = engine.get("/internal/partitions").json()["partitions"]
    return rows


def test_restart_restores_only_the_changelog_tail(cluster: Cluster, client: Client) -> None:
    a = cluster.engine([FLOWS], name="engine-a")
    cluster.worker([ACTS])
    a.wait_ready()
    for i in range(10):
        client.start_workflow("ThreeSteps", i, id=f"before-{i}")
    for i in range(10):
        assert client.result(f"before-{i}", timeout=30) == i + 3
    a.stop()
    # Another node owns the partitions for a while and grows the changelog.
    b = cluster.engine([FLOWS], name="engine-b")
    b.wait_ready()
    restored_by_b = {row["partition"]: row for row in partitions_of(b)}
    for i in range(10):
        client.start_workflow("ThreeSteps", i, id=f"after-{i}")
    for i in range(10):
        assert client.result(f"after-{i}", timeout=30) == i + 3
    b.stop()
    a.start()
    a.wait_ready()
    rows = partitions_of(a)
    assert rows, "engine-a owns no partitions"
    tail = [row for row in rows if row["restored_records"]]
    assert tail, f"engine-a read nothing back although engine-b changed its partitions: {rows}"
    for row in tail:
        assert row["restored_from_offset"] > 0, row  # resumed after its own checkpoint, not from 0
        full = restored_by_b[row["partition"]]
        assert full["restored_from_offset"] == 0  # b had no local state: it read from the start
    a_read = sum(int(row["restored_records"] or 0) for row in rows)
    b_read = sum(int(row["restored_records"] or 0) for row in restored_by_b.values())
    assert a_read > 0 and b_read > 0
    for i in range(10):
        assert client.describe(f"before-{i}")["result"] == i + 3
        assert client.describe(f"after-{i}")["result"] == i + 3
