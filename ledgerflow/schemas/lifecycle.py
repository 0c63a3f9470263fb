"""The public ``<prefix>events`` stream: one record per lifecycle step, keyed by workflow id."""

from __future__ import annotations

from typing import Literal

from pydantic_core import to_json

from ledgerflow.schemas.common import JSON, WireModel

LifecycleType = Literal[
    "WORKFLOW_STARTED",
    "TASK_SCHEDULED",
    "TASK_COMPLETED",
    "TASK_FAILED",
    "TIMER_FIRED",
    "SIGNAL_RECEIVED",
    "WORKFLOW_COMPLETED",
    "WORKFLOW_FAILED",
    "WORKFLOW_CANCELED",
    "WORKFLOW_TERMINATED",
    "WORKFLOW_CONTINUED_AS_NEW",
    "DEFINITION_REGISTERED",
]


class LifecycleEvent(WireModel):
    """What consumers of the public stream read."""

    type: LifecycleType
    workflow_id: str
    run_id: str | None = None
    workflow_type: str | None = None
    time: float
    """When it happened (seconds since the epoch)."""
    partition: int
    """Shard that owns the workflow."""
    history_index: int | None = None
    """Index of the history event this reports, when there is one."""
    data: JSON = None
    """Type-specific details (result, failure, activity name...)."""


def lifecycle_event_json(
    type: LifecycleType,
    workflow_id: str,
    run_id: str | None,
    workflow_type: str | None,
    time: float,
    partition: int,
    history_index: int | None,
    data: JSON,
) -> bytes:
    """``LifecycleEvent(...).model_dump_json()`` without building the model.

    The engine emits several of these per workflow step from values it already
    validated; building the model first cost five times the serialisation
    (bench/processor.py). tests/schemas checks both give the same bytes.
    """
    return to_json(
        {
            "type": type,
            "workflow_id": workflow_id,
            "run_id": run_id,
            "workflow_type": workflow_type,
            "time": time,
            "partition": partition,
            "history_index": history_index,
            "data": data,
        }
    )
