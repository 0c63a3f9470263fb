"""Inbox commands: the records that drive the engine.

Every inbox record is one JSON object keyed by ``workflow_id`` (a definition's
id for ``register_definition``). The ``kind`` field picks the command and
``v`` the envelope version. Producers in any language may write them; see
``ledgerflow/schemas/json/inbox-command.json``. Every id follows one rule
(``schemas.common.ID_RULE``); a record that breaks it goes to the dead-letter
topic with a reason naming the field.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from pydantic import Field, TypeAdapter, ValidationError

from ledgerflow.schemas.common import JSON, ActivityOptions, Failure, Id, WireModel
from ledgerflow.schemas.dag import DagDefinition
from ledgerflow.schemas.schedules import OverlapPolicy, Schedule, UtcTime
from ledgerflow.schemas.search import Memo, SearchAttributes

ENVELOPE_VERSION = 1


class _Command(WireModel):
    v: Literal[1] = 1
    """Envelope version."""
    request_id: Id | None = None
    """Optional idempotency key: a command seen twice with the same key applies once."""


IdReusePolicy = Literal["allow_duplicate", "allow_duplicate_failed_only", "reject_duplicate"]
"""When a workflow id's latest run is closed: start another, only if it did not complete, or never."""
IdConflictPolicy = Literal["use_existing", "fail", "terminate_existing"]
"""When a workflow id has an open run: start nothing, refuse the start, or end that run and start."""


RUN_IDS = uuid.UUID("6f1c6c2e-52a4-4f3b-9d54-0b7a3c1f5e21")
"""The namespace of run ids derived from a start's request id (``start_run_id``)."""


def start_run_id(workflow_id: str, request_id: str | None) -> str:
    """The run id a start asks for: derived from its request id when it has one, so a start
    sent again with it (a retry after a timeout) names the same run; else a new one."""
    if request_id is None:
        return str(uuid.uuid4())
    return str(uuid.uuid5(RUN_IDS, f"{workflow_id}\x00{request_id}"))


class StartSignal(WireModel):
    """The signal of a signal-with-start."""

    name: str = Field(min_length=1)
    payload: JSON = None


class StartWorkflow(_Command):
    """Start a run of a code workflow type or a registered DAG."""

    kind: Literal["start_workflow"] = "start_workflow"
    workflow_id: Id
    """Business id of the workflow; the Kafka key and the shard key."""
    workflow_type: str = Field(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f]+$")
    """Name of a code workflow, or the id of a registered DAG definition (no control character:
    it is part of index keys)."""
    input: JSON = None
    """The run's input, as JSON."""
    run_id: Id | None = None
    """Run id to use; the engine assigns one when absent."""
    dag: DagDefinition | None = None
    """DAG to run, when the starter resolved it already."""
    execution_timeout: float | None = Field(default=None, gt=0)
    """Seconds the run may take before it is failed as timed out."""
    parent_workflow_id: Id | None = None
    """Set when started as a child of another workflow."""
    parent_run_id: Id | None = None
    """Run id of the parent, when a child."""
    parent_seq: int | None = None
    """The parent's command number for this child."""
    id_reuse_policy: IdReusePolicy = "allow_duplicate"
    """When the id's latest run is closed: start another (``allow_duplicate``), only if it did
    not complete (``allow_duplicate_failed_only``), or never (``reject_duplicate``: the start is
    refused, a dead letter with the reason)."""
    id_conflict_policy: IdConflictPolicy = "use_existing"
    """When the id has an open run: start nothing (``use_existing``), refuse the start
    (``fail``), or terminate that run and start this one (``terminate_existing``)."""
    start_signal: StartSignal | None = None
    """Signal-with-start: this signal goes to the open run of this id if there is one (and no run
    starts), else to the run this command starts, once its code has run to its first wait."""
    search_attributes: SearchAttributes = Field(default_factory=dict)
    """Typed values the run is found by in visibility queries (``CustomerId = 'c-1'``)."""
    memo: Memo = Field(default_factory=dict)
    """Free JSON fields shown with the run; never indexed."""


class SignalWorkflow(_Command):
    """Deliver a named signal to the open run of a workflow."""

    kind: Literal["signal_workflow"] = "signal_workflow"
    workflow_id: Id
    name: str = Field(min_length=1)
    """Signal name the workflow waits on."""
    payload: JSON = None
    """The signal's value."""


