"""``ledgerflow topics create|grant``: provision the deployment's topics and its ACLs."""

from __future__ import annotations

import click
from confluent_kafka import KafkaException

from ledgerflow import namespaces
from ledgerflow.cli.options import kafka_options, settings_from
from ledgerflow.engine.kafka import acls
from ledgerflow.engine.kafka.admin import ensure_topics
from ledgerflow.errors import TopicLayoutError


@click.group("topics")
def topics_group() -> None:
    """Manage Ledgerflow's Kafka topics."""


@topics_group.command("create")
@kafka_options
@click.option(
    "--queue",
    "queues",
    multiple=True,
    default=["default"],
    show_default=True,
    help="Task queues to create topics for.",
)
@click.option(
    "--namespace",
    "namespace_names",
    multiple=True,
    help="Namespaces to create an ingress topic for (<prefix>ingress.<namespace>: docs/kafka-ingress.md).",
)
def create(
    bootstrap: str,
    prefix: str,
    partitions: int,
    replication_factor: int,
    queues: tuple[str, ...],
    namespace_names: tuple[str, ...],
) -> None:
    """Create missing topics; fail if existing ones have another partition count."""
    settings = settings_from(bootstrap, prefix, partitions, replication_factor)
    for name in namespace_names:
        _check_namespace(name, "--namespace")
    try:
        created = ensure_topics(settings, queues, namespaces=namespace_names)
    except TopicLayoutError as exc:
        raise click.ClickException(str(exc)) from exc
    for name in created:
        click.echo(f"created {name}")
    click.echo(f"topics ready ({settings.partitions} partitions, prefix {settings.prefix!r})")


@topics_group.command("grant")
@kafka_options
@click.option("--engine", default="User:engine", show_default=True, help="The engines' principal.")
@click.option("--worker", default="User:worker", show_default=True, help="The workers' principal.")
@click.option("--gateway", default="User:gateway", show_default=True, help="The gateways' principal.")
@click.option(
    "--client", default="User:client", show_default=True, help="The CLI's and SDK Client's principal."
)
@click.option(
    "--queue-worker",
    "queue_workers",
    multiple=True,
    metavar="QUEUE=PRINCIPAL",
    help="A worker principal for one queue only (repeatable); with --worker '' no principal gets "
    "every queue.",
)
@click.option(
    "--namespace-producer",
    "namespace_producers",
    multiple=True,
    metavar="NAMESPACE=PRINCIPAL",
    help="A producer of one namespace's commands (repeatable): it may write that namespace's ingress "
    "topic and nothing else.",
)
def grant(
    bootstrap: str,
    prefix: str,
    partitions: int,
    replication_factor: int,
    engine: str,
    worker: str,
    gateway: str,
    client: str,
    queue_workers: tuple[str, ...],
    namespace_producers: tuple[str, ...],
) -> None:
    """Create each component's Kafka ACLs under the prefix (run with an admin's --kafka-config);
    the table is in docs/operations.md. An empty principal skips that component."""
    settings = settings_from(bootstrap, prefix, partitions, replication_factor)
    named = {"engine": engine, "worker": worker, "gateway": gateway, "client": client}
    principals = {component: who for component, who in named.items() if who}
    per_queue = _pairs(queue_workers, "QUEUE", "--queue-worker")
    per_namespace = _pairs(namespace_producers, "NAMESPACE", "--namespace-producer")
    for name in per_namespace:
        _check_namespace(name, "--namespace-producer")
    try:
        count = acls.grant(settings, principals, per_queue, per_namespace)
    except KafkaException as exc:
        raise click.ClickException(f"could not create the ACLs: {exc.args[0].str()}") from exc
    granted = [
        *(f"{c}={p}" for c, p in principals.items()),
        *(f"queue {q}={p}" for q, p in per_queue.items()),
        *(f"namespace {n}={p}" for n, p in per_namespace.items()),
    ]
    click.echo(f"{count} ACLs under prefix {settings.prefix!r}: " + ", ".join(granted))


def _pairs(items: tuple[str, ...], name: str, option: str) -> dict[str, str]:
    """``NAME=PRINCIPAL`` options as a mapping."""
    pairs: dict[str, str] = {}
    for item in items:
        key, sep, who = item.partition("=")
        if not (sep and key and who):
            raise click.BadParameter(f"{item!r}: expected {name}=PRINCIPAL", param_hint=option)
        pairs[key] = who
    return pairs


def _check_namespace(name: str, option: str) -> None:
    if not namespaces.is_valid(name):
        raise click.BadParameter(f"{name!r}: a namespace is {namespaces.RULE}", param_hint=option)
