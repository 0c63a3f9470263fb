"""Topic provisioning: the topics of a Ledgerflow deployment, checked at every start."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource
from confluent_kafka.cimpl import NewTopic

from ledgerflow import kafkaclients as clients
from ledgerflow.config import Settings
from ledgerflow.errors import TopicLayoutError
from ledgerflow.kafkaclients import RECORD_FRAMING


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str]


KAFKA_DEFAULT_MAX_MESSAGE = 1_048_588
"""The broker's default ``message.max.bytes``: topics Ledgerflow creates accept at least this."""


def record_room(settings: Settings) -> int:
    """The largest record (with its framing) a topic must accept from Ledgerflow."""
    return settings.max_record_bytes + RECORD_FRAMING


def topic_specs(
    settings: Settings, queues: tuple[str, ...] = ("default",), namespaces: tuple[str, ...] = ()
) -> list[TopicSpec]:
    """Every topic Ledgerflow needs; inbox, changelog and events share the shard count. With
    ``namespaces``, their ingress topics too (ledgerflow/engine/ingress.py)."""
    n = settings.partitions
    base: dict[str, str] = {"max.message.bytes": str(max(KAFKA_DEFAULT_MAX_MESSAGE, record_room(settings)))}
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
        TopicSpec(
            settings.topic("claims"),
            n,
            {**base, "cleanup.policy": "delete", "retention.ms": str(7 * 24 * 3600 * 1000)},
        ),
        TopicSpec(settings.topic("definitions"), 1, {**base, "cleanup.policy": "compact"}),
        # a worker's advert is rewritten every 30 s: ten minutes of them is all a reader needs,
        # and a worker killed without its tombstone is gone from the topic after that
        TopicSpec(
            settings.topic("workers"),
            1,
            {**base, "cleanup.policy": "compact,delete", "retention.ms": "600000", "segment.ms": "120000"},
        ),
        TopicSpec(
            settings.topic("cluster"),
            1,
            {**base, "cleanup.policy": "delete", "retention.ms": str(7 * 24 * 3600 * 1000)},
        ),
    ]
    specs += [TopicSpec(settings.task_topic(q), n, {**base, "cleanup.policy": "delete"}) for q in queues]
    specs += [
        TopicSpec(settings.ingress_topic(ns), n, {**base, "cleanup.policy": "delete"}) for ns in namespaces
    ]
    return specs


def ensure_topics(
    settings: Settings,
    queues: tuple[str, ...] = ("default",),
    timeout: float = 30.0,
    namespaces: tuple[str, ...] = (),
) -> list[str]:
    """Create the deployment's missing topics; fail loudly when an existing one has another
    partition count or would refuse Ledgerflow's largest records.

    Returns the names of the topics it created.
    """
    return _ensure(settings, topic_specs(settings, queues, namespaces), timeout)


def ensure_queue_topics(settings: Settings, queues: tuple[str, ...], timeout: float = 30.0) -> list[str]:
    """As ``ensure_topics``, for the task topics of ``queues`` alone (the engine, when a run
    first names a queue: the rest of the deployment was checked when it started)."""
    names = {settings.task_topic(queue) for queue in queues}
    return _ensure(settings, [s for s in topic_specs(settings, queues) if s.name in names], timeout)


def _ensure(settings: Settings, specs: list[TopicSpec], timeout: float) -> list[str]:
    admin = clients.admin(settings)
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
    _check_record_limits(admin, settings, [s.name for s in specs if s.name in existing], timeout)
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
        _ensure(settings, specs, timeout)
    return created


def _max_message_bytes(admin: AdminClient, resource: ConfigResource, future: Any, timeout: float) -> int:
    """A topic's ``max.message.bytes``; a topic created a moment ago, which a broker does not
    know yet (UNKNOWN_TOPIC_OR_PART while its metadata propagates), is asked again."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return int(future.result(timeout=timeout)["max.message.bytes"].value)
        except KafkaException as exc:
            unknown = exc.args and exc.args[0].code() == KafkaError.UNKNOWN_TOPIC_OR_PART
            if not unknown or time.monotonic() > deadline:
                raise
        time.sleep(0.2)
        future = admin.describe_configs([resource], request_timeout=timeout)[resource]


def _check_record_limits(admin: AdminClient, settings: Settings, names: list[str], timeout: float) -> None:
    """Fail at start when a topic would refuse the records Ledgerflow may write to it.

    Otherwise the first large record fails its batch's transaction at run time, over and over.
    """
    if not names:
        return
    resources = [ConfigResource(ConfigResource.Type.TOPIC, name) for name in names]
    need = record_room(settings)
    for resource, future in admin.describe_configs(resources, request_timeout=timeout).items():
        limit = _max_message_bytes(admin, resource, future, timeout)
        if limit < need:
            raise TopicLayoutError(
                f"topic {resource.name!r} accepts records of at most {limit:,} bytes (max.message.bytes) "
                f"but Ledgerflow may write {need:,} (max_record_bytes {settings.max_record_bytes:,} plus "
                f"{RECORD_FRAMING:,} of framing): raise the topic's max.message.bytes or lower "
                "LEDGERFLOW_MAX_RECORD_BYTES"
            )
