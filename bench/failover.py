"""Failover and rebalance benchmark: three engines holding open workflows.

- rebalance: time for a fourth engine to join and take its share of 1,000 open workflows
  (process start -> ready; and the assignment-to-restored time the nodes record);
- failover: time from kill -9 of an engine to the first (and last) progress of its workflows
  on the survivors;
- evenness: open workflows per engine.

    python -m bench.failover --workflows 1000 --report bench/results/failover.md
"""

from __future__ import annotations

import argparse
import json
import time
import uuid
from collections import Counter
from typing import Any

import httpx
from confluent_kafka import Producer

from bench.common import SAMPLES, arguments, events_consumer, local_stack, report_header, save_report
from ledgerflow.engine.kafka.group import GROUP_PROTOCOLS
from ledgerflow.local.processes import Cluster, NodeProcess
from ledgerflow.partitioning import partition_for
from ledgerflow.schemas.commands import SignalWorkflow, StartWorkflow


def owned(node: NodeProcess) -> list[int]:
    rows = node.get("/internal/partitions").json()["partitions"]
    return [int(r["partition"]) for r in rows]


def moves(node: NodeProcess) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = node.get("/internal/partitions").json()["moves"]
    return result


def wait_settled(nodes: list[NodeProcess], partitions: int, timeout: float) -> float:
    """Seconds until the nodes together own every partition exactly once, spread evenly (the
    shares differ by one partition at most)."""
    started = time.monotonic()
    shares: list[list[int]] = []
    while time.monotonic() - started < timeout:
        try:
            shares = [owned(n) for n in nodes]
        except httpx.HTTPError:
            shares = []
        sizes = [len(share) for share in shares]
        if (
            sorted(p for share in shares for p in share) == list(range(partitions))
            and max(sizes) - min(sizes) <= 1
        ):
            return time.monotonic() - started
        time.sleep(0.05)
    raise TimeoutError(f"partitions never settled: {shares}")


