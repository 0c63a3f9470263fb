"""Authentication and scopes at a real gateway (``ledgerflow api``) over real HTTP, with a real
engine (requiring its token) and worker behind it on the session's broker, and JWTs checked
against a JWKS this test serves over HTTP."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from ledgerflow import Client
from ledgerflow.api.keys import entry_line, new_key
from ledgerflow.api.models import REGISTER_EXAMPLES
from ledgerflow.api.scopes import ROUTE_SCOPES, Scope
from ledgerflow.errors import EngineAuthError
from ledgerflow.local.processes import Cluster, NodeProcess
from tests.api.conftest import ROOT, wait_status
from tests.fixtures import ACTS, FLOWS

pytestmark = pytest.mark.kafka

ISSUER = "https://idp.test.invalid/"
AUDIENCE = "ledgerflow-gateway"
KID = "test-key-1"
ROLES = {
    "reader": [Scope.READ],
    "writer": [Scope.WRITE],
    "operator": [Scope.READ, Scope.WRITE],
    "admin": [Scope.ADMIN],
    "scraper": [Scope.METRICS],
}


class Jwks:
    """An RSA signing key, and its public half served as a JWKS over HTTP."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = json.loads(RSAAlgorithm.to_jwk(self.key.public_key()))
        body = json.dumps({"keys": [{**public, "kid": KID, "use": "sig", "alg": "RS256"}]}).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200 if self.path == "/jwks.json" else 404)
                self.send_header("content-type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/jwks.json"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def token(self, key: rsa.RSAPrivateKey | None = None, **claims: Any) -> str:
        now = int(time.time())
        payload = {
            "iss": ISSUER,
            "aud": AUDIENCE,
            "sub": "svc-orders",
            "iat": now,
            "exp": now + 300,
            "scope": "openid ledgerflow:read ledgerflow:write",
            **claims,
        }
        return jwt.encode(payload, key or self.key, algorithm="RS256", headers={"kid": KID})


@dataclass
class Secured:
    cluster: Cluster
    engine: NodeProcess
    gateway: NodeProcess
    keys: dict[str, str]
    jwks: Jwks

    @property
    def url(self) -> str:
        assert self.gateway.url is not None
        return self.gateway.url

    def as_(self, role: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"X-API-Key": self.keys[role]}, timeout=10)

    def bearer(self, token: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=10)


