"""Changing the shard count: ``ledgerflow reshard`` moves a stopped deployment to new topics."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ledgerflow import Client
from ledgerflow.config import Settings
from ledgerflow.errors import WorkflowNotFoundError
from ledgerflow.local.processes import Cluster
from tests.fixtures import ACTS, FLOWS, ROOT, assert_invariants, lifecycle_events, slept

pytestmark = pytest.mark.kafka


def reshard(cluster: Cluster, to_prefix: str, to_partitions: int) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "ledgerflow.cli", "reshard", "--bootstrap", cluster.bootstrap]
    command += ["--prefix", cluster.prefix, "--to-prefix", to_prefix, "--to-partitions", str(to_partitions)]
    return subprocess.run([*command, "--json"], capture_output=True, text=True, timeout=180)


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    """Poll ``condition`` (a run not started yet counts as false) until it holds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if condition():
                return
        except WorkflowNotFoundError:
            pass
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_reshard_moves_open_workflows_to_a_new_shard_count_and_each_completes_once(
    cluster: Cluster, client: Client, tmp_path: Path
) -> None:
    engine = cluster.engine([FLOWS])
    worker = cluster.worker([ACTS])
    engine.wait_ready()
    done = [f"done-{i}" for i in range(15)]
    sleepers = [f"sleep-{i}" for i in range(15)]
    signalled = [f"signal-{i}" for i in range(15)]
    pending = [f"pending-{i}" for i in range(15)]
    for i, wid in enumerate(done):
        client.start_workflow("ThreeSteps", i, id=wid)
    for i, wid in enumerate(done):
        assert client.result(wid) == i + 3, wid
    for wid in sleepers:
        client.start_workflow("Sleeper", 4.0, id=wid)
    for wid in signalled:
        client.start_workflow("SignalCounter", id=wid)
        client.signal(wid, "add", 1)
    wait_for(lambda: all(client.query(w, "received") == [1] for w in signalled), "the first signals")

    # Activities dispatched but never run: their tasks sit in the old task topic.
    worker.stop()
    for i, wid in enumerate(pending):
        client.start_workflow("ThreeSteps", 100 + i, id=wid)
    wait_for(lambda: all(client.describe(w)["activities"] for w in pending), "pending activities")
    engine.stop()
    # Sent while no engine runs: unprocessed inbox records that must move too.
    for wid in signalled:
        client.signal(wid, "add", 2)

    to_prefix = f"{cluster.prefix}v2."
    moved = reshard(cluster, to_prefix, 7)
    assert moved.returncode == 0, moved.stderr
    report = json.loads(moved.stdout)
    assert report["source_partitions"] == 4 and report["target_partitions"] == 7
    assert report["workflows"] == 60 and report["open_workflows"] == 45
    assert report["tasks_redispatched"] == len(pending)
    assert report["inbox_records"] >= len(signalled)
    assert sum(report["open_per_partition"]) == 45

    # The old deployment is sealed: no second copy of the moved workflows can run.
    again = reshard(cluster, f"{cluster.prefix}v3.", 3)
    assert again.returncode != 0 and f"moved to prefix {to_prefix!r}" in again.stderr
    old = cluster.engine([FLOWS], name="old-engine")
    wait_for(lambda: not old.alive(), "the old engine to refuse to start")
    assert f"moved to prefix {to_prefix!r}" in old.log_tail()

    new = Cluster(cluster.bootstrap, to_prefix, tmp_path / "v2", partitions=7, pythonpath=[ROOT])
    try:
        new.engine([FLOWS]).wait_ready()
        new.worker([ACTS])
        with new.client() as moved_client:
            for wid in signalled:
                moved_client.signal(wid, "done")
            every = [*done, *sleepers, *signalled, *pending]
            results = {wid: moved_client.result(wid) for wid in every}
            assert all(results[w] == [1, 2] for w in signalled)
            assert [results[w] for w in pending] == [100 + i + 3 for i in range(len(pending))]
            assert [results[w] for w in done] == [i + 3 for i in range(len(done))]
            assert all(slept(results[w]) >= 4.0 for w in sleepers)
            for wid in results:
                assert_invariants(moved_client, wid)
        opened = set(sleepers + signalled + pending)
        completions = lifecycle_events(new, "WORKFLOW_COMPLETED", opened)
        assert sorted(e["workflow_id"] for e in completions) == sorted(opened), "completed once each"
        new_layout = Settings(partitions=7)
        assert all(e["partition"] == new_layout.partition_of(e["workflow_id"]) for e in completions)
    finally:
        new.stop_all()


def test_reshard_refuses_while_the_old_deployment_runs(cluster: Cluster, client: Client) -> None:
    engine = cluster.engine([FLOWS])
    engine.wait_ready()
    refused = reshard(cluster, f"{cluster.prefix}v2.", 8)
    assert refused.returncode != 0
    assert f"'{cluster.prefix}engine' has 1 live member" in refused.stderr
    result = client.start_workflow("Sleeper", 0.1, id="still-here").result(timeout=30)
    assert slept(result) >= 0.1, result
