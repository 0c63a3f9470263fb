"""``ledgerflow reshard``: move a stopped deployment to another shard count or partitioner."""

from __future__ import annotations

import dataclasses
import json

import click
from rich.console import Console

from ledgerflow.cli.kafka import progress_reporter
from ledgerflow.config import Settings
from ledgerflow.engine.reshard import reshard
from ledgerflow.errors import DeploymentMovedError, ReshardError, TopicLayoutError


@click.command("reshard")
@click.option("--bootstrap", envvar="LEDGERFLOW_BOOTSTRAP", default=Settings().bootstrap, show_default=True)
@click.option(
    "--prefix",
    envvar="LEDGERFLOW_PREFIX",
    default=Settings().prefix,
    show_default=True,
    help="Prefix of the deployment to move (its engines and workers stopped).",
)
@click.option(
    "--partitioner",
    envvar="LEDGERFLOW_PARTITIONER",
    default=None,
    help="The old deployment's custom partitioner, if any (only to read it; records are re-routed by id).",
)
@click.option("--to-prefix", required=True, help="Prefix of the new topics (must not hold records yet).")
@click.option(
    "--to-partitions", type=click.IntRange(min=1), required=True, help="Shard count of the new topics."
)
@click.option(
    "--to-partitioner",
    default=None,
    help="Partitioner 'module:function' of the new deployment (default: murmur2 of the workflow id).",
)
@click.option(
    "--replication-factor",
    envvar="LEDGERFLOW_REPLICATION_FACTOR",
    type=int,
    default=Settings().replication_factor,
    show_default=True,
    help="Replication factor of the new topics.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def reshard_command(
    bootstrap: str,
    prefix: str,
    partitioner: str | None,
    to_prefix: str,
    to_partitions: int,
    to_partitioner: str | None,
    replication_factor: int,
    as_json: bool,
) -> None:
    """Copy every workflow of a stopped deployment to new topics with another shard count.

    Stop the old deployment's gateways, engines and workers first (engines and workers are
    checked). Open runs keep their history, timers and pending activities; running
    activity attempts are sent again. The old topics are sealed: their engines refuse to
    start. Then run everything with --prefix TO_PREFIX --partitions TO_PARTITIONS.
    """
    source = Settings(bootstrap=bootstrap, prefix=prefix, partitioner=partitioner)
    target = Settings(
        bootstrap=bootstrap,
        prefix=to_prefix,
        partitions=to_partitions,
        partitioner=to_partitioner,
        replication_factor=replication_factor,
    )
    console = Console(stderr=True)
    try:
        with progress_reporter(console, f"Moving {prefix} to {to_prefix}") as progress:
            report = reshard(source, target, progress)
    except (ReshardError, DeploymentMovedError, TopicLayoutError) as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(json.dumps(dataclasses.asdict(report)))
        return
    click.echo(
        f"moved {report.workflows} workflows ({report.open_workflows} open) from {prefix} "
        f"({report.source_partitions} partitions) to {to_prefix} ({report.target_partitions} partitions) "
        f"in {report.seconds:.1f} s: {report.state_records} state records, {report.inbox_records} "
        f"unprocessed inbox records, {report.tasks_redispatched} running activities re-sent, "
        f"{report.definitions} definitions"
    )
    click.echo(f"open workflows per new partition: {report.open_per_partition}")
    click.echo(
        f"next: run engines, workers and gateways with --prefix {to_prefix} --partitions {to_partitions}"
    )