@pytest.fixture(scope="module")
def secured(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    base = tmp_path_factory.mktemp("secured")
    keys: dict[str, str] = {}
    lines = []
    for role, scopes in ROLES.items():
        keys[role], entry = new_key(role, scopes)
        lines.append(entry_line(entry))
    keys_file = base / "keys.jsonl"
    keys_file.write_text("\n".join(lines) + "\n")
    jwks = Jwks()
    cluster = Cluster(kafka_bootstrap, f"auth-{uuid.uuid4().hex[:8]}.", base, partitions=4, pythonpath=[ROOT])
    try:
        engine = cluster.engine([FLOWS])
        cluster.worker([ACTS])
        engine.wait_ready()
        gateway = cluster.gateway(
            [ACTS],
            env={
                "LEDGERFLOW_API_KEYS_FILE": str(keys_file),
                "LEDGERFLOW_JWT_JWKS_URL": jwks.url,
                "LEDGERFLOW_JWT_ISSUER": ISSUER,
                "LEDGERFLOW_JWT_AUDIENCE": AUDIENCE,
                "LEDGERFLOW_JWT_LEEWAY": "5",
            },
        )
        gateway.wait_ready()
        yield Secured(cluster, engine, gateway, keys, jwks)
    finally:
        cluster.stop_all()
        jwks.server.shutdown()


def test_without_credentials_every_route_but_the_probes_is_401(secured: Secured) -> None:
    with httpx.Client(base_url=secured.url, timeout=10) as anonymous:
        for (method, template), scope in ROUTE_SCOPES.items():
            path = template.replace("{id}", "w-1").replace("{path:path}", "index.html")
            answer = anonymous.request(method, path, json={}, follow_redirects=True)
            if scope is None:
                assert answer.status_code == 200, (method, template, answer.text)
                continue
            assert answer.status_code == 401, (method, template, answer.text)
            assert answer.headers["WWW-Authenticate"] == 'Bearer realm="ledgerflow"'
            assert answer.json()["code"] == "unauthorized"
        # nobody learns which paths exist without a credential
        assert anonymous.get("/api/v1/no-such-route").status_code == 401
        assert anonymous.delete("/api/v1/workflows").status_code == 401


def test_a_wrong_key_is_401_in_either_header(secured: Secured) -> None:
    wrong = secured.keys["operator"][:-2] + "xx"
    for headers in ({"X-API-Key": wrong}, {"Authorization": f"Bearer {wrong}"}):
        answer = httpx.get(f"{secured.url}/api/v1/workflows", headers=headers, timeout=10)
        assert answer.status_code == 401, answer.text
        assert 'error="invalid_token"' in answer.headers["WWW-Authenticate"]
        assert "unknown API key" in answer.json()["detail"]


def test_a_read_key_reads_but_cannot_start(secured: Secured) -> None:
    with secured.as_("reader") as reader:
        assert reader.get("/api/v1/workflows").status_code == 200
        assert reader.get("/api/v1/workflows/never-started/status").status_code == 404
        refused = reader.post("/api/v1/workflows", json={"id": "r-1", "type": "ThreeSteps", "input": 1})
        assert refused.status_code == 403, refused.text
        assert refused.json()["code"] == "forbidden" and "'write'" in refused.json()["detail"]
        assert 'error="insufficient_scope", scope="write"' in refused.headers["WWW-Authenticate"]
        assert reader.post("/api/v1/workflows/r-1/cancel", json={}).status_code == 403
        assert reader.get("/metrics").status_code == 403


def test_admin_routes_are_refused_to_a_write_key(secured: Secured) -> None:
    dag = {**REGISTER_EXAMPLES["dag"]["value"], "id": "auth-dag"}
    with secured.as_("writer") as writer, secured.as_("admin") as admin:
        shards = writer.get("/api/v1/cluster/shards")
        assert shards.status_code == 403 and "'admin'" in shards.json()["detail"], shards.text
        registered = writer.post("/api/v1/workflows", json=dag)
        assert registered.status_code == 403, registered.text
        assert "'admin'" in registered.json()["detail"] and "DAG" in registered.json()["detail"]
        assert admin.get("/api/v1/cluster/shards").status_code == 200
        # admin alone is not write: registering a DAG takes the route's write scope too
        assert admin.post("/api/v1/workflows", json=dag).status_code == 403
        assert writer.get("/api/v1/workflows").status_code == 403, "write does not imply read"


def test_a_metrics_key_scrapes_and_does_nothing_else(secured: Secured) -> None:
    with secured.as_("scraper") as scraper:
        assert "ledgerflow_gateway_requests_total" in scraper.get("/metrics").text
        assert scraper.get("/api/v1/workflows").status_code == 403
        assert scraper.get("/openapi.json").status_code == 403


def test_start_and_read_through_the_gateway_and_the_engine_token(secured: Secured) -> None:
    workflow_id = f"auth-e2e-{uuid.uuid4().hex[:6]}"
    with secured.as_("operator") as operator:
        started = operator.post(
            "/api/v1/workflows", json={"id": workflow_id, "type": "ThreeSteps", "input": 1}
        )
        assert started.status_code == 202, started.text
        status = wait_status(operator, workflow_id, ("COMPLETED", "FAILED"))
        assert status["status"] == "COMPLETED" and status["result"] == 4, status
        history = operator.get(f"/api/v1/workflows/{workflow_id}/history")
        assert history.status_code == 200 and history.json()["total"] > 0


def test_a_valid_jwt_with_scopes_works(secured: Secured) -> None:
    workflow_id = f"auth-jwt-{uuid.uuid4().hex[:6]}"
    with secured.bearer(secured.jwks.token()) as caller:
        started = caller.post("/api/v1/workflows", json={"id": workflow_id, "type": "ThreeSteps", "input": 2})
        assert started.status_code == 202, started.text
        assert wait_status(caller, workflow_id, ("COMPLETED",))["result"] == 5
        assert caller.get("/api/v1/cluster/shards").status_code == 403
    reader = secured.jwks.token(scope="ledgerflow:read", ledgerflow_namespaces=["default"])
    with secured.bearer(reader) as caller:
        assert caller.get(f"/api/v1/workflows/{workflow_id}/status").status_code == 200
        assert caller.post(f"/api/v1/workflows/{workflow_id}/cancel", json={}).status_code == 403
    other_team = secured.jwks.token(scope="ledgerflow:read", ledgerflow_namespaces=["team-a"])
    with secured.bearer(other_team) as caller:  # the token's namespaces are enforced too
        assert caller.get(f"/api/v1/workflows/{workflow_id}/status").status_code == 404


@pytest.mark.parametrize(
    ("case", "claims", "reason"),
    [
        ("expired", {"exp": int(time.time()) - 60, "iat": int(time.time()) - 400}, "expired"),
        ("another key", {}, "not valid"),
        ("wrong audience", {"aud": "someone-else"}, "not for this gateway"),
        ("wrong issuer", {"iss": "https://evil.test.invalid/"}, "not for this gateway"),
        ("no expiry", {"exp": None}, "not valid"),
    ],
)
def test_a_bad_jwt_is_401(secured: Secured, case: str, claims: dict[str, Any], reason: str) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048) if case == "another key" else None
    token = secured.jwks.token(other, **claims)
    if claims.get("exp", 0) is None:
        payload = jwt.decode(token, options={"verify_signature": False})
        payload.pop("exp")
        token = jwt.encode(payload, secured.jwks.key, algorithm="RS256", headers={"kid": KID})
    with secured.bearer(token) as caller:
        answer = caller.get("/api/v1/workflows")
        assert answer.status_code == 401, (case, answer.text)
        assert reason in answer.json()["detail"], (case, answer.text)
        assert 'error="invalid_token"' in answer.headers["WWW-Authenticate"]


