"""One map from typed errors to HTTP answers, so every route fails the same way.

====================================  ====  ===========================================
error                                 code  why
====================================  ====  ===========================================
InvalidRequestError (and pydantic's)  422   the body or a parameter is wrong; ``errors``
                                            names each field (node, edge, type)
PayloadTooLargeError                  413   body over ``max_body_bytes`` (or Kafka's
                                            record limit)
UnauthorizedError                     401   no credential, or an unknown key or invalid JWT
ForbiddenError                        403   the credential lacks the route's scope
NamespaceForbiddenError               403   the credential does not name the namespace
InvalidNamespaceError                 400   the Ledgerflow-Namespace header is no name
RouteNotFoundError                    404   no route has this path (405: not this method)
WorkflowNotFoundError                 404   the owner has no run of that id
ScheduleNotFoundError                 404   the owner has no schedule of that id
ScheduleAlreadyRunningError           409   a schedule of that id exists already
AlreadyStartedError                   409   a start found an open run: the body carries
                                            its ``runId``
NotRunningError                       409   an update found no open run: the body says
                                            the latest run's ``status``
QueryFailedError                      400   the owner could not answer the query (no such
                                            query, type not loaded there)
OwnerResponseError                    502   the owner answered something unexpected
OwnerUnavailableError                 503   owner unknown, moving or unreachable;
                                            ``Retry-After`` says when to try again
KafkaUnavailableError                 503   a write was not acknowledged in time (or a
                                            topic read failed)
====================================  ====  ===========================================
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ledgerflow import namespaces
from ledgerflow.api.models import ErrorBody, FieldProblem
from ledgerflow.codec.base import CodecError
from ledgerflow.errors import (
    CapacityError,
    EngineAuthError,
    LedgerflowError,
    OwnerResponseError,
    OwnerUnavailableError,
    QueryFailedError,
    ScheduleAlreadyRunningError,
    ScheduleNotFoundError,
    WorkflowNotFoundError,
)

log = logging.getLogger("ledgerflow.gateway")


class GatewayError(LedgerflowError):
    """Base of the gateway's own errors."""


class InvalidRequestError(GatewayError):
    """The request is wrong in ways a schema cannot say (e.g. an unknown node type)."""

    def __init__(self, problems: list[FieldProblem]) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems


class UnknownNodeTypeError(InvalidRequestError):
    """A DAG node names a type that is no built-in, in-workflow or configured activity."""


class PayloadTooLargeError(GatewayError):
    def __init__(self, size: int | None, limit: int, what: str = "request body") -> None:
        shown = f"{size} bytes" if size is not None else "too large"
        super().__init__(f"{what} is {shown}; the limit is {limit} bytes")
        self.size = size
        self.limit = limit


REALM = 'Bearer realm="ledgerflow"'


class UnauthorizedError(GatewayError):
    """No credential (``presented`` False), or one that was refused (the reason says why)."""

    def __init__(self, reason: str = "", presented: bool = False) -> None:
        super().__init__(
            f"invalid credentials: {reason}"
            if presented
            else "credentials required: an API key ('X-API-Key' or 'Authorization: Bearer') or a bearer JWT"
        )
        self.presented = presented


class ForbiddenError(GatewayError):
    """The caller is authenticated but its credential lacks the scope the route needs."""

    def __init__(self, scope: str, route: str) -> None:
        super().__init__(f"this credential lacks the {scope!r} scope that {route} needs")
        self.scope = scope


class NamespaceForbiddenError(GatewayError):
    """The caller's credential does not name the namespace the request acts in."""

    def __init__(self, namespace: str) -> None:
        super().__init__(f"this credential may not act in namespace {namespace!r}")


class InvalidNamespaceError(GatewayError):
    """The ``Ledgerflow-Namespace`` header holds no namespace name."""

    def __init__(self, value: str) -> None:
        super().__init__(f"Ledgerflow-Namespace {value[:80]!r}: a namespace is {namespaces.RULE}")


