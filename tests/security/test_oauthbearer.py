"""OAUTHBEARER with OIDC client credentials, as managed Kafka offers it: every component gets its
token from an identity provider's token endpoint (librdkafka's ``sasl.oauthbearer.method=oidc``;
the workers' aiokafka clients through ``executors.aiokafka_config``) and the broker checks it
against the provider's JWKS. The provider here is a small one served over real HTTP by the test:
a client-credentials token endpoint and its JWKS; the principal is the ``sub`` claim."""

from __future__ import annotations

import base64
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jwt
import pytest
from confluent_kafka import KafkaError, Producer
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from ledgerflow import Client, kafkaprops
from ledgerflow.config import Settings
from ledgerflow.engine.kafka import acls
from ledgerflow.local.kafka import LocalKafka
from ledgerflow.local.kafka.secure import OIDC_AUDIENCE
from ledgerflow.local.ports import free_port
from ledgerflow.local.processes import Cluster
from tests.fixtures import ACTS, FLOWS, ROOT

pytestmark = [pytest.mark.kafka]

CLIENTS = {"engine": "engine-secret", "worker": "worker-secret", "client": "client-secret"}


class Issuer:
    """Client credentials in, RS256 JWTs out (``sub`` = the client id, ``aud`` = kafka)."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.issued: list[str] = []
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *_args: Any) -> None:
                pass

            def do_GET(self) -> None:
                jwk = json.loads(RSAAlgorithm.to_jwk(issuer.key.public_key()))
                self._json(200, {"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]})

            def do_POST(self) -> None:
                form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
                client_id, secret = issuer.credentials(self.headers.get("Authorization", ""), form)
                if form.get("grant_type") != ["client_credentials"] or CLIENTS.get(client_id) != secret:
                    self._json(401, {"error": "invalid_client"})
                    return
                issuer.issued.append(client_id)
                now = int(time.time())
                claims = {
                    "sub": client_id,
                    "aud": OIDC_AUDIENCE,
                    "iss": issuer.url,
                    "iat": now,
                    "exp": now + 600,
                }
                token = jwt.encode(claims, issuer.key, algorithm="RS256", headers={"kid": "k1"})
                self._json(200, {"access_token": token, "token_type": "bearer", "expires_in": 600})

            def _json(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @staticmethod
    def credentials(authorization: str, form: dict[str, list[str]]) -> tuple[str, str]:
        if authorization.startswith("Basic "):
            client_id, _, secret = base64.b64decode(authorization[6:]).decode().partition(":")
            return client_id, secret
        return form.get("client_id", [""])[0], form.get("client_secret", [""])[0]

    def properties(self, client_id: str, ca: Path, secret: str | None = None) -> dict[str, str]:
        return {
            "security.protocol": "SASL_SSL",
            "sasl.mechanism": "OAUTHBEARER",
            "sasl.oauthbearer.method": "oidc",
            "sasl.oauthbearer.client.id": client_id,
            "sasl.oauthbearer.client.secret": secret if secret is not None else CLIENTS[client_id],
            "sasl.oauthbearer.token.endpoint.url": f"{self.url}/token",
            "ssl.ca.location": str(ca),
        }


@pytest.fixture(scope="module")
def oidc_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LocalKafka, Issuer]]:
    issuer = Issuer()
    kafka = LocalKafka(
        tmp_path_factory.mktemp("oidc") / "kafka", secure=True, oidc_jwks_url=f"{issuer.url}/jwks"
    )
    kafka.up()
    try:
        yield kafka, issuer
    finally:
        kafka.down()
        issuer.server.shutdown()


def _settings_file(path: Path, props: dict[str, str]) -> Path:
    path.write_text("".join(f"{name}={value}\n" for name, value in props.items()))
    return path


def test_every_component_authenticates_with_oidc_client_credentials(
    oidc_kafka: tuple[LocalKafka, Issuer], tmp_path: Path
) -> None:
    kafka, issuer = oidc_kafka
    assert kafka.bootstrap is not None
    ca = kafka.secure_files.ca
    prefix = f"oidc-{uuid.uuid4().hex[:8]}."
    admin = Settings(bootstrap=kafka.bootstrap, prefix=prefix, kafka_config=kafka.client_properties("admin"))
    acls.grant(admin, {"engine": "User:engine", "worker": "User:worker", "client": "User:client"})
    files = {
        who: _settings_file(tmp_path / f"{who}.properties", issuer.properties(who, ca)) for who in CLIENTS
    }
    cluster = Cluster(kafka.bootstrap, prefix, tmp_path, partitions=2, pythonpath=[ROOT])
    try:
        engine = cluster.engine([FLOWS], env={"LEDGERFLOW_KAFKA_CONFIG": str(files["engine"])})
        cluster.worker([ACTS], env={"LEDGERFLOW_KAFKA_CONFIG": str(files["worker"])})
        engine.wait_ready()
        settings = Settings(
            bootstrap=kafka.bootstrap, prefix=prefix, partitions=2, kafka_config=files["client"]
        )
        with Client(settings=settings, engine_token=cluster.engine_token) as client:
            handle = client.start_workflow("ThreeSteps", 20, id=f"oidc-{uuid.uuid4().hex[:6]}")
            assert handle.result(timeout=90) == 23  # three activities: the worker's tokens work too
    finally:
        cluster.stop_all()
    assert {"engine", "worker", "client"} <= set(issuer.issued)


def test_a_client_the_provider_refuses_gets_nothing(oidc_kafka: tuple[LocalKafka, Issuer]) -> None:
    kafka, issuer = oidc_kafka
    props = issuer.properties("client", kafka.secure_files.ca, secret="wrong")
    errors: list[KafkaError] = []
    producer = Producer({"bootstrap.servers": kafka.bootstrap, "error_cb": errors.append, **props})
    deadline = time.monotonic() + 20
    while not errors and time.monotonic() < deadline:
        producer.poll(0.5)
    assert errors, "no error reported"
    assert "401" in errors[0].str() or errors[0].code() == KafkaError._AUTHENTICATION, errors
    assert kafkaprops.redacted(props)["sasl.oauthbearer.client.secret"] == "<redacted>"
