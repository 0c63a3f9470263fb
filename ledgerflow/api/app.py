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
- 404 / 422 / 413 / 401 / 403 / 503 (+ ``Retry-After``) as the error map says.

Callers authenticate (``auth.py``) and each route needs one scope (``scopes.py``); without
credentials configured ``create_app`` refuses unless ``settings.insecure``.

Modules: ``app.py`` builds the app (lifespan, exception handlers, middleware,
OpenAPI, probes); ``workflows.py`` and ``cluster.py`` hold the /api/v1 routes;
``state.py`` the state and helpers they share.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from pydantic import ValidationError

from ledgerflow import __version__
from ledgerflow.api import activities, cluster, errors, node_types, schedules, ui, workflows
from ledgerflow.api.auth import Authenticator
from ledgerflow.api.kafka import AsyncProducer
from ledgerflow.api.middleware import AuthMiddleware, BodyLimitMiddleware, MetricsMiddleware, RequestMetrics
from ledgerflow.api.models import Health, Readiness
from ledgerflow.api.routing import RoutingMetrics, owner_reads
from ledgerflow.api.served import ServedActivities
from ledgerflow.api.settings import GatewaySettings
from ledgerflow.api.state import GatewayState, error_doc, gateway_state, json_response, known_node_types
from ledgerflow.api.tail import EventTail
from ledgerflow.codec.keyfile import load_codec
from ledgerflow.engine_token import token_from

__all__ = ["GatewaySettings", "create_app"]

log = logging.getLogger("ledgerflow.gateway")


def create_app(settings: GatewaySettings) -> FastAPI:
    """A gateway app; Kafka and the routing table are opened by its lifespan.

    Raises ``InsecureSettingsError`` when credentials are missing and ``settings.insecure`` is
    not set, ``KeysFileError`` or ``EngineTokenError`` when a secret file is unusable."""
    settings.check_secure()
    authenticator = Authenticator.from_settings(settings)
    engine_token = token_from(settings.engine_token_file)
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    state = GatewayState(
        settings=settings,
        registry=registry,
        request_metrics=RequestMetrics(registry),
        routing_metrics=RoutingMetrics(registry),
        node_types=known_node_types(settings),
        codec=load_codec(settings),
    )

    tail_starts = Counter(
        "ledgerflow_gateway_event_tail_starts_total",
        "Starts of the one reader that GET /events and /cluster/events share (the first request, "
        "or the first after it idled).",
        registry=registry,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        state.producer = AsyncProducer(settings, settings.produce_timeout, settings.max_body_bytes)
        state.reads = owner_reads(settings, state.routing_metrics, engine_token)
        state.tail = EventTail(settings, tail_starts)
        state.served = ServedActivities(settings)
        await state.reads.start()
        try:
            yield
        finally:
            await state.reads.close()
            await asyncio.to_thread(state.tail.close)
            await asyncio.to_thread(state.producer.close)

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
        422: error_doc("A parameter or the body is invalid; `errors` names each field."),
        503: error_doc("Kafka or the partition owner is unavailable; retry after `Retry-After` seconds."),
    }
    if settings.auth_enabled:
        common[401] = error_doc("No valid credential (API key or bearer JWT); see `WWW-Authenticate`.")
        common[403] = error_doc("The credential lacks the scope this route needs; `detail` names it.")
    for routes in (workflows.router, activities.router, schedules.router, node_types.router, cluster.router):
        app.include_router(routes, responses=common)
    _probe_routes(app, common)
    ui.add_routes(app)

    app.add_middleware(BodyLimitMiddleware, limit=settings.max_body_bytes)
    app.add_middleware(AuthMiddleware, authenticator=authenticator)
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
                    "Bearer": {
                        "type": "http",
                        "scheme": "bearer",
                        "description": "An API key, or a JWT from the configured identity provider.",
                    },
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
        state = gateway_state(request)
        settings = state.settings
        inbox = settings.topic("inbox")
        try:
            topics = await asyncio.wait_for(
                asyncio.to_thread(state.live_producer().topics, settings.owner_timeout),
                settings.owner_timeout + 0.5,
            )
        except Exception as exc:
            return json_response(503, Readiness(ready=False, detail=f"Kafka metadata request failed: {exc}"))
        if inbox not in topics:
            return json_response(503, Readiness(ready=False, detail=f"topic {inbox!r} does not exist yet"))
        if topics[inbox] != settings.partitions:
            return json_response(
                503,
                Readiness(
                    ready=False,
                    detail=f"topic {inbox!r} has {topics[inbox]} partitions; "
                    f"the gateway is configured for {settings.partitions}",
                ),
            )
        return json_response(200, Readiness(ready=True, detail="Kafka answers; inbox layout as configured"))

    @app.get(
        "/metrics",
        tags=["probes"],
        summary="Prometheus metrics",
        response_class=Response,
        responses={
            200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}}},
            **{k: v for k, v in common.items() if k in (401, 403)},
        },
    )
    async def metrics(request: Request) -> Response:
        return Response(generate_latest(gateway_state(request).registry), media_type=CONTENT_TYPE_LATEST)
