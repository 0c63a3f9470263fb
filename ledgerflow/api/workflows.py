"""The /api/v1/workflows routes: register a DAG, start, signal, cancel, terminate,
query, and read a workflow's status, history and the list of workflows.

Writes go to Kafka (``acks=all``); reads about one workflow are forwarded to the
engine owning its partition; the listing asks every engine.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections.abc import Callable
from typing import Annotated, Any

from confluent_kafka import KafkaException
from fastapi import APIRouter, Body, Path, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from ledgerflow import namespaces
from ledgerflow.api.auth import namespace_of, require
from ledgerflow.api.errors import (
    AlreadyStartedError,
    InvalidRequestError,
    NotRunningError,
    UnknownNodeTypeError,
)
from ledgerflow.api.models import (
    REGISTER_EXAMPLES,
    CommandAccepted,
    CommandKind,
    DagRegistration,
    DefinitionRegistered,
    ExecuteRequest,
    FieldProblem,
    HistoryPage,
    PendingActivityView,
    QueryRequest,
    QueryResult,
    ReasonRequest,
    RegisterBody,
    ResetRequest,
    SignalRequest,
    UpdateOutcomeView,
    UpdateRequest,
    WorkflowAccepted,
    WorkflowCount,
    WorkflowList,
    WorkflowStatus,
    WorkflowSummary,
)
from ledgerflow.api.schedules import bind_schedule
from ledgerflow.api.scopes import Scope
from ledgerflow.api.settings import ANY_TYPE
from ledgerflow.api.state import (
    BODY_DOCS,
    READ_DOCS,
    GatewayState,
    WorkflowIdPath,
    error_doc,
    gateway_state,
    json_response,
)
from ledgerflow.api.timeline import build_timeline
from ledgerflow.api.writes import send_command, send_record
from ledgerflow.config import PAGE_LIMIT
from ledgerflow.converter import payload_of
from ledgerflow.dag.registration import MAX_PROBLEMS, definition_problems, queue_problems
from ledgerflow.errors import (
    CapacityError,
    OwnerResponseError,
    OwnerUnavailableError,
    VisibilityQueryError,
    WorkflowNotFoundError,
)
from ledgerflow.reset_points import children_refusal, reset_refusal
from ledgerflow.schemas import commands as c
from ledgerflow.schemas.common import BARE_ID_RULE, BareId, Failure, RunStatus
from ledgerflow.schemas.dag import DagDefinition
from ledgerflow.schemas.events import HistoryEvent, history_event_adapter
from ledgerflow.schemas.owner import AdmissionJson
from ledgerflow.schemas.search import SearchAttributeValue
from ledgerflow.visibility import MAX_QUERY_CHARS, order_of_cursor
from ledgerflow.visibility import parse as parse_query

TypeIdPath = Annotated[
    BareId,
    Path(
        description="A registered DAG definition's id, or a code workflow type.",
        openapi_examples={"dag": {"summary": "A DAG definition", "value": "fan-out"}},
    ),
]

MAX_OFFSET = 10_000_000
"""Largest history ``offset`` accepted (far past any run's history limit)."""


async def _describe(state: GatewayState, workflow_id: str, operation: str = "status") -> dict[str, Any]:
    return dict(await state.live_reads().run(workflow_id, operation))


async def _latest_of_type(state: GatewayState, namespace: str, workflow_type: str) -> str | None:
    """The engine id of the newest run of ``workflow_type`` (a DAG's id, or a code workflow's
    name) in ``namespace``, from the visibility index; None when it has none."""
    literal = "'" + workflow_type.replace("\\", "\\\\").replace("'", "\\'") + "'"
    params = {
        "query": f"WorkflowType = {literal} ORDER BY StartTime DESC",
        "namespace": namespace,
        "limit": 1,
    }
    listing = await state.live_reads().listing(params, 1)
    return listing.runs[0]["workflow_id"] if listing.runs else None


async def _target(state: GatewayState, namespace: str, bare_id: str, operation: str) -> str:
    """The engine id a route about ``bare_id`` acts on: the workflow of that id when it has a
    run, else the latest run of the DAG of that id, as the seed system's `POST
    /workflows/{dagId}/execute` then `GET /workflows/{dagId}/status` expects; else the id itself
    (a command to it is the engine's to refuse). Only a DAG's id stands for its runs: a code
    workflow's name does not (its runs are its callers' to name)."""
    engine_id = namespaces.qualify(namespace, bare_id)
    reads = state.live_reads()
    try:
        await reads.run(engine_id, operation)
        return engine_id
    except WorkflowNotFoundError:
        latest = await _latest_of_type(state, namespace, bare_id)
    if latest is None:
        return engine_id
    try:
        return latest if (await reads.run(latest, operation))["is_dag"] else engine_id
    except WorkflowNotFoundError:  # expired meanwhile
        return engine_id


async def _start(
    state: GatewayState,
    namespace: str,
    bare_id: str,
    workflow_type: str,
    input: Any,
    execution_timeout: float | None,
    request_id: str | None,
    check_open: bool = True,
    search_attributes: dict[str, SearchAttributeValue] | None = None,
    memo: dict[str, Any] | None = None,
) -> WorkflowAccepted:
    """Start ``bare_id`` in ``namespace``; ``workflow_type`` names a code workflow or one of the
    namespace's DAG definitions (the engine looks it up there)."""
    workflow_id = namespaces.qualify(namespace, bare_id)
    owners = state.live_reads()
    if check_open:
        try:
            admission: AdmissionJson | None = await owners.admission(workflow_id, request_id)
        except (WorkflowNotFoundError, OwnerUnavailableError, OwnerResponseError):
            admission = None  # unreachable: write anyway; the engine keeps one open run and its limits
        earlier = admission.get("request_run") if admission else None
        if earlier:  # a retry of an applied start: the same answer
            partition = owners.partition(workflow_id)
            return WorkflowAccepted(
                workflow_id=bare_id, run_id=earlier, workflow_type=workflow_type, partition=partition
            )
        current = admission["run"] if admission else None
        if current is not None and current["status"] == "RUNNING":
            raise AlreadyStartedError(workflow_id, current["run_id"], owners.partition(workflow_id))
        if admission and admission["refusal"]:
            raise CapacityError(workflow_id, owners.partition(workflow_id), admission["refusal"])
    run_id = c.start_run_id(workflow_id, request_id)
    command = c.StartWorkflow(
        workflow_id=workflow_id,
        workflow_type=workflow_type,
        input=state.encoded(input),
        run_id=run_id,
        execution_timeout=execution_timeout,
        request_id=request_id or run_id,
        search_attributes=search_attributes or {},
        memo={name: state.encoded(value) for name, value in (memo or {}).items()},
    )
    partition = await send_command(state, workflow_id, command)
    return WorkflowAccepted(
        workflow_id=bare_id, run_id=run_id, workflow_type=workflow_type, partition=partition
    )


def _check_bare_id(value: str, field: str) -> None:
    """422 for an id that names a namespace: callers name ids within theirs."""
    if namespaces.SEPARATOR in value:
        message = f"{field}: an id is {BARE_ID_RULE}"
        raise InvalidRequestError(
            [FieldProblem(loc=["body", field], field=field, message=message, type="invalid_id")]
        )


def _check_definition(state: GatewayState, dag: DagDefinition, served: set[str]) -> None:
    """422 naming each field of ``dag`` over a limit or with a bad expression (as the engine's Kafka
    ingress would refuse it), then each node type neither known nor ``served`` by a live worker."""
    problems = [
        FieldProblem(loc=["body", *p.loc], field=p.field if p.loc else "body", message=p.message, type=p.kind)
        for p in definition_problems(dag, state.settings)
    ]
    if problems:
        raise InvalidRequestError(problems)
    _check_node_types(state, dag, served)


async def _check_queue_topics(state: GatewayState, dag: DagDefinition) -> None:
    """422 for a node whose task queue's topic collides with an existing topic (Kafka would refuse
    to create it, and the runs reaching the node would fail). Topics that cannot be listed now
    are not held against the definition: the engine still fails such a run with the reason."""
    try:
        topics = await asyncio.to_thread(state.live_producer().topics, 5.0)
    except KafkaException:
        return
    problems = [
        FieldProblem(loc=["body", *p.loc], field=p.field, message=p.message, type=p.kind)
        for p in itertools.islice(queue_problems(dag, state.settings, topics), MAX_PROBLEMS)
    ]
    if problems:
        raise InvalidRequestError(problems)


async def _served_node_types(state: GatewayState, dag: DagDefinition) -> set[str]:
    """The node types of ``dag`` that live workers serve as DAG nodes (read only when some node
    names a type the gateway does not know itself)."""
    unknown = {node.type for node in dag.nodes} - state.node_types
    if not unknown or ANY_TYPE in state.node_types:
        return set()
    served = await state.served_types()
    return {name for name in unknown if name in served and served[name].dag_node}


def _check_node_types(state: GatewayState, dag: DagDefinition, served: set[str]) -> None:
    if ANY_TYPE in state.node_types:
        return
    problems = []
    known = ", ".join(sorted(state.node_types | served))
    for index, node in enumerate(dag.nodes):
        if node.type not in state.node_types and node.type not in served:
            problems.append(
                FieldProblem(
                    loc=["body", "nodes", index, "type"],
                    field=f"nodes[{index}].type",
                    message=(
                        f"node '{node.id}': unknown node type '{node.type}' (not a built-in, a "
                        f"configured activity or one a live worker serves; known: {known})"
                    ),
                    type="unknown_node_type",
                )
            )
    if problems:
        raise UnknownNodeTypeError(problems)


def _queue_of(activity: dict[str, Any]) -> str:
    return str((activity.get("options") or {}).get("queue", "default"))


async def _history_page(
    state: GatewayState, namespace: str, workflow_id: str, run_id: str | None, offset: int, limit: int
) -> tuple[str, int, list[HistoryEvent]]:
    """One page of a run's history from its owner (``workflow_id``: the engine's id): the run id,
    the history's length and the events, with ids as a caller of ``namespace`` names them."""
    data = await state.live_reads().history_page(workflow_id, run_id, offset, limit)
    events = [
        history_event_adapter.validate_python(namespaces.visible(namespace, e))
        for e in state.clear(data["events"])
    ]
    return str(data["run_id"]), int(data["total"]), events


async def _whole_history(
    state: GatewayState, namespace: str, workflow_id: str, run_id: str | None
) -> tuple[str, int, list[HistoryEvent]]:
    """A run's whole history, read a page of PAGE_LIMIT events at a time (for its timeline)."""
    run, total, events = await _history_page(state, namespace, workflow_id, run_id, 0, PAGE_LIMIT)
    while len(events) < total:
        _, total, page = await _history_page(state, namespace, workflow_id, run, len(events), PAGE_LIMIT)
        if not page:
            break
        events += page
    return run, total, events


async def _history_prefix(
    state: GatewayState, namespace: str, workflow_id: str, run_id: str | None, count: int
) -> tuple[str, list[HistoryEvent]]:
    """A run's first ``count`` events (fewer when it has fewer), a page at a time."""
    run, total, events = await _history_page(state, namespace, workflow_id, run_id, 0, min(count, PAGE_LIMIT))
    while len(events) < min(count, total):
        limit = min(count - len(events), PAGE_LIMIT)
        _, total, page = await _history_page(state, namespace, workflow_id, run, len(events), limit)
        if not page:
            break
        events += page
    return run, events


def _status_from(data: dict[str, Any]) -> WorkflowStatus:
    activities: dict[str, Any] = data.get("activities") or {}
    workers: dict[str, int | None] = data.get("queue_workers") or {}
    pending = [
        PendingActivityView(
            seq=int(seq),
            activity_type=str(a.get("activity_type", "")),
            attempt=int(a.get("attempt", 1)),
            state=str(a.get("state", "")),
            queue=_queue_of(a),
            queue_workers=workers.get(_queue_of(a)),
            scheduled_at=a.get("scheduled_at"),
            attempt_started_at=a.get("attempt_started_at"),
            last_failure=a.get("last_failure"),
        )
        for seq, a in sorted(activities.items(), key=lambda item: int(item[0]))
    ]
    return WorkflowStatus.model_validate(
        {
            **data,
            "activities": None,
            "pending_activities": pending,
            "open_timers": len(data.get("timers") or {}),
            "held_commands": len(data.get("held") or []),
        }
    )


def _run_links() -> dict[str, dict[str, Any]]:
    """OpenAPI links from an accepted start to what a caller does next with its workflow id
    (clients and schemathesis's stateful phase follow them)."""
    operations = {
        "GetStatus": ("status", "get"),
        "GetHistory": ("history", "get"),
        "Signal": ("signal", "post"),
        "Query": ("query", "post"),
        "Cancel": ("cancel", "post"),
        "Terminate": ("terminate", "post"),
    }
    return {
        name: {
            "operationRef": f"#/paths/~1api~1v1~1workflows~1{{id}}~1{path}/{method}",
            "parameters": {"id": "$response.body#/workflowId"},
        }
        for name, (path, method) in operations.items()
    }


RUN_LINKS = _run_links()

router = APIRouter(prefix="/api/v1")


@router.post(
    "/workflows",
    tags=["workflows"],
    summary="Register a DAG, or start a code workflow",
    status_code=201,
    response_model=None,
    responses={
        201: {"model": DefinitionRegistered, "description": "The DAG definition was registered."},
        202: {
            "model": WorkflowAccepted,
            "description": "The start was written to Kafka.",
            "links": RUN_LINKS,
        },
        409: error_doc("The workflow id is already running; the body names the open run."),
        429: error_doc("The owning engine is at its open-workflow limit; retry after Retry-After."),
        **BODY_DOCS,
    },
)
async def register(
    request: Request, body: Annotated[RegisterBody, Body(openapi_examples=REGISTER_EXAMPLES)]
) -> JSONResponse:
    """A body with `nodes` registers (or replaces) a DAG definition: it is checked for
    duplicate node ids, edges naming unknown nodes, cycles, the size limits (nodes, edges,
    longest path, bytes), expressions that cannot parse and unknown node types (422 naming
    the node or edge, and the setting of a limit), then written to the compacted definitions topic; runs
    started afterwards see it. A body `{"id", "type", "input"}` starts a run of a code
    workflow (or of a registered DAG) under workflow id `id`. A start needs the `write`
    scope; registering a DAG needs `admin` too (403 otherwise)."""
    state = gateway_state(request)
    namespace = namespace_of(request)
    if isinstance(body, DagRegistration):
        require(request, Scope.ADMIN, "registering a DAG definition")
        definition = body.definition()
        _check_bare_id(definition.id, "id")
        _check_definition(state, definition, await _served_node_types(state, definition))
        await _check_queue_topics(state, definition)
        stored = definition.model_copy(update={"id": namespaces.qualify(namespace, definition.id)})
        await send_record(
            state,
            state.settings.topic("definitions"),
            stored.id,
            stored.model_dump_json(by_alias=True).encode(),
        )
        bound = await bind_schedule(request, definition.id, body.schedule) if body.schedule else None
        registered = DefinitionRegistered(
            id=definition.id,
            name=definition.name,
            nodes=len(definition.nodes),
            edges=len(definition.edges),
            schedule=bound,
        )
        shown = registered.model_dump(
            mode="json", by_alias=True, exclude={"schedule"} if bound is None else None
        )
        return JSONResponse(shown, status_code=201)  # the seed's answer, unchanged without a schedule
    accepted = await _start(
        state,
        namespace,
        body.id,
        body.type,
        body.input,
        body.execution_timeout,
        body.request_id,
        search_attributes=body.search_attributes,
        memo=body.memo,
    )
    return json_response(202, accepted)


@router.post(
    "/workflows/{id}/execute",
    tags=["workflows"],
    summary="Start a run of a DAG definition or code workflow type",
    status_code=202,
    response_model=WorkflowAccepted,
    responses={
        202: {"description": "The start was written to Kafka.", "links": RUN_LINKS},
        409: error_doc("The workflow id is already running; the body names the open run."),
        429: error_doc("The owning engine is at its open-workflow limit; retry after Retry-After."),
        **BODY_DOCS,
    },
)
async def execute(
    request: Request,
    id: TypeIdPath,
    body: Annotated[ExecuteRequest | None, Body()] = None,
) -> WorkflowAccepted:
    """`{id}` names a registered DAG definition or a code workflow type. The run's
    workflow id is `workflowId` from the body, or a new one. Answers once Kafka
    acknowledged the start; an unknown type fails the run (`UnknownWorkflowType`)."""
    state = gateway_state(request)
    body = body or ExecuteRequest()
    workflow_id = body.workflow_id or f"{id[:64]}-{uuid.uuid4().hex}"
    return await _start(
        state,
        namespace_of(request),
        workflow_id,
        id,
        body.input,
        body.execution_timeout,
        body.request_id,
        check_open=body.workflow_id is not None,
        search_attributes=body.search_attributes,
        memo=body.memo,
    )


@router.get(
    "/workflows/{id}/status",
    tags=["workflows"],
    summary="Status of a workflow's latest run",
    response_model=WorkflowStatus,
    responses=READ_DOCS,
)
async def status(request: Request, id: WorkflowIdPath) -> WorkflowStatus:
    """Answered by the engine owning the workflow's partition: status, result or failure,
    pending activities with their attempt and last failure, history size. An id with no run of
    its own that names a DAG (or workflow type) answers for its latest run, whose own
    `workflowId` the body carries."""
    state = gateway_state(request)
    namespace = namespace_of(request)
    data = await _describe(state, await _target(state, namespace, id, "status"))
    return _status_from(namespaces.visible(namespace, state.clear(data)))


@router.get(
    "/workflows/{id}/history",
    tags=["workflows"],
    summary="History of a run, paged, with its timeline",
    response_model=HistoryPage,
    responses=READ_DOCS,
)
async def history(
    request: Request,
    id: WorkflowIdPath,
    run_id: Annotated[
        BareId | None, Query(alias="runId", description="A run id; default the latest.")
    ] = None,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    limit: Annotated[int, Query(ge=1, le=PAGE_LIMIT)] = 100,
    timeline: Annotated[
        bool,
        Query(
            description="Also the per-activity/node timeline, folded from the run's whole "
            "history (which the owner then reads in full)."
        ),
    ] = False,
) -> HistoryPage:
    """Events `offset + 1` .. `offset + limit` of the run's history; the owner reads only
    those, so a page costs its size whatever the history's length. Page on with
    `offset=nextOffset` (null on the last page). With `timeline=true`, also one timeline
    entry per activity, timer and child workflow: scheduled, completed or failed time and
    attempts; for a DAG run, the node."""
    state = gateway_state(request)
    namespace = namespace_of(request)
    engine_id = (
        await _target(state, namespace, id, "history")
        if run_id is None
        else namespaces.qualify(namespace, id)
    )
    if timeline:
        run, total, fetched = await _whole_history(state, namespace, engine_id, run_id)
        events = fetched[offset : offset + limit]
    else:
        run, total, events = await _history_page(state, namespace, engine_id, run_id, offset, limit)
    end = offset + len(events)
    return HistoryPage(
        workflow_id=namespaces.within(namespace, engine_id),
        run_id=run,
        total=total,
        offset=offset,
        limit=limit,
        next_offset=end if end < total else None,
        events=events,
        timeline=build_timeline(fetched) if timeline else None,
    )


async def command(
    request: Request,
    bare_id: str,
    kind: CommandKind,
    build: Callable[[str], BaseModel],
    by_dag: bool = False,
) -> CommandAccepted:
    """Write the command ``build`` makes for the workflow ``bare_id`` names; with ``by_dag``, a
    DAG's id with no run of its own names its latest run (``_target``: the seed's signal and
    cancel by DAG id)."""
    state, namespace = gateway_state(request), namespace_of(request)
    workflow_id = namespaces.qualify(namespace, bare_id)
    if by_dag:
        workflow_id = await _target(state, namespace, bare_id, kind)
    partition = await send_command(state, workflow_id, build(workflow_id))
    return CommandAccepted(
        workflow_id=namespaces.within(namespace, workflow_id), command=kind, partition=partition
    )


@router.post(
    "/workflows/{id}/signal",
    tags=["workflows"],
    summary="Send a signal to a workflow's open run",
    status_code=202,
    response_model=CommandAccepted,
    responses=BODY_DOCS,
)
async def signal(request: Request, id: WorkflowIdPath, body: SignalRequest) -> CommandAccepted:
    """Written to the inbox, keyed by the workflow id, so it is applied after every
    command sent for that workflow before it. With `requestId`, a signal sent twice
    counts once."""
    request_id = body.request_id or str(uuid.uuid4())
    payload = gateway_state(request).encoded(body.payload)
    return await command(
        request,
        id,
        "signal",
        lambda wid: c.SignalWorkflow(workflow_id=wid, name=body.name, payload=payload, request_id=request_id),
        by_dag=True,
    )


UPDATE_ENDED = ("rejected", "completed", "failed")


@router.post(
    "/workflows/{id}/updates",
    tags=["workflows"],
    summary="Run an update on a workflow's open run",
    response_model=UpdateOutcomeView,
    responses={
        **BODY_DOCS,
        **READ_DOCS,
        202: {"model": UpdateOutcomeView, "description": "Not ended yet: poll it."},
        409: error_doc("The workflow has no open run; the body names its latest run and status."),
    },
)
async def update(
    request: Request, id: WorkflowIdPath, body: UpdateRequest, response: Response
) -> UpdateOutcomeView:
    """The run's `@workflow.update` handler `name`, after its validator: waits up to
    `waitSeconds` and answers 200 with the outcome (`completed` with its result, `failed` or
    `rejected` with the failure), or 202 while it is not ended (poll
    `GET .../updates/{updateId}`). 409 when the workflow has no open run. With `updateId`, an
    update sent twice runs once."""
    state = gateway_state(request)
    namespace = namespace_of(request)
    engine_id = namespaces.qualify(namespace, id)
    update_id = body.update_id or str(uuid.uuid4())
    reads = state.live_reads()
    before = await reads.update_status(engine_id, update_id)
    if before["update"] is None and before["status"] != "RUNNING":
        raise NotRunningError(id, before["run_id"], before["status"])
    if before["update"] is None:
        payload = state.encoded(payload_of(body.args))
        command = c.UpdateWorkflow(
            workflow_id=engine_id, update_id=update_id, name=body.name, payload=payload, request_id=update_id
        )
        await send_command(state, engine_id, command)
    deadline = time.monotonic() + body.wait_seconds
    pause = 0.01
    while True:
        view = await _update_view(state, id, engine_id, update_id)
        if view.status in UPDATE_ENDED or time.monotonic() >= deadline:
            break
        await asyncio.sleep(pause)
        pause = min(pause * 2, 0.25)
    if view.status not in UPDATE_ENDED:
        response.status_code = 202
    return view


@router.get(
    "/workflows/{id}/updates/{update_id}",
    tags=["workflows"],
    summary="Where an update of a workflow stands",
    response_model=UpdateOutcomeView,
    responses={**READ_DOCS, 409: error_doc("Not applied, and the workflow has no open run to apply it.")},
)
async def update_outcome(request: Request, id: WorkflowIdPath, update_id: BareId) -> UpdateOutcomeView:
    """`sent` until the owner applied it, then `accepted` while its handler runs, and at last
    `completed`, `failed` or `rejected`."""
    state = gateway_state(request)
    return await _update_view(state, id, namespaces.qualify(namespace_of(request), id), update_id)


async def _update_view(
    state: GatewayState, bare_id: str, engine_id: str, update_id: str
) -> UpdateOutcomeView:
    found = await state.live_reads().update_status(engine_id, update_id)
    outcome = found["update"]
    if outcome is None and found["status"] != "RUNNING":  # it will never be applied now
        raise NotRunningError(bare_id, found["run_id"], found["status"])
    if outcome is None:
        return UpdateOutcomeView(workflow_id=bare_id, update_id=update_id, status="sent")
    failure = state.clear(outcome["failure"])
    return UpdateOutcomeView(
        workflow_id=bare_id,
        update_id=update_id,
        status=outcome["status"],  # type: ignore[arg-type]
        result=state.clear(outcome["result"]),
        failure=Failure.model_validate(failure) if failure else None,
    )


@router.post(
    "/workflows/{id}/cancel",
    tags=["workflows"],
    summary="Ask a workflow's open run to cancel",
    status_code=202,
    response_model=CommandAccepted,
    responses=BODY_DOCS,
)
async def cancel(
    request: Request, id: WorkflowIdPath, body: Annotated[ReasonRequest | None, Body()] = None
) -> CommandAccepted:
    """The workflow sees the cancellation and may clean up; its running activities are told."""
    reason = (body or ReasonRequest()).reason
    return await command(
        request, id, "cancel", lambda wid: c.CancelWorkflow(workflow_id=wid, reason=reason), by_dag=True
    )


@router.post(
    "/workflows/{id}/terminate",
    tags=["workflows"],
    summary="End a workflow's open run at once",
    status_code=202,
    response_model=CommandAccepted,
    responses=BODY_DOCS,
)
async def terminate(
    request: Request, id: WorkflowIdPath, body: Annotated[ReasonRequest | None, Body()] = None
) -> CommandAccepted:
    """No more workflow code runs; the run closes as TERMINATED."""
    reason = (body or ReasonRequest()).reason
    return await command(
        request, id, "terminate", lambda wid: c.TerminateWorkflow(workflow_id=wid, reason=reason)
    )


@router.post(
    "/workflows/{id}/reset",
    tags=["workflows"],
    summary="Reset a workflow's latest run to an event of its history",
    status_code=202,
    response_model=CommandAccepted,
    responses={**BODY_DOCS, **READ_DOCS},
)
async def reset(request: Request, id: WorkflowIdPath, body: ResetRequest) -> CommandAccepted:
    """A new run of the workflow begins with the latest run's history before event `toEvent` and
    goes on from there with the code deployed now: activities open at that point run again,
    timers keep their fire times, the signals, updates and cancel request received from it on are
    delivered again. The latest run is terminated if open. A point the run cannot go back to (or
    a run with child workflows open) is a 422 naming `toEvent`."""
    state = gateway_state(request)
    namespace = namespace_of(request)
    workflow_id = namespaces.qualify(namespace, id)
    run_id, events = await _history_prefix(state, namespace, workflow_id, body.run_id, body.to_event)
    latest = await state.live_reads().run(workflow_id)
    refusal = reset_refusal(events, body.to_event) or children_refusal(dict(latest))
    if refusal is not None:
        problem = FieldProblem(loc=["body", "toEvent"], field="toEvent", message=refusal, type="reset_point")
        raise InvalidRequestError([problem])
    return await command(
        request,
        id,
        "reset",
        lambda wid: c.ResetWorkflow(
            workflow_id=wid,
            run_id=run_id,
            to_event=body.to_event,
            reason=body.reason,
            request_id=str(uuid.uuid4()),
        ),
    )


@router.post(
    "/workflows/{id}/query",
    tags=["workflows"],
    summary="Ask a workflow a query",
    response_model=QueryResult,
    responses={
        **READ_DOCS,
        **BODY_DOCS,
        400: error_doc("The query could not be answered (unknown query, type not loaded)."),
    },
)
async def query(request: Request, id: WorkflowIdPath, body: QueryRequest) -> QueryResult:
    """Answered by the owning engine from the run's committed state (replayed when not cached)."""
    state = gateway_state(request)
    engine_id = namespaces.qualify(namespace_of(request), id)
    args = [state.encoded(a) for a in body.args]
    result = await state.live_reads().query(engine_id, body.name, args, shown_id=id)
    return QueryResult(result=state.clear(result))


@router.get(
    "/workflows",
    tags=["workflows"],
    summary="List workflows across every partition",
    response_model=WorkflowList,
)
async def list_workflows(
    request: Request,
    status: Annotated[RunStatus | None, Query(description="Only runs in this status.")] = None,
    type: Annotated[str | None, Query(description="Only this workflow type.")] = None,
    limit: Annotated[int, Query(ge=1, le=PAGE_LIMIT)] = 100,
    cursor: Annotated[
        str | None,
        Query(description="`nextCursor` of the previous page (a workflow id, or a query's page token)."),
    ] = None,
    query: Annotated[
        str | None,
        Query(
            max_length=MAX_QUERY_CHARS,
            description="A visibility query in Temporal's syntax: `WorkflowType = 'Checkout' AND "
            "CustomerId = 'c-1' ORDER BY StartTime DESC` (docs/visibility.md).",
        ),
    ] = None,
) -> WorkflowList:
    """Latest run of each workflow id, ordered by workflow id, merged from every engine; with
    `query`, the runs it matches in start-time order (newest first unless `ORDER BY StartTime
    ASC`), read from the index each engine keeps (a query that cannot be read is a 400 naming
    the token). Each engine reads only up to the page's end, filtering as it goes and
    examining at most `list_scan_limit` runs: a filtered page may be short, even empty, and
    still carry a `nextCursor`; page on until it is null. `partial` is true (and
    `missingPartitions` lists them) when some partitions had no reachable owner."""
    state = gateway_state(request)
    namespace = namespace_of(request)
    params: dict[str, Any] = {"limit": limit, "namespace": namespace}
    if query is not None:
        if status or type:
            message = "give the status and type inside the query (ExecutionStatus, WorkflowType)"
            raise InvalidRequestError([_query_problem("status" if status else "type", message)])
        _parsed(query)
        params["query"] = query
        if cursor:
            try:
                order_of_cursor(cursor)
            except ValueError as exc:
                raise InvalidRequestError([_query_problem("cursor", str(exc))]) from None
            params["after"] = cursor
    elif cursor:
        params["after"] = namespaces.qualify(namespace, cursor)
    if status:
        params["status"] = status
    if type:
        params["workflow_type"] = type
    listing = await state.live_reads().listing(params, limit)
    next_cursor = listing.next_after
    if next_cursor and query is None:
        next_cursor = namespaces.within(namespace, next_cursor)
    return WorkflowList(
        workflows=[
            WorkflowSummary.model_validate(namespaces.visible(namespace, state.clear(dict(r))))
            for r in listing.runs
        ],
        next_cursor=next_cursor,
        partial=bool(listing.missing_partitions),
        missing_partitions=listing.missing_partitions,
    )


@router.get(
    "/workflow-count",
    tags=["workflows"],
    summary="Count the workflows a visibility query matches",
    response_model=WorkflowCount,
)
async def count_workflows(
    request: Request,
    query: Annotated[
        str,
        Query(max_length=MAX_QUERY_CHARS, description="A visibility query (all workflows when empty)."),
    ] = "",
) -> WorkflowCount:
    """How many workflows' latest runs `query` matches, counted by every engine over its
    partitions' index (Temporal's CountWorkflowExecutions)."""
    state = gateway_state(request)
    _parsed(query)
    counted = await state.live_reads().count(query, namespace_of(request))
    return WorkflowCount(
        count=counted.count,
        partial=bool(counted.missing_partitions),
        missing_partitions=counted.missing_partitions,
    )


def _parsed(query: str) -> None:
    """422 naming the token when ``query`` cannot be read."""
    try:
        parse_query(query)
    except VisibilityQueryError as exc:
        raise InvalidRequestError([_query_problem("query", str(exc))]) from None


def _query_problem(field: str, message: str) -> FieldProblem:
    return FieldProblem(
        loc=["query", field], field=field, message=f"{field}: {message}", type="invalid_query"
    )
