"""SIGTERM drains a worker: its running activity finishes, its result is recorded, it exits 0.

The worker waits up to its shutdown grace (30 s) for running activities, then flushes
their results and commits their offsets before it exits, so no other worker runs the
task again and the engine records the result once.
"""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from ledgerflow import Client
from ledgerflow.local.processes import Cluster
from tests.executors.test_worker_delivery import APPS, assert_recorded_once, committed, runs_of, task_position
from tests.fixtures import FLOWS
from tests.waits import wait_until

pytestmark = pytest.mark.kafka

GRACE = 30.0
"""The worker's shutdown grace (Worker.shutdown_grace)."""
ACTIVITY_SECONDS = 4.0


def terminate_mid_activity(
    cluster: Cluster, client: Client, markers: Path, workflow_id: str, seconds: float, grace: float
) -> float:
    """Start ``Reported`` (an activity of ``seconds``) on a worker with ``grace``, SIGTERM the
    worker once the activity runs, and return the seconds it took to exit 0."""
    engine = cluster.engine([FLOWS, APPS])
    worker = cluster.worker([APPS], name="worker-a", shutdown_grace=grace)
    engine.wait_ready()
    markers.mkdir()
    client.start_workflow("Reported", [str(markers), seconds, 10], id=workflow_id)
    wait_until((markers / "runs").exists, "the activity to start on the worker", 30, 0.05)
    assert worker.process is not None
    signalled = time.monotonic()
    worker.process.send_signal(signal.SIGTERM)
    try:
        code = worker.process.wait(grace + 15)
    except subprocess.TimeoutExpired:
        pytest.fail(f"the worker did not exit within {grace + 15} s of SIGTERM:\n{worker.log_tail()}")
    assert code == 0, worker.log_tail()
    return time.monotonic() - signalled


def test_sigterm_lets_the_running_activity_finish_and_report_before_exit_0(
    cluster: Cluster, client: Client, tmp_path: Path
) -> None:
    markers = tmp_path / "m"
    exited_after = terminate_mid_activity(cluster, client, markers, "drained", ACTIVITY_SECONDS, GRACE)
    assert exited_after < GRACE, f"exit took {exited_after:.1f} s, more than the grace"
    assert (markers / "finished").exists(), "the activity was cut off instead of finishing"

    # No worker runs any more: the result must have left with the drained one.
    assert client.result("drained", timeout=30) == 10
    assert len(runs_of(markers)) == 1
    assert_recorded_once(client, "drained")
    task = task_position(cluster, "drained")
    assert committed(cluster, task) > task.offset, "the drained task was left uncommitted: it would run again"
    print(f"SIGTERM -> exit 0 in {exited_after:.1f} s (activity of {ACTIVITY_SECONDS} s was running)")


def test_an_activity_still_running_past_the_grace_is_abandoned_uncommitted_and_runs_again(
    cluster: Cluster, client: Client, tmp_path: Path
) -> None:
    grace, markers = 2.0, tmp_path / "m"
    exited_after = terminate_mid_activity(cluster, client, markers, "abandoned", 8.0, grace)
    assert exited_after < 8.0, f"exit took {exited_after:.1f} s: it waited for the activity, not the grace"
    assert not (markers / "finished").exists(), "the activity finished: the grace was not what ended it"
    task = task_position(cluster, "abandoned")
    assert committed(cluster, task) <= task.offset, "the abandoned task was committed: it would never rerun"

    cluster.worker([APPS], name="worker-b")
    assert client.result("abandoned", timeout=60) == 10
    first, second = runs_of(markers)
    assert first != second, "the task did not run again on the second worker"
    assert_recorded_once(client, "abandoned")
    print(f"SIGTERM with an 8 s activity under a {grace} s grace -> exit 0 in {exited_after:.1f} s")
