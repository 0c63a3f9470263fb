"""10,000 schedules firing every minute on one engine: how late each run starts, and the CPU.

Creates ``--schedules`` schedules (cron ``* * * * *``, each starting ``Tick``, a workflow that
completes at once) with Kafka-native ``create_schedule`` records, on one engine with
``--partitions`` partitions and a real broker. It waits for the next whole minute, lets
``--minutes`` minutes of fires happen, then reads every run the schedules started: its lag is
its start time at its owner minus its fire time (``TemporalScheduledStartTime``), jitter
included when ``--jitter`` is set. All schedules fire at second 0, so the figures are those of a
thundering herd: P99 is about how long the engine takes to start them all.

    python -m bench.schedules [--schedules 10000] [--minutes 3] [--jitter 0]
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.common import (
    CpuSplit,
    arguments,
    broker_pids,
    local_stack,
    percentile,
    report_header,
    save_report,
)
from ledgerflow import AsyncClient, Schedule, ScheduleAction, ScheduleSpec, workflow
from ledgerflow.schemas import commands as c
from ledgerflow.schemas.schedules import SchedulePolicy

ROOT = Path(__file__).resolve().parents[1]
SEND_AT_ONCE = 500


@workflow.defn
class Tick:
    @workflow.run
    async def run(self, n: int) -> int:
        return n


def main() -> None:
    parser = arguments(__doc__, ".ledgerflow/bench", "bench/results/schedules.md", partitions=8)
    parser.add_argument("--schedules", type=int, default=10_000)
    parser.add_argument("--minutes", type=int, default=3, help="Minutes of fires measured.")
    parser.add_argument("--jitter", type=float, default=0.0, help="Each schedule's jitter, in seconds.")
    args = parser.parse_args()
    with local_stack(args, "bench-schedules") as cluster:
        cluster.pythonpath = [str(ROOT)]
        engine = cluster.engine(["bench.schedules"])
        engine.wait_ready(120)
        figures = asyncio.run(measure(cluster, args, engine.pid))
    command = f"python -m bench.schedules --schedules {args.schedules} --minutes {args.minutes}" + (
        f" --jitter {args.jitter:g}" if args.jitter else ""
    )
    lines = report_header(
        f"{args.schedules:,} schedules firing every minute on one engine",
        f"one broker and one engine ({args.partitions} partitions) on one machine, and this process "
        "reading; each fire starts Tick, a workflow with no activity",
        command,
    )
    lines += [
        f"Created in {figures['create_seconds']:.1f} s (Kafka-native `create_schedule` records, "
        f"{figures['creates_per_s']:.0f}/s applied).",
        "",
        f"## Fire time to run start, {figures['runs']:,} runs over {args.minutes} minutes",
        "",
        "| figure | value |",
        "|---|---|",
        f"| runs started / expected | {figures['runs']:,} / {figures['expected']:,} |",
        f"| lag P50 | {figures['lag_p50_s'] * 1000:.0f} ms |",
        f"| lag P99 | {figures['lag_p99_s'] * 1000:.0f} ms |",
        f"| lag max | {figures['lag_max_s'] * 1000:.0f} ms |",
        f"| engine CPU while firing | {figures['engine_cores']:.2f} cores |",
        f"| engine CPU per run started | {figures['engine_ms_per_run']:.2f} ms |",
        *(f"| broker {i} CPU | {cores:.2f} cores |" for i, cores in enumerate(figures["broker_cores"])),
        "",
        "Lag per minute (P50 / P99 ms): "
        + ", ".join(f"{m}: {p50 * 1000:.0f} / {p99 * 1000:.0f}" for m, p50, p99 in figures["per_minute"]),
        "",
        "Every schedule fires at second 0 of each minute (no jitter unless `--jitter`): P99 is close to",
        "the time the engine needs to start them all, at its own start rate.",
    ]
    save_report(args.report, lines, figures)


async def measure(cluster: Any, args: Any, engine_pid: int) -> dict[str, Any]:
    schedule = Schedule(
        action=ScheduleAction(workflow_type="Tick", input=1),
        spec=ScheduleSpec(cron_expressions=["* * * * *"], jitter=args.jitter),
        policy=SchedulePolicy(overlap="allow_all"),
    )
    async with cluster.async_client() as client:
        began = time.monotonic()
        ids = [f"s{i:05d}" for i in range(args.schedules)]
        for chunk in range(0, len(ids), SEND_AT_ONCE):
            await asyncio.gather(
                *(
                    client.send(sid, c.CreateSchedule(schedule_id=sid, schedule=schedule))
                    for sid in ids[chunk : chunk + SEND_AT_ONCE]
                )
            )
        while len(await client.list_schedules()) < args.schedules:
            await asyncio.sleep(1)
        create_seconds = time.monotonic() - began
        # Measure whole minutes that begin after every schedule exists.
        first = (int(time.time()) // 60 + 1) * 60
        await asyncio.sleep(max(0.0, first - time.time() - 2))
        pids = {"engine": engine_pid, **{f"broker {i}": pid for i, pid in enumerate(broker_pids(args))}}
        split = CpuSplit(pids)
        split.start()
        last = first + (args.minutes - 1) * 60
        expected = args.schedules * args.minutes
        rows = await _runs(client, first, last)
        while len(rows) < expected and time.time() < last + 60 + args.jitter:
            await asyncio.sleep(2)
            rows = await _runs(client, first, last)
        cores = split.stop()
    lags: list[float] = []
    by_minute: dict[int, list[float]] = {}
    for fire, started in rows:
        lags.append(started - fire)
        by_minute.setdefault(int(fire), []).append(started - fire)
    busy_seconds = cores["engine"] * (time.time() - first)
    return {
        "schedules": args.schedules,
        "minutes": args.minutes,
        "jitter": args.jitter,
        "create_seconds": create_seconds,
        "creates_per_s": args.schedules / create_seconds,
        "runs": len(rows),
        "expected": expected,
        "lag_p50_s": percentile(lags, 50),
        "lag_p99_s": percentile(lags, 99),
        "lag_max_s": max(lags, default=float("nan")),
        "per_minute": [
            (datetime.fromtimestamp(m).strftime("%H:%M"), percentile(v, 50), percentile(v, 99))
            for m, v in sorted(by_minute.items())
        ],
        "engine_cores": cores["engine"],
        "engine_ms_per_run": 1000 * busy_seconds / max(1, len(rows)),
        "broker_cores": [cores[name] for name in pids if name.startswith("broker")],
        "cpu_count": os.cpu_count(),
    }


async def _runs(client: AsyncClient, first: int, last: int) -> list[tuple[float, float]]:
    """(fire time, start time) of every Tick run fired from ``first`` to ``last``."""
    out: list[tuple[float, float]] = []
    after: str | None = None
    while True:
        page, after = await client.list_page(workflow_type="Tick", limit=1000, after=after)
        for row in page:
            stamp = row["search_attributes"]["TemporalScheduledStartTime"]["value"]
            fire = datetime.fromisoformat(stamp).timestamp()
            if first <= fire <= last:
                out.append((fire, row["started_at"]))
        if after is None:
            return out


if __name__ == "__main__":
    main()
