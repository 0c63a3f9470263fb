"""Cluster events: engines joining and leaving, partitions assigned, revoked and lost.

Every engine writes them to ``<prefix>cluster`` (one partition, so one order). Reading
them back, a partition assigned to a node while another node still held it (it never
revoked it nor left) is a failover: the previous owner died.
"""

from __future__ import annotations

import json
import time
from typing import Any

from confluent_kafka import KafkaError, TopicPartition

from ledgerflow import kafkaclients as clients
from ledgerflow.config import Settings


def read_events(settings: Settings, limit: int = 100, timeout: float = 5.0) -> list[dict[str, Any]]:
    """The last ``limit`` cluster events, oldest first, with failovers marked."""
    consumer = clients.consumer(settings, None, **{"enable.partition.eof": True})
    tp = TopicPartition(settings.topic("cluster"), 0)
    try:
        low, high = consumer.get_watermark_offsets(tp, timeout=timeout)
        if high <= low:
            return []
        # Read a window wider than asked so failover detection sees the previous owners.
        consumer.assign([TopicPartition(tp.topic, 0, max(low, high - max(limit * 4, 200)))])
        events: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:  # noqa: SLF001
                    break
                continue
            events.append(json.loads(message.value() or b"{}"))
    finally:
        consumer.close()
    return mark_failovers(events)[-limit:]


def mark_failovers(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Annotate assignments that took partitions from a node that never gave them up."""
    holder: dict[int, str] = {}
    for event in events:
        kind, node = event.get("type"), str(event.get("node"))
        partitions = [int(p) for p in event.get("partitions", [])]
        if kind in ("PARTITIONS_ASSIGNING", "PARTITIONS_ASSIGNED"):
            taken = {p: holder[p] for p in partitions if holder.get(p) not in (None, node)}
            if taken:
                event["failover_from"] = sorted(set(taken.values()))
                event["failover_partitions"] = sorted(taken)
            for p in partitions:
                holder[p] = node
        elif kind in ("PARTITIONS_REVOKED", "PARTITIONS_LOST", "PARTITIONS_CLOSED"):
            for p in partitions:
                if holder.get(p) == node:
                    del holder[p]
        elif kind == "NODE_LEFT":
            for p in [p for p, n in holder.items() if n == node]:
                del holder[p]
    return events
