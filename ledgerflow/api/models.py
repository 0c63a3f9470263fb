"""Request and response bodies of the REST gateway (camelCase on the wire, examples for /docs).

History events and DAG definitions keep the wire schema of ``ledgerflow.schemas``
(the same JSON Kafka producers and consumers see).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag
from pydantic.alias_generators import to_camel

from ledgerflow.schemas.common import JSON, BareId, Failure, RunStatus, WireModel
from ledgerflow.schemas.dag import DagDefinition
from ledgerflow.schemas.events import HistoryEvent
from ledgerflow.schemas.schedules import ScheduleDescription, SchedulePolicy, ScheduleSpec
from ledgerflow.schemas.search import Memo, SearchAttributes, SearchAttributeValue

CommandKind = Literal["signal", "cancel", "terminate", "reset", "complete", "fail", "heartbeat"]


class ApiModel(BaseModel):
    """Response bodies: camelCase, unknown fields from the engine ignored."""

    model_config = ConfigDict(
        alias_generator=to_camel, validate_by_name=True, validate_by_alias=True, extra="ignore"
    )


class RequestModel(ApiModel):
    """Request bodies: camelCase (snake_case accepted too), unknown fields rejected."""

    model_config = ConfigDict(extra="forbid")


# ------------------------------------------------------------------ requests
class StartWorkflowRequest(RequestModel):
    """Start a run of a code workflow (``type``) under workflow id ``id``."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"id": "order-42", "type": "ProcessOrder", "input": {"amount": 42}}]}
    )

    id: BareId = Field(description="Workflow id (the shard key).")
    type: str = Field(min_length=1, description="Code workflow name, or the id of a registered DAG.")
    input: Any = Field(default=None, description="The run's input (any JSON).")
    execution_timeout: float | None = Field(
        default=None, gt=0, description="Seconds the run may take before it fails as timed out."
    )
    request_id: BareId | None = Field(
        default=None, description="Idempotency key: a start sent twice with it applies once."
    )
    search_attributes: SearchAttributes = Field(
        default_factory=dict,
        description="Typed values to find the run by "
        '(`{"CustomerId": {"type": "keyword", "value": "c-1"}}`); see `GET /workflows?query=`.',
    )
    memo: Memo = Field(default_factory=dict, description="Free JSON shown with the run; not indexed.")


class ScheduleBinding(WireModel):
    """A schedule bound to a DAG when it is registered (the seed's ``schedule`` field): the DAG
    runs on ``spec``, with ``input``."""

    spec: ScheduleSpec
    policy: SchedulePolicy = Field(default_factory=SchedulePolicy)
    input: JSON = None
    schedule_id: BareId | None = None
    """The schedule's id; the DAG's id when absent."""
    paused: bool = False


class DagRegistration(DagDefinition):
    """A DAG definition, and optionally the schedule it runs on (created, or replaced when the id
    has one). The definition is stored without it."""

    schedule: ScheduleBinding | None = None

    def definition(self) -> DagDefinition:
        return DagDefinition.model_validate(self.model_dump(exclude={"schedule"}))


def _register_kind(value: Any) -> str | None:
    if isinstance(value, dict):
        return "dag" if any(k in value for k in ("nodes", "edges", "name")) else "start"
    if isinstance(value, BaseModel):
        return "dag" if isinstance(value, DagDefinition) else "start"
    return None


RegisterBody = Annotated[
    Annotated[DagRegistration, Tag("dag")] | Annotated[StartWorkflowRequest, Tag("start")],
    Discriminator(_register_kind),
]
"""``POST /api/v1/workflows``: a DAG (has ``nodes``, ``edges`` or ``name``) or a code workflow start."""

REGISTER_EXAMPLES: dict[str, Any] = {
    "dag": {
        "summary": "Register a DAG",
        "value": {
            "id": "fan-out",
            "name": "fan out, fan in",
            "nodes": [
                {"id": "numbers", "type": "sequence.numbers", "input": {"stop": "{{ input.count }}"}},
                {
                    "id": "total",
                    "type": "aggregate.sum",
                    "input": {"items": "{{ nodes.numbers.output.numbers }}"},
                    "retry": {"maximum_attempts": 3},
                    "timeoutSeconds": 30,
                },
            ],
            "edges": [{"source": "numbers", "target": "total"}],
        },
    },
    "code": {
        "summary": "Start a code workflow",
        "value": {"id": "order-42", "type": "ProcessOrder", "input": {"order_id": "42", "amount": 42.0}},
    },
}


