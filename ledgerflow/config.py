"""Settings shared by every Ledgerflow process.

One frozen object, read once from the environment (``LEDGERFLOW_*``) and
passed around, instead of a long list of keyword arguments.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Literal

from pydantic import Field, PrivateAttr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ledgerflow import kafkaprops
from ledgerflow.errors import PayloadTooLarge

ENV_PREFIX = "LEDGERFLOW_"
SizeLimit = Literal["max_payload_bytes", "max_record_bytes"]
PAGE_LIMIT = 1000
"""Most items one read returns (history pages, run listings, event tails): a larger ``limit``
is refused (422 naming it) and the Client and CLI read page by page instead."""


class Settings(BaseSettings):
    """Where Kafka is and how Ledgerflow's topics are laid out."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, frozen=True, extra="ignore")

    bootstrap: str = Field(default="127.0.0.1:9092", description="Kafka bootstrap servers.")
    kafka_config: Path | None = Field(
        default=None,
        description="File of Kafka client properties (name=value lines: TLS, SASL, any librdkafka "
        "property) every client of this process uses; LEDGERFLOW_KAFKA_<PROPERTY> variables win "
        "over it. See ledgerflow.kafkaprops.",
    )
    prefix: str = Field(default="ledgerflow.", description="Prefix of every topic name.")
    partitions: int = Field(
        default=12, ge=1, description="Shard count: partitions of inbox, changelog and events."
    )
    replication_factor: int = Field(default=1, ge=1, description="Replication factor of created topics.")
    min_insync_replicas: int | None = Field(
        default=None, ge=1, description="min.insync.replicas of created topics (default: broker's)."
    )

    max_payload_bytes: int = Field(
        default=256 * 1024,
        ge=1024,
        description="Largest payload (workflow input, signal, activity arguments, result or failure, "
        "child input) a run may record, as the JSON of its history event; larger ones are refused "
        "(PayloadTooLarge). Keep well under max_record_bytes: a run's state holds several payloads.",
    )
    max_record_bytes: int = Field(
        default=1_000_000,
        ge=4096,
        description="Largest Kafka record Ledgerflow writes (key + value): librdkafka's default. "
        "Producers and the topics Ledgerflow creates accept it plus 16 KiB of framing; every start "
        "checks that existing topics' max.message.bytes does too, and refuses to run otherwise.",
    )
    max_previous_runs: int = Field(
        default=1000,
        ge=1,
        description="Earlier run ids a workflow id's state remembers (continue-as-new, restarts); "
        "older ones are forgotten by the state (their histories stay until retention).",
    )
    list_scan_limit: int = Field(
        default=10_000,
        ge=1,
        description="Runs one engine examines for one page of a listing. A filtered listing that "
        "finds fewer matches among them answers a shorter page whose cursor says where it stopped.",
    )

    history_warn_events: int = Field(
        default=10_240,
        ge=1,
        description="A run's history this long logs a warning (once) and counts in "
        "ledgerflow_history_limit_warnings_total: time to continue-as-new.",
    )
    history_warn_bytes: int = Field(
        default=10 * 1024 * 1024,
        ge=1,
        description="A run's history this large (bytes of event JSON) logs a warning (once).",
    )
    max_history_events: int = Field(
        default=51_200,
        ge=2,
        description="Longest history of one run: the event past it fails the run "
        "(HistoryTooLarge); continue-as-new starts a fresh history.",
    )
    max_history_bytes: int = Field(
        default=50 * 1024 * 1024,
        ge=1024,
        description="Largest history of one run (bytes of event JSON): "
        "the event past it fails the run (HistoryTooLarge).",
    )
    max_pending_activities: int = Field(
        default=2_000,
        ge=1,
        description="Activities one run may have scheduled and not yet ended; "
        "scheduling one more fails the run (TooManyPending).",
    )
    max_pending_children: int = Field(
        default=2_000,
        ge=1,
        description="Child workflows one run may have started and not yet seen "
        "close; starting one more fails the run (TooManyPending).",
    )
    max_pending_timers: int = Field(
        default=10_000,
        ge=1,
        description="Timers one run may have open; one more fails the run (TooManyPending).",
    )
    max_buffered_signals: int = Field(
        default=2_000,
        ge=1,
        description="Signals a run holds that its code has not taken yet; one "
        "more is refused (dead-lettered with the reason) and the run goes on.",
    )

    max_dag_nodes: int = Field(
        default=1000, ge=1, description="Nodes a DAG definition may have; more are refused at registration."
    )
    max_dag_edges: int = Field(
        default=5000, ge=0, description="Edges a DAG definition may have; more are refused at registration."
    )
    max_dag_depth: int = Field(
        default=500,
        ge=1,
        description="Nodes on a DAG's longest path (steps that run one after another); a deeper "
        "definition is refused at registration.",
    )
    max_dag_bytes: int = Field(
        default=128 * 1024,
        ge=1024,
        description="Size of a DAG definition as JSON (as stored, defaults included); larger ones are "
        "refused at registration. Every run records its definition and its input in its first event, "
        "which max_payload_bytes bounds: the default leaves half of it to the input.",
    )

    partitioner: str | None = Field(
        default=None,
        description="Custom partitioner 'module:function' (workflow_id, partitions) -> partition; "
        "murmur2 of the workflow id when unset.",
    )
    engine_token_file: Path | None = Field(
        default=None,
        description="File holding the token every engine HTTP route but the probes and /metrics "
        "requires (Authorization: Bearer); the gateway and the Client send it.",
    )
    codec_keys_file: Path | None = Field(
        default=None,
        description="JSON file of payload codec keys (ledgerflow codec keygen): payloads are "
        "encrypted with its active key (AES-256-GCM) and decrypted with any of its keys. Unset: "
        "payloads are clear JSON, and an encrypted one met is refused (CodecKeyNeeded).",
    )

    _kafka_properties: dict[str, str] = PrivateAttr(default_factory=dict)

    @model_validator(mode="after")
    def _load_kafka_properties(self) -> Settings:
        self._kafka_properties = kafkaprops.load(self.kafka_config, os.environ)
        return self

    @property
    def kafka_properties(self) -> dict[str, str]:
        """The deployment's Kafka client properties (secrets included: never log them as they are;
        ``kafkaprops.redacted``)."""
        return dict(self._kafka_properties)

    @model_validator(mode="after")
    def _payloads_fit_in_records(self) -> Settings:
        if self.max_payload_bytes * 3 > self.max_record_bytes:
            raise ValueError(
                f"max_payload_bytes ({self.max_payload_bytes}) must be at most a third of "
                f"max_record_bytes ({self.max_record_bytes}): a run's state holds several payloads"
            )
        return self

    @model_validator(mode="after")
    def _warnings_below_limits(self) -> Settings:
        if self.history_warn_events >= self.max_history_events:
            raise ValueError("history_warn_events must be below max_history_events")
        if self.history_warn_bytes >= self.max_history_bytes:
            raise ValueError("history_warn_bytes must be below max_history_bytes")
        return self

    def check_size(self, limit: SizeLimit, size: int, what: Callable[[], str]) -> None:
        """Raise ``PayloadTooLarge`` when ``size`` bytes are over the ``limit`` setting.

        The one measure every process applies: a payload is the JSON of the history event
        that records it (``max_payload_bytes``), a record its key plus value
        (``max_record_bytes``). ``what`` names the thing measured; it is called only when
        the size is over, so the check costs nothing on the hot path.
        """
        if size > getattr(self, limit):
            raise self.too_large(limit, size, what())

    def too_large(self, limit: SizeLimit, size: int, what: str) -> PayloadTooLarge:
        """The error for ``what``, ``size`` bytes over the ``limit`` setting; for hot paths that
        compare against a limit they read once and build this only when it is over."""
        allowed: int = getattr(self, limit)
        return PayloadTooLarge(what, size, allowed, f"{limit}, env {ENV_PREFIX}{limit.upper()}")

    def partition_of(self, workflow_id: str) -> int:
        """The shard of a workflow id under this deployment's partitioner."""
        from ledgerflow.partitioning import load_partitioner

        return load_partitioner(self.partitioner)(workflow_id, self.partitions)

    def topic(self, name: str) -> str:
        """Full name of one of Ledgerflow's topics, e.g. ``topic("inbox")``."""
        return f"{self.prefix}{name}"

    def task_topic(self, queue: str) -> str:
        """Topic of a task queue."""
        return f"{self.prefix}tasks.{queue}"

    def ingress_topic(self, namespace: str) -> str:
        """Topic a namespace's own producers write commands to (ledgerflow/engine/ingress.py)."""
        return f"{self.prefix}ingress.{namespace}"
