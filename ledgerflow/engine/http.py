"""The engine node's HTTP server: owner reads, health, readiness and metrics.

The gateway forwards reads about a workflow here, to the node that owns its
partition. A node asked about a partition it does not own answers 421, and
the gateway refreshes its routing. Every route but the probes and /metrics needs the
engine token (``http_auth.py``) unless the node was started ``--insecure``.
"""

from __future__ import annotations

import os
import resource
import threading
import time
from collections.abc import Callable
from typing import Annotated, Any, TypeVar, cast

import uvicorn
from fastapi import Body, FastAPI, HTTPException, Path, Query, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import TypeAdapter, ValidationError
from pydantic_core import to_json

from ledgerflow import namespaces
from ledgerflow.config import PAGE_LIMIT
from ledgerflow.engine import metrics as engine_metrics
from ledgerflow.engine.errors import UnknownQueryError, WorkflowTypeNotLoaded
from ledgerflow.engine.http_auth import EngineTokenMiddleware
from ledgerflow.engine.loop import Engine
from ledgerflow.engine.processor import PartitionProcessor
from ledgerflow.engine.reads import (
    RunFilter,
    cached_copy,
    history_page_json,
    list_runs,
    replayed,
    start_outcome_json,
)
from ledgerflow.engine.schedule_reads import list_schedules, read_schedule
from ledgerflow.engine.state import keys, requests
from ledgerflow.engine.state.committed import read_history, read_history_page, read_run, read_run_head
from ledgerflow.engine.state.models import RunState
from ledgerflow.engine.visibility_reads import count_runs, query_runs
from ledgerflow.engine.watch_sessions import TooManyWaits, UnknownSession, WatchSessions
from ledgerflow.engine.workflow.instance import WorkflowInstance
from ledgerflow.errors import VisibilityQueryError
from ledgerflow.schemas.owner import (
    MAX_CLOSED_WAIT,
    AdmissionJson,
    AdmittedRunJson,
    CountJson,
    HistoryPageJson,
    ListingJson,
    NodeJson,
    OwnedRunJson,
    PartitionStatsJson,
    QueryAnswerJson,
    RunJson,
    ScheduleListingJson,
    StartOutcomeJson,
    UpdateOutcomeJson,
    UpdateStatusJson,
    WatchAnswerJson,
    WatchItemJson,
    WatchRequestJson,
)
from ledgerflow.visibility import MAX_QUERY_CHARS
from ledgerflow.visibility import Query as VisibilityQuery
from ledgerflow.visibility import parse as parse_query

T = TypeVar("T")
watch_request_adapter = TypeAdapter(WatchRequestJson)


def run_json(run: RunState) -> RunJson:
    """A run's stored state as the internal API answers it."""
    return cast(RunJson, run.model_dump(mode="json"))