class UpdateWorkflow(_Command):
    """Ask the open run to run its ``@workflow.update`` handler ``name``: the validator (if any)
    accepts or rejects it first; the outcome is kept in the run's state under ``update_id``."""

    kind: Literal["update_workflow"] = "update_workflow"
    workflow_id: Id
    update_id: Id
    """The caller's id of this update: applying it twice runs it once."""
    name: str = Field(min_length=1)
    payload: JSON = None
    """The update's argument (a list: its arguments)."""


class CancelWorkflow(_Command):
    """Ask the open run to cancel: the workflow sees CancelledError and may clean up."""

    kind: Literal["cancel_workflow"] = "cancel_workflow"
    workflow_id: Id
    reason: str = ""


class TerminateWorkflow(_Command):
    """End the open run at once, without running any more workflow code."""

    kind: Literal["terminate_workflow"] = "terminate_workflow"
    workflow_id: Id
    reason: str = ""


class ResetWorkflow(_Command):
    """Start a new run of the workflow id that begins with its latest run's history up to, and
    not including, event ``to_event``, and goes on from there with the code deployed now.

    The latest run is terminated if it is open. Event ``to_event`` must be one the code reacted
    to (an activity's outcome, a fired timer, a signal, an accepted update, a cancel request),
    and no child may be open before it or now. Activities open at that point run again; the
    signals, updates and cancel request received from it on are sent again to the new run.
    """

    kind: Literal["reset_workflow"] = "reset_workflow"
    workflow_id: Id
    to_event: int = Field(ge=2)
    run_id: Id | None = None
    """The run to reset; refused when the latest run is another (it moved on meanwhile)."""
    reason: str = Field(default="", max_length=1000)


class RegisterDefinition(_Command):
    """Register (or replace) a DAG workflow definition; keyed by its id."""

    kind: Literal["register_definition"] = "register_definition"
    definition: DagDefinition


class _TaskResult(_Command):
    workflow_id: Id
    run_id: Id
    seq: int
    """The workflow's command number of the activity."""
    attempt: int = Field(ge=1)
    """Attempt this result belongs to; results of other attempts are ignored."""


class TaskCompleted(_TaskResult):
    """An activity attempt finished with a result (written by executors)."""

    kind: Literal["task_completed"] = "task_completed"
    result: JSON = None


class TaskFailed(_TaskResult):
    """An activity attempt raised (written by executors)."""

    kind: Literal["task_failed"] = "task_failed"
    failure: Failure


class TaskHeartbeat(_TaskResult):
    """An activity attempt is alive; resets its heartbeat timeout."""

    kind: Literal["task_heartbeat"] = "task_heartbeat"
    details: JSON = None


class ChildWorkflowClosed(_Command):
    """A child workflow's run ended; delivered to its parent (written by owners)."""

    kind: Literal["child_workflow_closed"] = "child_workflow_closed"
    workflow_id: Id
    """The parent's workflow id."""
    run_id: Id
    """The parent's run id."""
    seq: int
    """The parent's command number for the child."""
    child_workflow_id: Id
    status: str
    """The child's final status (COMPLETED, FAILED, CANCELED, TERMINATED)."""
    result: JSON = None
    failure: Failure | None = None


class _ScheduleCommand(_Command):
    schedule_id: Id
    """The schedule's id: the record's Kafka key (a schedule lives on its id's partition)."""


class CreateSchedule(_ScheduleCommand):
    """Create a schedule; refused (a dead letter) when the id has one already."""

    kind: Literal["create_schedule"] = "create_schedule"
    schedule: Schedule
    trigger_immediately: bool = False
    """Also start a run now, as ``trigger_schedule`` would."""


class UpdateSchedule(_ScheduleCommand):
    """Replace a schedule's spec, action, policy and state; what it did so far is kept, and its
    next fire is counted from now."""

    kind: Literal["update_schedule"] = "update_schedule"
    schedule: Schedule


class PauseSchedule(_ScheduleCommand):
    """Pause (``paused``) or unpause a schedule, with a note saying why. An unpaused schedule
    fires from now on: what it would have fired while paused is not caught up."""

    kind: Literal["pause_schedule"] = "pause_schedule"
    paused: bool = True
    note: str = Field(default="", max_length=1000)


