"""Workflow commands: start, signal, cancel, terminate, reset, describe, history, list, cluster."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from ledgerflow import Client
from ledgerflow.cli.options import kafka_options, settings_from
from ledgerflow.errors import LedgerflowError
from ledgerflow.schemas.events import HistoryEvent
from ledgerflow.schemas.history import WorkflowHistory
from ledgerflow.schemas.search import SearchAttributeType
from ledgerflow.search_attributes import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes


def _client(bootstrap: str, prefix: str, partitions: int, replication_factor: int) -> Client:
    return Client(settings=settings_from(bootstrap, prefix, partitions, replication_factor))


def emit(data: Any, as_json: bool, table: Table | None = None) -> None:
    """JSON when asked, a table on a terminal, plain tab-separated text when piped."""
    if as_json or table is None:
        click.echo(json.dumps(data, indent=2, default=str))
        return
    console = Console()
    if console.is_terminal:
        console.print(table)
        return
    columns = [c.header for c in table.columns]
    click.echo("\t".join(str(c) for c in columns))
    for values in zip(*(list(c.cells) for c in table.columns), strict=False):
        click.echo("\t".join(str(v) for v in values))


def fail(exc: Exception) -> None:
    raise click.ClickException(str(exc)) from exc


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@click.command("start")
@kafka_options
@click.argument("workflow_type")
@click.option("--id", "workflow_id", required=True, help="Workflow id (the shard key).")
@click.option("--input", "input_json", default="null", show_default=True, help="Input as JSON.")
@click.option("--wait", is_flag=True, help="Wait for the result.")
@click.option(
    "--search-attribute",
    "search_attributes",
    multiple=True,
    metavar="NAME[:TYPE]=JSON",
    help="A search attribute (repeatable): CustomerId='\"c-1\"', Amount=250, Tags='[\"a\"]', "
    "Notes:text='\"...\"', Due:datetime='\"2026-12-24T18:00:00Z\"'. Without a TYPE: keyword, int, "
    "double, bool or keyword_list, from the JSON.",
)
@click.option("--memo", "memo_fields", multiple=True, metavar="KEY=JSON", help="A memo field (repeatable).")
@json_option
def start_command(
    bootstrap: str,
    prefix: str,
    partitions: int,
    replication_factor: int,
    workflow_type: str,
    workflow_id: str,
    input_json: str,
    wait: bool,
    search_attributes: tuple[str, ...],
    memo_fields: tuple[str, ...],
    as_json: bool,
) -> None:
    """Start a run of WORKFLOW_TYPE (a code workflow or a registered DAG)."""
    try:
        payload = json.loads(input_json)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--input") from exc
    attributes = TypedSearchAttributes(_search_attribute(text) for text in search_attributes)
    memo = dict(_json_field(text, "--memo") for text in memo_fields)
    with _client(bootstrap, prefix, partitions, replication_factor) as client:
        try:
            handle = client.start_workflow(
                workflow_type, payload, id=workflow_id, search_attributes=attributes, memo=memo
            )
            out: dict[str, Any] = {
                "workflow_id": handle.workflow_id,
                "run_id": handle.run_id,
                "already_started": handle.already_started,
            }
            if wait:
                out["result"] = handle.result(timeout=3600)
        except (LedgerflowError, ValueError) as exc:
            fail(exc)
    if as_json:
        emit(out, True)
        return
    note = " (already running: this is the open run)" if out["already_started"] else ""
    click.echo(f"workflow {out['workflow_id']} run {out['run_id']}{note}")
    if wait:
        click.echo(json.dumps(out["result"], default=str))


@click.command("signal")
@kafka_options
@click.argument("workflow_id")
@click.argument("name")
@click.option("--payload", default="null", show_default=True, help="Payload as JSON.")
def signal_command(
    bootstrap: str,
    prefix: str,
    partitions: int,
    replication_factor: int,
    workflow_id: str,
    name: str,
    payload: str,
) -> None:
    """Send signal NAME to the open run of WORKFLOW_ID."""
    with _client(bootstrap, prefix, partitions, replication_factor) as client:
        try:
            client.signal(workflow_id, name, json.loads(payload))
        except LedgerflowError as exc:
            fail(exc)
    click.echo(f"signal {name!r} sent to {workflow_id}")


@click.command("cancel")
@kafka_options
@click.argument("workflow_id")
@click.option("--reason", default="")
@click.option("--terminate", is_flag=True, help="End at once, without running cleanup code.")
def cancel_command(
    bootstrap: str,
    prefix: str,
    partitions: int,
    replication_factor: int,
    workflow_id: str,
    reason: str,
    terminate: bool,
) -> None:
    """Cancel (or terminate) the open run of WORKFLOW_ID."""
    with _client(bootstrap, prefix, partitions, replication_factor) as client:
        try:
            if terminate:
                client.terminate(workflow_id, reason)
            else:
                client.cancel(workflow_id, reason)
        except LedgerflowError as exc:
            fail(exc)
    click.echo(f"{'terminate' if terminate else 'cancel'} sent to {workflow_id}")


@click.command("reset")
@kafka_options
@click.argument("workflow_id")
@click.option(
    "--to",
    "to_event",
    type=click.IntRange(min=2),
    required=True,
    help="The event to go back to: the new run keeps the events before it (see `ledgerflow history`).",
)
@click.option("--run-id", default=None, help="The run to reset; it must be the latest (default: the latest).")
@click.option("--reason", default="")
def reset_command(
    bootstrap: str,
    prefix: str,
    partitions: int,
    replication_factor: int,
    workflow_id: str,
    to_event: int,
    run_id: str | None,
    reason: str,
) -> None:
    """Reset WORKFLOW_ID's latest run to event TO: a new run begins with the history before it
    and goes on with the code deployed now; the old run is terminated if open."""
    with _client(bootstrap, prefix, partitions, replication_factor) as client:
        try:
            handle = client.reset(workflow_id, to_event, run_id=run_id, reason=reason)
        except (ValueError, LedgerflowError) as exc:  # ValueError: not a point it can go back to
            fail(exc)
    click.echo(f"{workflow_id} reset to event #{to_event}: new run {handle.run_id}")


@click.command("describe")
@kafka_options
@click.argument("workflow_id")
@json_option
def describe_command(
    bootstrap: str, prefix: str, partitions: int, replication_factor: int, workflow_id: str, as_json: bool
) -> None:
    """Status of the latest run of WORKFLOW_ID: pending activities, last failure, history size."""
    with _client(bootstrap, prefix, partitions, replication_factor) as client:
        try:
            state = client.describe(workflow_id)
        except LedgerflowError as exc:
            fail(exc)
    table = Table("field", "value", title=f"workflow {workflow_id}")
    for field in (
        "run_id",
        "workflow_type",
        "status",
        "partition",
        "node",
        "history_length",
        "history_bytes",
    ):
        table.add_row(field, str(state.get(field)))
    workers = state.get("queue_workers") or {}
    for seq, pending in state.get("activities", {}).items():
        failure = (pending.get("last_failure") or {}).get("message", "")
        queue = pending["options"]["queue"]
        table.add_row(
            f"activity #{seq}",
            f"{pending['activity_type']} attempt {pending['attempt']} {pending['state']} "
            f"on queue {queue!r}{_no_worker_note(workers.get(queue))} {failure}",
        )
    if state.get("result") is not None:
        table.add_row("result", json.dumps(state["result"], default=str))
    if state.get("failure"):
        table.add_row("failure", f"{state['failure']['type']}: {state['failure']['message']}")
    emit(state, as_json, table)


def _no_worker_note(workers: int | None) -> str:
    """A warning when nobody serves the queue: the task waits for a worker (or says nothing)."""
    return " [yellow](no worker: waits for one to start)[/yellow]" if workers == 0 else ""


def _history_table(workflow_id: str, events: list[HistoryEvent]) -> Table:
    table = Table("#", "time", "event", "detail", title=f"history of {workflow_id}")
    for event in events:
        detail = {
            k: v for k, v in event.model_dump(mode="json").items() if k not in ("index", "time", "kind")
        }
        text = json.dumps(detail, default=str)
        table.add_row(
            str(event.index), time.strftime("%H:%M:%S", time.localtime(event.time)), event.kind, text[:100]
        )
    return table


@click.command("history")
@kafka_options
@click.argument("workflow_id")
@click.option("--run-id", default=None, help="A specific run (default: the latest).")
@click.option("--follow", is_flag=True, help="Keep printing new events until the run closes.")
@click.option(
    "--export",
    "export_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the history as JSON for `ledgerflow replay --file`.",
)
@json_option
def history_command(
    bootstrap: str,
    prefix: str,
    partitions: int,
    replication_factor: int,
    workflow_id: str,
    run_id: str | None,
    follow: bool,
    export_path: Path | None,
    as_json: bool,
) -> None:
    """Print (or export) the event history of a run."""
    with _client(bootstrap, prefix, partitions, replication_factor) as client:
        try:
            events = client.history(workflow_id, run_id)
            state = client.describe(workflow_id)
        except LedgerflowError as exc:
            fail(exc)
        rid = run_id or state["run_id"]
        if export_path is not None:
            export_path.write_text(WorkflowHistory(workflow_id, rid, events).to_json())
            click.echo(f"wrote {len(events)} events of {workflow_id} run {rid} to {export_path}")
            return
        if not follow:
            emit([e.model_dump(mode="json") for e in events], as_json, _history_table(workflow_id, events))
            return
        seen = 0
        while True:
            for event in events[seen:]:
                line = (
                    json.dumps(event.model_dump(mode="json"), default=str)
                    if as_json
                    else f"{event.index:>4} {event.kind}"
                )
                click.echo(line)
            seen = len(events)
            if events and events[-1].kind.startswith("workflow_") and events[-1].kind != "workflow_started":
                return
            time.sleep(0.5)
            events += client.history(workflow_id, rid, offset=len(events))  # only the new ones


@click.command("list")
@kafka_options
@click.option("--status", default=None, help="RUNNING, COMPLETED, FAILED, CANCELED, TERMINATED ...")
@click.option("--type", "workflow_type", default=None)
@click.option(
    "--limit", type=click.IntRange(min=1), default=50, show_default=True, help="Runs to list (read in pages)."
)
@click.option("--after", default=None, help="Page on after this workflow id (or a query's page token).")
@click.option(
    "--query",
    "-q",
    default=None,
    help="A visibility query: \"WorkflowType = 'Checkout' AND CustomerId = 'c-1' ORDER BY StartTime DESC\".",
)
@json_option
def list_command(
    bootstrap: str,
    prefix: str,
    partitions: int,
    replication_factor: int,
    status: str | None,
    workflow_type: str | None,
    limit: int,
    after: str | None,
    query: str | None,
    as_json: bool,
) -> None:
    """List workflows across every engine node: by workflow id, or with --query, the runs it
    matches in start-time order."""
    with _client(bootstrap, prefix, partitions, replication_factor) as client:
        try:
            rows = client.list_workflows(status, workflow_type, limit, after, query=query)
        except (LedgerflowError, ValueError) as exc:
            fail(exc)
    columns = ["workflow id", "type", "status", "events", "pending"]
    table = Table(*columns, *(["search attributes"] if query is not None else []), title="workflows")
    for row in rows:
        pending = ", ".join(f"{p['activity']}#{p['attempt']}" for p in row["pending_activities"])
        cells = [row["workflow_id"], row["workflow_type"], row["status"], str(row["history_length"]), pending]
        if query is not None:
            shown = row.get("search_attributes", {})
            cells.append(", ".join(f"{name}={typed['value']}" for name, typed in shown.items()))
        table.add_row(*cells)
    emit(rows, as_json, table)


def _json_field(text: str, option: str) -> tuple[str, Any]:
    name, equals, raw = text.partition("=")
    if not equals or not name:
        raise click.BadParameter(f"{text!r}: write NAME=JSON", param_hint=option)
    try:
        return name, json.loads(raw)
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"{name}: not JSON: {exc}", param_hint=option) from exc


_INFERRED: list[tuple[type, SearchAttributeType]] = [
    (bool, "bool"),
    (int, "int"),
    (float, "double"),
    (str, "keyword"),
    (list, "keyword_list"),
]


def _search_attribute(text: str) -> SearchAttributePair[Any]:
    """``NAME[:TYPE]=JSON`` as a typed pair; the type from the JSON when not given."""
    named, value = _json_field(text, "--search-attribute")
    name, _, kind = named.partition(":")
    if not kind:
        kind = next((k for t, k in _INFERRED if isinstance(value, t)), "")
    types: tuple[SearchAttributeType, ...] = SearchAttributeType.__args__  # type: ignore[attr-defined]
    typed = next((t for t in types if t == kind), None)
    if typed is None:
        raise click.BadParameter(
            f"{name}: a type is one of {', '.join(types)}", param_hint="--search-attribute"
        )
    try:
        key: SearchAttributeKey[Any] = SearchAttributeKey(name, typed)
        key.wire(value)
    except ValueError as exc:
        raise click.BadParameter(f"{name}: {exc}", param_hint="--search-attribute") from exc
    return SearchAttributePair(key, value)


@click.command("count")
@kafka_options
@click.argument("query", default="")
@json_option
def count_command(
    bootstrap: str, prefix: str, partitions: int, replication_factor: int, query: str, as_json: bool
) -> None:
    """Count the workflows a visibility QUERY matches (every one without a QUERY)."""
    with _client(bootstrap, prefix, partitions, replication_factor) as client:
        try:
            count = client.count_workflows(query)
        except LedgerflowError as exc:
            fail(exc)
    if as_json:
        emit({"count": count}, True)
        return
    click.echo(str(count))


@click.group("cluster")
def cluster_group() -> None:
    """Where shards live."""


@cluster_group.command("shards")
@kafka_options
@json_option
def shards_command(
    bootstrap: str, prefix: str, partitions: int, replication_factor: int, as_json: bool
) -> None:
    """Each partition (shard) with its owner."""
    with _client(bootstrap, prefix, partitions, replication_factor) as client:
        nodes = client.cluster()
    rows = []
    for node in nodes:
        for part in node.get("partitions", []):
            rows.append(
                {
                    "partition": part["partition"],
                    "owner": node["url"],
                    "timers_due_soon": part["timers_due_soon"],
                    "state_bytes": part["state_bytes"],
                    "restoring": part["partition"] in node.get("restoring", []),
                }
            )
    rows.sort(key=lambda r: r["partition"])
    table = Table("partition", "owner", "timers due < 60 s", "state bytes", "restoring", title="shards")
    for r in rows:
        table.add_row(
            str(r["partition"]),
            r["owner"],
            str(r["timers_due_soon"]),
            str(r["state_bytes"]),
            str(r["restoring"]),
        )
    emit(rows, as_json, table)


@cluster_group.command("stats")
@kafka_options
@json_option
def stats_command(
    bootstrap: str, prefix: str, partitions: int, replication_factor: int, as_json: bool
) -> None:
    """Engine nodes and the partitions each owns."""
    with _client(bootstrap, prefix, partitions, replication_factor) as client:
        nodes = client.cluster()
    table = Table("node", "url", "partitions", "cached instances", title="engine nodes")
    for node in nodes:
        parts = node.get("partitions", [])
        table.add_row(
            str(node.get("node")),
            node["url"],
            ",".join(str(p["partition"]) for p in parts),
            str(sum(p["cached_instances"] for p in parts)),
        )
    emit(nodes, as_json, table)
