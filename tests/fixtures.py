"""Fixtures that run real engines and workers against the session's broker (loaded by tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ledgerflow import Client
from ledgerflow.engine.workflow.definition import WorkflowRegistry
from ledgerflow.testing.invariants import check_run
from ledgerflow.testing.processes import Cluster

ROOT = str(Path(__file__).resolve().parents[1])
FLOWS = "tests.testapps.flows"
ACTS = "tests.testapps.acts"


@pytest.fixture
def cluster(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(kafka_bootstrap, topic_prefix, tmp_path, partitions=4, pythonpath=[ROOT])
    yield c
    c.stop_all()


@pytest.fixture
def client(cluster: Cluster) -> Iterator[Client]:
    with Client(cluster.bootstrap, cluster.prefix, partitions=cluster.partitions) as c:
        yield c


@pytest.fixture
def running(cluster: Cluster) -> Cluster:
    """One engine (ready) and one worker, serving the test apps."""
    engine = cluster.engine([FLOWS])
    cluster.worker([ACTS])
    engine.wait_ready()
    return cluster


def assert_invariants(client: Client, workflow_id: str) -> None:
    state = client.describe(workflow_id)
    history = client.history(workflow_id)
    registry = WorkflowRegistry.from_modules([FLOWS])
    problems = check_run(state, history, registry)
    assert not problems, problems
