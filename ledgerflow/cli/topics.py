"""``ledgerflow topics create``: provision the deployment's topics."""

from __future__ import annotations

import click

from ledgerflow.cli.options import kafka_options, settings_from
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
