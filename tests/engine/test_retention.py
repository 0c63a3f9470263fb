"""``engine --retention``: closed runs are deleted after the retention, open ones never."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from ledgerflow import Client
from ledgerflow.errors import WorkflowNotFoundError
from ledgerflow.testing.processes import Cluster
from tests.fixtures import ACTS, FLOWS

pytestmark = pytest.mark.kafka


def test_closed_runs_are_deleted_after_the_retention(cluster: Cluster, client: Client) -> None:
    engine = cluster.engine([FLOWS], extra=["--retention", "1.5"])
    cluster.worker([ACTS])
    engine.wait_ready()
    client.start_workflow("SignalCounter", id="stays-open")
    assert client.start_workflow("ThreeSteps", 1, id="expires").result(timeout=30) == 4
    assert client.describe("expires")["status"] == "COMPLETED", "gone before its retention"
    deadline = time.monotonic() + 20
    while True:
        try:
            client.describe("expires")
        except WorkflowNotFoundError:
            break
        assert time.monotonic() < deadline, "a closed run outlived its retention"
        time.sleep(0.2)
    with pytest.raises(WorkflowNotFoundError):
        client.history("expires")
    assert client.describe("stays-open")["status"] == "RUNNING"
    assert client.start_workflow("ThreeSteps", 5, id="expires").result(timeout=30) == 8


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
