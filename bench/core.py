"""Core benchmark: one broker, one engine, one worker, the load generator, on this machine.

Figures:
- throughput: workflows completed per second while N runs are started as fast as possible;
- end-to-end latency (start sent -> completion applied) P50/P99 under that load, and with
  one run in flight at a time;
- per-step latency (task scheduled -> its result applied) P50/P99.

Completion and step times come from the engine's public ``events`` stream, so the
benchmark adds no polling load to the engine.

    python -m bench.core --runs 2000 --report bench/results/core.md
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import Producer

from bench.common import (
    HOPS,
    SAMPLES,
    CpuSplit,
    arguments,
    broker_pids,
    events_consumer,
    hop_quantiles,
    local_stack,
    percentile,
    previous_report,
    report_header,
    save_report,
    was,
)
from ledgerflow.local.processes import Cluster
from ledgerflow.samples.dags import FAN_OUT_FAN_IN
from ledgerflow.schemas.commands import StartWorkflow


@dataclass
class Scenario:
    name: str
    workflow_type: str
    input: Any
    runs: int
    sent: dict[str, float] = field(default_factory=dict)
    completed: dict[str, float] = field(default_factory=dict)
    scheduled: dict[tuple[str, int], float] = field(default_factory=dict)
    steps: list[float] = field(default_factory=list)
    window: tuple[float, float] | None = None
    """Measure throughput over this (start, end) only (sustained scenarios)."""

    def throughput(self) -> float:
        if not self.completed:
            return 0.0
        if self.window is not None:
            begin, end = self.window
            return sum(1 for t in self.completed.values() if begin <= t <= end) / (end - begin)
        first, last = min(self.sent.values()), max(self.completed.values())
        return len(self.completed) / (last - first)

    def summary(self) -> dict[str, Any]:
        latencies = [(self.completed[w] - self.sent[w]) * 1000 for w in self.completed if w in self.sent]
        return {
            "scenario": self.name,
            "runs": self.runs,
            "completed": len(self.completed),
            "throughput_per_s": self.throughput(),
            "e2e_p50_ms": percentile(latencies, 50),
            "e2e_p99_ms": percentile(latencies, 99),
            "step_p50_ms": percentile(self.steps, 50),
            "step_p99_ms": percentile(self.steps, 99),
        }


class EventReader:
    """Tails the public events topic and records completion and step times."""

    def __init__(self, cluster: Cluster) -> None:
        self.consumer = events_consumer(cluster)

    def drain(self, scenario: Scenario, timeout: float, until: int | None = None) -> None:
        """Read events until ``until`` (default: all) runs of ``scenario`` completed."""
        target = scenario.runs if until is None else until
        deadline = time.monotonic() + timeout
        while len(scenario.completed) < target and time.monotonic() < deadline:
            self.pump(scenario, 0.05)

    def pump(self, scenario: Scenario, timeout: float) -> None:
        """Read one batch of events."""
        for message in self.consumer.consume(1000, timeout):
            if message.error():
                continue
            event = json.loads(message.value())
            wid = event["workflow_id"]
            if wid not in scenario.sent:
                continue
            kind = event["type"]
            if kind == "TASK_SCHEDULED":
                scenario.scheduled[(wid, event["data"]["seq"])] = event["time"]
            elif kind == "TASK_COMPLETED":
                started = scenario.scheduled.pop((wid, event["data"]["seq"]), None)
                if started is not None:
                    scenario.steps.append((event["time"] - started) * 1000)
            elif kind == "WORKFLOW_COMPLETED":
                scenario.completed[wid] = event["time"]


def start_producer(bootstrap: str) -> Producer:
    return Producer(
        {"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "linger.ms": 2, "acks": "all"}
    )


def send_start(producer: Producer, prefix: str, scenario: Scenario, wid: str) -> None:
    command = StartWorkflow(workflow_id=wid, workflow_type=scenario.workflow_type, input=scenario.input)
    scenario.sent[wid] = time.time()
    producer.produce(f"{prefix}inbox", key=wid.encode(), value=command.model_dump_json().encode())
    producer.poll(0)


def run_load(bootstrap: str, prefix: str, reader: EventReader, scenario: Scenario, timeout: float) -> None:
    """Start every run at once, then wait for all."""
    producer = start_producer(bootstrap)
    tag = uuid.uuid4().hex[:6]
    for i in range(scenario.runs):
        send_start(producer, prefix, scenario, f"{scenario.name}-{tag}-{i}")
    producer.flush(30)
    reader.drain(scenario, timeout)


def run_sequential(bootstrap: str, prefix: str, reader: EventReader, scenario: Scenario) -> None:
    """One run in flight at a time."""
    producer = start_producer(bootstrap)
    tag = uuid.uuid4().hex[:6]
    for i in range(scenario.runs):
        send_start(producer, prefix, scenario, f"{scenario.name}-{tag}-{i}")
        producer.flush(10)
        reader.drain(scenario, 30, until=i + 1)


def run_sustained(
    bootstrap: str, prefix: str, reader: EventReader, scenario: Scenario, seconds: float, in_flight: int
) -> None:
    """Closed loop: keep ``in_flight`` runs open for ``seconds``; throughput over that window."""
    producer = start_producer(bootstrap)
    tag = uuid.uuid4().hex[:6]
    started = time.time()
    end = time.monotonic() + seconds
    i = 0
    while time.monotonic() < end:
        while len(scenario.sent) - len(scenario.completed) < in_flight:
            send_start(producer, prefix, scenario, f"{scenario.name}-{tag}-{i}")
            i += 1
        reader.pump(scenario, 0.01)
    scenario.window = (started, time.time())
    scenario.runs = i
    producer.flush(30)
    reader.drain(scenario, 120)


def run_rate(
    bootstrap: str, prefix: str, reader: EventReader, scenario: Scenario, seconds: float, rate: float
) -> None:
    """Open loop: start runs at ``rate`` per second for ``seconds``, whatever the engine does."""
    producer = start_producer(bootstrap)
    tag = uuid.uuid4().hex[:6]
    began = time.monotonic()
    i = 0
    while time.monotonic() - began < seconds:
        due = int((time.monotonic() - began) * rate)
        while i < due:
            send_start(producer, prefix, scenario, f"{scenario.name}-{tag}-{i}")
            i += 1
        reader.pump(scenario, 0.005)
    scenario.runs = i
    producer.flush(30)
    reader.drain(scenario, 120)


def main() -> None:
    parser = arguments(__doc__, ".ledgerflow/bench", "bench/results/core.md", partitions=4)
    parser.add_argument("--runs", type=int, default=2000, help="Workflows per load scenario.")
    parser.add_argument("--sequential", type=int, default=50, help="Runs of the one-in-flight scenario.")
    parser.add_argument("--profile", action="store_true", help="py-spy the engine during the code scenario.")
    parser.add_argument("--seconds", type=float, default=60.0, help="Length of the sustained scenario.")
    parser.add_argument(
        "--in-flight", type=int, default=1000, help="Open runs kept by the sustained scenario."
    )
    args = parser.parse_args()
    results: list[dict[str, Any]] = []
    profile = None
    with local_stack(args, "bench") as cluster:
        bootstrap, prefix = cluster.bootstrap, cluster.prefix
        engine = cluster.engine([SAMPLES])
        worker = cluster.worker([SAMPLES], concurrency=200)
        engine.wait_ready(120)
        cluster.client().register_dag(FAN_OUT_FAN_IN)
        reader = EventReader(cluster)
        order = {"order_id": "bench", "amount": 1.0}
        run_load(bootstrap, prefix, reader, Scenario("warmup", "ProcessOrder", order, 100), 120)
        for scenario in (
            Scenario("code-3-steps", "ProcessOrder", order, args.runs),
            Scenario("dag-4-nodes", FAN_OUT_FAN_IN["id"], {"count": 10}, args.runs),
        ):
            before = engine.get("/metrics").text
            run_load(bootstrap, prefix, reader, scenario, 600)
            results.append({**scenario.summary(), "hops": hop_quantiles(before, engine.get("/metrics").text)})
            print(json.dumps(results[-1]), flush=True)
        sustained = Scenario(f"code-3-steps-sustained-{args.seconds:.0f}s", "ProcessOrder", order, 0)
        pids = {"engine": engine.pid, "worker": worker.pid, "load generator": os.getpid()}
        pids.update({f"broker {i}": pid for i, pid in enumerate(broker_pids(args))})
        cpu = CpuSplit(pids)
        cpu.start()
        before = engine.get("/metrics").text
        run_sustained(bootstrap, prefix, reader, sustained, args.seconds, args.in_flight)
        cpu.stop()
        results.append({**sustained.summary(), "hops": hop_quantiles(before, engine.get("/metrics").text)})
        print(json.dumps(results[-1]), flush=True)
        half = sustained.throughput() / 2
        paced = Scenario(f"code-3-steps-at-{half:.0f}-per-s (50% of max)", "ProcessOrder", order, 0)
        before = engine.get("/metrics").text
        run_rate(bootstrap, prefix, reader, paced, 20, half)
        results.append({**paced.summary(), "hops": hop_quantiles(before, engine.get("/metrics").text)})
        print(json.dumps(results[-1]), flush=True)
        # Last, on a broker that has served the scenarios above: a young broker's transaction
        # path is slow until its JIT has compiled it (on a fresh broker the first few hundred
        # sequential runs take ~45 ms each, later ones ~20 ms).
        one = Scenario("code-3-steps-one-in-flight", "ProcessOrder", order, args.sequential)
        before = engine.get("/metrics").text
        run_sequential(bootstrap, prefix, reader, one)
        results.insert(0, {**one.summary(), "hops": hop_quantiles(before, engine.get("/metrics").text)})
        print(json.dumps(results[0]), flush=True)
        if args.profile:  # a run of its own: the sampler slows the engine, its figures are not reported
            spy = start_profiler(engine.pid, args.report)
            run_load(bootstrap, prefix, reader, Scenario("profiled", "ProcessOrder", order, args.runs), 600)
            profile = stop_profiler(spy, args.report)
        reader.consumer.close()
        engine.stop()
        restore = measure_cold_restore(cluster)
    write_report(args.report, results, args, profile, restore, cpu.cores)


def measure_cold_restore(cluster: Cluster) -> dict[str, float]:
    """A fresh engine (no local state) restores every partition from the changelog."""
    fresh = cluster.engine([SAMPLES], name="engine-cold")
    fresh.wait_ready(600)
    rows = fresh.get("/internal/partitions", timeout=10).json()["partitions"]
    records = sum(int(r["restored_records"] or 0) for r in rows)
    seconds = sum(float(r["restore_seconds"] or 0.0) for r in rows)
    return {"records": records, "seconds": seconds, "records_per_s": records / seconds if seconds else 0.0}


def start_profiler(pid: int, report: Path) -> subprocess.Popen[bytes]:
    raw = report.with_suffix(".profile.txt")
    return subprocess.Popen(
        [
            str(Path(sys.executable).with_name("py-spy")),
            "record",
            "--pid",
            str(pid),
            "--format",
            "raw",
            "--gil",
            "--rate",
            "200",
            "--output",
            str(raw),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop_profiler(spy: subprocess.Popen[bytes], report: Path, top: int = 25) -> list[tuple[str, float]]:
    """Stop py-spy and return the functions with the most samples on top of the stack (self time)."""
    spy.send_signal(signal.SIGINT)
    spy.wait(30)
    samples: Counter[str] = Counter()
    total = 0
    raw = report.with_suffix(".profile.txt")
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        frame = stack.split(";")[-1]
        samples[frame] += int(count)
        total += int(count)
    return [(frame, 100.0 * n / total) for frame, n in samples.most_common(top)]


def write_report(
    path: Path,
    results: list[dict[str, Any]],
    args: argparse.Namespace,
    profile: list[tuple[str, float]] | None = None,
    restore: dict[str, float] | None = None,
    cpu: dict[str, float] | None = None,
) -> None:
    previous, previous_date = _previous(path)
    lines = [
        *report_header(
            "Core benchmark",
            f"1 Kafka broker (local launcher), 1 engine, 1 worker (concurrency 200), "
            f"{args.partitions} partitions, load generator on the same machine",
            f"python -m bench.core --runs {args.runs} --sequential {args.sequential} "
            f"--seconds {args.seconds:.0f} --in-flight {args.in_flight}",
        ),
        "Warm-up, not reported: 100 runs at once. The one-in-flight scenario runs last, on a broker "
        "that has served the others (a fresh broker's transaction path is slow until its JIT has "
        "compiled it: ~45 ms a run for the first few hundred sequential runs, ~20 ms later).",
        "",
        f"Each figure is followed by the previous report's (from {previous_date}) in brackets.",
        "",
        "| scenario | runs | completed | workflows/s | e2e P50 ms | e2e P99 ms | step P50 ms | step P99 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        old = previous.get(_kind(r["scenario"]), {})

        def cell(name: str, row: dict[str, Any] = r, old: dict[str, Any] = old) -> str:
            return f"{row[name]:.1f}{was(old.get(name))}"

        lines.append(
            f"| {r['scenario']} | {r['runs']} | {r['completed']} | {cell('throughput_per_s')} | "
            f"{cell('e2e_p50_ms')} | {cell('e2e_p99_ms')} | {cell('step_p50_ms')} | {cell('step_p99_ms')} |"
        )
    lines += [
        "",
        "e2e: start command sent -> WORKFLOW_COMPLETED applied by the engine. "
        "step: TASK_SCHEDULED -> TASK_COMPLETED (result applied). "
        "Under load, e2e includes queueing behind the other runs started at once.",
    ]
    lines += [
        "",
        "## Each hop, from the engine's own histograms (/metrics, what each scenario added)",
        "",
        "P50 / P99 ms. inbox wait: a start's, signal's or task result's Kafka timestamp to its batch "
        "being applied; batch apply: applying one batch; commit: its transaction and state write; "
        "step: an activity task dispatched to its result applied. Interpolated within histogram "
        "buckets, as Prometheus' histogram_quantile does.",
        "",
        "| scenario | " + " | ".join(HOPS) + " |",
        "|---|" + "---|" * len(HOPS),
    ]
    for r in results:
        hops = r.get("hops") or {}
        cells = [" / ".join(f"{v:.1f}" for v in hops[hop]) if hop in hops else "—" for hop in HOPS]
        lines.append(f"| {r['scenario']} | " + " | ".join(cells) + " |")
    if restore:
        lines += [
            "",
            f"Cold restore (a new engine, no local state, reads every changelog partition): "
            f"{restore['records']:.0f} records in {restore['seconds']:.2f} s = "
            f"{restore['records_per_s']:.0f} records/s.",
        ]
    if cpu:
        lines += ["", "## Where the CPU goes in the sustained scenario (cores busy, of the machine's)", ""]
        lines += ["| process | cores |", "|---|---|"]
        lines += [f"| {name} | {cores:.2f} |" for name, cores in cpu.items()]
        lines += [f"| all of them | {sum(cpu.values()):.2f} of {os.cpu_count()} |"]
    if profile:
        lines += ["", "## Engine profile at max throughput (py-spy, self time, top frames)", ""]
        lines += ["| % samples | frame |", "|---|---|"]
        lines += [f"| {share:.1f} | `{frame}` |" for frame, share in profile]
    save_report(path, lines, results)


def _kind(scenario: str) -> str:
    """A scenario's name without the rate it ran at, to pair it with the previous report's."""
    return re.sub(r"-at-\d+-per-s", "-at", scenario)


def _previous(path: Path) -> tuple[dict[str, dict[str, Any]], str]:
    """The previous report's rows by scenario kind, and its date."""
    rows, date = previous_report(path)
    return {_kind(row["scenario"]): row for row in rows or []}, date


if __name__ == "__main__":
    main()
