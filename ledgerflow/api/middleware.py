"""ASGI middleware of the gateway: request metrics, authentication and scopes, body size limit."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ledgerflow.api.auth import Authenticator
from ledgerflow.api.errors import (
    ForbiddenError,
    PayloadTooLargeError,
    RouteNotFoundError,
    UnauthorizedError,
    to_response,
)
from ledgerflow.api.scopes import ANONYMOUS, requirement


class RequestMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "ledgerflow_gateway_requests_total",
            "HTTP requests answered by the gateway.",
            ["method", "route", "status"],
            registry=registry,
        )
        self.duration = Histogram(
            "ledgerflow_gateway_request_duration_seconds",
            "Time to answer an HTTP request.",
            ["method", "route"],
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
        )
        self.writes = Histogram(
            "ledgerflow_gateway_kafka_write_seconds",
            "Time from produce to Kafka's acknowledgement (acks=all) of a gateway write.",
            ["topic"],
            registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
        )


class MetricsMiddleware:
    """Counts and times every request by its route template (never the raw path)."""

    def __init__(self, app: ASGIApp, metrics: RequestMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = str(getattr(route, "path", "")) or "unmatched"
            method = str(scope.get("method", ""))
            self.metrics.requests.labels(method, template, str(status)).inc()
            self.metrics.duration.labels(method, template).observe(time.perf_counter() - started)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return bytes(value).decode("latin-1")
    return None


class AuthMiddleware:
    """Authenticates every request but the public probes, then checks the route's scope.

    ``ROUTE_SCOPES`` is matched here, before the app routes the request: a request it does not
    name is answered 404 or 405 (to an authenticated caller: nobody learns which paths exist
    without a credential). Without an authenticator (``--insecure``) every caller is
    ``ANONYMOUS``, with every scope. The caller is left on ``request.state.principal``.
    """

    def __init__(self, app: ASGIApp, authenticator: Authenticator | None) -> None:
        self.app = app
        self.authenticator = authenticator

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        need = requirement(str(scope.get("method", "")), str(scope.get("path", "")))
        if need.public:
            await self.app(scope, receive, send)
            return
        principal = ANONYMOUS
        try:
            if self.authenticator is not None:
                principal = await self.authenticator.authenticate(
                    _header(scope, b"x-api-key"), _header(scope, b"authorization")
                )
            if need.missing is not None:
                raise RouteNotFoundError(need.missing)
            if need.scope is not None and not principal.allows(need.scope):
                raise ForbiddenError(need.scope.value, need.route)
        except (UnauthorizedError, ForbiddenError, RouteNotFoundError) as exc:
            await to_response(exc)(scope, receive, send)
            return
        scope.setdefault("state", {})["principal"] = principal
        await self.app(scope, receive, send)


class BodyLimitMiddleware:
    """Bodies over ``limit`` bytes get 413 before the app reads them.

    A declared ``Content-Length`` is checked at once; a chunked body is read up to
    the limit and handed on from memory.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") in ("GET", "HEAD", "OPTIONS", "DELETE"):
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                size = 0
            if size > self.limit:
                await to_response(PayloadTooLargeError(size, self.limit))(scope, receive, send)
                return
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = bytes(message.get("body", b""))
            total += len(chunk)
            if total > self.limit:
                await to_response(PayloadTooLargeError(None, self.limit))(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
