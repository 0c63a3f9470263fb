"""``ledgerflow replay``: check a recorded run against today's workflow code."""

from __future__ import annotations

import json
from pathlib import Path

import click

from ledgerflow import Client
from ledgerflow.cli.options import kafka_options, settings_from
from ledgerflow.codec.keyfile import load_codec
from ledgerflow.engine.workflow.replayer import replay_run
from ledgerflow.errors import LedgerflowError
from ledgerflow.schemas.events import HistoryEvent
from ledgerflow.schemas.history import WorkflowHistory
from ledgerflow.sdk.definition import WorkflowRegistry


@click.command("replay")
@kafka_options
@click.argument("workflow_id", required=False)
@click.option(
    "--workflows", "modules", multiple=True, required=True, help="Module(s) with today's workflows."
)
@click.option("--run-id", default=None, help="A specific run (default: the latest).")
@click.option(
    "--file",
    "history_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A history written by `ledgerflow history ID --export FILE` (instead of asking the engine).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def replay_command(
    bootstrap: str,
    prefix: str,
    partitions: int,
    replication_factor: int,
    workflow_id: str | None,
    modules: tuple[str, ...],
    run_id: str | None,
    history_file: Path | None,
    as_json: bool,
) -> None:
    """Replay WORKFLOW_ID's history against today's code; exit 1 at the first divergence."""
    events: list[HistoryEvent]
    settings = settings_from(bootstrap, prefix, partitions, replication_factor)
    if history_file is not None:
        try:
            recorded = WorkflowHistory.from_json(history_file.read_text())
        except ValueError as exc:  # pydantic's ValidationError is one
            raise click.ClickException(f"{history_file}: {exc}") from exc
        workflow_id, run_id, events = recorded.workflow_id, recorded.run_id, recorded.events
    elif workflow_id is None:
        raise click.UsageError("give a WORKFLOW_ID or --file")
    else:
        with Client(settings=settings) as client:
            try:
                events = client.history(workflow_id, run_id)
                run_id = run_id or client.describe(workflow_id)["run_id"]
            except LedgerflowError as exc:
                raise click.ClickException(str(exc)) from exc
    assert workflow_id is not None and run_id is not None
    try:
        registry = WorkflowRegistry.from_modules(modules)
        result = replay_run(registry, workflow_id, run_id, events, load_codec(settings))
    except (LookupError, ValueError, LedgerflowError) as exc:
        raise click.ClickException(str(exc)) from exc
    if as_json:
        click.echo(
            json.dumps(
                {
                    "workflow_id": workflow_id,
                    "run_id": run_id,
                    "events": result.events,
                    "deterministic": result.deterministic,
                    "divergence": result.divergence,
                }
            )
        )
    elif result.deterministic:
        click.echo(f"{workflow_id} run {run_id}: deterministic ({result.events} events replayed)")
    else:
        click.echo(f"{workflow_id} run {run_id}: NOT deterministic\n  {result.divergence}")
    if not result.deterministic:
        raise SystemExit(1)
