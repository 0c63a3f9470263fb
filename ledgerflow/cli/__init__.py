"""The ``ledgerflow`` command line: one entry point, one sub-command module per area."""

from __future__ import annotations

import click

from ledgerflow import __version__
from ledgerflow.cli.api import api_command
from ledgerflow.cli.codec import codec_group
from ledgerflow.cli.credentials import api_key_group, engine_token_group
from ledgerflow.cli.dev import dev_command
from ledgerflow.cli.kafka import kafka_group
from ledgerflow.cli.replay import replay_command
from ledgerflow.cli.reshard import reshard_command
from ledgerflow.cli.run import engine_command, worker_command
from ledgerflow.cli.schedules import schedule_group
from ledgerflow.cli.topics import topics_group
from ledgerflow.cli.workflows import (
    cancel_command,
    cluster_group,
    count_command,
    describe_command,
    history_command,
    list_command,
    reset_command,
    signal_command,
    start_command,
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ledgerflow")
def main() -> None:
    """Ledgerflow: durable execution on Apache Kafka."""


main.add_command(kafka_group)
main.add_command(topics_group)
main.add_command(engine_command)
main.add_command(worker_command)
main.add_command(dev_command)
main.add_command(api_command)
main.add_command(api_key_group)
main.add_command(engine_token_group)
main.add_command(codec_group)
for command in (
    start_command,
    signal_command,
    cancel_command,
    reset_command,
    describe_command,
    history_command,
    list_command,
    count_command,
    schedule_group,
    cluster_group,
    replay_command,
    reshard_command,
):
    main.add_command(command)
