"""The REST gateway: a stateless FastAPI app in front of Kafka and the engine nodes.

    from ledgerflow.api.app import GatewaySettings, create_app
    app = create_app(GatewaySettings())

Writes (register, start, signal, cancel, terminate) go to Kafka and answer once
every in-sync replica acknowledged them (``acks=all``). Reads about one
workflow are forwarded to the engine that owns its partition (see
``routing.py``); listings ask every engine. Nothing is kept between requests
but the Kafka producer, the routing table and an HTTP connection pool, all on
``app.state``.

Status codes (see ``errors.py`` for the full map):

- 201: a DAG definition was registered (written to the compacted definitions topic).
- 202: a start, signal, cancel or terminate was written to the inbox; the engine
  applies it asynchronously. A signal, cancel or terminate for a workflow with
  no open run is dead-lettered by the engine with the reason.
- 409: a start found the workflow id already running: no new run was started,
  and the body carries the open run's ``runId`` (``code: already_started``). A
  caller retrying a start can treat 409 with that body as success. The check is
  best effort: two starts racing, or a start while the owner is unreachable, are
  both written, and the engine keeps one open run per workflow id (the later
  start is ignored).
- 429 (+ ``Retry-After``): the owning engine is at its open-workflow limit; the
  body gives the reason. Nothing was written.
- 404 / 422 / 413 / 401 / 503 (+ ``Retry-After``) as the error map says.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Body, FastAPI, Path, Query, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from pydantic import BaseModel, ValidationError

from ledgerflow import __version__, activity
from ledgerflow.api import errors
from ledgerflow.api.errors import (
    AlreadyStartedError,
    OwnerResponseError,
    QueryFailedError,
    UnknownNodeTypeError,
)
from ledgerflow.api.kafka import AsyncProducer, read_events
from ledgerflow.api.middleware import ApiKeyMiddleware, BodyLimitMiddleware, MetricsMiddleware, RequestMetrics
from ledgerflow.api.models import (
    REGISTER_EXAMPLES,
    ClusterEvent,
    ClusterEventsResponse,
    ClusterStats,
    CommandAccepted,
    CommandKind,
    DefinitionRegistered,
    ErrorBody,
    EventsResponse,
    ExecuteRequest,
    FieldProblem,
    Health,
    HistoryPage,
    MemberStats,
    PendingActivityView,
    QueryRequest,
    QueryResult,
    Readiness,
    ReasonRequest,
    RegisterBody,
    RunStatus,
    ShardInfo,
    ShardsResponse,
    SignalRequest,
    WorkflowAccepted,
    WorkflowList,
    WorkflowLocation,
    WorkflowStatus,
    WorkflowSummary,
)
from ledgerflow.api.routing import OwnerRouter, RoutingMetrics, path_segment
from ledgerflow.api.settings import ANY_TYPE, GatewaySettings
from ledgerflow.api.timeline import build_timeline
from ledgerflow.cluster import read_events as read_cluster_events
from ledgerflow.engine.workflow.dag import IN_WORKFLOW_NODE_TYPES
from ledgerflow.errors import CapacityError, OwnerUnavailableError, WorkflowNotFoundError
from ledgerflow.executors import builtins
from ledgerflow.schemas import commands as c
from ledgerflow.schemas.dag import DagDefinition
from ledgerflow.schemas.events import history_event_adapter

__all__ = ["GatewaySettings", "create_app"]

log = logging.getLogger("ledgerflow.gateway")

WorkflowIdPath = Annotated[
    str,
    Path(
        description="Workflow id.",
        openapi_examples={"order": {"summary": "A workflow id", "value": "order-42"}},
    ),
]
TypeIdPath = Annotated[
    str,
    Path(
        description="A registered DAG definition's id, or a code workflow type.",
        openapi_examples={"dag": {"summary": "A DAG definition", "value": "fan-out"}},
    ),
]

HISTORY_ALL = 10_000_000
"""``limit`` that asks an engine for a run's whole history (to build its timeline)."""


def known_node_types(settings: GatewaySettings) -> frozenset[str]:
    """Types a DAG node may name: built-in activities, in-workflow types, configured activities."""
    return frozenset(
        {*activity.collect([builtins.__name__]), *IN_WORKFLOW_NODE_TYPES, *settings.activity_types}
    )