def test_a_jwt_signed_with_none_or_a_shared_secret_is_401(secured: Secured) -> None:
    claims = jwt.decode(secured.jwks.token(), options={"verify_signature": False})
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": KID})
    # the classic confusion: HS256 keyed with the public key's bytes
    public = secured.jwks.key.public_key().public_numbers()
    hmac_key = str(public.n).encode()
    forged = jwt.encode(claims, hmac_key, algorithm="HS256", headers={"kid": KID})
    for token in (unsigned, forged):
        with secured.bearer(token) as caller:
            assert caller.get("/api/v1/workflows").status_code == 401


def test_the_engine_answers_only_with_its_token(secured: Secured) -> None:
    url = secured.engine.url
    for path in ("/health", "/ready", "/metrics"):
        assert httpx.get(f"{url}{path}", timeout=5).status_code == 200, path
    for path in ("/internal/partitions", "/internal/workflows", "/internal/workflows/w-1"):
        refused = httpx.get(f"{url}{path}", timeout=5)
        assert refused.status_code == 401, path
        assert refused.headers["WWW-Authenticate"].startswith("Bearer")
        wrong = httpx.get(f"{url}{path}", headers={"Authorization": "Bearer " + "x" * 43}, timeout=5)
        assert wrong.status_code == 401, path
    assert secured.engine.get("/internal/partitions").status_code == 200
    query = httpx.post(f"{url}/internal/workflows/w-1/query/q", json={"args": []}, timeout=5)
    assert query.status_code == 401


def test_the_client_sends_the_engine_token(secured: Secured) -> None:
    cluster = secured.cluster
    with cluster.client() as client:
        handle = client.start_workflow("ThreeSteps", 3, id=f"auth-client-{uuid.uuid4().hex[:6]}")
        assert handle.result(timeout=30) == 6
    bare = Client(cluster.bootstrap, cluster.prefix, partitions=cluster.partitions, engine_token="")
    with bare, pytest.raises(EngineAuthError, match="LEDGERFLOW_ENGINE_TOKEN_FILE"):
        bare.describe(handle.workflow_id)


def _cli(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LEDGERFLOW_")}
    return subprocess.run(
        [sys.executable, "-m", "ledgerflow.cli", *args],
        env={**clean, "PYTHONPATH": ROOT, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_the_gateway_without_credentials_refuses_to_start(secured: Secured, tmp_path: Path) -> None:
    common = ["api", "--bootstrap", secured.cluster.bootstrap, "--port", "0"]
    refused = _cli(common, {})
    assert refused.returncode != 0
    assert "LEDGERFLOW_API_KEYS_FILE" in refused.stderr and "--insecure" in refused.stderr, refused.stderr
    no_token = _cli(common, {"LEDGERFLOW_API_KEYS_FILE": str(secured.cluster.secrets_dir / "api-keys.jsonl")})
    assert no_token.returncode != 0 and "LEDGERFLOW_ENGINE_TOKEN_FILE" in no_token.stderr, no_token.stderr
    retired = _cli(common, {"LEDGERFLOW_API_KEYS": "plain-key", "LEDGERFLOW_INSECURE": "true"})
    assert retired.returncode != 0 and "no longer read" in retired.stderr, retired.stderr
    bad = tmp_path / "keys.jsonl"
    bad.write_text('{"name": "x", "key": "plain"}\n')
    malformed = _cli(common, {"LEDGERFLOW_API_KEYS_FILE": str(bad), "LEDGERFLOW_INSECURE": "1"})
    assert malformed.returncode != 0 and f"{bad}, line 1" in malformed.stderr, malformed.stderr


def test_the_engine_without_a_token_refuses_to_start(tmp_path: Path) -> None:
    refused = _cli(["engine", "--data-dir", str(tmp_path / "data"), "--bootstrap", "127.0.0.1:1"], {})
    assert refused.returncode != 0
    assert "LEDGERFLOW_ENGINE_TOKEN_FILE" in refused.stderr and "--insecure" in refused.stderr, refused.stderr
    short = tmp_path / "token"
    short.write_text("too-short\n")
    weak = _cli(
        ["engine", "--data-dir", str(tmp_path / "data")], {"LEDGERFLOW_ENGINE_TOKEN_FILE": str(short)}
    )
    assert weak.returncode != 0 and "at least 32 characters" in weak.stderr, weak.stderr
    assert "too-short" not in weak.stderr, "the token must never be echoed"


def test_an_insecure_gateway_says_so_and_serves_anyone(secured: Secured) -> None:
    gateway = secured.cluster.gateway([ACTS], name="gateway-open", insecure=True)
    try:
        gateway.wait_ready()
        assert httpx.get(f"{gateway.url}/api/v1/workflows", timeout=10).status_code == 200
        assert "auth OFF" in gateway.log_tail()
    finally:
        gateway.stop()
