"""``ledgerflow topics create|grant``: provision the deployment's topics and its ACLs."""

from __future__ import annotations

import click
from confluent_kafka import KafkaException

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
def create(
    bootstrap: str, prefix: str, partitions: int, replication_factor: int, queues: tuple[str, ...]
) -> None:
    """Create missing topics; fail if existing ones have another partition count."""
    settings = settings_from(bootstrap, prefix, partitions, replication_factor)
    try:
        created = ensure_topics(settings, queues)
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
) -> None:
    """Create each component's Kafka ACLs under the prefix (run with an admin's --kafka-config);
    the table is in docs/operations.md. An empty principal skips that component."""
    settings = settings_from(bootstrap, prefix, partitions, replication_factor)
    named = {"engine": engine, "worker": worker, "gateway": gateway, "client": client}
    principals = {component: who for component, who in named.items() if who}
    per_queue: dict[str, str] = {}
    for item in queue_workers:
        queue, sep, who = item.partition("=")
        if not (sep and queue and who):
            raise click.BadParameter(f"{item!r}: expected QUEUE=PRINCIPAL", param_hint="--queue-worker")
        per_queue[queue] = who
    try:
        count = acls.grant(settings, principals, per_queue)
    except KafkaException as exc:
        raise click.ClickException(f"could not create the ACLs: {exc.args[0].str()}") from exc
    granted = [
        *(f"{c}={p}" for c, p in principals.items()),
        *(f"queue {q}={p}" for q, p in per_queue.items()),
    ]
    click.echo(f"{count} ACLs under prefix {settings.prefix!r}: " + ", ".join(granted))
