"""An engine with many completed workflows stored: its restart time and the gateway's status latency.

Runs ``--workflows`` three-activity workflows to completion (``--in-flight`` open at
a time), stops the engine, starts it again on the same data folder and times it to
``/ready``; then reads the status of random completed workflows through a gateway,
one request at a time.

    python -m bench.stored --workflows 1000000 --report bench/results/stored.md
"""

from __future__ import annotations

import random
import time
import uuid
from typing import Any

import httpx

from bench.common import (
    SAMPLES,
    arguments,
    local_stack,
    percentile,
    previous_report,
    report_header,
    save_report,
    was,
)
from bench.core import EventReader, Scenario, send_start, start_producer


def main() -> None:
    parser = arguments(__doc__, ".ledgerflow/bench-stored", "bench/results/stored.md", partitions=4)
    parser.add_argument("--workflows", type=int, default=1_000_000)
    parser.add_argument("--in-flight", type=int, default=1500)
    parser.add_argument("--reads", type=int, default=2000, help="Status requests, one at a time.")
    args = parser.parse_args()
    figures: dict[str, Any] = {}
    with local_stack(args, "stored") as cluster:
        engine = cluster.engine([SAMPLES])
        cluster.worker([SAMPLES], concurrency=200)
        engine.wait_ready(120)
        reader = EventReader(cluster)
        scenario = Scenario("stored", "ProcessOrder", {"order_id": "bench", "amount": 1.0}, args.workflows)
        producer = start_producer(cluster.bootstrap)
        tag = uuid.uuid4().hex[:6]
        began = time.monotonic()
        sent = 0
        last_note = began
        while len(scenario.completed) < args.workflows:
            while sent < args.workflows and sent - len(scenario.completed) < args.in_flight:
                send_start(producer, cluster.prefix, scenario, f"done-{tag}-{sent}")
                sent += 1
            reader.pump(scenario, 0.01)
            scenario.scheduled.clear()  # step times are not reported here; keep memory flat
            if time.monotonic() - last_note > 30:
                last_note = time.monotonic()
                print(f"{len(scenario.completed)} of {args.workflows} completed", flush=True)
        figures["completed"] = len(scenario.completed)
        figures["load_seconds"] = time.monotonic() - began
        reader.consumer.close()

        engine.stop(timeout=60)
        restarted = time.monotonic()
        engine.start()
        engine.wait_ready(600)
        figures["restart_to_ready_s"] = time.monotonic() - restarted
        rows = engine.get("/internal/partitions", timeout=10).json()["partitions"]
        figures["state_bytes"] = sum(int(r["state_bytes"]) for r in rows)
        figures["restored_records"] = sum(int(r["restored_records"] or 0) for r in rows)

        gateway = cluster.gateway()
        gateway.wait_ready(120)
        ids = random.sample(sorted(scenario.completed), min(args.reads, len(scenario.completed)))
        latencies = []
        with httpx.Client(base_url=f"{gateway.url}/api/v1", headers=gateway.headers, timeout=10) as http:
            for wid in ids[:100]:  # warm-up: connections, the gateway's owner directory
                http.get(f"/workflows/{wid}/status").raise_for_status()
            for wid in ids:
                t0 = time.perf_counter()
                response = http.get(f"/workflows/{wid}/status")
                latencies.append((time.perf_counter() - t0) * 1000)
                assert response.status_code == 200 and response.json()["status"] == "COMPLETED", response.text
        figures["status_p50_ms"] = percentile(latencies, 50)
        figures["status_p99_ms"] = percentile(latencies, 99)
    previous, previous_date = previous_report(args.report)
    before: dict[str, Any] = previous if isinstance(previous, dict) else {}

    def old(key: str, form: str = ".1f", scale: float = 1.0) -> str:
        return was(before.get(key), form, scale=scale)

    lines = [
        *report_header(
            "Stored workflows benchmark",
            f"1 Kafka broker, 1 engine, 1 worker, 1 gateway, {args.partitions} partitions; "
            f"{args.workflows} three-activity workflows run to completion, retention off (all kept)",
            f"python -m bench.stored --workflows {args.workflows} --in-flight {args.in_flight} "
            f"--reads {args.reads}",
        ),
        f"Each figure is followed by the previous report's (from {previous_date}) in brackets.",
        "",
        "| figure | measured | target |",
        "|---|---|---|",
        f"| completed workflows stored | {figures['completed']} "
        f"(run in {figures['load_seconds']:.0f} s{old('load_seconds', '.0f')}) | 1,000,000 |",
        f"| engine state on disk (RocksDB estimate) | {figures['state_bytes'] / 2**30:.2f} GiB"
        f"{old('state_bytes', '.2f', 2**-30)} | |",
        f"| engine restart with its local state → /ready | {figures['restart_to_ready_s']:.1f} s"
        f"{old('restart_to_ready_s')} ({figures['restored_records']} changelog records read) | ≤ 5 s |",
        f"| status of a completed workflow through the gateway, one at a time, P50 / P99 | "
        f"{figures['status_p50_ms']:.1f}{old('status_p50_ms')} / {figures['status_p99_ms']:.1f}"
        f"{old('status_p99_ms')} ms | P99 ≤ 10 ms |",
    ]
    save_report(args.report, lines, figures)


if __name__ == "__main__":
    main()
