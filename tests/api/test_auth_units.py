"""The gateway's authentication pieces without Kafka: the route table, keys files, settings."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from starlette.routing import BaseRoute

from ledgerflow.api.app import create_app
from ledgerflow.api.keys import KeysFileError, load_keys, new_key
from ledgerflow.api.scopes import ROUTE_SCOPES, Scope, requirement
from ledgerflow.api.settings import GatewaySettings, InsecureSettingsError


def _operations(routes: Sequence[BaseRoute]) -> Iterator[tuple[str, str]]:
    for route in routes:
        included = getattr(route, "original_router", None)  # FastAPI's include_router wrapper
        if included is not None:
            yield from _operations(included.routes)
            continue
        for method in getattr(route, "methods", None) or ():
            if method != "HEAD":
                yield method, str(getattr(route, "path", ""))


def test_every_route_of_the_app_has_exactly_one_scope_in_the_table() -> None:
    app = create_app(GatewaySettings(insecure=True))
    operations = set(_operations(app.routes))
    documented = {(method.upper(), path) for path, item in app.openapi()["paths"].items() for method in item}
    assert documented <= operations, "app.routes was not walked whole"
    assert operations == set(ROUTE_SCOPES), (
        f"routes without a scope: {sorted(operations - set(ROUTE_SCOPES))}; "
        f"table rows without a route: {sorted(set(ROUTE_SCOPES) - operations)}"
    )
    public = {path for (_, path), scope in ROUTE_SCOPES.items() if scope is None}
    assert public == {"/health", "/ready", "/ui", "/ui/{path:path}"}


def test_requests_map_to_their_route_s_scope() -> None:
    assert requirement("GET", "/health").public
    assert requirement("GET", "/api/v1/workflows/w-1/status").scope is Scope.READ
    assert requirement("HEAD", "/api/v1/workflows").scope is Scope.READ
    assert requirement("POST", "/api/v1/workflows/w-1/cancel").scope is Scope.WRITE
    assert requirement("GET", "/api/v1/cluster/shards").scope is Scope.ADMIN
    assert requirement("GET", "/metrics").scope is Scope.METRICS
    assert requirement("GET", "/api/v1/nothing").missing == 404
    assert requirement("DELETE", "/api/v1/workflows").missing == 405
    assert requirement("GET", "/api/v1/workflows/a/b/status").missing == 404


def _entry(**fields: Any) -> str:
    return json.dumps({"name": "ci", "sha256": "0" * 64, "scopes": ["read"], **fields})


def test_a_keys_file_holds_hashes_and_finds_keys_in_constant_time(tmp_path: Path) -> None:
    key, entry = new_key("ci", [Scope.READ, Scope.WRITE, Scope.READ])
    assert key.startswith("lfk_") and len(key) > 40 and "." not in key
    assert entry.sha256 == hashlib.sha256(key.encode()).hexdigest() and key not in entry.model_dump_json()
    path = tmp_path / "keys.jsonl"
    path.write_text(f"# ci key\n\n{entry.model_dump_json()}\n")
    ring = load_keys(path)
    principal = ring.lookup(key)
    assert principal is not None and principal.name == "ci"
    assert principal.scopes == {Scope.READ, Scope.WRITE} and principal.namespaces == ("default",)
    assert ring.lookup(key + "x") is None and ring.lookup("") is None


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        (_entry(scopes=["read", "everything"]), "line 1: scopes.1"),
        (_entry(sha256="abc"), "line 1: sha256"),
        (_entry(key="lfk_plain"), "line 1: key: Extra inputs"),
        (_entry(scopes=[]), "line 1: scopes"),
        ("not json", "line 1"),
        (_entry() + "\n" + _entry(sha256="1" * 64), "key names used twice: ci"),
    ],
)
def test_a_bad_keys_file_is_refused_naming_the_line(tmp_path: Path, line: str, problem: str) -> None:
    path = tmp_path / "keys.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(KeysFileError, match=problem):
        load_keys(path)


def test_a_missing_keys_file_stops_the_gateway(tmp_path: Path) -> None:
    settings = GatewaySettings(api_keys_file=tmp_path / "absent", insecure=True)
    with pytest.raises(KeysFileError, match="cannot read the API keys file"):
        create_app(settings)


def test_without_credentials_the_gateway_refuses_to_start_naming_the_settings() -> None:
    with pytest.raises(InsecureSettingsError) as info:
        create_app(GatewaySettings())
    message = str(info.value)
    assert "\n" not in message
    for setting in ("LEDGERFLOW_API_KEYS_FILE", "LEDGERFLOW_JWT_JWKS_URL", "LEDGERFLOW_ENGINE_TOKEN_FILE"):
        assert setting in message
    assert "--insecure" in message


@pytest.mark.parametrize("algorithms", [["none"], ["HS256"], ["RS256", "HS512"], []])
def test_jwt_algorithms_are_asymmetric_only(algorithms: list[str]) -> None:
    with pytest.raises(ValidationError, match="jwt_algorithms"):
        GatewaySettings(jwt_algorithms=algorithms)


def test_a_jwks_url_needs_an_issuer_and_an_audience() -> None:
    with pytest.raises(ValidationError, match="jwt_issuer and jwt_audience"):
        GatewaySettings(jwt_jwks_url="https://idp.example/jwks", jwt_issuer="https://idp.example")


@pytest.mark.parametrize("url", ["http://idp.example/jwks", "ftp://idp.example/jwks"])
def test_keys_are_fetched_over_https_only_off_this_host(url: str) -> None:
    with pytest.raises(ValidationError, match="must be https"):
        GatewaySettings(jwt_jwks_url=url, jwt_issuer="https://idp.example", jwt_audience="ledgerflow")
    local = "http://127.0.0.1:8000/jwks"
    assert GatewaySettings(jwt_jwks_url=local, jwt_issuer="i", jwt_audience="a").jwt_jwks_url == local


def test_an_insecure_gateway_serves_everyone_every_scope() -> None:
    client = TestClient(create_app(GatewaySettings(insecure=True, max_body_bytes=10)))
    assert client.post("/api/v1/workflows", content=b"x" * 100).status_code == 413
    assert client.get("/api/v1/nothing").status_code == 404