class RouteNotFoundError(GatewayError):
    """No route answers this path (404), or not this method (405)."""

    def __init__(self, status: int) -> None:
        super().__init__("Not Found" if status == 404 else "Method Not Allowed")
        self.status = status


class NotRunningError(GatewayError):
    """An update (which needs the run's code) found the workflow's latest run closed."""

    def __init__(self, workflow_id: str, run_id: str, status: str) -> None:
        super().__init__(f"workflow {workflow_id!r} has no open run (run {run_id} is {status})")
        self.workflow_id = workflow_id
        self.run_id = run_id
        self.status = status


class AlreadyStartedError(GatewayError):
    """A start (or execute) found the workflow id already running."""

    def __init__(self, workflow_id: str, run_id: str, partition: int) -> None:
        super().__init__(
            f"workflow {workflow_id!r} is already running (run {run_id}); no new run was started"
        )
        self.workflow_id = workflow_id
        self.run_id = run_id
        self.partition = partition


class KafkaUnavailableError(GatewayError):
    """A write was not acknowledged in time, or a read of a topic failed."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"Kafka unavailable: {reason}")
        self.reason = reason


def error_response(status: int, body: ErrorBody, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        body.model_dump(mode="json", by_alias=True, exclude_none=True), status_code=status, headers=headers
    )


def retry_after_header(seconds: float) -> dict[str, str]:
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


def _retry_later(
    status: int, code: str, exc: Exception, workflow_id: str, partition: int, retry_after: float
) -> JSONResponse:
    """A 429/503 about one workflow's shard, with ``Retry-After`` in the header and the body."""
    seconds = max(1, math.ceil(retry_after))
    body = ErrorBody(
        code=code, detail=str(exc), workflow_id=workflow_id, partition=partition, retry_after=seconds
    )
    return error_response(status, body, retry_after_header(seconds))


def to_response(exc: Exception, retry_after: int = 1) -> JSONResponse:
    """The HTTP answer for a typed error (anything unknown is a 500)."""
    match exc:
        case InvalidRequestError():
            return error_response(
                422,
                ErrorBody(code="invalid_request", detail=str(exc), errors=exc.problems),
            )
        case PayloadTooLargeError():
            return error_response(413, ErrorBody(code="payload_too_large", detail=str(exc)))
        case UnauthorizedError():
            challenge = f'{REALM}, error="invalid_token"' if exc.presented else REALM
            return error_response(
                401, ErrorBody(code="unauthorized", detail=str(exc)), {"WWW-Authenticate": challenge}
            )
        case ForbiddenError():
            challenge = f'{REALM}, error="insufficient_scope", scope="{exc.scope}"'
            return error_response(
                403, ErrorBody(code="forbidden", detail=str(exc)), {"WWW-Authenticate": challenge}
            )
        case NamespaceForbiddenError():
            return error_response(403, ErrorBody(code="namespace_forbidden", detail=str(exc)))
        case InvalidNamespaceError():
            return error_response(400, ErrorBody(code="invalid_namespace", detail=str(exc)))
        case RouteNotFoundError():
            code = "not_found" if exc.status == 404 else "method_not_allowed"
            return error_response(exc.status, ErrorBody(code=code, detail=str(exc)))
        case WorkflowNotFoundError():
            return error_response(
                404, ErrorBody(code="workflow_not_found", detail=str(exc), workflow_id=exc.workflow_id)
            )
        case ScheduleNotFoundError():
            return error_response(404, ErrorBody(code="schedule_not_found", detail=str(exc)))
        case ScheduleAlreadyRunningError():
            return error_response(409, ErrorBody(code="schedule_exists", detail=str(exc)))
        case AlreadyStartedError():
            return error_response(
                409,
                ErrorBody(
                    code="already_started",
                    detail=str(exc),
                    workflow_id=exc.workflow_id,
                    run_id=exc.run_id,
                    status="RUNNING",
                    partition=exc.partition,
                ),
            )
        case NotRunningError():
            body = ErrorBody(
                code="not_running",
                detail=str(exc),
                workflow_id=exc.workflow_id,
                run_id=exc.run_id,
                status=exc.status,
            )
            return error_response(409, body)
        case QueryFailedError():
            return error_response(
                400, ErrorBody(code="query_failed", detail=str(exc), workflow_id=exc.workflow_id)
            )
        case EngineAuthError():  # the gateway's own engine token; no engine URL for the caller
            log.error("%s", exc)
            detail = "an engine refused the gateway's engine token (its engine_token_file)"
            return error_response(502, ErrorBody(code="owner_error", detail=detail))
        case OwnerResponseError():
            return error_response(
                502, ErrorBody(code="owner_error", detail=str(exc), workflow_id=exc.workflow_id)
            )
        case OwnerUnavailableError():
            return _retry_later(
                503, "owner_unavailable", exc, exc.workflow_id, exc.partition, exc.retry_after
            )
        case CapacityError():
            return _retry_later(429, "at_capacity", exc, exc.workflow_id, exc.partition, exc.retry_after)
        case CodecError():
            return error_response(500, ErrorBody(code="codec_error", detail=f"{type(exc).__name__}: {exc}"))
        case KafkaUnavailableError():
            return error_response(
                503,
                ErrorBody(code="kafka_unavailable", detail=str(exc), retry_after=retry_after),
                retry_after_header(retry_after),
            )
    return error_response(500, ErrorBody(code="internal_error", detail=f"{type(exc).__name__}: {exc}"))


