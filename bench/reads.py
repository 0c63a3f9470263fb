"""Owner reads against a store with many runs: what history?limit=1, a listing page and a query cost.

Builds (once, in ``--data``) four partition stores holding ``--runs`` stored runs and one
running workflow whose history has ``--events`` events, then times the engine node's own
HTTP routes' functions in process (no Kafka, no HTTP: the reads touch RocksDB only), one
call at a time:
``GET /internal/workflows/{id}/history?limit=1`` of the long run, listings of 10 runs
(unfiltered, filtered on a status 1 % of the runs have, and on a type no run has), and a
query of the long run while the owner has its instance cached.

The same script runs against older code, to give its figures beside this code's:

    cd <checkout of the old code> && PYTHONPATH=. python <this file> --data DIR --out old.json
    python -m bench.reads --data DIR --compare old=old.json --report bench/results/reads.md
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

from ledgerflow import workflow
from ledgerflow.config import Settings
from ledgerflow.engine.context import EngineContext
from ledgerflow.engine.http import create_app
from ledgerflow.engine.outbox import Outbox
from ledgerflow.engine.processor import PartitionProcessor
from ledgerflow.engine.state import keys
from ledgerflow.engine.state.models import PendingActivity, RunState
from ledgerflow.engine.state.store import PartitionStore
from ledgerflow.schemas.commands import SignalWorkflow, StartWorkflow
from ledgerflow.schemas.common import ActivityOptions, Failure
from ledgerflow.sdk.definition import WorkflowRegistry

LONG = "long-run"
PARTITIONS = 4
TYPES = ("ProcessOrder", "Approval", "Refund")


@workflow.defn
class Tally:
    """Counts 'add' signals; its query answers the count."""

    def __init__(self) -> None:
        self.total = 0

    @workflow.run
    async def run(self) -> None:
        while True:
            self.total += await workflow.wait_signal("add")

    @workflow.query
    def count(self) -> int:
        return self.total


def stored_run(number: int) -> RunState:
    """A run as the engine stores it: 90 % completed, 9 % running an activity, 1 % failed."""
    status = "FAILED" if number % 100 == 0 else "RUNNING" if number % 100 < 10 else "COMPLETED"
    run = RunState(
        workflow_id=f"order-{number:08d}",
        run_id=f"{number:08d}-0000-4000-8000-000000000000",
        workflow_type=TYPES[number % len(TYPES)],
        status=status,  # type: ignore[arg-type]
        input={"order_id": f"o-{number}", "amount": number % 1000 + 0.5},
        started_at=1.7e9 + number,
        history_length=8 if status == "COMPLETED" else 4,
        history_bytes=2600,
    )
    if status == "COMPLETED":
        run.closed_at, run.result = run.started_at + 1.5, {"shipment": f"shipped-o-{number}"}
    elif status == "FAILED":
        run.closed_at, run.failure = run.started_at + 2, Failure(type="ActivityError", message="declined")
    else:
        run.activities[2] = PendingActivity(
            activity_type="charge_card",
            args=[run.input],
            options=ActivityOptions(start_to_close_timeout=10),
            scheduled_at=run.started_at,
            attempt_started_at=run.started_at,
        )
    return run


def processors(data: Path, settings: Settings) -> dict[int, PartitionProcessor]:
    ctx = EngineContext(settings, WorkflowRegistry.from_modules([__name__]), lambda _id: None)
    return {p: PartitionProcessor(p, PartitionStore(data / f"p{p}"), ctx) for p in range(PARTITIONS)}


def apply(processor: PartitionProcessor, now: float, *commands: Any) -> None:
    """One batch, committed to the store (as the owner loop does, without Kafka)."""
    processor.begin(now, Outbox(processor.ctx.settings))
    for command in commands:
        assert processor.handle(command) is None
    processor.store.write(dict(processor.finish()), None)


def build(data: Path, settings: Settings, runs: int, events: int) -> None:
    owners = processors(data, settings)
    pending: dict[int, dict[bytes, bytes | None]] = {p: {} for p in owners}
    for number in range(runs):
        run = stored_run(number)
        partition = settings.partition_of(run.workflow_id)
        pending[partition][keys.run_key(run.workflow_id)] = run.model_dump_json().encode()
        if len(pending[partition]) >= 20_000:
            owners[partition].store.write(pending[partition], None)
            pending[partition] = {}
    for partition, changes in pending.items():
        owners[partition].store.write(changes, None)
    long = owners[settings.partition_of(LONG)]
    apply(long, 1.0, StartWorkflow(workflow_id=LONG, workflow_type="Tally", run_id="r"))
    for first in range(0, events - 1, 5000):
        signals = [
            SignalWorkflow(workflow_id=LONG, name="add", payload=1)
            for _ in range(first, min(first + 5000, events - 1))
        ]
        apply(long, 2.0 + first, *signals)
    for processor in owners.values():
        processor.store.close()


def timed(read: Callable[[], Any], repeat: int) -> dict[str, float]:
    """Median wall and CPU milliseconds of one call of a route's function."""
    walls, cpus = [], []
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        read()
        cpus.append((time.process_time() - cpu) * 1000)
        walls.append((time.perf_counter() - wall) * 1000)
    return {"wall_ms": statistics.median(walls), "cpu_ms": statistics.median(cpus)}


