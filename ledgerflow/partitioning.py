"""Which shard (partition) a workflow id belongs to: murmur2, as Kafka's Java client computes it."""

from __future__ import annotations

from aiokafka.partitioner import murmur2


def partition_for(workflow_id: str, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for key ``workflow_id``."""
    hashed: int = murmur2(workflow_id.encode())
    return (hashed & 0x7FFFFFFF) % partitions
