"""Who may call which gateway route: the scopes, the caller, and the one route table.

Every route of the app is in ``ROUTE_SCOPES`` with the one scope it needs (``None``: open to
anyone, the probes only). A route missing from the table is refused to everyone (403), and
``tests/api/test_auth_units.py`` fails when the app has a route the table does not name, so a
new route cannot ship unscoped.

Scopes do not imply one another: a key that should read and start needs ``read`` and ``write``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum


class Scope(StrEnum):
    READ = "read"
    """Status, history, listings, queries, lifecycle events, the OpenAPI document."""
    WRITE = "write"
    """Start (and execute), signal, cancel, terminate."""
    ADMIN = "admin"
    """Register or replace DAG definitions; the cluster routes (placement, stats, cluster events)."""
    METRICS = "metrics"
    """GET /metrics only: what a Prometheus scraper needs, and nothing else."""


DEFAULT_NAMESPACES = ("default",)
"""Namespaces of a credential that names none (kept for namespaces, not enforced yet)."""


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: an API key's entry or a JWT's subject."""

    name: str
    scopes: frozenset[Scope]
    namespaces: tuple[str, ...] = DEFAULT_NAMESPACES
    kind: str = "api-key"

    def allows(self, scope: Scope) -> bool:
        return scope in self.scopes


ANONYMOUS = Principal("anonymous", frozenset(Scope), kind="insecure")
"""The caller of a gateway started with ``--insecure`` and no credentials: every scope."""

PUBLIC: None = None
"""A route anyone may call: liveness and readiness probes."""

ROUTE_SCOPES: dict[tuple[str, str], Scope | None] = {
    ("GET", "/health"): PUBLIC,
    ("GET", "/ready"): PUBLIC,
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
    ("POST", "/api/v1/workflows/{id}/execute"): Scope.WRITE,
    ("GET", "/api/v1/workflows/{id}/status"): Scope.READ,
    ("GET", "/api/v1/workflows/{id}/history"): Scope.READ,
    ("POST", "/api/v1/workflows/{id}/signal"): Scope.WRITE,
    ("POST", "/api/v1/workflows/{id}/cancel"): Scope.WRITE,
    ("POST", "/api/v1/workflows/{id}/terminate"): Scope.WRITE,
    ("POST", "/api/v1/workflows/{id}/query"): Scope.READ,
    ("GET", "/api/v1/events"): Scope.READ,
    ("GET", "/api/v1/cluster/events"): Scope.ADMIN,
    ("GET", "/api/v1/cluster/shards"): Scope.ADMIN,
    ("GET", "/api/v1/cluster/stats"): Scope.ADMIN,
    ("GET", "/api/v1/cluster/workflows/{id}/location"): Scope.ADMIN,
}


@dataclass(frozen=True)
class Requirement:
    """What one request needs: ``public`` or a ``scope`` (``None`` with ``known`` False: a route
    the table does not name, refused to everyone)."""

    public: bool
    scope: Scope | None = None
    known: bool = True
    route: str = field(default="")


def requirement(method: str, path_template: str | None) -> Requirement:
    """The requirement of ``method path_template`` (``None``: no route matched, so the app
    answers 404 or 405 to an authenticated caller)."""
    if path_template is None:
        return Requirement(public=False)
    key = ("GET" if method == "HEAD" else method, path_template)
    if key not in ROUTE_SCOPES:
        return Requirement(public=False, known=False, route=f"{key[0]} {path_template}")
    scope = ROUTE_SCOPES[key]
    return Requirement(public=scope is None, scope=scope, route=f"{key[0]} {path_template}")
