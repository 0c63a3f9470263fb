"""Messages on ``<prefix>tasks.<queue>``, keyed by workflow id, read by executors."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter
from pydantic_core import to_json

from ledgerflow.schemas.common import JSON, Id, WireModel


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


class TaskToken(WireModel):
    """Names one activity attempt, for whoever completes it outside the worker (async activity
    completion): ``activity.info().task_token`` is this, encoded by ``task_token``."""

    workflow_id: Id
    run_id: Id
    seq: int
    attempt: int
    partition: int | None = None

    def attempt_fields(self) -> dict[str, Any]:
        """The fields of a task result (completed, failed, heartbeat) naming this attempt."""
        return {
            "workflow_id": self.workflow_id,
            "run_id": self.run_id,
            "seq": self.seq,
            "attempt": self.attempt,
        }


TOKEN_PREFIX = "lft1."  # noqa: S105 - a format marker, not a secret


def task_token(token: TaskToken) -> str:
    """The token as a string a caller can carry (URL-safe)."""
    return TOKEN_PREFIX + base64.urlsafe_b64encode(token.model_dump_json().encode()).decode().rstrip("=")


def read_task_token(text: str) -> TaskToken:
    """The attempt a token names; ``ValueError`` saying why for anything else."""
    if not text.startswith(TOKEN_PREFIX):
        raise ValueError(f"not a Ledgerflow task token (they start with {TOKEN_PREFIX!r})")
    body = text[len(TOKEN_PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        return TaskToken.model_validate_json(raw)
    except (ValueError, binascii.Error) as exc:
        raise ValueError(f"a task token that does not read back: {str(exc).splitlines()[0]}") from None


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
