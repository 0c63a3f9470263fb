"""The Kafka ACLs each Ledgerflow component needs on a cluster that enforces them.

One table, under a deployment's topic prefix: ``ledgerflow topics grant`` creates it for the
principals given, docs/operations.md prints it (``python -m ledgerflow.engine.kafka.acls``),
and the secure-broker tests prove each component works with exactly these and no more (a
worker cannot write the changelog; a principal without grants cannot read the inbox).
Everything a component touches is named under the prefix (topics, consumer groups,
transactional ids), so the grants are prefixed patterns and a deployment cannot reach another
deployment's data on a shared cluster.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    ResourcePatternType,
    ResourceType,
)

from ledgerflow import kafkaclients as clients
from ledgerflow.config import Settings

Op = AclOperation
CLUSTER_NAME = "kafka-cluster"


@dataclass(frozen=True)
class Grant:
    """Operations on the resources whose name is the prefix + ``name`` (all of them that start
    with it when ``prefixed``)."""

    resource: ResourceType
    name: str
    operations: tuple[AclOperation, ...]
    prefixed: bool = False
    why: str = ""


_TOPIC, _GROUP, _TXN, _CLUSTER = (
    ResourceType.TOPIC,
    ResourceType.GROUP,
    ResourceType.TRANSACTIONAL_ID,
    ResourceType.BROKER,
)
_IDEMPOTENT = Grant(_CLUSTER, CLUSTER_NAME, (Op.IDEMPOTENT_WRITE,), why="idempotent producer")
_READER_GROUP = Grant(
    _GROUP, "reader", (Op.READ, Op.DESCRIBE), why="assign()-only readers (events, definitions)"
)
_ENGINE_MEMBERS = Grant(_GROUP, "engine", (Op.DESCRIBE,), why="which engine owns which partition")
_ADVERTS = Grant(_TOPIC, "workers", (Op.WRITE, Op.DESCRIBE), why="advertises the activities it serves")
_CLAIMS = (
    Grant(_TOPIC, "claims", (Op.READ, Op.WRITE, Op.DESCRIBE), why="built-ins' results too large for history"),
    _READER_GROUP,
    Grant(
        _GROUP,
        "consumer.",
        (Op.READ, Op.DESCRIBE),
        prefixed=True,
        why="kafka.consumer nodes' groups (READ on each topic they read is the operator's to grant)",
    ),
)
_CALLER = (
    Grant(_TOPIC, "inbox", (Op.WRITE, Op.DESCRIBE), why="starts, signals, cancels"),
    Grant(_TOPIC, "definitions", (Op.READ, Op.WRITE, Op.DESCRIBE), why="registers DAGs"),
    Grant(_TOPIC, "events", (Op.READ, Op.DESCRIBE), why="lifecycle events, waiting for results"),
    Grant(_TOPIC, "cluster", (Op.READ, Op.DESCRIBE), why="cluster events"),
    _READER_GROUP,
    _ENGINE_MEMBERS,
    _IDEMPOTENT,
)
"""What the gateway and the CLI/SDK Client both do: write commands and definitions, read events,
find owners."""

COMPONENTS: dict[str, tuple[Grant, ...]] = {
    "engine": (
        Grant(
            _TOPIC,
            "",
            (Op.READ, Op.WRITE, Op.DESCRIBE, Op.CREATE, Op.DESCRIBE_CONFIGS, Op.ALTER_CONFIGS),
            prefixed=True,
            why="owns every topic: creates and checks them, reads the inbox, writes state",
        ),
        Grant(
            _GROUP,
            "",
            (Op.READ, Op.DESCRIBE, Op.DESCRIBE_CONFIGS, Op.ALTER_CONFIGS),
            prefixed=True,
            why="the engine group (and its session timeouts), workers' groups for queue checks",
        ),
        Grant(_TXN, "engine-", (Op.WRITE, Op.DESCRIBE), prefixed=True, why="one transaction per batch"),
        _IDEMPOTENT,
    ),
    "worker": (
        Grant(
            _TOPIC,
            "tasks.",
            (Op.READ, Op.DESCRIBE, Op.CREATE, Op.DESCRIBE_CONFIGS),
            prefixed=True,
            why="reads its queues' tasks (creates a queue's topic on first start)",
        ),
        Grant(_TOPIC, "inbox", (Op.WRITE, Op.DESCRIBE), why="writes results and heartbeats"),
        Grant(_GROUP, "workers.", (Op.READ, Op.DESCRIBE), prefixed=True, why="one group per queue"),
        _ADVERTS,
        *_CLAIMS,
        _IDEMPOTENT,
    ),
    "gateway": (
        *_CALLER,
        Grant(_TOPIC, "tasks.", (Op.DESCRIBE,), prefixed=True, why="a DAG's queues exist"),
        Grant(_GROUP, "workers.", (Op.DESCRIBE,), prefixed=True, why="a DAG's queues have workers"),
        Grant(_TOPIC, "workers", (Op.READ, Op.DESCRIBE), why="the activities workers serve"),
    ),
    "client": _CALLER,
}
"""What each component needs; the SDK Client and the CLI are ``client``."""


def queue_worker(queue: str) -> tuple[Grant, ...]:
    """A worker of one queue only: what the ``worker`` grants give, for that queue's topic and
    group alone (literal names), so its principal reads no other queue's tasks."""
    return (
        Grant(_TOPIC, f"tasks.{queue}", (Op.READ, Op.DESCRIBE, Op.CREATE, Op.DESCRIBE_CONFIGS), why=queue),
        Grant(_TOPIC, "inbox", (Op.WRITE, Op.DESCRIBE), why="writes results and heartbeats"),
        Grant(_GROUP, f"workers.{queue}", (Op.READ, Op.DESCRIBE), why=queue),
        _ADVERTS,
        *_CLAIMS,
        _IDEMPOTENT,
    )


