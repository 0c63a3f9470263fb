"""Sharding strategies: a custom partitioner applied by every process."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from ledgerflow import Client
from ledgerflow.config import Settings
from ledgerflow.local.processes import Cluster
from ledgerflow.partitioning import PartitionerError, load_partitioner, partition_for
from tests.fixtures import ACTS, FLOWS, assert_invariants

PARTITIONER = "tests.testapps.tenancy:by_tenant"


def test_partitioner_errors_are_clear() -> None:
    with pytest.raises(PartitionerError, match="module:function"):
        load_partitioner("no_colon_here")
    with pytest.raises(PartitionerError, match="cannot load"):
        load_partitioner("tests.testapps.tenancy:missing")
    bad = load_partitioner("builtins:len")  # len(workflow_id, partitions) -> TypeError
    with pytest.raises(TypeError):
        bad("x", 4)


@pytest.fixture
def tenant_client(cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> Iterator[Client]:
    monkeypatch.setenv("LEDGERFLOW_PARTITIONER", PARTITIONER)
    cluster.env["LEDGERFLOW_PARTITIONER"] = PARTITIONER
    with cluster.client() as client:
        yield client


@pytest.mark.kafka
def test_custom_partitioner_keeps_a_tenant_on_one_shard(cluster: Cluster, tenant_client: Client) -> None:
    cluster.partitions = 8
    engine = cluster.engine([FLOWS])
    cluster.worker([ACTS])
    engine.wait_ready()
    client = tenant_client
    client.settings = client.settings.model_copy(update={"partitions": 8})
    ids = [f"{tenant}:{i}" for tenant in ("acme", "globex") for i in range(12)]
    for i, workflow_id in enumerate(ids):
        client.start_workflow("ThreeSteps", i, id=workflow_id)
    for i, workflow_id in enumerate(ids):
        assert client.result(workflow_id, timeout=60) == i + 3
    partitions = {wid: client.describe(wid)["partition"] for wid in ids}
    for tenant in ("acme", "globex"):
        shards = {p for wid, p in partitions.items() if wid.startswith(f"{tenant}:")}
        assert shards == {Settings(partitions=8, partitioner=PARTITIONER).partition_of(f"{tenant}:x")}
    # murmur2 of the full ids would have spread them
    assert len({partition_for(wid, 8) for wid in ids}) > 2
    assert_invariants(client, "acme:3")
