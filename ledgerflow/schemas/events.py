"""History events: the durable record of one workflow run.

A run's history is a gap-free sequence (``index`` 1, 2, 3, ...). Events marked
*command* below are written because the workflow code asked for something;
on replay the code must ask for the same thing in the same order, or the run
fails with NonDeterminismError. The others are inputs the code reacts to.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, TypeAdapter
from pydantic_core import to_json

from ledgerflow.schemas.common import JSON, ActivityOptions, Failure, WireModel
from ledgerflow.schemas.dag import DagDefinition
from ledgerflow.schemas.search import Memo, SearchAttributes, SearchAttributeUpserts


class _Event(WireModel):
    index: int = Field(ge=1)
    """Position in the run's history, from 1, without gaps."""
    time: float
    """When the engine recorded it (seconds since the epoch)."""


class WorkflowStarted(_Event):
    kind: Literal["workflow_started"] = "workflow_started"
    workflow_type: str
    input: JSON = None
    dag: DagDefinition | None = None
    """The DAG this run executes, pinned at start."""
    execution_timeout: float | None = None
    parent_workflow_id: str | None = None
    parent_run_id: str | None = None
    parent_seq: int | None = None
    continued_from_run_id: str | None = None
    """Set when this run was started by continue-as-new."""
    search_attributes: SearchAttributes = Field(default_factory=dict)
    memo: Memo = Field(default_factory=dict)


class ActivityScheduled(_Event):
    """*command*: the code called an activity; attempt 1 is dispatched."""

    kind: Literal["activity_scheduled"] = "activity_scheduled"
    seq: int
    activity_type: str
    args: list[JSON] = Field(default_factory=list)
    options: ActivityOptions = ActivityOptions()


class ActivityAttemptFailed(_Event):
    """One attempt failed (raised or timed out); ``retry_in`` is the backoff, if any."""

    kind: Literal["activity_attempt_failed"] = "activity_attempt_failed"
    seq: int
    attempt: int
    failure: Failure
    retry_in: float | None = None


class ActivityAttemptRetried(_Event):
    """The backoff elapsed and attempt ``attempt`` was dispatched."""

    kind: Literal["activity_attempt_retried"] = "activity_attempt_retried"
    seq: int
    attempt: int


class ActivityCompleted(_Event):
    kind: Literal["activity_completed"] = "activity_completed"
    seq: int
    attempt: int
    result: JSON = None


class ActivityFailed(_Event):
    """The activity failed for good: no attempts left, non-retryable, or timed out overall."""

    kind: Literal["activity_failed"] = "activity_failed"
    seq: int
    attempt: int
    failure: Failure


class ActivityCancelRequested(_Event):
    """*command*: the code cancelled an activity it awaited."""

    kind: Literal["activity_cancel_requested"] = "activity_cancel_requested"
    seq: int


class TimerStarted(_Event):
    """*command*: a durable timer (``workflow.sleep`` or a wait's timeout)."""

    kind: Literal["timer_started"] = "timer_started"
    seq: int
    fire_at: float
    """When the timer fires (seconds since the epoch)."""


class TimerFired(_Event):
    kind: Literal["timer_fired"] = "timer_fired"
    seq: int


class TimerCanceled(_Event):
    """*command*: the code no longer waits on the timer."""

    kind: Literal["timer_canceled"] = "timer_canceled"
    seq: int


class SignalReceived(_Event):
    kind: Literal["signal_received"] = "signal_received"
    name: str
    payload: JSON = None


class UpdateAccepted(_Event):
    """An update passed its validator: its handler runs."""

    kind: Literal["update_accepted"] = "update_accepted"
    update_id: str
    name: str
    payload: JSON = None


class UpdateRejected(_Event):
    """An update's validator refused it (or the workflow has no such update): nothing ran."""

    kind: Literal["update_rejected"] = "update_rejected"
    update_id: str
    name: str
    failure: Failure


class UpdateCompleted(_Event):
    """*command*: an update's handler returned (``result``) or raised (``failure``)."""

    kind: Literal["update_completed"] = "update_completed"
    update_id: str
    result: JSON = None
    failure: Failure | None = None


class CancelRequested(_Event):
    kind: Literal["cancel_requested"] = "cancel_requested"
    reason: str = ""


class ChildWorkflowStarted(_Event):
    """*command*: the code started a child workflow."""

    kind: Literal["child_workflow_started"] = "child_workflow_started"
    seq: int
    workflow_id: str
    workflow_type: str
    input: JSON = None


class ChildWorkflowCompleted(_Event):
    kind: Literal["child_workflow_completed"] = "child_workflow_completed"
    seq: int
    result: JSON = None


