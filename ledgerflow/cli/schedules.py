"""``ledgerflow schedule create|list|describe|pause|unpause|trigger|backfill|update|delete``."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, TypeVar

import click
from pydantic import ValidationError
from rich.table import Table

from ledgerflow import Client
from ledgerflow.cli.options import kafka_options, settings_from
from ledgerflow.cli.workflows import emit, fail, json_option
from ledgerflow.errors import LedgerflowError
from ledgerflow.schedule_client import ScheduleHandle
from ledgerflow.schemas.schedules import (
    CalendarSpec,
    IntervalSpec,
    Schedule,
    ScheduleAction,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
)

F = TypeVar("F", bound=Callable[..., Any])
OVERLAPS = ["skip", "buffer_one", "buffer_all", "cancel_other", "terminate_other", "allow_all"]


@click.group("schedule")
def schedule_group() -> None:
    """Schedules: start a workflow by cron, calendar, interval or at set times."""


@contextmanager
def _handle(kafka: dict[str, Any], schedule_id: str) -> Iterator[ScheduleHandle]:
    with Client(settings=settings_from(**kafka)) as client:
        try:
            yield client.get_schedule_handle(schedule_id)
        except (LedgerflowError, ValueError) as exc:
            fail(exc)


def _kafka(bootstrap: str, prefix: str, partitions: int, replication_factor: int) -> dict[str, Any]:
    return {
        "bootstrap": bootstrap,
        "prefix": prefix,
        "partitions": partitions,
        "replication_factor": replication_factor,
    }


@schedule_group.command("create")
@kafka_options
@click.argument("schedule_id")
@click.option(
    "--workflow", "workflow_type", required=True, help="Workflow type (or DAG id) each fire starts."
)
@click.option("--input", "input_json", default="null", show_default=True, help="The runs' input, as JSON.")
@click.option("--cron", multiple=True, help="A cron expression (repeatable): '0 9 * * MON-FRI', '@daily'.")
@click.option("--every", type=float, multiple=True, help="An interval in seconds (repeatable).")
@click.option("--calendar", multiple=True, help='A calendar as JSON (repeatable): \'{"hour": "9-17"}\'.')
@click.option(
    "--at", "at_times", multiple=True, help="A one-off time, ISO 8601 with its offset (repeatable)."
)
@click.option("--time-zone", default="UTC", show_default=True, help="IANA zone of cron and calendars.")
@click.option("--overlap", type=click.Choice(OVERLAPS), default="skip", show_default=True)
@click.option("--catchup-window", type=float, default=None, help="Seconds a missed fire may be late.")
@click.option("--jitter", type=float, default=0.0, help="Seconds each start may be delayed, at most.")
@click.option("--pause-on-failure", is_flag=True, help="Pause when a run fails.")
@click.option("--paused", is_flag=True, help="Create it paused.")
@click.option("--remaining-actions", type=int, default=None, help="Stop after this many starts.")
@json_option
def create_command(
    bootstrap: str,
    prefix: str,
    partitions: int,
    replication_factor: int,
    schedule_id: str,
    workflow_type: str,
    input_json: str,
    cron: tuple[str, ...],
    every: tuple[float, ...],
    calendar: tuple[str, ...],
    at_times: tuple[str, ...],
    time_zone: str,
    overlap: str,
    catchup_window: float | None,
    jitter: float,
    pause_on_failure: bool,
    paused: bool,
    remaining_actions: int | None,
    as_json: bool,
) -> None:
    """Create schedule SCHEDULE_ID."""
    try:
        policy: dict[str, Any] = {"overlap": overlap, "pause_on_failure": pause_on_failure}
        if catchup_window is not None:
            policy["catchup_window"] = catchup_window
        schedule = Schedule(
            action=ScheduleAction(workflow_type=workflow_type, input=json.loads(input_json)),
            spec=ScheduleSpec(
                cron_expressions=list(cron),
                intervals=[IntervalSpec(every=e) for e in every],
                calendars=[CalendarSpec.model_validate_json(text) for text in calendar],
                at=list(at_times),  # type: ignore[arg-type]  # validated from ISO text
                time_zone=time_zone,
                jitter=jitter,
            ),
            policy=SchedulePolicy(**policy),
            state=ScheduleState(paused=paused, remaining_actions=remaining_actions),
        )
    except (ValidationError, json.JSONDecodeError) as exc:
        raise click.BadParameter(str(exc)) from None
    kafka = _kafka(bootstrap, prefix, partitions, replication_factor)
    with Client(settings=settings_from(**kafka)) as client:
        try:
            described = client.create_schedule(schedule_id, schedule).describe()
        except (LedgerflowError, ValueError) as exc:
            fail(exc)
    _show(described.model_dump(mode="json"), as_json)


@schedule_group.command("list")
@kafka_options
@json_option
def list_command(
    bootstrap: str, prefix: str, partitions: int, replication_factor: int, as_json: bool
) -> None:
    """Every schedule of the namespace, with its next fire time."""
    with Client(settings=settings_from(bootstrap, prefix, partitions, replication_factor)) as client:
        try:
            entries = client.list_schedules()
        except LedgerflowError as exc:
            fail(exc)
    rows = [
        {
            **entry.__dict__,
            "next_fire_time": entry.next_fire_time.isoformat() if entry.next_fire_time else None,
        }
        for entry in entries
    ]
    table = Table("schedule id", "workflow", "state", "next fire", "actions", "running", title="schedules")
    for row in rows:
        state = f"paused: {row['note']}" if row["paused"] else "active"
        table.add_row(
            row["id"],
            row["workflow_type"],
            state,
            row["next_fire_time"] or "-",
            str(row["actions"]),
            str(row["running"]),
        )
    emit(rows, as_json, table)


@schedule_group.command("describe")
@kafka_options
@click.argument("schedule_id")
@json_option
def describe_command(
    bootstrap: str, prefix: str, partitions: int, replication_factor: int, schedule_id: str, as_json: bool
) -> None:
    """The schedule, its next 10 fire times and its last 10 actions."""
    with _handle(_kafka(bootstrap, prefix, partitions, replication_factor), schedule_id) as handle:
        described = handle.describe()
    _show(described.model_dump(mode="json"), as_json)


def _show(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit(data, True)
        return
    info, state = data["info"], data["schedule"]["state"]
    click.echo(
        f"schedule {data['schedule_id']}: {'paused (' + state['note'] + ')' if state['paused'] else 'active'}"
    )
    click.echo(
        f"  starts {data['schedule']['action']['workflow_type']}; {info['actions']} actions, "
        f"{info['missed']} missed, {info['skipped']} skipped, {len(info['running'])} running"
    )
    for fire in info["next_fire_times"]:
        click.echo(f"  next   {fire}")
    for action in info["recent_actions"]:
        click.echo(
            f"  ran    {action['fire_time']}  {action['workflow_id']}  {action['status'] or 'RUNNING'}"
        )


def _action(
    name: str, help_text: str, call: Callable[[ScheduleHandle, dict[str, Any]], None], options: list[Any]
) -> None:
    @kafka_options
    @click.argument("schedule_id")
    def command(
        bootstrap: str, prefix: str, partitions: int, replication_factor: int, schedule_id: str, **values: Any
    ) -> None:
        with _handle(_kafka(bootstrap, prefix, partitions, replication_factor), schedule_id) as handle:
            call(handle, values)
        click.echo(f"{name}: {schedule_id}")

    for option in reversed(options):
        command = option(command)
    schedule_group.command(name, help=help_text)(command)


note_option = click.option("--note", default="", help="Why (shown by describe).")
overlap_option = click.option("--overlap", type=click.Choice(OVERLAPS), default=None)
_action("pause", "Pause the schedule.", lambda h, v: h.pause(v["note"]), [note_option])
_action(
    "unpause",
    "Unpause it (missed fires are not caught up).",
    lambda h, v: h.unpause(v["note"]),
    [note_option],
)
_action("trigger", "Start a run now.", lambda h, v: h.trigger(v["overlap"]), [overlap_option])
_action("delete", "Delete the schedule (its runs go on).", lambda h, v: h.delete(), [])
_action(
    "backfill",
    "Take the fire times from --start to --end now.",
    lambda h, v: h.backfill(
        datetime.fromisoformat(v["start"]), datetime.fromisoformat(v["end"]), v["overlap"]
    ),
    [
        click.option("--start", required=True, help="ISO 8601 with offset."),
        click.option("--end", required=True, help="ISO 8601 with offset."),
        overlap_option,
    ],
)
