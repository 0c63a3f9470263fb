"""What a worker advertises it serves, on the compacted ``<prefix>workers`` topic.

Each worker process writes one record, keyed by its queue and its own id, when it starts and
every ``ADVERT_EVERY`` seconds, and a tombstone when it stops. The gateway reads the topic to
publish the activities workers serve (``GET /api/v1/node-types``, a DAG editor's palette) and to
accept them as DAG node types, without importing the workers' code. A worker that died without
its tombstone drops out once its record is older than ``ADVERT_FRESH``.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ledgerflow.schemas.common import WireModel

ADVERT_EVERY = 30.0
"""Seconds between a worker's records."""
ADVERT_FRESH = 90.0
"""Seconds after which a worker's record no longer counts (it missed two)."""


class ServedActivity(WireModel):
    name: str = Field(min_length=1, max_length=256)
    input_schema: dict[str, Any] | None = None
    """JSON Schema of the activity's arguments, from its type hints (one parameter: that
    parameter's; several: an array of them); null when they give none."""
    dag_node: bool = False
    """Whether a DAG node may run it: it takes one argument that a JSON object fits (a node's
    rendered ``input``)."""


class WorkerAdvert(WireModel):
    worker: str = Field(min_length=1, max_length=256)
    queue: str = Field(min_length=1, max_length=249)
    activities: list[ServedActivity] = Field(max_length=10_000)
    seen_at: float
    """When the worker wrote this (seconds since the epoch)."""


def advert_key(queue: str, worker: str) -> bytes:
    return f"{queue}\x00{worker}".encode()
