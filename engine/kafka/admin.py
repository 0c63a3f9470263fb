"""Topic provisioning: the topics of a Ledgerflow deployment, checked at every start."""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from ledgerflow.config import Settings
from ledgerflow.errors import TopicLayoutError


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str]


def topic_specs(settings: Settings, queues: tuple[str, ...] = ("default",)) -> list[TopicSpec]:
    """Every topic Ledgerflow needs; inbox, changelog and events share the shard count."""
    n = settings.partitions
    base: dict[str, str] = {}
    if settings.min_insync_replicas:
        base["min.insync.replicas"] = str(settings.min_insync_replicas)
    specs = [
        TopicSpec(settings.topic("inbox"), n, {**base, "cleanup.policy": "delete"}),
        TopicSpec(
            settings.topic("changelog"),
            n,
            {**base, "cleanup.policy": "compact", "delete.retention.ms": str(7 * 24 * 3600 * 1000)},
        ),
        TopicSpec(
            settings.topic("events"),
            n,
            {**base, "cleanup.policy": "delete", "retention.ms": str(30 * 24 * 3600 * 1000)},
        ),
        TopicSpec(settings.topic("inbox.dlq"), n, {**base, "cleanup.policy": "delete"}),
        TopicSpec(settings.topic("definitions"), 1, {**base, "cleanup.policy": "compact"}),
        TopicSpec(
            settings.topic("cluster"),
            1,
            {**base, "cleanup.policy": "delete", "retention.ms": str(7 * 24 * 3600 * 1000)},
        ),
    ]
    specs += [TopicSpec(settings.task_topic(q), n, {**base, "cleanup.policy": "delete"}) for q in queues]
    return specs


def ensure_topics(
    settings: Settings, queues: tuple[str, ...] = ("default",), timeout: float = 30.0
) -> list[str]:
    """Create missing topics; fail loudly when an existing one has another partition count.

    Returns the names of the topics it created.
    """
    admin = AdminClient({"bootstrap.servers": settings.bootstrap})
    specs = topic_specs(settings, queues)
    existing = admin.list_topics(timeout=timeout).topics
    for spec in specs:
        found = existing.get(spec.name)
        if found is not None and len(found.partitions) != spec.partitions:
            raise TopicLayoutError(
                f"topic {spec.name!r} has {len(found.partitions)} partitions but this deployment is "
                f"configured for {spec.partitions}; the shard count is fixed when topics are created "
                "(`ledgerflow reshard` moves a deployment to another count: docs/operations.md)"
            )
    missing = [s for s in specs if s.name not in existing]
    if not missing:
        return []
    futures = admin.create_topics(
        [
            NewTopic(
                s.name,
                num_partitions=s.partitions,
                replication_factor=settings.replication_factor,
                config=s.config,
            )
            for s in missing
        ],
        operation_timeout=timeout,
    )
    created = []
    for name, future in futures.items():
        try:
            future.result(timeout=timeout)
            created.append(name)
        except KafkaException as exc:
            if exc.args[0].name() != "TOPIC_ALREADY_EXISTS":
                raise
    if created:
        # A concurrent creator may have used another partition count: check again.
        ensure_topics(settings, queues, timeout)
    return created