class ChildWorkflowFailed(_Event):
    kind: Literal["child_workflow_failed"] = "child_workflow_failed"
    seq: int
    failure: Failure


class PatchRecorded(_Event):
    """*command*: the code took the new path of ``workflow.patched(patch_id)`` (or
    ``deprecate_patch``) for the first time in this run. A replay answers ``patched`` from these
    markers, so runs recorded before the patch keep their old path."""

    kind: Literal["patch_recorded"] = "patch_recorded"
    patch_id: str


class SearchAttributesUpserted(_Event):
    """*command*: the code changed the run's search attributes (a null removes one)."""

    kind: Literal["search_attributes_upserted"] = "search_attributes_upserted"
    attributes: SearchAttributeUpserts


class WorkflowCompleted(_Event):
    kind: Literal["workflow_completed"] = "workflow_completed"
    result: JSON = None


class WorkflowFailed(_Event):
    kind: Literal["workflow_failed"] = "workflow_failed"
    failure: Failure
    origin: Literal["code", "engine"] = "code"
    """``engine`` when the engine failed the run (timeout, non-determinism, unknown type)."""


class WorkflowCanceled(_Event):
    kind: Literal["workflow_canceled"] = "workflow_canceled"
    reason: str = ""


class WorkflowTerminated(_Event):
    kind: Literal["workflow_terminated"] = "workflow_terminated"
    reason: str = ""


class WorkflowContinuedAsNew(_Event):
    kind: Literal["workflow_continued_as_new"] = "workflow_continued_as_new"
    new_run_id: str
    input: JSON = None


class WorkflowReset(_Event):
    """This run was made by a reset: the events before this one are those of run
    ``reset_run_id`` before its event ``to_event``; from here it goes on with today's code."""

    kind: Literal["workflow_reset"] = "workflow_reset"
    reset_run_id: str
    to_event: int
    reason: str = ""


HistoryEvent = Annotated[
    WorkflowStarted
    | ActivityScheduled
    | ActivityAttemptFailed
    | ActivityAttemptRetried
    | ActivityCompleted
    | ActivityFailed
    | ActivityCancelRequested
    | TimerStarted
    | TimerFired
    | TimerCanceled
    | SignalReceived
    | UpdateAccepted
    | UpdateRejected
    | UpdateCompleted
    | CancelRequested
    | ChildWorkflowStarted
    | ChildWorkflowCompleted
    | ChildWorkflowFailed
    | PatchRecorded
    | SearchAttributesUpserted
    | WorkflowReset
    | WorkflowCompleted
    | WorkflowFailed
    | WorkflowCanceled
    | WorkflowTerminated
    | WorkflowContinuedAsNew,
    Field(discriminator="kind"),
]

history_event_adapter: TypeAdapter[HistoryEvent] = TypeAdapter(HistoryEvent)

COMMAND_EVENTS = (
    ActivityScheduled,
    ActivityCancelRequested,
    TimerStarted,
    TimerCanceled,
    ChildWorkflowStarted,
    UpdateCompleted,
    SearchAttributesUpserted,
)
"""Events the workflow code causes; replay checks the code asks for them again."""

DELIVERED_EVENTS = (
    WorkflowStarted,
    ActivityCompleted,
    ActivityFailed,
    TimerFired,
    SignalReceived,
    UpdateAccepted,
    CancelRequested,
    ChildWorkflowCompleted,
    ChildWorkflowFailed,
)
"""Events the engine hands to the workflow code as it records them; the others (besides the
code's own) it only records, and a replay must not run the code on them either."""

CLOSING_EVENTS = (
    WorkflowCompleted,
    WorkflowFailed,
    WorkflowCanceled,
    WorkflowTerminated,
    WorkflowContinuedAsNew,
)
"""Events that close a run; exactly one per run."""


def history_event_json(event_type: type[_Event], index: int, time: float, fields: dict[str, object]) -> bytes:
    """The JSON of a history event the engine built from validated values, without the model.

    Fields left out take their defaults when the event is read back. Equal, once
    read, to ``event_type(index=index, time=time, **fields)`` (tests/schemas), at a
    fifth of the cost of building and dumping the model on the engine's hot path.
    """
    kind = event_type.model_fields["kind"].default
    return to_json({"index": index, "time": time, "kind": kind, **fields}, by_alias=False)


EVENT_ENVELOPE_BYTES = 256
"""Bytes an activity outcome's history event adds at most around its result or failure
(index, time, kind, seq, attempt, retry_in). ``max_payload_bytes`` limits the whole event,
so a worker counts these with a payload it sends (tests/schemas holds the bound)."""
