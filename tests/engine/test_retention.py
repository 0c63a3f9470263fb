"""``engine --retention``: closed runs are deleted after the retention, open ones never."""

from __future__ import annotations

import functools
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ledgerflow import Client
from ledgerflow.errors import WorkflowNotFoundError
from ledgerflow.local.processes import Cluster
from tests.fixtures import ACTS, FLOWS
from tests.waits import wait_until

pytestmark = pytest.mark.kafka


RETENTION = 6.0


def test_closed_runs_are_deleted_after_the_retention(cluster: Cluster, client: Client) -> None:
    engine = cluster.engine([FLOWS], extra=["--retention", str(RETENTION)])
    cluster.worker([ACTS])
    engine.wait_ready()
    client.start_workflow("SignalCounter", id="stays-open")
    client.start_workflow("ThreeSteps", 1, id="expires")
    closed = wait_until(functools.partial(completed, client, "expires"), "'expires' to complete")
    assert closed["result"] == 4
    expires_at = float(closed["closed_at"]) + RETENTION
    # Judged by the engine's own record (closed_at) on the shared clock, not by how long the
    # test slept: a describe answered before expires_at must still find the run.
    deadline = time.monotonic() + RETENTION + 30
    last_seen = time.time()
    while True:
        try:
            state = client.describe("expires")
        except WorkflowNotFoundError:
            gone = time.time()
            break
        last_seen = time.time()
        assert state["status"] == "COMPLETED", state
        assert time.monotonic() < deadline, "a closed run outlived its retention by 30 s"
        time.sleep(0.2)
    print(
        f"last seen {expires_at - last_seen:.2f} s before the retention ended; "
        f"gone {gone - expires_at:.2f} s after"
    )
    assert gone >= expires_at, f"deleted at least {expires_at - gone:.2f} s before its retention ended"
    with pytest.raises(WorkflowNotFoundError):
        client.history("expires")
    assert client.describe("stays-open")["status"] == "RUNNING"
    assert client.start_workflow("ThreeSteps", 5, id="expires").result(timeout=30) == 8


def completed(client: Client, workflow_id: str) -> dict[str, Any] | None:
    state = client.describe(workflow_id)
    return state if state["status"] == "COMPLETED" else None


def test_a_retention_no_timer_can_hold_is_refused_at_start(tmp_path: Path) -> None:
    command = [
        sys.executable,
        "-m",
        "ledgerflow.cli",
        "engine",
        "--data-dir",
        str(tmp_path),
        "--retention",
        "inf",
    ]
    refused = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode == 2 and "Invalid value for '--retention'" in refused.stderr