class ExecuteRequest(RequestModel):
    """Start a run of the definition (or code workflow type) named in the path."""

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"workflowId": "fan-out-1", "input": {"count": 10}}]}
    )

    workflow_id: BareId | None = Field(
        default=None, description="Workflow id of the run; generated when absent."
    )
    input: Any = Field(default=None, description="The run's input (any JSON).")
    execution_timeout: float | None = Field(default=None, gt=0)
    request_id: BareId | None = None
    search_attributes: SearchAttributes = Field(default_factory=dict)
    memo: Memo = Field(default_factory=dict)


class SignalRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "approve", "payload": {"by": "ann"}}]})

    name: str = Field(min_length=1, description="Signal name the workflow waits on.")
    payload: Any = Field(default=None, description="The signal's value (any JSON).")
    request_id: BareId | None = Field(
        default=None, description="Idempotency key: a signal sent twice with it counts once."
    )


class UpdateRequest(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"name": "set_language", "args": ["fr"], "updateId": "lang-1"}]}
    )

    name: str = Field(min_length=1, description="The workflow's @workflow.update handler.")
    args: list[Any] = Field(default_factory=list, description="Its arguments (JSON).")
    update_id: BareId | None = Field(
        default=None, description="Idempotency key: an update sent twice with it runs once."
    )
    wait_seconds: float = Field(
        default=10.0,
        ge=0,
        le=60,
        description="How long to wait for the handler to end before answering 202 (poll "
        "`GET .../updates/{updateId}` then).",
    )


class UpdateOutcomeView(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"workflowId": "order-42", "updateId": "lang-1", "status": "completed", "result": "en"}
            ]
        }
    )

    workflow_id: str
    update_id: str
    status: Literal["sent", "accepted", "rejected", "completed", "failed"] = Field(
        description="sent: not applied yet; accepted: its validator passed and its handler runs; "
        "rejected: its validator (or an unknown name) refused it; completed or failed: its "
        "handler returned or raised."
    )
    result: Any = None
    failure: Failure | None = None


class ActivityCompletion(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"taskToken": "lft1.eyJ3b3JrZmxvd19pZCI6Im8tMSJ9", "result": {"ok": True}}]
        }
    )

    task_token: str = Field(min_length=1, max_length=4096, description="`activity.info().task_token`.")
    result: Any = Field(default=None, description="The attempt's result (any JSON).")


class ActivityFailureRequest(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"taskToken": "lft1.eyJ3b3JrZmxvd19pZCI6Im8tMSJ9", "message": "card declined"}]
        }
    )

    task_token: str = Field(min_length=1, max_length=4096, description="`activity.info().task_token`.")
    message: str = Field(min_length=1, max_length=10_000, description="What went wrong.")
    type: str = Field(
        default="ApplicationError", min_length=1, max_length=200, description="The error's type."
    )
    non_retryable: bool = Field(
        default=False, description="Fail the activity now, whatever its retry policy."
    )


class ActivityHeartbeatRequest(RequestModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"taskToken": "lft1.eyJ3b3JrZmxvd19pZCI6Im8tMSJ9", "details": 40}]}
    )

    task_token: str = Field(min_length=1, max_length=4096, description="`activity.info().task_token`.")
    details: Any = Field(default=None, description="Progress a retry may resume from (any JSON).")


class ReasonRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"reason": "operator request"}]})

    reason: str = ""


class ResetRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"toEvent": 5, "reason": "fixed in 1.4.2"}]})

    to_event: int = Field(
        ge=2,
        description="The event to go back to: the new run keeps the events before it. It must be one "
        "the code reacted to (an activity's outcome, a fired timer, a signal, an accepted update, "
        "a cancel request), with no child workflow open before it or now.",
    )
    run_id: str | None = Field(
        default=None, description="The run to reset; refused unless it is the latest (default: the latest)."
    )
    reason: str = Field(default="", max_length=1000)


class QueryRequest(RequestModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"name": "received", "args": []}]})

    name: str = Field(min_length=1, description="Query name (a @workflow.query method).")
    args: list[Any] = Field(default_factory=list)


# ----------------------------------------------------------------- responses
class FieldProblem(ApiModel):
    loc: list[str | int] = Field(description="Where the problem is, e.g. ['body', 'nodes', 2, 'type'].")
    field: str = Field(description="The same as a dotted path, e.g. 'nodes[2].type'.")
    message: str
    type: str = Field(description="Kind of problem, e.g. 'missing', 'dag_invalid', 'unknown_node_type'.")


