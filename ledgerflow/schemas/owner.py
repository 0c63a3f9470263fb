"""The engine node's internal HTTP API (``ledgerflow/engine/http.py``): what the gateway and the
Python client read from a partition's owner, as the JSON each route answers.

TypedDicts, not models: the answers stay plain JSON on both sides (the gateway decodes payloads
and strips namespaces in the tree before building its public models), and the types make a key
the engine renames an error in every caller at once. ``ledgerflow.owner_reads`` reads them.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, NotRequired

# typing_extensions': pydantic validates ``WatchRequestJson`` (engine/http.py), which it refuses
# to do with typing's TypedDict before Python 3.12.
from pydantic import Field
from typing_extensions import TypedDict

from ledgerflow.schemas.common import Id, RunStatus

MAX_CLOSED_WAIT = 30.0
"""Seconds an engine holds a long poll (``/internal/closed/{id}``, ``/internal/started/{id}``)
at most."""


class FailureJson(TypedDict):
    type: str
    message: str
    non_retryable: bool
    details: Any
    stack: str | None
    cause: FailureJson | None
    activity_type: str | None
    seq: int | None


class PendingActivityJson(TypedDict, total=False):
    """``RunState.activities`` values (``ledgerflow/engine/state/models.py``)."""

    activity_type: str
    args: list[Any]
    options: dict[str, Any]
    attempt: int
    state: str
    scheduled_at: float
    attempt_started_at: float
    last_failure: FailureJson | None
    last_heartbeat_at: float | None
    heartbeat_details: Any
    attempts_before: int


class UpdateOutcomeJson(TypedDict):
    """``RunState.updates`` values: where an update stands."""

    status: str
    """accepted, rejected, completed or failed."""
    result: Any
    failure: FailureJson | None


class SearchAttributeJson(TypedDict):
    type: str
    value: Any


class RunJson(TypedDict):
    """A run's stored state (``RunState``, dumped as JSON: integer keys become strings)."""

    workflow_id: str
    run_id: str
    workflow_type: str
    status: RunStatus
    is_dag: bool
    input: Any
    started_at: float
    closed_at: float | None
    result: Any
    failure: FailureJson | None
    history_length: int
    history_bytes: int
    activities: dict[str, PendingActivityJson]
    timers: dict[str, float]
    children: dict[str, str]
    parent_workflow_id: str | None
    parent_run_id: str | None
    parent_seq: int | None
    previous_runs: list[str]
    cancel_requested: bool
    updates: dict[str, UpdateOutcomeJson]
    blocked: str | None
    """Why the run's code cannot go on (a deploy it does not replay on); None when it can."""
    blocked_by: str | None
    """The engine process whose code blocked it."""
    held: list[dict[str, Any]]
    """Inbox commands waiting for a blocked run's code, in order."""
    search_attributes: dict[str, SearchAttributeJson]
    memo: dict[str, Any]


class OwnedRunJson(RunJson):
    """``GET /internal/workflows/{id}``: the latest run, where it lives, and who serves its queues."""

    partition: int
    node: str
    queue_workers: dict[str, int | None]
    """Workers last seen on each queue the run has activities pending on (None: unknown)."""


class AdmittedRunJson(RunJson):
    partition: int


class AdmissionJson(TypedDict):
    """``GET /internal/admission/{id}``: what a start of this id would meet."""

    partition: int
    run: AdmittedRunJson | None
    refusal: str | None
    """Why a new run cannot start now (capacity), or None."""
    request_run: str | None
    """The run an applied start with the asked ``request_id`` led to (None: no such start)."""


class StartRefusalJson(TypedDict):
    """Why the engine refused a start (``engine/state/requests.py``, ``StartRefusal``)."""

    kind: str
    """``already_started`` (an id policy), ``capacity`` (an open-run limit) or ``limit`` (the
    start breaks a limit itself; ``error`` names it)."""
    message: str
    run_id: str | None
    status: str | None
    error: str | None
    start_run_id: str | None
    """The run id the refused start asked for (a request sent again asks for another)."""
    refused_at: float | None


class StartOutcomeJson(TypedDict):
    """``GET /internal/started/{id}?request_id=``: what the engine made of a start."""

    partition: int
    applied: bool
    """False when the start was neither applied nor refused within the wait."""
    run_id: str | None
    """The run an applied start led to: the one it opened, or the open run it found."""
    refusal: StartRefusalJson | None


MAX_WATCH_ITEMS = 2000
"""Waits one ``POST /internal/watches/{session}`` may add."""
MAX_SESSION_WAITS = 20_000
"""Waits one watch session may hold at once on an engine node."""
MAX_HELD_WAITS = 100_000
"""Waits all watch sessions together may hold on an engine node."""
MAX_WATCH_SESSIONS = 1_000
"""Watch sessions an engine node keeps at once."""
WATCH_SESSION_IDLE = 2 * MAX_CLOSED_WAIT + 15
"""Seconds a session with no request held is kept after its last request (its waits with it)."""