def _dotted(loc: Sequence[str | int]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "body"


UNION_TAGS = ("dag", "start")
"""Tags of the ``POST /api/v1/workflows`` body union: dropped from error locations."""


def problems_from_validation(errors: Sequence[Any]) -> list[FieldProblem]:
    """pydantic/FastAPI error dicts as :class:`FieldProblem` s (input values left out)."""
    problems = []
    for error in errors:
        loc: list[str | int] = [p if isinstance(p, int) else str(p) for p in error.get("loc", ())]
        if error.get("type") == "json_invalid":
            at = f" at position {loc[1]}" if len(loc) > 1 else ""
            problems.append(
                FieldProblem(
                    loc=["body"], field="body", message=f"body is not valid JSON{at}", type="json_invalid"
                )
            )
            continue
        if len(loc) > 1 and loc[0] == "body" and loc[1] in UNION_TAGS:
            loc = [loc[0], *loc[2:]]
        field = _dotted(loc[1:]) if loc and loc[0] in ("body", "query", "path", "header") else _dotted(loc)
        message = str(error.get("msg", "invalid"))
        kind = str(error.get("type", "invalid"))
        if message.startswith("Value error, "):
            message = message[len("Value error, ") :]
            if kind == "value_error" and field in ("body", ""):
                kind = "dag_invalid"
        if field not in ("body", "") and not message.startswith(field):
            message = f"{field}: {message}"
        problems.append(FieldProblem(loc=loc, field=field, message=message, type=kind))
    return problems


def install(app: FastAPI, retry_after: int) -> None:
    """Register the handlers on ``app``."""

    async def on_ledgerflow_error(request: Request, exc: Exception) -> JSONResponse:
        namespace = getattr(request.state, "namespace", None)
        if namespace is not None and isinstance(getattr(exc, "workflow_id", None), str):
            exc.workflow_id = namespaces.within(namespace, exc.workflow_id)  # type: ignore[attr-defined]
        return to_response(exc, retry_after)

    async def on_validation(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        problems = problems_from_validation(exc.errors())
        return to_response(InvalidRequestError(problems), retry_after)

    async def on_http(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 400 and "parsing the body" in str(exc.detail):
            # FastAPI's answer to a malformed optional body: the same 422 as a required one
            problem = FieldProblem(
                loc=["body"], field="body", message="body is not valid JSON", type="json_invalid"
            )
            return to_response(InvalidRequestError([problem]), retry_after)
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(
            exc.status_code, ErrorBody(code=code, detail=str(exc.detail)), dict(exc.headers or {})
        )

    app.add_exception_handler(LedgerflowError, on_ledgerflow_error)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(StarletteHTTPException, on_http)