def process_stats() -> dict[str, float]:
    """CPU seconds used and resident memory of this node's process."""
    times = os.times()
    stats = {"cpu_seconds": times.user + times.system}
    try:
        with open("/proc/self/statm") as handle:
            stats["rss_bytes"] = int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux: the peak instead of the current size
        stats["rss_bytes"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return stats


def create_app(engine: Engine, token: str | None) -> FastAPI:
    """The node's HTTP routes; with ``token``, all but the probes and /metrics require it.

    The reads the gateway forwards on every start and status (one RocksDB get each) are
    ``async def``: they run on the server's event loop instead of hopping to a worker thread
    and back, and each hop waits for the GIL the busy owner loop holds. The slower reads
    (listing, history, queries that replay) stay in the thread pool.
    """
    app = FastAPI(title="Ledgerflow engine node", docs_url=None, redoc_url=None, openapi_url=None)
    if token is not None:
        app.add_middleware(EngineTokenMiddleware, token=token)
    settings = engine.settings

    def owned(workflow_id: str) -> PartitionProcessor:
        partition = settings.partition_of(workflow_id)
        processor = engine.partitions.processors.get(partition) if engine.partitions else None
        if processor is None:
            raise HTTPException(421, detail=f"partition {partition} is not owned by this node")
        return processor

    def committed_run(workflow_id: str) -> tuple[PartitionProcessor, RunState | None]:
        """The committed run state, read concurrently with the owner loop.

        RocksDB serves reads while the loop writes, so a read never waits for the batch
        in progress. A partition revoked mid-read has a closed store: that answers 421,
        as if it had moved already.
        """
        processor = owned(workflow_id)
        try:
            return processor, read_run(processor.store, workflow_id)
        except Exception as exc:
            raise HTTPException(421, detail=f"partition {processor.partition} is moving") from exc

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok", "node": engine.node_id}

    @app.get("/ready")
    async def ready(response: Response) -> dict[str, Any]:
        ok = engine.ready()
        if not ok:
            response.status_code = 503
        restoring = sorted(engine.partitions.restoring) if engine.partitions else []
        return {"ready": ok, "restoring": restoring}

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/internal/partitions", response_model=None)
    def partitions() -> NodeJson:
        manager = engine.partitions
        if manager is None:
            return {"node": engine.node_id, "partitions": []}
        processors = dict(manager.processors)  # a copy: the loop may assign or revoke meanwhile
        rows: list[PartitionStatsJson] = [
            {
                "partition": p,
                "timers_due_soon": len(proc.timers),
                "cached_instances": len(proc.cache),
                "open_workflows": proc.open_runs,
                "lag": manager.lag.get(p, 0),
                "state_bytes": proc.store.size_bytes(),
                "restored_records": manager.restores[p].records if p in manager.restores else None,
                "restored_from_offset": manager.restores[p].start_offset if p in manager.restores else None,
                "restore_seconds": manager.restores[p].seconds if p in manager.restores else None,
            }
            for p, proc in sorted(processors.items())
        ]
        return {
            "node": engine.node_id,
            "url": engine.options.advertised_url,
            "process": process_stats(),
            "limits": {
                "max_open_per_partition": engine.options.max_open_per_partition,
                "max_open_per_engine": engine.options.max_open_per_engine,
            },
            "partitions": rows,
            "restoring": sorted(manager.restoring),
            "moves": manager.moves[-50:],
        }

    @app.get("/internal/workflows", response_model=None)
    def list_workflows(
        status: str | None = None,
        workflow_type: str | None = None,
        after: str | None = None,
        limit: Annotated[int, Query(ge=1, le=PAGE_LIMIT)] = 100,
        namespace: Annotated[str | None, Query(pattern=f"^{namespaces.PATTERN}$")] = None,
        query: Annotated[str | None, Query(max_length=MAX_QUERY_CHARS)] = None,
    ) -> ListingJson:
        """Latest runs on this node's partitions, ordered by workflow id, after ``after``; with
        ``namespace``, only that namespace's (``after`` and the ids listed are engine ids).
        With ``query`` (ledgerflow/visibility.py), the runs it matches in start-time order
        instead, each with its ``cursor``; ``after`` is then a cursor.

        ``next_after``: where the next page starts (null once every partition was listed
        to its end). A page may hold fewer than ``limit`` runs and still have one, when the
        filter dropped the ``list_scan_limit`` runs examined.
        """
        stores = [(p.partition, p.store) for p in owned_processors()]
        if query is not None:
            parsed = parsed_query(query)
            try:
                listing = query_runs(stores, parsed, after, namespace, limit, settings.list_scan_limit)
            except ValueError as exc:  # not a page token
                raise HTTPException(400, detail=f"after: {exc}") from None
        else:
            filters = RunFilter(status, workflow_type)
            listing = list_runs(stores, filters, after, namespace, limit, settings.list_scan_limit)
        return {
            "node": engine.node_id,
            "partitions": listing.partitions,
            "runs": listing.runs,
            "next_after": listing.next_after,
        }

    @app.get("/internal/visibility/count", response_model=None)
    def count_workflows(
        query: Annotated[str, Query(max_length=MAX_QUERY_CHARS)] = "",
        namespace: Annotated[str | None, Query(pattern=f"^{namespaces.PATTERN}$")] = None,
    ) -> CountJson:
        """How many latest runs of this node's partitions ``query`` matches (every one for "")."""
        stores = [(p.partition, p.store) for p in owned_processors()]
        count, partitions = count_runs(stores, parsed_query(query), namespace)
        return {"node": engine.node_id, "partitions": partitions, "count": count}

    def owned_processors() -> list[PartitionProcessor]:
        return list(engine.partitions.processors.values()) if engine.partitions else []

    def parsed_query(text: str) -> VisibilityQuery:
        try:
            return parse_query(text)
        except VisibilityQueryError as exc:
            raise HTTPException(400, detail=f"query: {exc}") from None

    @app.get("/internal/schedules", response_model=None)
    def schedules(
        after: str | None = None,
        limit: Annotated[int, Query(ge=1, le=PAGE_LIMIT)] = 100,
        namespace: Annotated[str | None, Query(pattern=f"^{namespaces.PATTERN}$")] = None,
    ) -> ScheduleListingJson:
        """The schedules of this node's partitions in id order, after ``after`` (engine ids)."""
        stores = [(p.partition, p.store) for p in owned_processors()]
        return list_schedules(stores, namespace, after, limit, time.time())

    @app.get("/internal/schedules/{schedule_id:path}", response_model=None)
    def schedule(schedule_id: str) -> dict[str, Any]:
        processor = owned(schedule_id)
        try:
            found = read_schedule(processor.store, schedule_id, time.time())
        except Exception as exc:
            raise HTTPException(421, detail=f"partition {processor.partition} is moving") from exc
        if found is None:
            raise HTTPException(404, detail=f"schedule {schedule_id!r} not found")
        return {"partition": processor.partition, **found.model_dump(mode="json")}

    @app.get("/internal/admission/{workflow_id:path}", response_model=None)
    async def admission(workflow_id: str, request_id: str | None = None) -> AdmissionJson:
        """What a start of this workflow id would meet: its open run, or a capacity refusal; and
        with ``request_id``, the run an applied start of that request id led to."""
        processor, run = committed_run(workflow_id)
        refusal = engine.ctx.limits.refusal(processor.partition, processor.open_runs)
        state = cast(AdmittedRunJson, {"partition": processor.partition, **run_json(run)}) if run else None
        earlier = None
        if request_id:
            try:
                seen = processor.store.get(keys.request_key(workflow_id, request_id))
            except Exception as exc:
                raise HTTPException(421, detail=f"partition {processor.partition} is moving") from exc
            earlier = requests.started_run(seen)
        return {"partition": processor.partition, "run": state, "refusal": refusal, "request_run": earlier}

    @app.get("/internal/workflows/{workflow_id:path}/history", response_model=None)
    def history(
        workflow_id: str,
        run_id: str | None = None,
        offset: Annotated[int, Query(ge=0)] = 0,
        limit: Annotated[int, Query(ge=1, le=PAGE_LIMIT)] = PAGE_LIMIT,
    ) -> HistoryPageJson:
        """One page of a run's history (only that page is read), and the run's length as ``total``."""
        processor, run = committed_run(workflow_id)
        if run is None:
            raise HTTPException(404, detail=f"workflow {workflow_id!r} not found")
        rid = run_id or run.run_id
        try:
            events, total = read_history_page(processor.store, workflow_id, rid, offset, limit)
        except Exception as exc:
            raise HTTPException(421, detail=f"partition {processor.partition} is moving") from exc
        if not total:
            raise HTTPException(404, detail=f"run {rid!r} of workflow {workflow_id!r} not found")
        return history_page_json(workflow_id, rid, events, total, offset)

    def query_target(processor: PartitionProcessor, run: RunState) -> tuple[WorkflowInstance, str]:
        """A copy of the owner's cached instance or, when there is none at the committed
        state, a replay of the run's history; and which of the two it is."""
        instance = cached_copy(processor, engine.owner_lock, run)
        if instance is not None:
            return instance, "cache"
        try:
            history = read_history(processor.store, run.workflow_id, run.run_id)
        except Exception as exc:
            raise HTTPException(421, detail=f"partition {processor.partition} is moving") from exc
        return replayed(processor.ctx.registry, run, history, processor.ctx.codec), "replay"

    # ``path``: a query name may hold ``/`` (the gateway sends it escaped, but routing sees it
    # decoded), and a trailing one must not turn into a redirect.
    @app.post("/internal/workflows/{workflow_id:path}/query/{name:path}", response_model=None)
    def query(
        workflow_id: str,
        name: str,
        args: list[Any] = Body(default_factory=list, embed=True),  # noqa: B008 - FastAPI's idiom
    ) -> QueryAnswerJson:
        processor, run = committed_run(workflow_id)
        if run is None:
            raise HTTPException(404, detail=f"workflow {workflow_id!r} not found")
        instance = None
        try:
            instance, source = query_target(processor, run)
            result = instance.query(name, args)
        except (UnknownQueryError, WorkflowTypeNotLoaded) as exc:
            raise HTTPException(400, detail=str(exc)) from exc
        except HTTPException:
            raise
        except Exception as exc:  # the query method raised, or the code no longer replays
            raise HTTPException(400, detail=f"query {name!r} failed: {type(exc).__name__}: {exc}") from exc
        finally:
            if instance is not None:
                instance.dispose()
        engine_metrics.QUERIES.labels(source=source).inc()
        return {"result": result}

    @app.get("/internal/workflows/{workflow_id:path}/updates/{update_id}", response_model=None)
    async def update_status(workflow_id: str, update_id: str) -> UpdateStatusJson:
        """Where an update of the latest run stands (one RocksDB get, as ``describe``)."""
        _processor, run = committed_run(workflow_id)
        if run is None:
            raise HTTPException(404, detail=f"workflow {workflow_id!r} not found")
        outcome = run.updates.get(update_id)
        return {
            "run_id": run.run_id,
            "status": run.status,
            "update": cast(UpdateOutcomeJson, outcome.model_dump(mode="json")) if outcome else None,
        }

    def look_closed(workflow_id: str, run_id: str | None, final: bool) -> OwnedRunJson | None:
        """The latest run if it is closed or another run than ``run_id`` (or, when ``final``, as it
        is), else None; 404 with no run when ``final``, 421 when not owned here."""
        if not final:  # most looks find the run as it was: read its head alone
            processor = owned(workflow_id)
            try:
                head = read_run_head(processor.store, workflow_id)
            except Exception as exc:
                raise HTTPException(421, detail=f"partition {processor.partition} is moving") from exc
            changed = head is not None and (head.status != "RUNNING" or run_id not in (None, head.run_id))
            if not changed:
                return None
        processor, run = committed_run(workflow_id)
        return owned_run_json(processor, run, workflow_id)

    def look_started(
        workflow_id: str, request_id: str, run_id: str | None, final: bool
    ) -> StartOutcomeJson | None:
        """The engine's decision on the start with ``request_id`` (and ``run_id``: an earlier send's
        refusal is not its answer) if it made one (or, when ``final``, what it recorded), else None."""
        processor = owned(workflow_id)
        try:
            outcome = start_outcome_json(processor.store, processor.partition, workflow_id, request_id)
        except Exception as exc:
            raise HTTPException(421, detail=f"partition {processor.partition} is moving") from exc
        refusal = outcome["refusal"]
        told = refusal is not None and run_id in (None, refusal["start_run_id"])
        return outcome if outcome["applied"] or told or final else None

    async def held(look: Callable[[bool], T | None], workflow_id: str, seconds: float) -> T:
        """``look``'s answer once it has one, looking again at each commit that changed the
        workflow, or its final answer after ``seconds``."""
        deadline = time.monotonic() + seconds
        while True:
            with engine.commits.listening(workflow_id) as commit:  # before the look: no commit is missed
                remaining = deadline - time.monotonic()
                answer = look(remaining <= 0)
                if answer is not None:
                    return answer
                await commit.wait(remaining)

    # Its own prefix: a suffix after ``{workflow_id:path}`` would take the describe of a
    # namespaced id whose bare part is "closed" (routing sees the id's escaped ``/`` decoded).
    @app.get("/internal/closed/{workflow_id:path}", response_model=None)
    async def closed(
        workflow_id: str,
        run_id: str | None = None,
        seconds: Annotated[float, Query(ge=0, le=MAX_CLOSED_WAIT)] = 10.0,
    ) -> OwnedRunJson:
        """The latest run once it is closed, or once it is another run than ``run_id`` (the one
        the caller waits on continued as new, or was reset), or after ``seconds`` (a long poll:
        a caller waiting for a result asks again). A workflow with no run yet (its start not
        applied) is waited for too, and is a 404 after ``seconds``."""
        return await held(lambda final: look_closed(workflow_id, run_id, final), workflow_id, seconds)

    @app.get("/internal/started/{workflow_id:path}", response_model=None)
    async def started(
        workflow_id: str,
        request_id: str,
        run_id: str | None = None,
        seconds: Annotated[float, Query(ge=0, le=MAX_CLOSED_WAIT)] = 10.0,
    ) -> StartOutcomeJson:
        """What the engine made of the start with ``request_id`` (the send that asked for
        ``run_id``, if given), once it applied or refused it, or after ``seconds`` (``applied``
        false): a client learns the engine's decision on a start it sent, without asking first
        what the start would meet."""
        return await held(
            lambda final: look_started(workflow_id, request_id, run_id, final), workflow_id, seconds
        )

    def look_item(item: WatchItemJson, final: bool) -> WatchAnswerJson | None:
        try:
            if item["kind"] == "started":
                body: Any = look_started(item["workflow_id"], item["request_id"], item.get("run_id"), final)
            else:
                body = look_closed(item["workflow_id"], item.get("run_id"), final)
        except HTTPException as exc:
            return {"key": item["key"], "status": exc.status_code, "body": exc.detail}
        return None if body is None else {"key": item["key"], "status": 200, "body": body}

    sessions = WatchSessions(engine.commits, look_item)

    @app.post("/internal/watches/{session_id}", response_model=None)
    async def watch(
        session_id: Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")],
        request: Request,
    ) -> Response:
        """A client's watch session (``watch_sessions.py``): adds the body's waits to it, then
        answers the session's waits that ended, as soon as one has.

        The body is read and checked in one pass (``validate_json``) and the answer written by
        pydantic-core: a client with a thousand runs in flight sends this at nearly every
        commit, and FastAPI's own body parsing and ``jsonable_encoder`` cost the engine a
        tenth of its time (py-spy, bench.client's AsyncClient load)."""
        try:
            body = watch_request_adapter.validate_json(await request.body())
        except ValidationError as exc:
            raise HTTPException(422, detail=exc.errors(include_url=False, include_input=False)) from exc
        if any(item["kind"] == "started" and not item.get("request_id") for item in body["items"]):
            raise HTTPException(422, detail="a 'started' wait names its request_id")
        try:
            result = await sessions.poll(session_id, body)
        except UnknownSession as exc:
            raise HTTPException(409, detail=f"watch session {session_id!r} is not held here") from exc
        except TooManyWaits as exc:
            raise HTTPException(429, detail=str(exc)) from exc
        return Response(to_json(result), media_type="application/json")

    # ``path``: a namespaced id holds one ``/`` (ledgerflow/namespaces.py). Declared after the
    # history and query routes, which this pattern would otherwise swallow.
    @app.get("/internal/workflows/{workflow_id:path}", response_model=None)
    async def describe(workflow_id: str) -> OwnedRunJson:
        processor, run = committed_run(workflow_id)
        return owned_run_json(processor, run, workflow_id)

    def owned_run_json(processor: PartitionProcessor, run: RunState | None, workflow_id: str) -> OwnedRunJson:
        if run is None:
            raise HTTPException(404, detail=f"workflow {workflow_id!r} not found")
        queues = {pending.options.queue for pending in run.activities.values()}
        return cast(
            OwnedRunJson,
            {
                "partition": processor.partition,
                "node": engine.node_id,
                **run_json(run),
                "queue_workers": {queue: engine.queue_watch.workers(queue) for queue in sorted(queues)},
            },
        )

    return app


class HttpServer:
    """Uvicorn in a daemon thread."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name=f"http-{port}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(5)
