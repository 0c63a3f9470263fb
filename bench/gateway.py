"""Gateway latency: start and status while the engine runs at half its throughput, and a
closed-loop mixture of requests.

One broker, one engine, one worker and one gateway on this machine.

1. At 50 % load (the performance targets): workflows are started straight on Kafka at
   ``--rate`` per second (half of the core bench's sustained maximum) while one client
   starts a workflow through the gateway (POST /api/v1/workflows, answered 202) and reads
   the status of an earlier one, one request at a time, ``--probes`` times a second.
2. Closed loop (the seeds' targets): ``--concurrency`` requests in flight for ``--seconds``,
   mixing create, execute (POST /api/v1/workflows/{dag}/execute) and status.

    python -m bench.gateway --rate 500 --seconds 30 --report bench/results/gateway.md
"""

from __future__ import annotations

import argparse
import asyncio
import random
import threading
import time
import uuid
from typing import Any

import aiohttp
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
from ledgerflow.local.processes import Cluster
from ledgerflow.samples.dags import FAN_OUT_FAN_IN

TARGETS_MS = {"create": 100.0, "execute": 50.0, "status": 20.0}
"""P99 targets of seed 000 (create < 100 ms, execute trigger < 50 ms, status query < 20 ms)."""
PACED_TARGETS_MS = {"start": 20.0, "status": 10.0}
"""P99 targets of the performance issue, at half the engine's maximum throughput."""
ORDER = {"order_id": "gateway-bench", "amount": 1.0}


def at_half_load(
    cluster: Cluster, base: str, headers: dict[str, str], rate: float, seconds: float, probes: float
) -> dict[str, Any]:
    """Gateway start and status latency, one request at a time, while Kafka gets ``rate`` starts/s."""
    load = Scenario("paced", "ProcessOrder", ORDER, 0)
    done = threading.Event()

    def offer() -> None:
        producer = start_producer(cluster.bootstrap)
        began = time.monotonic()
        i = 0
        while not done.is_set():
            due = int((time.monotonic() - began) * rate)
            while i < due:
                send_start(producer, cluster.prefix, load, f"paced-{uuid.uuid4().hex[:6]}-{i}")
                i += 1
            time.sleep(0.002)
        load.runs = i
        producer.flush(30)

    latencies: dict[str, list[float]] = {"start": [], "status": []}
    failures: dict[str, int] = {}
    started: list[tuple[float, str]] = []
    offering = threading.Thread(target=offer, name="load")
    window_start = time.time()
    offering.start()
    with httpx.Client(base_url=base, headers=headers, timeout=10) as client:

        def timed(op: str, method: str, path: str, body: Any = None) -> None:
            began = time.perf_counter()
            response = client.request(method, path, json=body)
            if response.status_code in (200, 202):
                latencies[op].append((time.perf_counter() - began) * 1000)
            else:
                failures[f"{op} {response.status_code}"] = failures.get(f"{op} {response.status_code}", 0) + 1

        time.sleep(2)  # let the offered load settle before timing
        end = time.monotonic() + seconds
        next_probe = time.monotonic()
        while time.monotonic() < end:
            next_probe += 1 / probes
            wid = f"probe-{uuid.uuid4().hex[:12]}"
            timed("start", "POST", "/api/v1/workflows", {"id": wid, "type": "ProcessOrder", "input": ORDER})
            earlier = _settled(started)
            if earlier:
                timed("status", "GET", f"/api/v1/workflows/{earlier}/status")
            started.append((time.monotonic(), wid))
            time.sleep(max(0.0, next_probe - time.monotonic()))
    done.set()
    offering.join()
    load.window = (window_start, time.time())
    reader = EventReader(cluster)
    reader.drain(load, 120)
    reader.consumer.close()
    return {"latencies": latencies, "failures": failures, "offered": rate, "throughput": load.throughput()}


def _settled(started: list[tuple[float, str]]) -> str:
    """A run the gateway started over a second ago ('' if none yet): its status exists."""
    now = time.monotonic()
    for at, wid in reversed(started):
        if now - at > 1.0:
            return wid
    return ""


async def load(
    base: str, headers: dict[str, str], seconds: float, concurrency: int
) -> dict[str, list[float]]:
    latencies: dict[str, list[float]] = {"create": [], "execute": [], "status": []}
    errors: dict[str, int] = {}
    created: list[str] = []
    end = time.monotonic() + seconds
    rng = random.Random(7)

    async def one(client: aiohttp.ClientSession) -> None:
        while time.monotonic() < end:
            roll = rng.random()
            body: dict[str, Any] | None
            if roll < 0.3 or not created:
                op, wid, method = "create", f"gw-{uuid.uuid4().hex[:12]}", "POST"
                path = "/api/v1/workflows"
                body = {"id": wid, "type": "ProcessOrder", "input": {"order_id": wid, "amount": 1.0}}
            elif roll < 0.5:
                op, wid, method = "execute", f"gx-{uuid.uuid4().hex[:12]}", "POST"
                path = f"/api/v1/workflows/{FAN_OUT_FAN_IN['id']}/execute"
                body = {"workflowId": wid, "input": {"count": 5}}
            else:
                op, wid, method = "status", rng.choice(created), "GET"
                path, body = f"/api/v1/workflows/{wid}/status", None
            started = time.perf_counter()
            async with client.request(method, base + path, json=body) as response:
                await response.read()
            elapsed = (time.perf_counter() - started) * 1000
            if response.status in (200, 202):
                latencies[op].append(elapsed)
                if op == "create":
                    created.append(wid)
            else:
                errors[f"{op} {response.status}"] = errors.get(f"{op} {response.status}", 0) + 1

    # aiohttp, not httpx: httpx's pool would be this load generator's bottleneck (see
    # docs/decisions/0004-aiohttp-for-owner-reads.md).
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10), headers=headers) as client:
        await asyncio.gather(*(one(client) for _ in range(concurrency)))
    latencies["_errors"] = [float(n) for n in errors.values()]
    if errors:
        print("errors:", errors, flush=True)
    return latencies


