"""Visibility queries over 100,000 runs on one engine: page latency and the index's size.

Starts ``--runs`` workflows with search attributes (a customer among ``--customers``, an
amount, a priority flag, tags) on the ``--partitions`` partitions one engine owns, through
``PartitionProcessor`` over RocksDB as the owner loop applies them (Kafka left out, as in
bench/processor.py), and ships ``--shipped`` of them (a signal closes the run after an
upsert). Then it times the engine's read path (``engine.visibility_reads``, what
``GET /internal/workflows?query=`` runs) for each query below, page by page, and measures what
the index adds to the stores: its keys' bytes, and the stores' size on disk after compaction.

    python -m bench.visibility [--runs 100000] [--out bench/results/visibility]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ledgerflow import SearchAttributeKey, TypedSearchAttributes, workflow
from ledgerflow.config import Settings
from ledgerflow.engine.context import EngineContext
from ledgerflow.engine.outbox import Outbox
from ledgerflow.engine.processor import PartitionProcessor
from ledgerflow.engine.state import keys
from ledgerflow.engine.state.store import PartitionStore
from ledgerflow.engine.visibility_reads import count_runs, query_runs
from ledgerflow.schemas.commands import SignalWorkflow, StartWorkflow
from ledgerflow.sdk.definition import WorkflowRegistry
from ledgerflow.visibility import parse

CUSTOMER = SearchAttributeKey.for_keyword("CustomerId")
AMOUNT = SearchAttributeKey.for_int("Amount")
PRIORITY = SearchAttributeKey.for_bool("Priority")
TAGS = SearchAttributeKey.for_keyword_list("Tags")
STAGE = SearchAttributeKey.for_keyword("Stage")
SCAN_LIMIT = Settings().list_scan_limit


@workflow.defn
class BenchOrder:
    """Open until the signal ``ship``; then marks itself shipped and completes."""

    def __init__(self) -> None:
        self.shipped = False

    @workflow.signal
    def ship(self) -> None:
        self.shipped = True

    @workflow.run
    async def run(self, order: int) -> int:
        await workflow.wait_condition(lambda: self.shipped)
        workflow.upsert_search_attributes([STAGE.value_set("shipped")])
        return order


QUERIES = {
    "selective keyword (1 customer of 1000), newest first": "CustomerId = 'c-417'",
    "keyword and range, oldest first": "CustomerId = 'c-417' AND Amount >= 500 ORDER BY StartTime ASC",
    "type and status (30 % of runs)": "WorkflowType = 'BenchOrder' AND ExecutionStatus = 'Running'",
    "status and an int range (no posting for the range)": "ExecutionStatus = 'Completed' AND Amount < 10",
    "keyword list item and bool": "Tags = 'fragile' AND Priority = true",
    "int range alone (every run read, up to the scan limit a page)": "Amount BETWEEN 995 AND 999",
    "everything, newest first": "",
}
COUNTS = {
    "count: one customer": "CustomerId = 'c-417'",
    "count: open runs (posting of 30 % of runs)": "ExecutionStatus = 'Running'",
    "count: every run": "",
}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--shipped", type=float, default=0.7, help="Share of runs closed.")
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--partitions", type=int, default=8, help="Partitions the one engine owns.")
    parser.add_argument("--page", type=int, default=50, help="Runs a page.")
    parser.add_argument("--pages", type=int, default=5, help="Pages timed per query (paged on).")
    parser.add_argument("--repeat", type=int, default=20, help="Times each query's pages are timed.")
    parser.add_argument("--out", default="bench/results/visibility")
    args = parser.parse_args()
    settings = Settings(partitions=args.partitions)
    ctx = EngineContext(settings, WorkflowRegistry.from_modules([__name__]), lambda _id: None)
    with tempfile.TemporaryDirectory(prefix="ledgerflow-visibility-") as scratch:
        processors = [
            PartitionProcessor(p, PartitionStore(Path(scratch) / f"p{p}"), ctx)
            for p in range(args.partitions)
        ]
        loaded = _load(processors, settings, args)
        stores = [(p.partition, p.store) for p in processors]
        sizes = _sizes(processors, Path(scratch))
        queries = {name: _time_pages(stores, text, args) for name, text in QUERIES.items()}
        counts = {name: _time_count(stores, text, args.repeat) for name, text in COUNTS.items()}
        for processor in processors:
            processor.store.close()
    report = {"setup": {**vars(args), **loaded}, "index": sizes, "queries": queries, "counts": counts}
    Path(f"{args.out}.json").write_text(json.dumps(report, indent=2) + "\n")
    Path(f"{args.out}.md").write_text(_markdown(report))
    print(Path(f"{args.out}.md").read_text())


def _load(
    processors: list[PartitionProcessor], settings: Settings, args: argparse.Namespace
) -> dict[str, Any]:
    """Start every run, then ship the first ``--shipped`` share, 500 commands a batch per partition."""
    by_partition: list[list[Any]] = [[] for _ in processors]
    for i in range(args.runs):
        attributes = TypedSearchAttributes(
            [
                CUSTOMER.value_set(f"c-{i % args.customers}"),
                AMOUNT.value_set((i + i // args.customers * 37) % 1000),  # apart from the customer
                PRIORITY.value_set(i % 7 == 0),
                TAGS.value_set(["fragile", "gift"] if i % 5 == 0 else ["bulk"]),
                STAGE.value_set("received"),
            ]
        )
        workflow_id = f"order-{i:06d}"
        start = StartWorkflow(
            workflow_id=workflow_id,
            workflow_type="BenchOrder",
            input=i,
            search_attributes=attributes.wire(),
            memo={"note": f"order {i}"},
        )
        by_partition[settings.partition_of(workflow_id)].append(start)
    shipped = [
        SignalWorkflow(workflow_id=f"order-{i:06d}", name="ship")
        for i in range(int(args.runs * args.shipped))
    ]
    for signal in shipped:
        by_partition[settings.partition_of(signal.workflow_id)].append(signal)
    began = time.perf_counter()
    clock = time.time() - 3600.0  # one batch a second: 500 runs of a partition share a start time
    for processor, commands in zip(processors, by_partition, strict=True):
        for offset in range(0, len(commands), 500):
            processor.begin(clock, Outbox(settings))
            for command in commands[offset : offset + 500]:
                assert processor.handle(command) is None
            processor.store.write(dict(processor.finish()), None)
            clock += 1.0
    return {"load_seconds": round(time.perf_counter() - began, 1), "closed": len(shipped)}


def _sizes(processors: list[PartitionProcessor], folder: Path) -> dict[str, Any]:
    """Bytes of the index's keys and values beside the runs' and histories', and the stores' size on
    disk once compacted."""
    totals = {"index_keys": 0, "index_bytes": 0, "run_bytes": 0, "history_bytes": 0}
    for processor in processors:
        store = processor.store
        for prefix, name in ((keys.VISIBLE, "index"), (keys.POSTING, "index")):
            for key, value in store.scan(prefix):
                totals[f"{name}_keys"] += 1
                totals[f"{name}_bytes"] += len(key) + len(value)
        totals["run_bytes"] += sum(len(k) + len(v) for k, v in store.scan(keys.RUN))
        totals["history_bytes"] += sum(len(k) + len(v) for k, v in store.scan(keys.HISTORY))
        store.compact()
    totals["store_files_bytes"] = sum(f.stat().st_size for f in folder.rglob("*.sst"))
    return totals


def _time_pages(
    stores: list[tuple[int, PartitionStore]], text: str, args: argparse.Namespace
) -> dict[str, Any]:
    """Milliseconds per page over ``--pages`` pages, paged on with each page's token."""
    query = parse(text)
    timings: list[float] = []
    rows = 0
    for _ in range(args.repeat):
        after = None
        rows = 0
        for _ in range(args.pages):
            started = time.perf_counter()
            page = query_runs(stores, query, after, None, args.page, SCAN_LIMIT)
            timings.append((time.perf_counter() - started) * 1000)
            rows += len(page.runs)
            after = page.next_after
            if after is None:
                break
    return {"query": text, **_percentiles(timings), "rows_in_pages": rows}


