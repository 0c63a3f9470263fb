"""The gateway's reads: forwarded to the engine that owns partition(X) by
``ledgerflow.owner_reads.OwnerReads`` (shared with the Python client), observed here.

The routing table is read in the background every ``directory_ttl`` seconds, so a read costs
no Kafka round trip. A read whose owner is unknown, answers 421 or cannot be reached gets one
retry after a fresh read of the group; after that, or when the ``owner_timeout`` budget is
spent, it fails with ``OwnerUnavailableError`` (503 + Retry-After). It never waits longer.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram

from ledgerflow.api.settings import GatewaySettings
from ledgerflow.owner_reads import OwnerReads

ROUTING_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class RoutingMetrics:
    """The gateway's metrics of owner reads (a ``ledgerflow.owner_reads.ReadObserver``)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.latency = Histogram(
            "workflow_routing_latency_seconds",
            "Time to answer a read forwarded to a partition owner (lookup, retries and the owner's reply).",
            ["operation", "outcome"],
            registry=registry,
            buckets=ROUTING_BUCKETS,
        )
        self.unavailable_reads = Counter(
            "ledgerflow_gateway_owner_unavailable_total",
            "Reads answered 503 because the partition owner was unknown, moving or unreachable.",
            ["reason"],
            registry=registry,
        )
        self.refreshes = Counter(
            "ledgerflow_gateway_directory_refreshes_total",
            "Reads of the engine group's membership.",
            ["trigger"],
            registry=registry,
        )

    def read(self, operation: str, outcome: str, seconds: float) -> None:
        self.latency.labels(operation, outcome).observe(seconds)

    def unavailable(self, kind: str) -> None:
        self.unavailable_reads.labels(kind).inc()

    def refreshed(self, trigger: str) -> None:
        self.refreshes.labels(trigger).inc()


def owner_reads(settings: GatewaySettings, metrics: RoutingMetrics, engine_token: str | None) -> OwnerReads:
    """The gateway's reads: one retry within ``owner_timeout``, the group read every ``directory_ttl``."""
    return OwnerReads(
        settings,
        engine_token,
        budget=settings.owner_timeout,
        ttl=settings.directory_ttl,
        attempts=2,
        retry_after=float(settings.retry_after),
        observer=metrics,
    )
