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
import platform
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from ledgerflow import Client
from ledgerflow.localkafka import LocalKafka
from ledgerflow.samples.dags import FAN_OUT_FAN_IN
from ledgerflow.schemas.commands import StartWorkflow
from ledgerflow.testing.processes import Cluster

SAMPLES = "ledgerflow.samples.orders"


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


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

    def summary(self) -> dict[str, Any]:
        latencies = [(self.completed[w] - self.sent[w]) * 1000 for w in self.completed if w in self.sent]
        first, last = min(self.sent.values()), max(self.completed.values(), default=float("nan"))
        return {
            "scenario": self.name,
            "runs": self.runs,
            "completed": len(self.completed),
            "throughput_per_s": len(self.completed) / (last - first) if self.completed else 0.0,
            "e2e_p50_ms": percentile(latencies, 50),
            "e2e_p99_ms": percentile(latencies, 99),
            "step_p50_ms": percentile(self.steps, 50),
            "step_p99_ms": percentile(self.steps, 99),
        }


class EventReader:
    """Tails the public events topic and records completion and step times."""

    def __init__(self, bootstrap: str, prefix: str, partitions: int) -> None:
        self.consumer = Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"bench-{uuid.uuid4().hex[:6]}",
                "isolation.level": "read_committed",
                "fetch.wait.max.ms": 5,
            }
        )
        topic = f"{prefix}events"
        self.consumer.assign([TopicPartition(topic, p, 0) for p in range(partitions)])

    def drain(self, scenario: Scenario, timeout: float, until: int | None = None) -> None:
        """Read events until ``until`` (default: all) runs of ``scenario`` completed."""
        target = scenario.runs if until is None else until
        deadline = time.monotonic() + timeout
        while len(scenario.completed) < target and time.monotonic() < deadline:
            for message in self.consumer.consume(1000, 0.05):
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


def run_load(bootstrap: str, prefix: str, reader: EventReader, scenario: Scenario, timeout: float) -> None:
    producer = Producer(
        {"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "linger.ms": 5, "acks": "all"}
    )
    tag = uuid.uuid4().hex[:6]
    for i in range(scenario.runs):
        wid = f"{scenario.name}-{tag}-{i}"
        command = StartWorkflow(workflow_id=wid, workflow_type=scenario.workflow_type, input=scenario.input)
        scenario.sent[wid] = time.time()
        producer.produce(f"{prefix}inbox", key=wid.encode(), value=command.model_dump_json().encode())
        producer.poll(0)
    producer.flush(30)
    reader.drain(scenario, timeout)


def run_sequential(bootstrap: str, prefix: str, reader: EventReader, scenario: Scenario) -> None:
    """One run in flight at a time."""
    producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "acks": "all"})
    tag = uuid.uuid4().hex[:6]
    for i in range(scenario.runs):
        wid = f"{scenario.name}-{tag}-{i}"
        command = StartWorkflow(workflow_id=wid, workflow_type=scenario.workflow_type, input=scenario.input)
        scenario.sent[wid] = time.time()
        producer.produce(f"{prefix}inbox", key=wid.encode(), value=command.model_dump_json().encode())
        producer.flush(10)
        reader.drain(scenario, 30, until=i + 1)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=2000, help="Workflows per load scenario.")
    parser.add_argument("--sequential", type=int, default=50, help="Runs of the one-in-flight scenario.")
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument("--bootstrap", default=os.environ.get("LEDGERFLOW_BOOTSTRAP"))
    parser.add_argument("--work-dir", type=Path, default=Path(".ledgerflow/bench"))
    parser.add_argument("--report", type=Path, default=Path("bench/results/core.md"))
    parser.add_argument("--profile", action="store_true", help="py-spy the engine during the code scenario.")
    args = parser.parse_args()

    kafka = None
    bootstrap = args.bootstrap
    if not bootstrap:
        kafka = LocalKafka(args.work_dir / "kafka")
        bootstrap = kafka.up()
    prefix = f"bench-{uuid.uuid4().hex[:6]}."
    cluster = Cluster(bootstrap, prefix, args.work_dir / prefix.rstrip("."), partitions=args.partitions)
    results: list[dict[str, Any]] = []
    try:
        engine = cluster.engine([SAMPLES])
        cluster.worker([SAMPLES], concurrency=200)
        engine.wait_ready(120)
        Client(bootstrap, prefix, partitions=args.partitions).register_dag(FAN_OUT_FAN_IN)
        reader = EventReader(bootstrap, prefix, args.partitions)
        order = {"order_id": "bench", "amount": 1.0}
        warmup = Scenario("warmup", "ProcessOrder", order, 100)
        run_load(bootstrap, prefix, reader, warmup, 120)
        one = Scenario("code-3-steps-one-in-flight", "ProcessOrder", order, args.sequential)
        run_sequential(bootstrap, prefix, reader, one)
        results.append(one.summary())
        profile = None
        for scenario in (
            Scenario("code-3-steps", "ProcessOrder", order, args.runs),
            Scenario("dag-4-nodes", FAN_OUT_FAN_IN["id"], {"count": 10}, args.runs),
        ):
            spy = start_profiler(engine.pid, args.report) if args.profile and profile is None else None
            run_load(bootstrap, prefix, reader, scenario, 600)
            if spy is not None:
                profile = stop_profiler(spy, args.report)
            results.append(scenario.summary())
            print(json.dumps(results[-1]), flush=True)
    finally:
        cluster.stop_all()
        if kafka is not None:
            kafka.down()
    write_report(args.report, results, args, profile)


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
            "--gil", "--rate",
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
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [
        "# Core benchmark",
        "",
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        f"- setup: 1 Kafka broker (local launcher), 1 engine, 1 worker (concurrency 200), "
        f"{args.partitions} partitions, load generator on the same machine",
        "- command: `python -m bench.core " + f"--runs {args.runs} --sequential {args.sequential}`",
        "",
        "| scenario | runs | completed | workflows/s | e2e P50 ms | e2e P99 ms | step P50 ms | step P99 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['scenario']} | {r['runs']} | {r['completed']} | {r['throughput_per_s']:.1f} | "
            f"{r['e2e_p50_ms']:.1f} | {r['e2e_p99_ms']:.1f} | "
            f"{r['step_p50_ms']:.1f} | {r['step_p99_ms']:.1f} |"
        )
    lines += [
        "",
        "e2e: start command sent -> WORKFLOW_COMPLETED applied by the engine. "
        "step: TASK_SCHEDULED -> TASK_COMPLETED (result applied). "
        "Under load, e2e includes queueing behind the other runs started at once.",
    ]
    if profile:
        lines += ["", "## Engine profile at max throughput (py-spy, self time, top frames)", ""]
        lines += ["| % samples | frame |", "|---|---|"]
        lines += [f"| {share:.1f} | `{frame}` |" for frame, share in profile]
    path.write_text("\n".join(lines) + "\n")
    path.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
