"""Who may call which gateway route: the scopes, the caller, and the one route table.

Every route of the app is in ``ROUTE_SCOPES`` with the one scope it needs (``None``: open to
anyone, the probes only). The table is also the allow-list: a request it does not name is
answered 404 (or 405) by ``AuthMiddleware`` without reaching the app, so a route missing from
it cannot be called at all, and ``tests/api/test_auth_units.py`` fails when the app has a
route the table does not name.

Scopes do not imply one another: a key that should read and start needs ``read`` and ``write``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from starlette.routing import compile_path

from ledgerflow import namespaces


class Scope(StrEnum):
    READ = "read"
    """Status, history, listings, queries, update outcomes, lifecycle events, the OpenAPI document."""
    WRITE = "write"
    """Start (and execute), signal, update, cancel, terminate, reset; complete activities by task
    token."""
    ADMIN = "admin"
    """Register or replace DAG definitions; the cluster routes (placement, stats, cluster events)."""
    METRICS = "metrics"
    """GET /metrics only: what a Prometheus scraper needs, and nothing else."""


DEFAULT_NAMESPACES = ("default",)
"""Namespaces of a credential that names none."""


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: an API key's entry or a JWT's subject."""

    name: str
    scopes: frozenset[Scope]
    namespaces: tuple[str, ...] = DEFAULT_NAMESPACES
    kind: str = "api-key"

    def allows(self, scope: Scope) -> bool:
        return scope in self.scopes

    def may_use(self, namespace: str) -> bool:
        return namespace in self.namespaces or namespaces.ALL in self.namespaces


ANONYMOUS = Principal("anonymous", frozenset(Scope), (namespaces.ALL,), kind="insecure")
"""The caller of a gateway started with ``--insecure`` and no credentials: every scope."""

PUBLIC: None = None
"""A route anyone may call: liveness and readiness probes, and the web UI's files (which hold
no data: the app calls the API with the key a person gives it)."""

ROUTE_SCOPES: dict[tuple[str, str], Scope | None] = {
    ("GET", "/health"): PUBLIC,
    ("GET", "/ready"): PUBLIC,
    ("GET", "/ui"): PUBLIC,
    ("GET", "/ui/{path:path}"): PUBLIC,
    ("GET", "/metrics"): Scope.METRICS,
    # The OpenAPI document and its viewers describe every route: not for strangers.
    ("GET", "/openapi.json"): Scope.READ,
    ("GET", "/docs"): Scope.READ,
    ("GET", "/docs/oauth2-redirect"): Scope.READ,
    ("GET", "/redoc"): Scope.READ,
    # A start body needs write; a DAG body (register or replace a definition) needs admin
    # besides, checked by the route once it knows which body it got (see ``require``).
    ("POST", "/api/v1/workflows"): Scope.WRITE,
    ("GET", "/api/v1/workflows"): Scope.READ,
    ("GET", "/api/v1/workflow-count"): Scope.READ,
    ("GET", "/api/v1/node-types"): Scope.READ,
    ("POST", "/api/v1/workflows/{id}/execute"): Scope.WRITE,
    ("POST", "/api/v1/schedules"): Scope.WRITE,
    ("GET", "/api/v1/schedules"): Scope.READ,
    ("GET", "/api/v1/schedules/{id}"): Scope.READ,
    ("PUT", "/api/v1/schedules/{id}"): Scope.WRITE,
    ("DELETE", "/api/v1/schedules/{id}"): Scope.WRITE,
    ("POST", "/api/v1/schedules/{id}/pause"): Scope.WRITE,
    ("POST", "/api/v1/schedules/{id}/unpause"): Scope.WRITE,
    ("POST", "/api/v1/schedules/{id}/trigger"): Scope.WRITE,
    ("POST", "/api/v1/schedules/{id}/backfill"): Scope.WRITE,
    ("GET", "/api/v1/workflows/{id}/status"): Scope.READ,
    ("GET", "/api/v1/workflows/{id}/history"): Scope.READ,
    ("POST", "/api/v1/workflows/{id}/signal"): Scope.WRITE,
    ("POST", "/api/v1/workflows/{id}/cancel"): Scope.WRITE,
    ("POST", "/api/v1/workflows/{id}/terminate"): Scope.WRITE,
    ("POST", "/api/v1/workflows/{id}/reset"): Scope.WRITE,
    ("POST", "/api/v1/workflows/{id}/query"): Scope.READ,
    ("POST", "/api/v1/workflows/{id}/updates"): Scope.WRITE,
    ("GET", "/api/v1/workflows/{id}/updates/{update_id}"): Scope.READ,
    ("POST", "/api/v1/activities/complete"): Scope.WRITE,
    ("POST", "/api/v1/activities/fail"): Scope.WRITE,
    ("POST", "/api/v1/activities/heartbeat"): Scope.WRITE,
    ("GET", "/api/v1/events"): Scope.READ,
    ("GET", "/api/v1/cluster/events"): Scope.ADMIN,
    ("GET", "/api/v1/cluster/shards"): Scope.ADMIN,
    ("GET", "/api/v1/cluster/stats"): Scope.ADMIN,
    ("GET", "/api/v1/cluster/workflows/{id}/location"): Scope.ADMIN,
}


_PATTERNS = [(method, template, compile_path(template)[0]) for method, template in ROUTE_SCOPES]


@dataclass(frozen=True)
class Requirement:
    """What one request needs: nothing (``public``), a ``scope``, or, for a request the table
    does not name, to be answered ``missing`` (404, or 405 when the path has other methods)."""

    public: bool = False
    scope: Scope | None = None
    route: str = ""
    missing: int | None = None


def requirement(method: str, path: str) -> Requirement:
    """The requirement of a request for ``method path`` (HEAD counts as GET)."""
    method = "GET" if method == "HEAD" else method
    other_method = False
    for route_method, template, pattern in _PATTERNS:
        if pattern.match(path):
            if route_method == method:
                scope = ROUTE_SCOPES[(method, template)]
                return Requirement(public=scope is None, scope=scope, route=f"{method} {template}")
            other_method = True
    return Requirement(missing=405 if other_method else 404)