class Completions:
    def __init__(self, cluster: Cluster) -> None:
        self.consumer = events_consumer(cluster)
        self.seen: dict[str, dict[str, float]] = {}

    def pump(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            for message in self.consumer.consume(1000, 0.05):
                if message.error():
                    continue
                event = json.loads(message.value())
                self.seen.setdefault(event["type"], {})[event["workflow_id"]] = time.time()

    def count(self, kind: str, ids: set[str]) -> int:
        return len(ids & set(self.seen.get(kind, {})))


def main() -> None:
    parser = arguments(__doc__, ".ledgerflow/bench-failover", "bench/results/failover.md", partitions=12)
    parser.add_argument("--workflows", type=int, default=1000)
    parser.add_argument("--session-timeout-ms", type=int, default=3000)
    parser.add_argument("--standby", action="store_true", help="Run the engines with --standby.")
    parser.add_argument("--group-protocol", choices=GROUP_PROTOCOLS, default="classic")
    args = parser.parse_args()
    with local_stack(args, "fo") as cluster:
        figures = measure(cluster, args)
    write_report(args, figures)


def measure(cluster: Cluster, args: argparse.Namespace) -> dict[str, Any]:
    bootstrap, prefix = cluster.bootstrap, cluster.prefix
    extra = [
        *("--session-timeout-ms", str(args.session_timeout_ms)),
        # classic is the default, so this bench also runs against engines without the option
        *(["--group-protocol", args.group_protocol] if args.group_protocol != "classic" else []),
        *(["--standby"] if args.standby else []),
    ]
    figures: dict[str, Any] = {}
    events: Completions | None = None
    try:
        engines = [cluster.engine([SAMPLES], name=f"engine-{i}", extra=extra) for i in range(3)]
        cluster.worker([SAMPLES])
        for engine in engines:
            engine.wait_ready(120)
        wait_settled(engines, args.partitions, 60)
        events = Completions(cluster)
        producer = Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "linger.ms": 5})
        tag = uuid.uuid4().hex[:6]
        ids = [f"wf-{tag}-{i}" for i in range(args.workflows)]
        for wid in ids:
            start = StartWorkflow(workflow_id=wid, workflow_type="Approval", input=3600)
            producer.produce(f"{prefix}inbox", key=wid.encode(), value=start.model_dump_json().encode())
            producer.poll(0)
        producer.flush(30)
        deadline = time.monotonic() + 300
        while events.count("WORKFLOW_STARTED", set(ids)) < len(ids) and time.monotonic() < deadline:
            events.pump(0.5)
        per_partition = Counter(partition_for(w, args.partitions) for w in ids)
        figures["open_per_engine_3"] = [sum(per_partition[p] for p in owned(e)) for e in engines]

        # A fourth engine joins.
        joined_at = time.monotonic()
        fourth = cluster.engine([SAMPLES], name="engine-3", extra=extra)
        fourth.wait_ready(120)
        all_four = [*engines, fourth]
        settle = wait_settled(all_four, args.partitions, 120)
        figures["join_to_settled_s"] = time.monotonic() - joined_at
        figures["join_settle_after_ready_s"] = settle
        figures["rebalance_moves"] = [m for n in all_four for m in moves(n) if m["at"] >= time.time() - 300]
        figures["open_per_engine_4"] = [sum(per_partition[p] for p in owned(e)) for e in all_four]

        # kill -9 one engine; signal every workflow it owned; time their progress elsewhere.
        victim = engines[0]
        victim_parts = set(owned(victim))
        victims = {w for w in ids if partition_for(w, args.partitions) in victim_parts}
        victim.kill()
        killed_at = time.time()
        for wid in victims:
            signal = SignalWorkflow(workflow_id=wid, name="approve", payload="bench")
            producer.produce(f"{prefix}inbox", key=wid.encode(), value=signal.model_dump_json().encode())
        producer.flush(30)
        deadline = time.monotonic() + 120
        while events.count("WORKFLOW_COMPLETED", victims) < len(victims) and time.monotonic() < deadline:
            events.pump(0.2)
        done = [events.seen.get("WORKFLOW_COMPLETED", {}).get(w) for w in victims]
        times = sorted(t - killed_at for t in done if t is not None)
        figures["failover_workflows"] = len(victims)
        figures["failover_completed"] = len(times)
        figures["failover_first_progress_s"] = times[0] if times else None
        figures["failover_all_done_s"] = times[-1] if times else None
    finally:
        if events is not None:
            events.consumer.close()
    return figures


def write_report(args: argparse.Namespace, f: dict[str, Any]) -> None:
    lines = [
        *report_header(
            "Failover and rebalance benchmark",
            f"1 Kafka broker, 3 engines (+1 joining), 1 worker, {args.partitions} partitions, "
            f"{args.workflows} open workflows waiting on a signal, group protocol {args.group_protocol}, "
            f"engine session timeout {args.session_timeout_ms} ms"
            f"{', standby replicas on' if args.standby else ''}",
            f"python -m bench.failover --workflows {args.workflows} --group-protocol {args.group_protocol}"
            f"{' --standby' if args.standby else ''}",
        ),
        "| figure | measured | seed target |",
        "|---|---|---|",
        "| failover: kill -9 -> first progress of a moved workflow | "
        f"{f.get('failover_first_progress_s', 0):.2f} s | < 5 s |",
        f"| failover: kill -9 -> all {f.get('failover_workflows')} moved workflows progressed | "
        f"{f.get('failover_all_done_s', 0):.2f} s | |",
        "| rebalance: 4th engine started -> partitions settled, spread evenly "
        f"({args.workflows} open workflows) | "
        f"{f.get('join_to_settled_s', 0):.2f} s | < 30 s |",
        f"| open workflows per engine (3 engines) | {f.get('open_per_engine_3')} | even |",
        f"| open workflows per engine (4 engines) | {f.get('open_per_engine_4')} | even |",
        "",
        "Partition moves recorded by the nodes during the join (assign includes restoring state):",
        "",
    ]
    for move in f.get("rebalance_moves", []):
        if not move["partitions"]:
            continue
        lines.append(f"- {move['change']} {move['partitions']} in {move['seconds']:.3f} s")
    save_report(args.report, lines, f)


if __name__ == "__main__":
    main()