class ErrorBody(ApiModel):
    """Every error answer has this shape."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "code": "owner_unavailable",
                    "detail": "owner of workflow 'order-42' (partition 3) unavailable: partition moving",
                    "workflowId": "order-42",
                    "partition": 3,
                    "retryAfter": 1,
                }
            ]
        }
    )

    code: str = Field(description="Machine-readable kind, e.g. 'workflow_not_found'.")
    detail: str = Field(description="Human-readable explanation.")
    errors: list[FieldProblem] | None = None
    workflow_id: str | None = None
    run_id: str | None = None
    status: str | None = None
    partition: int | None = None
    retry_after: int | None = None


class DefinitionRegistered(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"id": "fan-out", "name": "fan out, fan in", "nodes": 4, "edges": 4}]}
    )

    id: str
    name: str
    nodes: int
    edges: int
    schedule: ScheduleDescription | None = None
    """The schedule the registration bound to the DAG, if it had a ``schedule`` field."""


class WorkflowAccepted(ApiModel):
    """A start written to Kafka (acknowledged by all in-sync replicas)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "workflowId": "order-42",
                    "runId": "0b7c3c1e-3f7e-4a55-9a43-6f0e0b1d2c3a",
                    "workflowType": "ProcessOrder",
                    "partition": 3,
                }
            ]
        }
    )

    workflow_id: str
    run_id: str
    workflow_type: str
    partition: int


class CommandAccepted(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"workflowId": "order-42", "command": "signal", "partition": 3}]}
    )

    workflow_id: str
    command: CommandKind
    partition: int


class PendingActivityView(ApiModel):
    seq: int
    activity_type: str
    attempt: int
    state: str
    queue: str = "default"
    queue_workers: int | None = Field(
        default=None,
        description="Workers serving the queue as the owning engine last saw them; 0 means the task "
        "waits until a worker for the queue starts (null: not known yet).",
    )
    scheduled_at: float | None = None
    attempt_started_at: float | None = None
    last_failure: Failure | None = None


class WorkflowStatus(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "workflowId": "order-42",
                    "runId": "0b7c3c1e-3f7e-4a55-9a43-6f0e0b1d2c3a",
                    "workflowType": "ProcessOrder",
                    "status": "RUNNING",
                    "isDag": False,
                    "startedAt": 1760000000.0,
                    "historyLength": 3,
                    "historyBytes": 812,
                    "pendingActivities": [
                        {"seq": 1, "activityType": "charge", "attempt": 2, "state": "backoff"}
                    ],
                    "partition": 3,
                }
            ]
        }
    )

    workflow_id: str
    run_id: str
    workflow_type: str
    status: RunStatus
    is_dag: bool = False
    input: Any = None
    result: Any = None
    failure: Failure | None = None
    started_at: float
    closed_at: float | None = None
    history_length: int = 0
    history_bytes: int = 0
    pending_activities: list[PendingActivityView] = Field(default_factory=list)
    open_timers: int = 0
    previous_runs: list[str] = Field(default_factory=list)
    cancel_requested: bool = False
    parent_workflow_id: str | None = None
    blocked: str | None = Field(
        default=None,
        description="Why the run's code cannot go on: it does not replay the run's history (a "
        "deploy changed it without workflow.patched) or is not loaded. The run stays RUNNING and "
        "goes on once code that replays it is deployed.",
    )
    held_commands: int = Field(
        default=0, description="Signals, results and other commands a blocked run holds, in order."
    )
    search_attributes: dict[str, SearchAttributeValue] = Field(default_factory=dict)
    memo: dict[str, Any] = Field(default_factory=dict)
    partition: int
    node: str | None = Field(default=None, description="Engine node that answered.")


class PendingSummary(ApiModel):
    seq: int
    activity: str
    attempt: int
    state: str
    last_failure: str | None = None


class WorkflowSummary(ApiModel):
    workflow_id: str
    run_id: str
    workflow_type: str
    status: RunStatus
    started_at: float
    closed_at: float | None = None
    history_length: int = 0
    history_bytes: int = 0
    pending_activities: list[PendingSummary] = Field(default_factory=list)
    search_attributes: dict[str, SearchAttributeValue] = Field(default_factory=dict)
    memo: dict[str, Any] = Field(default_factory=dict)
    partition: int


class WorkflowCount(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"count": 42, "partial": False, "missingPartitions": []}]}
    )

    count: int = Field(description="Workflows whose latest run the query matches.")
    partial: bool = Field(description="True when some partitions had no reachable owner (listed below).")
    missing_partitions: list[int]


class WorkflowList(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"workflows": [], "nextCursor": None, "partial": False, "missingPartitions": []}]
        }
    )

    workflows: list[WorkflowSummary]
    next_cursor: str | None = Field(description="Pass as ``cursor`` for the next page; null on the last.")
    partial: bool = Field(description="True when some partitions had no reachable owner (listed below).")
    missing_partitions: list[int]


