"""Messages on ``<prefix>tasks.<queue>``, keyed by workflow id, read by executors."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, TypeAdapter
from pydantic_core import to_json

from ledgerflow.schemas.common import JSON, WireModel


class ActivityTask(WireModel):
    """Run one attempt of an activity and report to the inbox."""

    kind: Literal["activity_task"] = "activity_task"
    workflow_id: str
    run_id: str
    seq: int
    attempt: int
    activity_type: str
    args: list[JSON] = Field(default_factory=list)
    start_to_close_timeout: float | None = None
    heartbeat_timeout: float | None = None
    scheduled_at: float
    """When the owner dispatched the attempt (seconds since the epoch)."""
    partition: int | None = None
    """Inbox partition of the workflow: results go there, whatever the partitioner."""
    heartbeat_details: JSON = None
    """What an earlier attempt last heartbeated (``activity.info().heartbeat_details``), so a
    retry can resume where it stopped."""


class CancelActivity(WireModel):
    """Stop a running attempt: the workflow no longer wants its result."""

    kind: Literal["cancel_activity"] = "cancel_activity"
    workflow_id: str
    run_id: str
    seq: int
    attempt: int


TaskMessage = Annotated[ActivityTask | CancelActivity, Field(discriminator="kind")]
task_message_adapter: TypeAdapter[TaskMessage] = TypeAdapter(TaskMessage)


def activity_task_json(
    workflow_id: str,
    run_id: str,
    seq: int,
    attempt: int,
    activity_type: str,
    args: list[JSON],
    start_to_close_timeout: float | None,
    heartbeat_timeout: float | None,
    scheduled_at: float,
    partition: int | None,
    heartbeat_details: JSON = None,
) -> bytes:
    """``ActivityTask(...).model_dump_json()`` without building the model (see ``lifecycle_event_json``)."""
    return to_json(
        {
            "kind": "activity_task",
            "workflow_id": workflow_id,
            "run_id": run_id,
            "seq": seq,
            "attempt": attempt,
            "activity_type": activity_type,
            "args": args,
            "start_to_close_timeout": start_to_close_timeout,
            "heartbeat_timeout": heartbeat_timeout,
            "scheduled_at": scheduled_at,
            "partition": partition,
            "heartbeat_details": heartbeat_details,
        }
    )
