"""What every benchmark shares: a local stack, an events tail, percentiles, the report header."""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from ledgerflow.local.kafka import LocalKafka
from ledgerflow.local.processes import Cluster

SAMPLES = "ledgerflow.samples.orders"


def arguments(doc: str | None, work_dir: str, report: str, partitions: int) -> argparse.ArgumentParser:
    """The options every benchmark takes; each adds its own."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--partitions", type=int, default=partitions)
    parser.add_argument(
        "--bootstrap",
        default=os.environ.get("LEDGERFLOW_BOOTSTRAP"),
        help="An existing Kafka; a local one is started (and stopped) when absent.",
    )
    parser.add_argument("--work-dir", type=Path, default=Path(work_dir))
    parser.add_argument("--report", type=Path, default=Path(report))
    return parser


@contextmanager
def local_stack(args: argparse.Namespace, tag: str) -> Iterator[Cluster]:
    """A Cluster (engines, workers, gateways started by the caller) on a fresh topic prefix.

    Every process it started, and the Kafka it started, is stopped on the way out.
    """
    kafka = None
    bootstrap = args.bootstrap
    if not bootstrap:
        kafka = LocalKafka(args.work_dir / "kafka")
        bootstrap = kafka.up()
    prefix = f"{tag}-{uuid.uuid4().hex[:6]}."
    cluster = Cluster(bootstrap, prefix, args.work_dir / prefix.rstrip("."), partitions=args.partitions)
    try:
        yield cluster
    finally:
        cluster.stop_all()
        if kafka is not None:
            kafka.down()


def events_consumer(cluster: Cluster) -> Consumer:
    """A read_committed consumer of the public events topic, from the start, with short fetch waits."""
    consumer = Consumer(
        {
            "bootstrap.servers": cluster.bootstrap,
            "group.id": f"bench-{uuid.uuid4().hex[:6]}",
            "isolation.level": "read_committed",
            "fetch.wait.max.ms": 5,
        }
    )
    consumer.assign([TopicPartition(f"{cluster.prefix}events", p, 0) for p in range(cluster.partitions)])
    return consumer


def broker_pids(args: argparse.Namespace) -> list[int]:
    """PIDs of the brokers ``local_stack`` started (none when ``--bootstrap`` named another Kafka)."""
    return [] if args.bootstrap else LocalKafka(args.work_dir / "kafka").broker_pids()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class CpuSplit:
    """CPU used by each named process between ``start()`` and ``stop()``, as cores busy."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self._before: dict[str, float] = {}
        self._began = 0.0
        self.cores: dict[str, float] = {}

    def start(self) -> None:
        self._began = time.monotonic()
        self._before = {name: cpu_seconds(pid) for name, pid in self.pids.items()}

    def stop(self) -> dict[str, float]:
        elapsed = time.monotonic() - self._began
        self.cores = {
            name: (cpu_seconds(pid) - self._before[name]) / elapsed for name, pid in self.pids.items()
        }
        return self.cores


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def report_header(title: str, setup: str, command: str) -> list[str]:
    return [
        f"# {title}",
        "",
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        f"- setup: {setup}",
        f"- command: `{command}`",
        "",
    ]


def previous_report(path: Path) -> tuple[Any, str]:
    """The figures (its JSON) and date of the report about to be replaced; (None, "none") if absent."""
    try:
        figures = json.loads(path.with_suffix(".json").read_text())
        date = next(line for line in path.read_text().splitlines() if line.startswith("- date:"))
    except (OSError, ValueError, StopIteration):
        return None, "none"
    return figures, date.removeprefix("- date:").strip()


def was(old: object, form: str = ".1f", unit: str = "", scale: float = 1.0) -> str:
    """A previous report's figure in brackets, to follow the new one ('' when there is none)."""
    return f" ({old * scale:{form}}{unit})" if isinstance(old, int | float) else ""


def save_report(path: Path, lines: list[str], figures: object) -> None:
    """The report a person reads (``path``, Markdown), its figures beside it as JSON, and a copy
    on stdout."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    path.with_suffix(".json").write_text(json.dumps(figures, indent=2, default=str) + "\n")
    print("\n".join(lines))


HOPS = {
    "inbox wait": "ledgerflow_inbox_wait_seconds",
    "batch apply": "ledgerflow_batch_apply_seconds",
    "commit": "ledgerflow_commit_seconds",
    "step (dispatch → result applied)": "node_execution_duration_seconds",
}
"""The engine's histograms of each hop a run's steps take, by what a report calls them."""


def histogram_buckets(metrics_text: str, name: str) -> dict[float, float]:
    """``le`` -> cumulative count of histogram ``name`` in a /metrics page (unlabelled series)."""
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(metrics_text):
        if family.name != name:
            continue
        for sample in family.samples:
            if sample.name == f"{name}_bucket":
                buckets[float(sample.labels["le"])] = (
                    buckets.get(float(sample.labels["le"]), 0.0) + sample.value
                )
    return buckets


def hop_quantiles(
    before: str, after: str, quantiles: tuple[float, ...] = (0.5, 0.99)
) -> dict[str, list[float]]:
    """Milliseconds at each quantile of each hop, over what the engine observed between two
    /metrics pages (interpolated inside a bucket, as Prometheus' histogram_quantile does)."""
    out: dict[str, list[float]] = {}
    for hop, name in HOPS.items():
        old, new = histogram_buckets(before, name), histogram_buckets(after, name)
        bounds = sorted(new)
        counts = [new[b] - old.get(b, 0.0) for b in bounds]
        total = counts[-1] if counts else 0.0
        figures = []
        for q in quantiles:
            if not total:
                figures.append(float("nan"))
                continue
            rank = q * total
            lower, below = 0.0, 0.0
            for bound, count in zip(bounds, counts, strict=True):
                if count >= rank:
                    upper = bound if bound != float("inf") else lower
                    share = (rank - below) / (count - below) if count > below else 1.0
                    figures.append(1000 * (lower + (upper - lower) * share))
                    break
                lower, below = bound, count
        out[hop] = figures
    return out
