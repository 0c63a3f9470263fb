"""The gateway's settings: Kafka's (``ledgerflow.config.Settings``) plus its own.

Read once from the environment (``LEDGERFLOW_*``); list settings accept a
comma-separated string, e.g. ``LEDGERFLOW_JWT_ALGORITHMS=RS256,ES256``.

Callers authenticate with API keys (``api_keys_file``) or JWTs (``jwt_*``), or both; with
neither the gateway refuses to start unless ``insecure`` is set (see ``insecure_reasons``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from ledgerflow.config import Settings

ASYMMETRIC_ALGORITHMS = (
    "RS256",
    "RS384",
    "RS512",
    "PS256",
    "PS384",
    "PS512",
    "ES256",
    "ES384",
    "ES512",
    "EdDSA",
)

ANY_TYPE = "*"
"""Put in ``activity_types`` to accept every node type at DAG registration."""


class InsecureSettingsError(ValueError):
    """The gateway would start without credentials and was not told ``insecure``."""


class GatewaySettings(Settings):
    """Where Kafka is, plus how the REST gateway behaves."""

    model_config = SettingsConfigDict(env_prefix="LEDGERFLOW_", frozen=True, extra="ignore")

    api_keys_file: Path | None = Field(
        default=None,
        description="File of accepted API keys, one JSON object a line with the key's SHA-256, "
        "never the key (see ledgerflow/api/keys.py; `ledgerflow api-key create` makes one).",
    )
    jwt_jwks_url: str | None = Field(
        default=None, description="JWKS URL of the identity provider whose JWTs are accepted."
    )
    jwt_issuer: str | None = Field(default=None, description="Required `iss` of accepted JWTs.")
    jwt_audience: str | None = Field(default=None, description="Required `aud` of accepted JWTs.")
    jwt_algorithms: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["RS256"],
        description="Signature algorithms accepted (asymmetric only: RS*, PS*, ES*, EdDSA).",
    )
    jwt_leeway: float = Field(
        default=30.0, ge=0, le=300, description="Seconds of clock skew allowed on exp, nbf and iat."
    )
    jwt_scope_claim: str = Field(
        default="scope", description="Claim holding the scopes (space-separated string or list)."
    )
    jwt_scope_prefix: str = Field(
        default="ledgerflow:", description="Prefix of Ledgerflow's scopes in that claim (ledgerflow:read)."
    )
    jwt_namespaces_claim: str = Field(
        default="ledgerflow_namespaces", description="Claim holding the caller's namespaces."
    )
    jwt_jwks_cache_seconds: float = Field(
        default=300.0, gt=0, description="Seconds the JWKS is kept before it is fetched again."
    )
    jwt_jwks_timeout: float = Field(default=5.0, gt=0, description="Seconds a JWKS fetch may take.")
    insecure: bool = Field(
        default=False,
        description="Start even without caller credentials (every caller gets every scope) or "
        "an engine token. Configured credentials are enforced all the same.",
    )
    max_body_bytes: int = Field(
        default=1024 * 1024, ge=1, description="Largest request body accepted; larger ones get 413."
    )
    owner_timeout: float = Field(
        default=1.0,
        gt=0,
        description="Seconds a read forwarded to a partition owner may take, retry included, before 503.",
    )
    activity_types: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Activity names DAG nodes may use besides the built-ins ('*' accepts any).",
    )
    produce_timeout: float = Field(
        default=10.0, gt=0, description="Seconds a write waits for Kafka's acknowledgement before 503."
    )
    directory_ttl: float = Field(
        default=1.0, gt=0, description="Seconds between reads of the engine group's membership."
    )
    retry_after: int = Field(default=1, ge=1, description="Retry-After (seconds) sent with a 503.")
    events_buffer_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1024 * 1024,
        description="Memory for the latest records of the events and cluster topics that "
        "GET /events and /cluster/events answer from (one reader per gateway), split evenly "
        "among their partitions.",
    )

    @field_validator("activity_types", "jwt_algorithms", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("jwt_algorithms")
    @classmethod
    def _asymmetric(cls, value: list[str]) -> list[str]:
        refused = [a for a in value if a not in ASYMMETRIC_ALGORITHMS]
        if refused or not value:
            raise ValueError(
                f"jwt_algorithms may only name {', '.join(ASYMMETRIC_ALGORITHMS)} "
                f"(refused: {', '.join(refused) or 'an empty list'}); 'none' and HS* never verify a JWKS key"
            )
        return value

    @model_validator(mode="after")
    def _jwt_complete(self) -> GatewaySettings:
        if self.jwt_jwks_url and not (self.jwt_issuer and self.jwt_audience):
            raise ValueError(
                "jwt_jwks_url needs jwt_issuer and jwt_audience "
                "(LEDGERFLOW_JWT_ISSUER, LEDGERFLOW_JWT_AUDIENCE)"
            )
        if self.jwt_jwks_url and not _trusted_key_source(self.jwt_jwks_url):
            raise ValueError(
                "jwt_jwks_url must be https:// (http only on loopback): whoever can answer it "
                "in clear text can mint any token"
            )
        return self

    @property
    def auth_enabled(self) -> bool:
        """Whether callers must authenticate (API keys or JWTs configured)."""
        return self.api_keys_file is not None or self.jwt_jwks_url is not None

    def insecure_reasons(self) -> list[str]:
        """What is missing for a secure start (empty: nothing), each naming its setting."""
        reasons = []
        if not self.auth_enabled:
            reasons.append(
                "no caller credentials: set LEDGERFLOW_API_KEYS_FILE and/or LEDGERFLOW_JWT_JWKS_URL "
                "(with LEDGERFLOW_JWT_ISSUER, LEDGERFLOW_JWT_AUDIENCE)"
            )
        if self.engine_token_file is None:
            reasons.append("no engine token: set LEDGERFLOW_ENGINE_TOKEN_FILE")
        return reasons

    def check_secure(self) -> None:
        """Raise ``InsecureSettingsError`` (one line naming the settings) when credentials are
        missing and ``insecure`` is not set."""
        missing = self.insecure_reasons()
        if missing and not self.insecure:
            raise InsecureSettingsError(
                "refusing to start the gateway: "
                + "; ".join(missing)
                + "; or pass --insecure (LEDGERFLOW_INSECURE=true) to run it open"
            )


def _trusted_key_source(url: str) -> bool:
    """https, or http to this host only (a local identity provider, tests)."""
    parsed = urlsplit(url)
    return parsed.scheme == "https" or (
        parsed.scheme == "http" and parsed.hostname in {"127.0.0.1", "localhost", "::1"}
    )