@dataclass
class GatewayState:
    settings: GatewaySettings
    registry: CollectorRegistry
    request_metrics: RequestMetrics
    routing_metrics: RoutingMetrics
    node_types: frozenset[str]
    producer: AsyncProducer | None = None
    router: OwnerRouter | None = None
    http: httpx.AsyncClient | None = None

    def live_router(self) -> OwnerRouter:
        if self.router is None:
            raise RuntimeError("the gateway is not started (lifespan not run)")
        return self.router

    def live_producer(self) -> AsyncProducer:
        if self.producer is None:
            raise RuntimeError("the gateway is not started (lifespan not run)")
        return self.producer


def _state(request: Request) -> GatewayState:
    state: GatewayState = request.app.state.gateway
    return state


def _json(status: int, model: BaseModel) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json", by_alias=True), status_code=status)


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


# ------------------------------------------------------------ writes and reads
async def _send(state: GatewayState, topic: str, key: str, value: bytes, partition: int | None = None) -> int:
    loop = asyncio.get_running_loop()
    started = loop.time()
    delivery = await state.live_producer().send(topic, key, value, partition)
    state.request_metrics.writes.labels(topic.removeprefix(state.settings.prefix)).observe(
        loop.time() - started
    )
    return delivery.partition


async def _send_command(state: GatewayState, workflow_id: str, command: BaseModel) -> int:
    """Write an inbox command to the workflow's partition (the deployment's partitioner decides)."""
    value = command.model_dump_json(by_alias=True).encode()
    partition = state.live_router().partition(workflow_id)
    return await _send(state, state.settings.topic("inbox"), workflow_id, value, partition)


async def _describe(state: GatewayState, workflow_id: str, operation: str = "status") -> dict[str, Any]:
    response = await state.live_router().forward(
        operation, workflow_id, f"/internal/workflows/{path_segment(workflow_id)}"
    )
    if response.status_code != 200:
        raise OwnerResponseError(workflow_id, response.status_code, response.text)
    data: dict[str, Any] = response.json()
    return data


async def _start(
    state: GatewayState,
    workflow_id: str,
    workflow_type: str,
    input: Any,
    execution_timeout: float | None,
    request_id: str | None,
    check_open: bool = True,
) -> WorkflowAccepted:
    router = state.live_router()
    if check_open:
        try:
            response = await router.forward(
                "start_check", workflow_id, f"/internal/admission/{path_segment(workflow_id)}"
            )
            admission: dict[str, Any] | None = response.json() if response.status_code == 200 else None
        except (WorkflowNotFoundError, OwnerUnavailableError):
            admission = None  # unreachable: write anyway; the engine keeps one open run and its limits
        current = admission.get("run") if admission else None
        if current is not None and current.get("status") == "RUNNING":
            raise AlreadyStartedError(workflow_id, str(current.get("run_id")), router.partition(workflow_id))
        if admission and admission.get("refusal"):
            raise CapacityError(workflow_id, router.partition(workflow_id), str(admission["refusal"]))
    run_id = str(uuid.uuid4())
    command = c.StartWorkflow(
        workflow_id=workflow_id,
        workflow_type=workflow_type,
        input=input,
        run_id=run_id,
        execution_timeout=execution_timeout,
        request_id=request_id or run_id,
    )
    partition = await _send_command(state, workflow_id, command)
    return WorkflowAccepted(
        workflow_id=workflow_id, run_id=run_id, workflow_type=workflow_type, partition=partition
    )


def _check_node_types(state: GatewayState, dag: DagDefinition) -> None:
    if ANY_TYPE in state.node_types:
        return
    problems = []
    known = ", ".join(sorted(state.node_types))
    for index, node in enumerate(dag.nodes):
        if node.type not in state.node_types:
            problems.append(
                FieldProblem(
                    loc=["body", "nodes", index, "type"],
                    field=f"nodes[{index}].type",
                    message=(
                        f"node '{node.id}': unknown node type '{node.type}' "
                        f"(not a built-in or configured activity; known: {known})"
                    ),
                    type="unknown_node_type",
                )
            )
    if problems:
        raise UnknownNodeTypeError(problems)


def _status_from(data: dict[str, Any]) -> WorkflowStatus:
    activities: dict[str, Any] = data.get("activities") or {}
    pending = [
        PendingActivityView(
            seq=int(seq),
            activity_type=str(a.get("activity_type", "")),
            attempt=int(a.get("attempt", 1)),
            state=str(a.get("state", "")),
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
        }
    )


