"""Gateway load: create, execute and status latency under sustained load, next to the seeds' targets.

One broker, one engine, one worker and one gateway on this machine; a closed-loop load
generator keeps ``--concurrency`` requests in flight for ``--seconds``, mixing
create (POST /api/v1/workflows, a code workflow), execute (POST /api/v1/workflows/{dag}/execute)
and status (GET /api/v1/workflows/{id}/status of a run created earlier).

    python -m bench.gateway --seconds 30 --concurrency 16 --report bench/results/gateway.md
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
import uuid
from typing import Any

import httpx

from bench.common import SAMPLES, arguments, local_stack, percentile, report_header, save_report
from ledgerflow.samples.dags import FAN_OUT_FAN_IN

TARGETS_MS = {"create": 100.0, "execute": 50.0, "status": 20.0}
"""P99 targets of seed 000 (create < 100 ms, execute trigger < 50 ms, status query < 20 ms)."""


async def load(base: str, seconds: float, concurrency: int) -> dict[str, list[float]]:
    latencies: dict[str, list[float]] = {"create": [], "execute": [], "status": []}
    errors: dict[str, int] = {}
    created: list[str] = []
    end = time.monotonic() + seconds
    rng = random.Random(7)

    async def one(client: httpx.AsyncClient) -> None:
        while time.monotonic() < end:
            roll = rng.random()
            if roll < 0.3 or not created:
                op, wid = "create", f"gw-{uuid.uuid4().hex[:12]}"
                request = client.post(
                    "/api/v1/workflows",
                    json={"id": wid, "type": "ProcessOrder", "input": {"order_id": wid, "amount": 1.0}},
                )
            elif roll < 0.5:
                op, wid = "execute", f"gx-{uuid.uuid4().hex[:12]}"
                request = client.post(
                    f"/api/v1/workflows/{FAN_OUT_FAN_IN['id']}/execute",
                    json={"workflowId": wid, "input": {"count": 5}},
                )
            else:
                op, wid = "status", rng.choice(created)
                request = client.get(f"/api/v1/workflows/{wid}/status")
            started = time.perf_counter()
            response = await request
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code in (200, 202):
                latencies[op].append(elapsed)
                if op == "create":
                    created.append(wid)
            else:
                errors[f"{op} {response.status_code}"] = errors.get(f"{op} {response.status_code}", 0) + 1

    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        await asyncio.gather(*(one(client) for _ in range(concurrency)))
    latencies["_errors"] = [float(n) for n in errors.values()]
    if errors:
        print("errors:", errors, flush=True)
    return latencies


def main() -> None:
    parser = arguments(__doc__, ".ledgerflow/bench-gateway", "bench/results/gateway.md", partitions=4)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()
    with local_stack(args, "gw") as cluster:
        engine = cluster.engine([SAMPLES])
        cluster.worker([SAMPLES], concurrency=200)
        gateway = cluster.gateway([SAMPLES])
        engine.wait_ready(120)
        gateway.wait_ready(120)
        base = gateway.url or ""
        response = httpx.post(f"{base}/api/v1/workflows", json=FAN_OUT_FAN_IN, timeout=10)
        response.raise_for_status()
        asyncio.run(load(base, 3, args.concurrency))  # warm-up
        latencies = asyncio.run(load(base, args.seconds, args.concurrency))
    write_report(args, latencies)


def write_report(args: argparse.Namespace, latencies: dict[str, list[float]]) -> None:
    lines = [
        *report_header(
            "Gateway benchmark",
            f"1 Kafka broker, 1 engine, 1 worker, 1 gateway, {args.partitions} partitions; "
            f"closed loop, {args.concurrency} requests in flight for {args.seconds:.0f} s "
            "(30% create, 20% execute, 50% status), load generator on the same machine",
            f"python -m bench.gateway --seconds {args.seconds:.0f} --concurrency {args.concurrency}",
        ),
        "| operation | requests | per s | P50 ms | P99 ms | seed target (P99) |",
        "|---|---|---|---|---|---|",
    ]
    figures: dict[str, Any] = {}
    for op in ("create", "execute", "status"):
        values = latencies[op]
        p50, p99 = percentile(values, 50), percentile(values, 99)
        figures[op] = {"requests": len(values), "p50_ms": p50, "p99_ms": p99}
        lines.append(
            f"| {op} | {len(values)} | {len(values) / args.seconds:.0f} | {p50:.1f} | {p99:.1f} | "
            f"< {TARGETS_MS[op]:.0f} ms |"
        )
    lines += [
        "",
        f"Requests that did not answer 200/202: {int(sum(latencies['_errors']))} (404s: a status read "
        "of a run created a moment earlier whose start the engine had not applied yet).",
    ]
    save_report(args.report, lines, figures)


if __name__ == "__main__":
    main()
