"""What workflow code asks the engine for during an activation."""

from __future__ import annotations

from dataclasses import dataclass

from ledgerflow.schemas.common import JSON, ActivityOptions, Failure
from ledgerflow.schemas.search import SearchAttributeValue


@dataclass(frozen=True)
class ScheduleActivity:
    seq: int
    activity_type: str
    args: list[JSON]
    options: ActivityOptions


@dataclass(frozen=True)
class RequestCancelActivity:
    seq: int


@dataclass(frozen=True)
class StartTimer:
    seq: int
    seconds: float


@dataclass(frozen=True)
class CancelTimer:
    seq: int


@dataclass(frozen=True)
class StartChildWorkflow:
    seq: int
    workflow_id: str
    workflow_type: str
    input: JSON


@dataclass(frozen=True)
class CompleteUpdate:
    """An update's handler ended: its result, or the failure it raised."""

    update_id: str
    result: JSON = None
    failure: Failure | None = None


@dataclass(frozen=True)
class RecordPatch:
    """The code took a patch's new path for the first time in this run."""

    patch_id: str


@dataclass(frozen=True)
class UpsertSearchAttributes:
    """Set (or, with None, remove) search attributes of the run."""

    attributes: dict[str, SearchAttributeValue | None]


@dataclass(frozen=True)
class CompleteWorkflow:
    result: JSON


@dataclass(frozen=True)
class FailWorkflow:
    failure: Failure


@dataclass(frozen=True)
class CancelWorkflowDone:
    """The code let a cancellation end the run."""


@dataclass(frozen=True)
class ContinueAsNew:
    input: JSON


Command = (
    ScheduleActivity
    | RequestCancelActivity
    | StartTimer
    | CancelTimer
    | StartChildWorkflow
    | CompleteUpdate
    | RecordPatch
    | UpsertSearchAttributes
    | CompleteWorkflow
    | FailWorkflow
    | CancelWorkflowDone
    | ContinueAsNew
)