# ------------------------------------------------------------------- the app
def create_app(settings: GatewaySettings) -> FastAPI:
    """A gateway app; Kafka and the routing table are opened by its lifespan."""
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    state = GatewayState(
        settings=settings,
        registry=registry,
        request_metrics=RequestMetrics(registry),
        routing_metrics=RoutingMetrics(registry),
        node_types=known_node_types(settings),
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        state.http = httpx.AsyncClient(
            timeout=settings.owner_timeout,
            limits=httpx.Limits(max_connections=200, max_keepalive_connections=50),
        )
        state.producer = AsyncProducer(settings, settings.produce_timeout, settings.max_body_bytes)
        state.router = OwnerRouter(settings, state.http, state.routing_metrics)
        await state.router.start()
        try:
            yield
        finally:
            await state.router.close()
            await asyncio.to_thread(state.producer.close)
            await state.http.aclose()

    app = FastAPI(
        title="Ledgerflow gateway",
        version=__version__,
        description=(
            "Durable execution on Apache Kafka. Writes answer once Kafka acknowledged them; "
            "reads about one workflow are answered by the engine that owns its partition. "
            "Errors share one body (`code`, `detail`, and `errors` naming each bad field); "
            "503 always carries `Retry-After`."
        ),
        lifespan=lifespan,
    )
    app.state.gateway = state
    errors.install(app, settings.retry_after)
    app.add_exception_handler(ValidationError, _on_pydantic_error)

    common: dict[int | str, dict[str, Any]] = {
        422: _error("A parameter or the body is invalid; `errors` names each field."),
        503: _error("Kafka or the partition owner is unavailable; retry after `Retry-After` seconds."),
    }
    if settings.auth_enabled:
        common[401] = _error("No valid API key (`X-API-Key` or `Authorization: Bearer`).")
    with_body: dict[int | str, dict[str, Any]] = {413: _error("The body is larger than allowed.")}
    reads: dict[int | str, dict[str, Any]] = {
        404: _error("No run of this workflow id exists."),
        502: _error("The owning engine answered unexpectedly."),
    }

    api = APIRouter(prefix="/api/v1", responses=common)
    _workflow_routes(api, with_body, reads)
    _cluster_routes(api)
    app.include_router(api)
    _probe_routes(app, common)

    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes)
    if settings.auth_enabled:
        app.add_middleware(ApiKeyMiddleware, keys=settings.api_keys)
    app.add_middleware(MetricsMiddleware, metrics=state.request_metrics)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            if settings.auth_enabled:
                components = schema.setdefault("components", {})
                components["securitySchemes"] = {
                    "ApiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                    "Bearer": {"type": "http", "scheme": "bearer"},
                }
                schema["security"] = [{"ApiKey": []}, {"Bearer": []}]
                for path in ("/health", "/ready"):
                    for operation in schema["paths"].get(path, {}).values():
                        operation["security"] = []
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


async def _on_pydantic_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ValidationError)
    problems = errors.problems_from_validation(exc.errors(include_input=False))
    return errors.to_response(errors.InvalidRequestError(problems))


