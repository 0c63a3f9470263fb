"""The gateway's settings: Kafka's (``ledgerflow.config.Settings``) plus its own.

Read once from the environment (``LEDGERFLOW_*``); list settings accept a
comma-separated string, e.g. ``LEDGERFLOW_API_KEYS=key-one,key-two``.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, field_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from ledgerflow.config import Settings

ANY_TYPE = "*"
"""Put in ``activity_types`` to accept every node type at DAG registration."""


class GatewaySettings(Settings):
    """Where Kafka is, plus how the REST gateway behaves."""

    model_config = SettingsConfigDict(env_prefix="LEDGERFLOW_", frozen=True, extra="ignore")

    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Accepted API keys (env: comma-separated); empty turns authentication off.",
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

    @field_validator("api_keys", "activity_types", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @property
    def auth_enabled(self) -> bool:
        return bool(self.api_keys)
