"""A real engine, worker and gateway (``ledgerflow api``) for the gateway's tests.

The stack is secured as in production: engines require the cluster's engine token, the
gateway accepts the cluster's API key (every scope), which the ``api`` client sends."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from ledgerflow.local.processes import Cluster, NodeProcess

ROOT = str(Path(__file__).resolve().parents[2])
FLOWS = "tests.testapps.flows"
ACTS = "tests.testapps.acts"


@dataclass
class Stack:
    cluster: Cluster
    gateway: NodeProcess

    @property
    def url(self) -> str:
        assert self.gateway.url is not None
        return self.gateway.url


@contextmanager
def running_stack(
    bootstrap: str, name: str, base_dir: Path, env: dict[str, str] | None = None
) -> Iterator[Stack]:
    """An engine, a worker and a gateway under a prefix of their own, stopped on exit."""
    cluster = Cluster(
        bootstrap, f"{name}-{uuid.uuid4().hex[:8]}.", base_dir, partitions=4, pythonpath=[ROOT], env=env or {}
    )
    try:
        engine = cluster.engine([FLOWS])
        cluster.worker([ACTS])
        engine.wait_ready()
        gateway = cluster.gateway([ACTS])
        gateway.wait_ready()
        yield Stack(cluster, gateway)
    finally:
        cluster.stop_all()


@pytest.fixture(scope="session")
def api_stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One engine, one worker and one gateway, shared by the tests that only read and write."""
    with running_stack(kafka_bootstrap, "api", tmp_path_factory.mktemp("api-stack")) as stack:
        yield stack


@pytest.fixture
def api(api_stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api_stack.url, headers=api_stack.gateway.headers, timeout=10) as client:
        yield client


def wait_status(
    api: httpx.Client,
    workflow_id: str,
    until: tuple[str, ...],
    timeout: float = 30.0,
    run_id: str | None = None,
) -> dict[str, Any]:
    """Poll ``GET .../status`` until the run's status is one of ``until``.

    With ``run_id``, until that run is the latest one: a start answers 202 before it is
    applied, so the id's status may still show the run before it."""
    deadline = time.monotonic() + timeout
    last: httpx.Response | None = None
    while time.monotonic() < deadline:
        last = api.get(f"/api/v1/workflows/{workflow_id}/status")
        if (
            last.status_code == 200
            and last.json()["status"] in until
            and (run_id is None or last.json()["runId"] == run_id)
        ):
            body: dict[str, Any] = last.json()
            return body
        time.sleep(0.1)
    raise AssertionError(f"{workflow_id} not in {until} after {timeout} s: {last and last.text}")


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"