def main() -> None:
    parser = arguments(__doc__, ".ledgerflow/bench-gateway", "bench/results/gateway.md", partitions=4)
    parser.add_argument("--seconds", type=float, default=30.0, help="Length of each part.")
    parser.add_argument("--concurrency", type=int, default=16, help="Requests in flight, closed loop.")
    parser.add_argument("--rate", type=float, default=500.0, help="Starts/s offered on Kafka in part 1.")
    parser.add_argument("--probes", type=float, default=20.0, help="Start+status pairs/s timed in part 1.")
    args = parser.parse_args()
    with local_stack(args, "gw") as cluster:
        engine = cluster.engine([SAMPLES])
        cluster.worker([SAMPLES], concurrency=200)
        gateway = cluster.gateway([SAMPLES])
        engine.wait_ready(120)
        gateway.wait_ready(120)
        base = gateway.url or ""
        headers = gateway.headers
        response = httpx.post(f"{base}/api/v1/workflows", json=FAN_OUT_FAN_IN, headers=headers, timeout=10)
        response.raise_for_status()
        asyncio.run(load(base, headers, 3, args.concurrency))  # warm-up
        paced = at_half_load(cluster, base, headers, args.rate, args.seconds, args.probes)
        print(paced["throughput"], paced["failures"], flush=True)
        latencies = asyncio.run(load(base, headers, args.seconds, args.concurrency))
    write_report(args, paced, latencies)


def write_report(args: argparse.Namespace, paced: dict[str, Any], latencies: dict[str, list[float]]) -> None:
    previous, previous_date = previous_report(args.report)
    before: dict[str, Any] = previous if isinstance(previous, dict) else {}

    def cell(value: float, old: Any) -> str:
        return f"{value:.1f}{was(old)}"

    lines = [
        *report_header(
            "Gateway benchmark",
            f"1 Kafka broker, 1 engine, 1 worker, 1 gateway, {args.partitions} partitions, "
            "load generator on the same machine",
            f"python -m bench.gateway --rate {args.rate:.0f} --probes {args.probes:.0f} "
            f"--seconds {args.seconds:.0f} --concurrency {args.concurrency}",
        ),
        f"Each figure is followed by the previous report's (from {previous_date}) in brackets.",
        "",
        "## At half the engine's maximum throughput",
        "",
        f"{args.rate:.0f} starts/s offered straight on Kafka for {args.seconds:.0f} s (completed: "
        f"{paced['throughput']:.0f} workflows/s); meanwhile one client times a gateway start and a "
        f"status read, one request at a time, {args.probes:.0f} pairs a second.",
        "",
        "| operation | requests | P50 ms | P99 ms | target (P99) |",
        "|---|---|---|---|---|",
    ]
    figures: dict[str, Any] = {"paced": {"offered_per_s": args.rate, "completed_per_s": paced["throughput"]}}
    for op in ("start", "status"):
        values = paced["latencies"][op]
        p50, p99 = percentile(values, 50), percentile(values, 99)
        figures["paced"][op] = {"requests": len(values), "p50_ms": p50, "p99_ms": p99}
        old = before.get("paced", {}).get(op, {})
        lines.append(
            f"| {op} | {len(values)} | {cell(p50, old.get('p50_ms'))} | {cell(p99, old.get('p99_ms'))} | "
            f"≤ {PACED_TARGETS_MS[op]:.0f} ms |"
        )
    if paced["failures"]:
        lines += ["", f"Answers other than 200/202: {paced['failures']}."]
    lines += [
        "",
        f"## Closed loop: {args.concurrency} requests in flight for {args.seconds:.0f} s",
        "",
        "30 % create, 20 % execute, 50 % status; the load generator (aiohttp, one Python process) "
        "shares the machine.",
        "",
        "| operation | requests | per s | P50 ms | P99 ms | seed target (P99) |",
        "|---|---|---|---|---|---|",
    ]
    for op in ("create", "execute", "status"):
        values = latencies[op]
        p50, p99 = percentile(values, 50), percentile(values, 99)
        figures[op] = {"requests": len(values), "p50_ms": p50, "p99_ms": p99}
        old = before.get(op, {})
        lines.append(
            f"| {op} | {len(values)} | {len(values) / args.seconds:.0f} | {cell(p50, old.get('p50_ms'))} | "
            f"{cell(p99, old.get('p99_ms'))} | < {TARGETS_MS[op]:.0f} ms |"
        )
    lines += [
        "",
        f"Requests that did not answer 200/202: {int(sum(latencies['_errors']))} (404s: a status read "
        "of a run created a moment earlier whose start the engine had not applied yet).",
    ]
    save_report(args.report, lines, figures)


if __name__ == "__main__":
    main()