class TriggerSchedule(_ScheduleCommand):
    """Start the schedule's action now (paused or not), under ``overlap`` or the schedule's policy."""

    kind: Literal["trigger_schedule"] = "trigger_schedule"
    overlap: OverlapPolicy | None = None


class BackfillSchedule(_ScheduleCommand):
    """Take every fire time of the spec from ``start_at`` to ``end_at`` (inclusive) now, as if
    they had come, under ``overlap`` or the schedule's policy (at most ``MAX_BACKFILL`` fires)."""

    kind: Literal["backfill_schedule"] = "backfill_schedule"
    start_at: UtcTime
    end_at: UtcTime
    overlap: OverlapPolicy | None = None


class DeleteSchedule(_ScheduleCommand):
    """Delete a schedule; the runs it started go on."""

    kind: Literal["delete_schedule"] = "delete_schedule"


class ScheduledRunClosed(_ScheduleCommand):
    """A run a schedule started closed, or its start was refused (written by owners)."""

    kind: Literal["scheduled_run_closed"] = "scheduled_run_closed"
    scheduled_workflow_id: Id
    status: str
    """The run's final status, or ``REFUSED``."""
    reason: str | None = Field(default=None, max_length=2000)


SCHEDULE_COMMANDS = (
    CreateSchedule,
    UpdateSchedule,
    PauseSchedule,
    TriggerSchedule,
    BackfillSchedule,
    DeleteSchedule,
    ScheduledRunClosed,
)


def key_of(command: object) -> str | None:
    """The id a command is keyed and partitioned by: its workflow's or its schedule's (None for
    a definition's registration, keyed by the definition id)."""
    if isinstance(command, _ScheduleCommand):
        return command.schedule_id
    return getattr(command, "workflow_id", None)


InboxCommand = Annotated[
    StartWorkflow
    | SignalWorkflow
    | UpdateWorkflow
    | CancelWorkflow
    | TerminateWorkflow
    | ResetWorkflow
    | RegisterDefinition
    | TaskCompleted
    | TaskFailed
    | TaskHeartbeat
    | ChildWorkflowClosed
    | CreateSchedule
    | UpdateSchedule
    | PauseSchedule
    | TriggerSchedule
    | BackfillSchedule
    | DeleteSchedule
    | ScheduledRunClosed,
    Field(discriminator="kind"),
]

inbox_command_adapter: TypeAdapter[InboxCommand] = TypeAdapter(InboxCommand)


class UnreadableCommand(ValueError):
    """A record that holds no command; its message is the dead letter's reason."""


def read_command(value: bytes | None, what: str) -> InboxCommand:
    """The command a Kafka record (``what``: e.g. "inbox record") holds; ``UnreadableCommand``
    naming the fields when it holds none. Whatever a record holds, it fails only itself."""
    try:
        return inbox_command_adapter.validate_json(value or b"")
    except ValidationError as exc:
        raise UnreadableCommand(f"invalid {what}: {error_summary(exc)}") from None
    except Exception as exc:  # e.g. RecursionError on deep nesting
        raise UnreadableCommand(f"unreadable {what}: {type(exc).__name__}: {str(exc)[:500]}") from None


def error_summary(exc: ValidationError, most: int = 5) -> str:
    """The first ``most`` errors of ``exc`` as ``field.path: message``, for a dead letter's reason."""
    return "; ".join(f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors()[:most])


__all__ = [
    "ENVELOPE_VERSION",
    "SCHEDULE_COMMANDS",
    "ActivityOptions",
    "BackfillSchedule",
    "CancelWorkflow",
    "ChildWorkflowClosed",
    "CreateSchedule",
    "DeleteSchedule",
    "InboxCommand",
    "PauseSchedule",
    "RegisterDefinition",
    "ScheduledRunClosed",
    "SignalWorkflow",
    "StartWorkflow",
    "TaskCompleted",
    "TaskFailed",
    "TaskHeartbeat",
    "TerminateWorkflow",
    "TriggerSchedule",
    "UnreadableCommand",
    "UpdateSchedule",
    "inbox_command_adapter",
    "key_of",
    "read_command",
]
