"""A custom partitioner: every workflow of a tenant ("tenant:rest-of-id") on one shard."""

from __future__ import annotations

from ledgerflow.partitioning import partition_for


def by_tenant(workflow_id: str, partitions: int) -> int:
    tenant, _, _ = workflow_id.partition(":")
    return partition_for(tenant, partitions)