class WatchItemJson(TypedDict):
    """One wait of a watch session: for the decision on a start (``started``: its ``request_id``
    and ``run_id``) or for a run to close (``closed``: ``run_id`` the run waited on, if any), as
    the single long polls ``/internal/started/{id}`` and ``/internal/closed/{id}`` wait."""

    key: Annotated[int, Field(ge=0, le=2**53)]
    """The client's name for this wait in its session: its answer carries it."""
    kind: Literal["started", "closed"]
    workflow_id: Id
    request_id: NotRequired[Id]
    run_id: NotRequired[Id | None]
    seconds: Annotated[float, Field(ge=0, le=MAX_CLOSED_WAIT)]
    """How long the node holds this wait: past it, the wait is answered as it stands."""


class WatchRequestJson(TypedDict):
    """``POST /internal/watches/{session}``: waits added to the session, and how long this
    request is held for the session's answers."""

    seconds: Annotated[float, Field(ge=0, le=MAX_CLOSED_WAIT)]
    resume: bool
    """The client expects the node to hold waits it added to this session before: when the node
    does not know the session (it restarted, or the session idled out), it answers 409 and adds
    nothing, and the client adds them again under a new session."""
    items: Annotated[list[WatchItemJson], Field(max_length=MAX_WATCH_ITEMS)]


class WatchAnswerJson(TypedDict):
    """The answer to one wait: ``status`` as its single long poll would answer (200 with ``body``;
    404 no run; 421 its partition is not owned here)."""

    key: int
    status: int
    body: Any


class WatchResultJson(TypedDict):
    """``POST /internal/watches/{session}``: the session's waits that ended since its last answer
    (empty when the request's hold ran out, or when a newer request of the session took over
    the holding: ``superseded``)."""

    answers: list[WatchAnswerJson]
    superseded: bool


class UpdateStatusJson(TypedDict):
    """``GET /internal/workflows/{id}/updates/{update_id}``: an update of the latest run."""

    run_id: str
    status: RunStatus
    """The run's status: an update still ``accepted`` when it closed will not complete."""
    update: UpdateOutcomeJson | None
    """None while the update is not applied yet (or was sent to an earlier run)."""


class HistoryPageJson(TypedDict):
    """``GET /internal/workflows/{id}/history``: one page of a run's events."""

    workflow_id: str
    run_id: str
    total: int
    offset: int
    events: list[dict[str, Any]]
    """History events as JSON (``ledgerflow.schemas.events``)."""


class PendingSummaryJson(TypedDict):
    seq: int
    activity: str
    attempt: int
    state: str
    last_failure: str | None


class RunSummaryJson(TypedDict):
    """One row of a listing."""

    partition: int
    workflow_id: str
    run_id: str
    workflow_type: str
    status: RunStatus
    started_at: float
    closed_at: float | None
    history_length: int
    history_bytes: int
    pending_activities: list[PendingSummaryJson]
    search_attributes: dict[str, SearchAttributeJson]
    memo: dict[str, Any]


class QueryRowJson(RunSummaryJson):
    """One row of a visibility query's page."""

    cursor: str
    """Where the run sorts: a page token points past it."""


class ListingJson(TypedDict):
    """``GET /internal/workflows``: a page of one node's runs (``ledgerflow.paging``)."""

    node: str
    partitions: list[int]
    """The partitions this page covers."""
    runs: list[RunSummaryJson]
    next_after: str | None


class CountJson(TypedDict):
    """``GET /internal/visibility/count``: the runs of one node's partitions a query matches."""

    node: str
    partitions: list[int]
    count: int


class ScheduleSummaryJson(TypedDict):
    """One schedule in a listing (``describe`` gives the whole of it)."""

    schedule_id: str
    workflow_type: str
    paused: bool
    note: str
    next_fire_time: float | None
    """Unix seconds; null while paused or out of actions."""
    actions: int
    running: int


class ScheduleListingJson(TypedDict):
    """``GET /internal/schedules``: a page of one node's schedules, in id order."""

    partitions: list[int]
    schedules: list[ScheduleSummaryJson]
    next_after: str | None


class QueryAnswerJson(TypedDict):
    """``POST /internal/workflows/{id}/query/{name}``."""

    result: Any


class PartitionStatsJson(TypedDict):
    partition: int
    timers_due_soon: int
    cached_instances: int
    open_workflows: int
    lag: int
    state_bytes: int
    restored_records: int | None
    restored_from_offset: int | None
    restore_seconds: float | None


class NodeJson(TypedDict, total=False):
    """``GET /internal/partitions``: an engine node, its partitions and its process."""

    node: str
    url: str
    process: dict[str, float]
    limits: dict[str, int | None]
    partitions: list[PartitionStatsJson]
    restoring: list[int]
    moves: list[dict[str, object]]