def namespace_producer(namespace: str) -> tuple[Grant, ...]:
    """A producer of one namespace's commands: it writes that namespace's ingress topic and
    nothing else (ledgerflow/engine/ingress.py), so the broker, not the record, says which namespace it
    acts in."""
    return (
        Grant(_TOPIC, f"ingress.{namespace}", (Op.WRITE, Op.DESCRIBE), why=f"{namespace}'s commands"),
        _IDEMPOTENT,
    )


def bindings(component: str, principal: str, prefix: str) -> list[AclBinding]:
    """The allow-ACLs of ``component`` for ``principal`` (e.g. ``User:engine``) under ``prefix``."""
    return _bindings(COMPONENTS[component], principal, prefix)


def _bindings(grants: tuple[Grant, ...], principal: str, prefix: str) -> list[AclBinding]:
    out = []
    for grant in grants:
        cluster = grant.resource == _CLUSTER
        name = CLUSTER_NAME if cluster else prefix + grant.name
        for operation in grant.operations:
            out.append(
                AclBinding(
                    ResourceType.BROKER if cluster else grant.resource,
                    name,
                    ResourcePatternType.PREFIXED if grant.prefixed else ResourcePatternType.LITERAL,
                    principal,
                    "*",
                    operation,
                    AclPermissionType.ALLOW,
                )
            )
    return out


def grant(
    settings: Settings,
    principals: Mapping[str, str],
    queue_workers: Mapping[str, str] | None = None,
    namespace_producers: Mapping[str, str] | None = None,
    timeout: float = 30.0,
) -> int:
    """Create the ACLs of each ``component → principal``, each ``queue → worker principal``
    (:func:`queue_worker`) and each ``namespace → producer principal``
    (:func:`namespace_producer`) under ``settings.prefix``, with the settings' credentials (an
    admin's); returns how many bindings exist for them now."""
    unknown = sorted(set(principals) - set(COMPONENTS))
    if unknown:
        raise ValueError(f"no such component: {', '.join(unknown)} (known: {', '.join(COMPONENTS)})")
    wanted = [b for c, p in principals.items() for b in bindings(c, p, settings.prefix)]
    for queue, principal in (queue_workers or {}).items():
        wanted += _bindings(queue_worker(queue), principal, settings.prefix)
    for namespace, principal in (namespace_producers or {}).items():
        wanted += _bindings(namespace_producer(namespace), principal, settings.prefix)
    if not wanted:
        return 0
    admin = clients.admin(settings)  # kept alive until every future has its answer
    for future in admin.create_acls(wanted, request_timeout=timeout).values():
        future.result(timeout)
    return len(wanted)


def table(prefix: str = "<prefix>") -> str:
    """The grants as a Markdown table, for the operations guide."""
    rows = ["| component | resource | name | operations | why |", "|---|---|---|---|---|"]
    for component, grants in COMPONENTS.items():
        for g in grants:
            name = (
                CLUSTER_NAME
                if g.resource == _CLUSTER
                else f"`{prefix}{g.name}`" + (" (prefixed)" if g.prefixed else "")
            )
            kind = "CLUSTER" if g.resource == _CLUSTER else g.resource.name
            ops = ", ".join(op.name for op in g.operations)
            rows.append(f"| {component} | {kind} | {name} | {ops} | {g.why} |")
    return "\n".join(rows)


if __name__ == "__main__":
    print(table())