def _time_count(stores: list[tuple[int, PartitionStore]], text: str, repeat: int) -> dict[str, Any]:
    query = parse(text)
    timings: list[float] = []
    count = 0
    for _ in range(max(1, repeat // 4)):
        started = time.perf_counter()
        count, _ = count_runs(stores, query, None)
        timings.append((time.perf_counter() - started) * 1000)
    return {"query": text, **_percentiles(timings), "count": count}


def _percentiles(timings: list[float]) -> dict[str, float]:
    ordered = sorted(timings)
    return {
        "p50_ms": round(statistics.median(ordered), 2),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))], 2),
        "samples": len(ordered),
    }


def _markdown(report: dict[str, Any]) -> str:
    setup, index = report["setup"], report["index"]
    mib: Callable[[int], str] = lambda n: f"{n / 2**20:.1f} MiB"  # noqa: E731
    lines = [
        "# Visibility: queries over the index each partition keeps",
        "",
        f"`python -m bench.visibility --runs {setup['runs']}`: {setup['runs']:,} runs with five search "
        f"attributes each on {setup['partitions']} partitions of one engine ({setup['closed']:,} shipped and "
        f"closed), applied by `PartitionProcessor` over RocksDB in {setup['load_seconds']} s; the engine's "
        "read path timed in process (no HTTP, no Kafka: what `GET /internal/workflows?query=` runs, "
        f"on one thread), pages of {setup['page']} runs, {setup['pages']} pages paged on, "
        f"{setup['repeat']} times. `list_scan_limit` {SCAN_LIMIT}.",
        "",
        "| query | text | page P50 | page P99 | runs in the pages |",
        "|---|---|---|---|---|",
    ]
    for name, q in report["queries"].items():
        lines.append(
            f"| {name} | `{q['query']}` | {q['p50_ms']} ms | {q['p99_ms']} ms | {q['rows_in_pages']} |"
        )
    lines += ["", "| count | text | P50 | P99 | count |", "|---|---|---|---|---|"]
    for name, q in report["counts"].items():
        lines.append(f"| {name} | `{q['query']}` | {q['p50_ms']} ms | {q['p99_ms']} ms | {q['count']:,} |")
    lines += [
        "",
        "| the stores | |",
        "|---|---|",
        f"| index keys (records and postings) | {index['index_keys']:,} |",
        f"| index bytes (keys + values, before compression) | {mib(index['index_bytes'])} |",
        f"| run states | {mib(index['run_bytes'])} |",
        f"| histories | {mib(index['history_bytes'])} |",
        f"| SST files on disk after compaction (everything) | {mib(index['store_files_bytes'])} |",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