class TimelineEntry(ApiModel):
    """One activity (or timer, or child workflow) of a run, start to end."""

    seq: int
    kind: Literal["activity", "timer", "child_workflow"]
    name: str = Field(description="Activity type, 'timer', or the child's workflow type.")
    node: str | None = Field(default=None, description="DAG node id, when the run is a DAG and it is known.")
    status: Literal["scheduled", "retrying", "completed", "failed", "canceled"]
    scheduled_at: float
    completed_at: float | None = None
    failed_at: float | None = None
    attempts: int = 1
    last_failure: str | None = None
    duration_seconds: float | None = None


class HistoryPage(ApiModel):
    workflow_id: str
    run_id: str
    total: int
    offset: int
    limit: int
    next_offset: int | None
    events: list[HistoryEvent]
    timeline: list[TimelineEntry] | None = Field(
        default=None, description="Per activity/timer/child: scheduled, completed or failed, attempts."
    )


class QueryResult(ApiModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"result": [1, 2, 3]}]})

    result: Any = None


class ShardInfo(ApiModel):
    partition: int
    owner: str | None
    member_id: str | None = None


class ShardsResponse(ApiModel):
    partitions: int
    group_state: str
    shards: list[ShardInfo]


class MemberStats(ApiModel):
    member_id: str
    url: str
    host: str
    partitions: list[int]
    reachable: bool
    node: str | None = None
    restoring: list[int] = Field(default_factory=list)
    partition_stats: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Per owned partition: open workflows, timers, inbox lag, state bytes, restore figures.",
    )
    open_workflows: int = Field(default=0, description="Open workflows on this node's partitions.")
    lag: int = Field(default=0, description="Inbox records not yet applied, over its partitions.")
    process: dict[str, float] = Field(default_factory=dict, description="cpu_seconds and rss_bytes.")


class ClusterStats(ApiModel):
    group_state: str
    partitions: int
    members: list[MemberStats]
    unassigned_partitions: list[int]


class WorkflowLocation(ApiModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "workflowId": "order-42",
                    "partition": 3,
                    "owner": "http://10.0.0.5:8081",
                    "memberId": "rdkafka-1",
                    "groupState": "Stable",
                }
            ]
        }
    )

    workflow_id: str
    partition: int
    owner: str | None
    member_id: str | None = None
    group_state: str


SeedEventKind = Literal[
    "workflow_migration", "shard_rebalance", "workflow_failover", "member_event", "leader_changed"
]
"""The seed system's cluster event kinds (its 002 document), served by ``GET /api/v1/events``."""


class Event(WireModel):
    """One event of ``GET /api/v1/events``: a workflow lifecycle event (its fields as on the
    public events topic, ``kind`` its type in lower case) or a cluster event under the seed's
    kind (``type`` the cluster event's own, with ``node``, ``partitions``...; no workflow)."""

    kind: str = Field(
        description="workflow_started, activity_completed, ... (a lifecycle type in lower case), or a "
        "seed kind: member_event, shard_rebalance, workflow_migration, workflow_failover"
    )
    type: str
    time: float
    workflow_id: str | None = None
    run_id: str | None = None
    workflow_type: str | None = None
    partition: int | None = None
    history_index: int | None = None
    data: Any = None
    node: str | None = None
    url: str | None = None
    partitions: list[int] | None = None
    seconds: float | None = None
    failover_from: list[str] | None = None
    reason: str | None = None
    fenced: str | None = None


class EventsResponse(ApiModel):
    events: list[Event]
    partial: bool = Field(description="True when the read stopped at its time limit before every tail.")


class ClusterEvent(ApiModel):
    """An engine joined or left, or partitions moved (see ``ledgerflow.cluster``)."""

    model_config = ConfigDict(extra="allow")
    type: str = Field(
        description="NODE_JOINED, NODE_LEFT, PARTITIONS_ASSIGNING/ASSIGNED/REVOKED/LOST/CLOSED, "
        "PARTITIONS_RELOADED (a failed batch: the node kept them and went back to its last commit; "
        "see reason), OWNER_FENCED (the node fenced a dead previous owner of these partitions)."
    )
    node: str
    url: str
    time: float
    partitions: list[int] = Field(default_factory=list)
    seconds: float | None = Field(
        default=None, description="How long the move took (assign includes restore)."
    )
    failover_from: list[str] | None = Field(
        default=None, description="Nodes that held these partitions and never gave them up (they died)."
    )
    reason: str | None = Field(default=None, description="Why partitions were reloaded (the batch's error).")
    fenced: str | None = Field(default=None, description="The transactional id an OWNER_FENCED event fenced.")


class ClusterEventsResponse(ApiModel):
    events: list[ClusterEvent]


class Health(ApiModel):
    status: Literal["ok"]


class Readiness(ApiModel):
    ready: bool
    detail: str