def _workflow_routes(
    api: APIRouter,
    with_body: dict[int | str, dict[str, Any]],
    reads: dict[int | str, dict[str, Any]],
) -> None:
    @api.post(
        "/workflows",
        tags=["workflows"],
        summary="Register a DAG, or start a code workflow",
        status_code=201,
        response_model=None,
        responses={
            201: {"model": DefinitionRegistered, "description": "The DAG definition was registered."},
            202: {"model": WorkflowAccepted, "description": "The start was written to Kafka."},
            409: _error("The workflow id is already running; the body names the open run."),
            429: _error("The owning engine is at its open-workflow limit; retry after Retry-After."),
            **with_body,
        },
    )
    async def register(
        request: Request, body: Annotated[RegisterBody, Body(openapi_examples=REGISTER_EXAMPLES)]
    ) -> JSONResponse:
        """A body with `nodes` registers (or replaces) a DAG definition: it is checked for
        duplicate node ids, edges naming unknown nodes, cycles and unknown node types (422
        naming the node or edge), then written to the compacted definitions topic; runs
        started afterwards see it. A body `{"id", "type", "input"}` starts a run of a code
        workflow (or of a registered DAG) under workflow id `id`."""
        state = _state(request)
        if isinstance(body, DagDefinition):
            _check_node_types(state, body)
            await _send(
                state,
                state.settings.topic("definitions"),
                body.id,
                body.model_dump_json(by_alias=True).encode(),
            )
            return _json(
                201,
                DefinitionRegistered(
                    id=body.id, name=body.name, nodes=len(body.nodes), edges=len(body.edges)
                ),
            )
        accepted = await _start(
            state, body.id, body.type, body.input, body.execution_timeout, body.request_id
        )
        return _json(202, accepted)

    @api.post(
        "/workflows/{id}/execute",
        tags=["workflows"],
        summary="Start a run of a DAG definition or code workflow type",
        status_code=202,
        response_model=WorkflowAccepted,
        responses={
            409: _error("The workflow id is already running; the body names the open run."),
            429: _error("The owning engine is at its open-workflow limit; retry after Retry-After."),
            **with_body,
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
        state = _state(request)
        body = body or ExecuteRequest()
        workflow_id = body.workflow_id or f"{id[:64]}-{uuid.uuid4().hex}"
        return await _start(
            state,
            workflow_id,
            id,
            body.input,
            body.execution_timeout,
            body.request_id,
            check_open=body.workflow_id is not None,
        )

    @api.get(
        "/workflows/{id}/status",
        tags=["workflows"],
        summary="Status of a workflow's latest run",
        response_model=WorkflowStatus,
        responses=reads,
    )
    async def status(request: Request, id: WorkflowIdPath) -> WorkflowStatus:
        """Answered by the engine owning the workflow's partition: status, result or failure,
        pending activities with their attempt and last failure, history size."""
        return _status_from(await _describe(_state(request), id))

    @api.get(
        "/workflows/{id}/history",
        tags=["workflows"],
        summary="History of a run, paged, with its timeline",
        response_model=HistoryPage,
        responses=reads,
    )
    async def history(
        request: Request,
        id: WorkflowIdPath,
        run_id: Annotated[
            str | None, Query(alias="runId", description="A run id; default the latest.")
        ] = None,
        offset: Annotated[int, Query(ge=0, le=HISTORY_ALL)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        timeline: Annotated[bool, Query(description="Include the per-activity/node timeline.")] = True,
    ) -> HistoryPage:
        """Events `offset` .. `offset + limit` of the run's history, and (unless
        `timeline=false`) one timeline entry per activity, timer and child workflow:
        scheduled, completed or failed time and attempts; for a DAG run, the node."""
        state = _state(request)
        params: dict[str, Any] = {
            "offset": 0 if timeline else offset,
            "limit": HISTORY_ALL if timeline else limit,
        }
        if run_id:
            params["run_id"] = run_id
        response = await state.live_router().forward(
            "history", id, f"/internal/workflows/{path_segment(id)}/history", params=params
        )
        if response.status_code != 200:
            raise OwnerResponseError(id, response.status_code, response.text)
        data = response.json()
        fetched = [history_event_adapter.validate_python(e) for e in data["events"]]
        events = fetched[offset : offset + limit] if timeline else fetched
        total = int(data["total"])
        end = offset + len(events)
        return HistoryPage(
            workflow_id=id,
            run_id=data["run_id"],
            total=total,
            offset=offset,
            limit=limit,
            next_offset=end if end < total else None,
            events=events,
            timeline=build_timeline(fetched) if timeline else None,
        )

    async def command(
        request: Request, workflow_id: str, kind: CommandKind, record: BaseModel
    ) -> CommandAccepted:
        partition = await _send_command(_state(request), workflow_id, record)
        return CommandAccepted(workflow_id=workflow_id, command=kind, partition=partition)

    @api.post(
        "/workflows/{id}/signal",
        tags=["workflows"],
        summary="Send a signal to a workflow's open run",
        status_code=202,
        response_model=CommandAccepted,
        responses=with_body,
    )
    async def signal(request: Request, id: WorkflowIdPath, body: SignalRequest) -> CommandAccepted:
        """Written to the inbox, keyed by the workflow id, so it is applied after every
        command sent for that workflow before it. With `requestId`, a signal sent twice
        counts once."""
        record = c.SignalWorkflow(
            workflow_id=id,
            name=body.name,
            payload=body.payload,
            request_id=body.request_id or str(uuid.uuid4()),
        )
        return await command(request, id, "signal", record)

    @api.post(
        "/workflows/{id}/cancel",
        tags=["workflows"],
        summary="Ask a workflow's open run to cancel",
        status_code=202,
        response_model=CommandAccepted,
        responses=with_body,
    )
    async def cancel(
        request: Request, id: WorkflowIdPath, body: Annotated[ReasonRequest | None, Body()] = None
    ) -> CommandAccepted:
        """The workflow sees the cancellation and may clean up; its running activities are told."""
        record = c.CancelWorkflow(workflow_id=id, reason=(body or ReasonRequest()).reason)
        return await command(request, id, "cancel", record)

    @api.post(
        "/workflows/{id}/terminate",
        tags=["workflows"],
        summary="End a workflow's open run at once",
        status_code=202,
        response_model=CommandAccepted,
        responses=with_body,
    )
    async def terminate(
        request: Request, id: WorkflowIdPath, body: Annotated[ReasonRequest | None, Body()] = None
    ) -> CommandAccepted:
        """No more workflow code runs; the run closes as TERMINATED."""
        record = c.TerminateWorkflow(workflow_id=id, reason=(body or ReasonRequest()).reason)
        return await command(request, id, "terminate", record)

    @api.post(
        "/workflows/{id}/query",
        tags=["workflows"],
        summary="Ask a workflow a query",
        response_model=QueryResult,
        responses={
            **reads,
            **with_body,
            400: _error("The query could not be answered (unknown query, type not loaded)."),
        },
    )
    async def query(request: Request, id: WorkflowIdPath, body: QueryRequest) -> QueryResult:
        """Answered by the owning engine from the run's committed state (replayed when not cached)."""
        response = (
            await _state(request)
            .live_router()
            .forward(
                "query",
                id,
                f"/internal/workflows/{path_segment(id)}/query/{path_segment(body.name)}",
                method="POST",
                body={"args": body.args},
            )
        )
        if response.status_code == 400:
            detail = response.json().get("detail", response.text)
            raise QueryFailedError(id, str(detail))
        if response.status_code != 200:
            raise OwnerResponseError(id, response.status_code, response.text)
        return QueryResult(result=response.json().get("result"))

    @api.get(
        "/workflows",
        tags=["workflows"],
        summary="List workflows across every partition",
        response_model=WorkflowList,
    )
    async def list_workflows(
        request: Request,
        status: Annotated[RunStatus | None, Query(description="Only runs in this status.")] = None,
        type: Annotated[str | None, Query(description="Only this workflow type.")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        cursor: Annotated[
            str | None, Query(description="`nextCursor` of the previous page (a workflow id).")
        ] = None,
    ) -> WorkflowList:
        """Latest run of each workflow id, ordered by workflow id, merged from every engine.
        `partial` is true (and `missingPartitions` lists them) when some partitions had no
        reachable owner."""
        state = _state(request)
        params: dict[str, Any] = {"limit": limit + 1}
        if status:
            params["status"] = status
        if type:
            params["workflow_type"] = type
        if cursor:
            params["after"] = cursor
        answers = await state.live_router().each_member("/internal/workflows", params)
        rows: dict[str, dict[str, Any]] = {}
        covered: set[int] = set()
        for _member, data in answers:
            if data is None:
                continue
            covered.update(int(p) for p in data.get("partitions", []))
            for row in data.get("runs", []):
                rows[str(row["workflow_id"])] = row
        merged = [rows[k] for k in sorted(rows)]
        page = merged[:limit]
        missing = sorted(set(range(state.settings.partitions)) - covered)
        return WorkflowList(
            workflows=[WorkflowSummary.model_validate(r) for r in page],
            next_cursor=str(page[-1]["workflow_id"]) if len(merged) > limit else None,
            partial=bool(missing),
            missing_partitions=missing,
        )


def _cluster_routes(api: APIRouter) -> None:
    @api.get(
        "/cluster/events",
        tags=["cluster"],
        summary="Membership changes, partition moves and failovers",
        response_model=ClusterEventsResponse,
    )
    async def cluster_events(
        request: Request, limit: Annotated[int, Query(ge=1, le=1000)] = 100
    ) -> ClusterEventsResponse:
        """The latest cluster events, oldest first: engines joining and leaving, partitions
        assigned (with the time taken, restore included), revoked or lost, and failovers
        (an assignment that took partitions from a node that never gave them up)."""
        found = await asyncio.to_thread(read_cluster_events, _state(request).settings, limit, 3.0)
        return ClusterEventsResponse(events=[ClusterEvent.model_validate(e) for e in found])

    @api.get(
        "/cluster/shards", tags=["cluster"], summary="Owner of every partition", response_model=ShardsResponse
    )
    async def shards(request: Request) -> ShardsResponse:
        state = _state(request)
        router = state.live_router()
        snapshot = router.snapshot
        return ShardsResponse(
            partitions=state.settings.partitions,
            group_state=snapshot.state,
            shards=[
                ShardInfo(partition=p, owner=router.owner(p), member_id=router.member_of(p))
                for p in range(state.settings.partitions)
            ],
        )

    @api.get(
        "/cluster/stats",
        tags=["cluster"],
        summary="Engine nodes, their partitions and state",
        response_model=ClusterStats,
    )
    async def stats(request: Request) -> ClusterStats:
        state = _state(request)
        router = state.live_router()
        answers = await router.each_member("/internal/partitions")
        members = []
        assigned: set[int] = set()
        for member, data in answers:
            raw = member.get("partitions")
            partitions = [int(p) for p in raw] if isinstance(raw, list) else []
            assigned.update(partitions)
            members.append(
                MemberStats(
                    member_id=str(member.get("member_id", "")),
                    url=str(member.get("url", "")),
                    host=str(member.get("host", "")),
                    partitions=partitions,
                    reachable=data is not None,
                    node=data.get("node") if data else None,
                    restoring=data.get("restoring", []) if data else [],
                    partition_stats=data.get("partitions", []) if data else [],
                    open_workflows=sum(int(r.get("open_workflows", 0)) for r in data["partitions"])
                    if data
                    else 0,
                    lag=sum(int(r.get("lag", 0)) for r in data["partitions"]) if data else 0,
                    process=data.get("process", {}) if data else {},
                )
            )
        return ClusterStats(
            group_state=router.snapshot.state,
            partitions=state.settings.partitions,
            members=members,
            unassigned_partitions=sorted(set(range(state.settings.partitions)) - assigned),
        )

    @api.get(
        "/cluster/workflows/{id}/location",
        tags=["cluster"],
        summary="Partition and owner of a workflow id",
        response_model=WorkflowLocation,
    )
    async def location(request: Request, id: WorkflowIdPath) -> WorkflowLocation:
        """Computed from the id alone (murmur2, as Kafka partitions the inbox); the workflow
        need not exist."""
        router = _state(request).live_router()
        partition = router.partition(id)
        return WorkflowLocation(
            workflow_id=id,
            partition=partition,
            owner=router.owner(partition),
            member_id=router.member_of(partition),
            group_state=router.snapshot.state,
        )

    @api.get(
        "/events",
        tags=["cluster"],
        summary="Latest lifecycle events",
        response_model=EventsResponse,
    )
    async def events(
        request: Request,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        workflow_id: Annotated[
            str | None, Query(alias="workflowId", description="Only this workflow's events.")
        ] = None,
    ) -> EventsResponse:
        """The tail of the public events topic (what consumers of `<prefix>events` read),
        oldest first."""
        state = _state(request)
        partition = state.live_router().partition(workflow_id) if workflow_id else None
        found, partial = await asyncio.to_thread(
            read_events, state.settings, limit, workflow_id, partition, 2.0
        )
        return EventsResponse(events=found, partial=partial)


def _probe_routes(app: FastAPI, common: dict[int | str, dict[str, Any]]) -> None:
    @app.get("/health", tags=["probes"], summary="Liveness", response_model=Health)
    async def health() -> Health:
        return Health(status="ok")

    @app.get(
        "/ready",
        tags=["probes"],
        summary="Readiness: Kafka answers and the inbox has the configured layout",
        response_model=Readiness,
        responses={503: {"model": Readiness, "description": "Kafka is not reachable (or not set up)."}},
    )
    async def ready(request: Request) -> JSONResponse:
        state = _state(request)
        settings = state.settings
        inbox = settings.topic("inbox")
        try:
            topics = await asyncio.wait_for(
                asyncio.to_thread(state.live_producer().topics, settings.owner_timeout),
                settings.owner_timeout + 0.5,
            )
        except Exception as exc:
            return _json(503, Readiness(ready=False, detail=f"Kafka metadata request failed: {exc}"))
        if inbox not in topics:
            return _json(503, Readiness(ready=False, detail=f"topic {inbox!r} does not exist yet"))
        if topics[inbox] != settings.partitions:
            return _json(
                503,
                Readiness(
                    ready=False,
                    detail=f"topic {inbox!r} has {topics[inbox]} partitions; "
                    f"the gateway is configured for {settings.partitions}",
                ),
            )
        return _json(200, Readiness(ready=True, detail="Kafka answers; inbox layout as configured"))

    @app.get(
        "/metrics",
        tags=["probes"],
        summary="Prometheus metrics",
        response_class=Response,
        responses={
            200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}}},
            **{k: v for k, v in common.items() if k == 401},
        },
    )
    async def metrics(request: Request) -> Response:
        return Response(generate_latest(_state(request).registry), media_type=CONTENT_TYPE_LATEST)
