"""What a partition store holds about each workflow, besides its history."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from ledgerflow.schemas import events as ev
from ledgerflow.schemas.commands import StartWorkflow
from ledgerflow.schemas.common import JSON, ActivityOptions, Failure, RunStatus
from ledgerflow.schemas.search import SearchAttributeValue

CLOSING_STATUS: dict[type[ev.HistoryEvent], RunStatus] = {
    ev.WorkflowCompleted: "COMPLETED",
    ev.WorkflowFailed: "FAILED",
    ev.WorkflowCanceled: "CANCELED",
    ev.WorkflowTerminated: "TERMINATED",
    ev.WorkflowContinuedAsNew: "CONTINUED_AS_NEW",
}
"""The status a run has after each kind of closing event."""


class PendingActivity(BaseModel):
    """An activity the run waits on, with its current attempt."""

    activity_type: str
    args: list[JSON]
    options: ActivityOptions
    attempt: int = 1
    state: Literal["running", "backoff"] = "running"
    scheduled_at: float
    """When attempt 1 was dispatched."""
    attempt_started_at: float
    """When the current attempt was dispatched."""
    last_failure: Failure | None = None
    last_heartbeat_at: float | None = None
    heartbeat_details: JSON = None
    attempts_before: int = 0
    """Attempts made before a reset opened this activity again: its retry policy counts the
    attempts after them (``ledgerflow/engine/resets.py``)."""


class UpdateOutcome(BaseModel):
    """Where an update of the run stands: its validator's verdict, then its handler's end."""

    status: Literal["accepted", "rejected", "completed", "failed"]
    result: JSON = None
    failure: Failure | None = None


class RunState(BaseModel):
    """The latest run of a workflow id: its status and what it waits on."""

    workflow_id: str
    run_id: str
    workflow_type: str
    status: RunStatus = "RUNNING"
    is_dag: bool = False
    input: JSON = None
    started_at: float
    closed_at: float | None = None
    result: JSON = None
    failure: Failure | None = None
    history_length: int = 0
    history_bytes: int = 0
    activities: dict[int, PendingActivity] = Field(default_factory=dict)
    timers: dict[int, float] = Field(default_factory=dict)
    """Open workflow timers: seq -> fire time."""
    children: dict[int, str] = Field(default_factory=dict)
    """Open child workflows: seq -> child workflow id."""
    parent_workflow_id: str | None = None
    parent_run_id: str | None = None
    parent_seq: int | None = None
    previous_runs: list[str] = Field(default_factory=list)
    """Run ids of earlier runs of the same workflow id, oldest first."""
    cancel_requested: bool = False
    updates: dict[str, UpdateOutcome] = Field(default_factory=dict)
    """Updates applied to this run, by update id (their events are in its history)."""
    blocked: str | None = None
    """Why the run's code cannot go on here (it no longer replays its history, or is not
    loaded): the run stays open, its code is tried again now and then, and ``held`` waits."""
    blocked_by: str | None = None
    """The engine process whose code blocked it (``EngineContext.code_token``): only another
    process (a deploy) tries the code again."""
    held: list[JSON] = Field(default_factory=list)
    """Inbox commands for the run that arrived while it was blocked, in order (as JSON)."""
    search_attributes: dict[str, SearchAttributeValue] = Field(default_factory=dict)
    """As started, with the code's upserts applied: what visibility queries see."""
    memo: dict[str, JSON] = Field(default_factory=dict)

    @property
    def is_open(self) -> bool:
        return self.status == "RUNNING"


TimerKind = Literal[
    "timer",
    "retry",
    "attempt_timeout",
    "heartbeat_timeout",
    "schedule_timeout",
    "run_timeout",
    "unblock",
    "retention",
    "deferred_start",
    "refusal_expiry",
    "schedule_fire",
    "request_expiry",
]
"""Workflow timers, activity retries and timeouts, run timeouts, retention of closed runs,
starts waiting for their workflow type, and the end of a refused start's record (whose
``run_id`` holds the refused request's id: engine/state/requests.py)."""


class TimerEntry(BaseModel):
    """A durable timer in the index; checked against the run when it fires."""

    workflow_id: str
    run_id: str
    kind: TimerKind
    seq: int = 0
    attempt: int = 0
    fire_at: float
    start: StartWorkflow | None = None
    """A start whose workflow type is not known yet, tried again when this fires (``deferred_start``)."""
    give_up_at: float | None = None
    """When that start stops waiting and fails with ``UnknownWorkflowType``."""

    @property
    def tag(self) -> str:
        return self.tag_of(self.kind, self.run_id, self.seq, self.attempt)

    @staticmethod
    def tag_of(kind: str, run_id: str, seq: int, attempt: int) -> str:
        """What tells apart timers of one workflow due at the same millisecond."""
        return f"{kind}:{run_id}:{seq}:{attempt}"
