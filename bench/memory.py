"""One engine holding many open workflows (each waiting on a signal with a timer): its memory,
and the throughput of other workflows next to them compared with the empty engine.

python -m bench.memory --workflows 100000 --report bench/results/memory.md
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from confluent_kafka import Producer

from bench.common import (
    SAMPLES,
    CpuSplit,
    arguments,
    broker_pids,
    events_consumer,
    local_stack,
    previous_report,
    report_header,
    save_report,
    was,
)
from bench.core import EventReader, Scenario, run_load, start_profiler, stop_profiler
from ledgerflow.local.processes import Cluster, NodeProcess
from ledgerflow.schemas.commands import StartWorkflow


def rss(engine: NodeProcess) -> float:
    stats: dict[str, Any] = engine.get("/internal/partitions", timeout=10).json()
    return float(stats["process"]["rss_bytes"])


def burst(cluster: Cluster, reader: EventReader, runs: int, cpu: CpuSplit) -> tuple[float, dict[str, float]]:
    """Workflows/s of ``runs`` three-activity workflows started at once (after a warm-up), and the
    cores each process used meanwhile."""
    order = {"order_id": "bench", "amount": 1.0}
    run_load(cluster.bootstrap, cluster.prefix, reader, Scenario("warmup", "ProcessOrder", order, 200), 300)
    scenario = Scenario("burst", "ProcessOrder", order, runs)
    cpu.start()
    run_load(cluster.bootstrap, cluster.prefix, reader, scenario, 600)
    return scenario.throughput(), cpu.stop()


def main() -> None:
    parser = arguments(__doc__, ".ledgerflow/bench-memory", "bench/results/memory.md", partitions=4)
    parser.add_argument("--workflows", type=int, default=100_000)
    parser.add_argument("--burst", type=int, default=3000, help="Runs of the throughput measurement.")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="py-spy a third burst.",
    )
    args = parser.parse_args()
    figures: dict[str, Any] = {}
    with local_stack(args, "mem") as cluster:
        engine = cluster.engine([SAMPLES])
        worker = cluster.worker([SAMPLES], concurrency=200)
        engine.wait_ready(120)
        figures["rss_empty_mb"] = rss(engine) / 2**20
        reader = EventReader(cluster)
        pids = {"engine": engine.pid, "worker": worker.pid}
        cpu = CpuSplit({**pids, **{f"broker {i}": pid for i, pid in enumerate(broker_pids(args))}})
        # Not measured: a young broker is slower until its JIT has compiled its hot paths,
        # which would make the empty engine look slower than it is.
        burst(cluster, reader, args.burst, cpu)
        figures["throughput_empty"], figures["cores_empty"] = burst(cluster, reader, args.burst, cpu)
        producer = Producer(
            {"bootstrap.servers": cluster.bootstrap, "partitioner": "murmur2_random", "linger.ms": 5}
        )
        events = events_consumer(cluster)
        tag = uuid.uuid4().hex[:6]
        started_at = time.monotonic()
        for i in range(args.workflows):
            wid = f"open-{tag}-{i}"
            command = StartWorkflow(workflow_id=wid, workflow_type="Approval", input=7 * 24 * 3600)
            producer.produce(
                f"{cluster.prefix}inbox", key=wid.encode(), value=command.model_dump_json().encode()
            )
            if i % 1000 == 0:
                producer.poll(0)
        producer.flush(120)
        seen = 0
        deadline = time.monotonic() + 1800
        while seen < args.workflows and time.monotonic() < deadline:
            for message in events.consume(5000, 0.2):
                if message.error():
                    continue
                event = json.loads(message.value())
                if event["type"] == "WORKFLOW_STARTED" and event["workflow_id"].startswith(f"open-{tag}-"):
                    seen += 1
        events.close()
        figures["started"] = seen
        figures["start_seconds"] = time.monotonic() - started_at
        figures["rss_full_mb"] = rss(engine) / 2**20
        figures["throughput_full"], figures["cores_full"] = burst(cluster, reader, args.burst, cpu)
        profile = []
        if args.profile:  # a burst of its own: the sampler slows the engine
            spy = start_profiler(engine.pid, args.report)
            burst(cluster, reader, args.burst, cpu)
            profile = stop_profiler(spy, args.report)
        reader.consumer.close()
    previous, previous_date = previous_report(args.report)
    before: dict[str, Any] = previous if isinstance(previous, dict) else {}

    def old(key: str, unit: str) -> str:
        return was(before.get(key), ".0f", unit)

    share = 100 * figures["throughput_full"] / figures["throughput_empty"]
    old_share = (
        was(100 * before["throughput_full"] / before["throughput_empty"], ".0f", " %")
        if before.get("throughput_empty")
        else ""
    )
    lines = [
        *report_header(
            "Memory benchmark",
            f"1 Kafka broker, 1 engine, {args.partitions} partitions; {args.workflows} workflows started "
            "and left open, each waiting on a signal with a 7-day timeout (a durable timer)",
            f"python -m bench.memory --workflows {args.workflows} --burst {args.burst}",
        ),
        f"Each figure is followed by the previous report's (from {previous_date}) in brackets. "
        "A first burst, not measured, warms the broker up.",
        "",
        "| figure | measured | target |",
        "|---|---|---|",
        f"| engine RSS, empty | {figures['rss_empty_mb']:.0f} MiB{old('rss_empty_mb', ' MiB')} | |",
        f"| engine RSS holding {figures['started']} open workflows | "
        f"{figures['rss_full_mb']:.0f} MiB{old('rss_full_mb', ' MiB')} | ≤ 2 GiB |",
        f"| time to start them all | {figures['start_seconds']:.1f} s{old('start_seconds', ' s')} | |",
        f"| 3-activity workflows/s, {args.burst} started at once, empty engine | "
        f"{figures['throughput_empty']:.0f}/s{old('throughput_empty', '/s')} | |",
        f"| same, next to the {figures['started']} open workflows | {figures['throughput_full']:.0f}/s"
        f"{old('throughput_full', '/s')}, {share:.0f} % of empty{old_share} | ≥ 80 % of empty |",
        "",
        "Cores busy during each burst (the machine has 2):",
        "",
        "| process | empty engine | next to the open workflows |",
        "|---|---|---|",
        *(
            f"| {name} | {figures['cores_empty'][name]:.2f} | {figures['cores_full'][name]:.2f} |"
            for name in figures["cores_empty"]
        ),
        "",
        "Open workflows live in RocksDB; the engine keeps at most 2,000 instances per partition in memory",
        "(`EngineOptions.cache_size`), and a timer index entry per open timer.",
    ]
    if profile:
        lines += [
            "",
            "## Engine profile during a third burst next to them (py-spy, self time, top frames)",
            "",
        ]
        lines += ["| % samples | frame |", "|---|---|"]
        lines += [f"| {share:.1f} | `{frame}` |" for frame, share in profile]
    save_report(args.report, lines, figures)


if __name__ == "__main__":
    main()