def route(app: FastAPI, method: str, path: str) -> Callable[..., Any]:
    """The function behind one of the app's routes (called as FastAPI would, minus HTTP)."""
    for candidate in app.routes:
        if isinstance(candidate, APIRoute) and candidate.path == path and method in candidate.methods:
            return candidate.endpoint
    raise LookupError(f"{method} {path}")


def owner_lock() -> object:
    """The engine's lock for queries on cached instances (absent before that change)."""
    try:
        from ledgerflow.engine.ownerlock import OwnerLock
    except ImportError:
        return None
    return OwnerLock()


def measure(data: Path, settings: Settings) -> dict[str, Any]:
    owners = processors(data, settings)
    long = owners[settings.partition_of(LONG)]
    apply(long, 1e6, SignalWorkflow(workflow_id=LONG, name="add", payload=1))  # the owner caches it
    engine = SimpleNamespace(
        settings=settings,
        node_id="bench",
        partitions=SimpleNamespace(processors=owners),
        owner_lock=owner_lock(),
    )
    app = create_app(engine, None)  # type: ignore[arg-type]
    history = route(app, "GET", "/internal/workflows/{workflow_id}/history")
    listing = route(app, "GET", "/internal/workflows")
    query = route(app, "POST", "/internal/workflows/{workflow_id}/query/{name}")

    def listed(**filters: str) -> Any:
        page = {"status": None, "workflow_type": None, "after": None, "limit": 10}
        return listing(**{**page, **filters})

    figures = {
        "history_limit_1": timed(lambda: history(workflow_id=LONG, run_id=None, offset=0, limit=1), 5),
        "list_limit_10": timed(listed, 3),
        "list_failed_limit_10": timed(lambda: listed(status="FAILED"), 3),
        "list_no_match_limit_10": timed(lambda: listed(workflow_type="Nope"), 3),
        "query_cached_long_run": timed(lambda: query(workflow_id=LONG, name="count", args=[]), 3),
    }
    for processor in owners.values():
        processor.store.close()
    return figures


def report(path: Path, args: argparse.Namespace, columns: dict[str, dict[str, Any]]) -> None:
    """The figures of each code version (label -> figures), side by side."""
    rows = [
        ("history?limit=1 of the running run of {events} events", "history_limit_1"),
        ("list?limit=10", "list_limit_10"),
        ("list?status=FAILED&limit=10 (1 % of the runs)", "list_failed_limit_10"),
        ("list?workflow_type=Nope&limit=10 (no run)", "list_no_match_limit_10"),
        ("query of the running run of {events} events, its instance cached", "query_cached_long_run"),
    ]
    compared = " ".join(f"--compare {label}=FILE" for label in list(columns)[:-1])
    lines = [
        "# Owner reads benchmark",
        "",
        f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        f"- setup: {PARTITIONS} partition stores (RocksDB) holding {args.runs:,} stored runs "
        f"(90 % completed, 9 % running, 1 % failed) and one running workflow of {args.events:,} events; "
        "the functions of the engine node's HTTP routes called in process (no HTTP), one at a time, "
        "median of 3-5 calls; a 2-core machine shared with other test runs",
        f"- command: `python -m bench.reads --runs {args.runs} --events {args.events} {compared}` "
        "(each FILE from `--out`, the same script run in a checkout of that code)",
        "",
        *([args.note, ""] if args.note else []),
        "Each cell: wall / CPU milliseconds of one request.",
        "",
        "| read | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for label, key in rows:
        cells = [
            f"{figures[key]['wall_ms']:,.2f} / {figures[key]['cpu_ms']:,.2f}" if key in figures else "n/a"
            for figures in columns.values()
        ]
        lines.append(f"| {label.format(events=f'{args.events:,}')} | " + " | ".join(cells) + " |")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    path.with_suffix(".json").write_text(json.dumps(columns, indent=2) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=Path(".ledgerflow/bench-reads"))
    parser.add_argument("--runs", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--out", type=Path, help="Write this code's figures here (JSON) instead of a report.")
    parser.add_argument(
        "--compare",
        action="append",
        default=[],
        metavar="LABEL=FILE",
        help="Figures of other code (from --out) to show beside this code's, in order.",
    )
    parser.add_argument("--label", default="this code", help="This code's column in the report.")
    parser.add_argument("--note", default="", help="A line of the report saying what the columns are.")
    parser.add_argument("--report", type=Path, default=Path("bench/results/reads.md"))
    args = parser.parse_args()
    settings = Settings(partitions=PARTITIONS)
    if not (args.data / "p0").exists():
        began = time.monotonic()
        build(args.data, settings, args.runs, args.events)
        print(f"built {args.runs} runs and a {args.events}-event run in {time.monotonic() - began:.0f} s")
    figures = measure(args.data, settings)
    if args.out is not None:
        args.out.write_text(json.dumps(figures, indent=2) + "\n")
        print(json.dumps(figures, indent=2))
        return
    columns = {}
    for entry in args.compare:
        label, _, file = entry.partition("=")
        columns[label] = json.loads(Path(file).read_text())
    columns[args.label] = figures
    report(args.report, args, columns)


if __name__ == "__main__":
    main()
