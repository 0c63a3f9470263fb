"""The Python clients against the engine itself, in one session on one stack.

Latency, one run at a time: ``start_workflow`` then ``result()`` through the synchronous
``Client`` and the ``AsyncClient``, beside the engine's own end-to-end latency for the same
workflow (Kafka-native starts, completion read from the events topic). The difference is what a
client adds: its start (a Kafka write it waits to be acknowledged, then the owner's long poll
answered at the commit that decided the start) and how soon it learns of the close (a long poll
the owner answers at the commit that closed the run).

Throughput: ``--load`` runs started as fast as each path allows and awaited to completion:
Kafka-native starts (the engine's own rate), one ``AsyncClient`` with up to ``--in-flight``
runs open, and the synchronous ``Client`` from ``--threads`` threads.

    python -m bench.client --runs 200 --load 1000 --in-flight 1000 --report bench/results/client.md
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.common import (
    SAMPLES,
    CpuSplit,
    arguments,
    broker_pids,
    local_stack,
    percentile,
    report_header,
    save_report,
)
from bench.core import EventReader, Scenario, run_load, run_sequential

ORDER = {"order_id": "bench", "amount": 1.0}


def client_runs(cluster: Any, runs: int) -> list[float]:
    """Milliseconds from ``start_workflow`` to ``handle.result()`` returning, one run at a time."""
    tag = uuid.uuid4().hex[:6]
    latencies = []
    with cluster.client() as client:
        for i in range(runs):
            started = time.perf_counter()
            handle = client.start_workflow("ProcessOrder", ORDER, id=f"client-{tag}-{i}")
            handle.result(timeout=30)
            latencies.append((time.perf_counter() - started) * 1000)
    return latencies


async def async_client_runs(cluster: Any, runs: int) -> list[float]:
    """``client_runs`` through the AsyncClient."""
    tag = uuid.uuid4().hex[:6]
    latencies = []
    async with cluster.async_client() as client:
        for i in range(runs):
            started = time.perf_counter()
            handle = await client.start_workflow("ProcessOrder", ORDER, id=f"async-{tag}-{i}")
            await handle.result(timeout=30)
            latencies.append((time.perf_counter() - started) * 1000)
    return latencies


async def async_client_load(cluster: Any, runs: int, in_flight: int) -> float:
    """Workflows completed per second: ``runs`` started by one AsyncClient, ``in_flight`` open
    at most, each awaited to its result."""
    tag = uuid.uuid4().hex[:6]
    slots = asyncio.Semaphore(in_flight)
    async with cluster.async_client() as client:

        async def one(i: int) -> None:
            async with slots:
                handle = await client.start_workflow("ProcessOrder", ORDER, id=f"aload-{tag}-{i}")
                await handle.result(timeout=120)

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(runs)))
        return runs / (time.perf_counter() - started)


def sync_client_load(cluster: Any, runs: int, threads: int) -> float:
    """Workflows completed per second: ``runs`` started and awaited by one Client from ``threads``
    threads, each starting its next run when its last one completed."""
    tag = uuid.uuid4().hex[:6]
    with cluster.client() as client:

        def one(i: int) -> None:
            client.start_workflow("ProcessOrder", ORDER, id=f"sload-{tag}-{i}").result(timeout=120)

        started = time.perf_counter()
        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(one, range(runs)))
        return runs / (time.perf_counter() - started)


def main() -> None:
    parser = arguments(__doc__, ".ledgerflow/bench", "bench/results/client.md", partitions=4)
    parser.add_argument("--runs", type=int, default=200, help="Runs of each latency scenario, one at a time.")
    parser.add_argument("--load", type=int, default=1000, help="Runs of each throughput scenario.")
    parser.add_argument(
        "--in-flight",
        type=int,
        default=1000,
        help="Runs the AsyncClient keeps open at once.",
    )
    parser.add_argument("--threads", type=int, default=32, help="Threads driving the synchronous Client.")
    parser.add_argument("--rounds", type=int, default=3, help="Rounds of the three throughput scenarios.")
    args = parser.parse_args()
    with local_stack(args, "bench-client") as cluster:
        engine = cluster.engine([SAMPLES])
        worker = cluster.worker([SAMPLES], concurrency=200)
        engine.wait_ready(120)
        reader = EventReader(cluster)
        run_sequential(
            cluster.bootstrap, cluster.prefix, reader, Scenario("warmup", "ProcessOrder", ORDER, 50)
        )
        client_runs(cluster, 20)  # warm the clients' connections too
        asyncio.run(async_client_runs(cluster, 20))
        own = Scenario("engine-own", "ProcessOrder", ORDER, args.runs)
        run_sequential(cluster.bootstrap, cluster.prefix, reader, own)
        through_client = client_runs(cluster, args.runs)
        through_async = asyncio.run(async_client_runs(cluster, args.runs))
        pids = {"engine": engine.pid, "worker": worker.pid, "this process": os.getpid()}
        pids.update({f"broker {i}": pid for i, pid in enumerate(broker_pids(args))})
        rates: dict[str, list[float]] = {"native": [], "async": [], "sync": []}
        cpu: dict[str, dict[str, float]] = {}
        split = CpuSplit(pids)
        for _ in range(args.rounds):  # interleaved: the box's drift hits every path alike
            split.start()
            native = Scenario("native-load", "ProcessOrder", ORDER, args.load)
            run_load(cluster.bootstrap, cluster.prefix, reader, native, timeout=300)
            rates["native"].append(native.throughput())
            cpu["native"] = split.stop()
            split.start()
            rates["async"].append(asyncio.run(async_client_load(cluster, args.load, args.in_flight)))
            cpu["async"] = split.stop()
            split.start()
            rates["sync"].append(sync_client_load(cluster, args.load, args.threads))
            cpu["sync"] = split.stop()
        reader.consumer.close()
    native_rate, async_rate, sync_rate = (percentile(rates[path], 50) for path in ("native", "async", "sync"))
    engine_figures = own.summary()
    figures: dict[str, Any] = {
        "runs": args.runs,
        "load": args.load,
        "client_p50_ms": percentile(through_client, 50),
        "client_p99_ms": percentile(through_client, 99),
        "async_client_p50_ms": percentile(through_async, 50),
        "async_client_p99_ms": percentile(through_async, 99),
        "engine_p50_ms": engine_figures["e2e_p50_ms"],
        "engine_p99_ms": engine_figures["e2e_p99_ms"],
        "native_per_s": native_rate,
        "async_client_per_s": async_rate,
        "sync_client_per_s": sync_rate,
        "rates_per_round": rates,
        "cores_busy_last_round": cpu,
    }
    command = (
        f"python -m bench.client --runs {args.runs} --load {args.load} --in-flight {args.in_flight} "
        f"--threads {args.threads} --rounds {args.rounds}"
    )
    lines = report_header(
        "Python clients beside the engine: latency one run at a time, and throughput",
        "one broker, one engine, one worker and this process on one machine; ProcessOrder (3 activities)",
        command,
    )
    lines += [
        "## Latency, one run at a time",
        "",
        "| path | P50 ms | P99 ms |",
        "|---|---|---|",
        f"| `Client.start_workflow` → `handle.result()` | {figures['client_p50_ms']:.1f} | "
        f"{figures['client_p99_ms']:.1f} |",
        f"| `await AsyncClient.start_workflow` → `await handle.result()` | "
        f"{figures['async_client_p50_ms']:.1f} | {figures['async_client_p99_ms']:.1f} |",
        f"| engine's own (Kafka start → WORKFLOW_COMPLETED event) | {figures['engine_p50_ms']:.1f} | "
        f"{figures['engine_p99_ms']:.1f} |",
        "",
        f"At the median the Client adds {figures['client_p50_ms'] - figures['engine_p50_ms']:.1f} ms and the "
        f"AsyncClient {figures['async_client_p50_ms'] - figures['engine_p50_ms']:.1f} ms.",
        "",
        f"## Throughput, {args.load} runs each (started, then awaited to completion)",
        "",
        f"Median of {args.rounds} rounds, the three paths interleaved in each; every round's figure in the "
        "JSON beside this file.",
        "",
        "| path | workflows/s | share of Kafka-native |",
        "|---|---|---|",
        f"| Kafka-native starts (the engine's own rate) | {native_rate:.0f} | 100 % |",
        f"| one AsyncClient, {args.in_flight} runs in flight | {async_rate:.0f} | "
        f"{100 * async_rate / native_rate:.0f} % |",
        f"| one Client, {args.threads} threads | {sync_rate:.0f} | {100 * sync_rate / native_rate:.0f} % |",
        "",
        "Cores busy during each throughput scenario (last round):",
        "",
        "| process | " + " | ".join(cpu) + " |",
        "|---|" + "---|" * len(cpu),
        *(
            f"| {name} | " + " | ".join(f"{cpu[scenario][name]:.2f}" for scenario in cpu) + " |"
            for name in pids
        ),
    ]
    save_report(args.report, lines, figures)


if __name__ == "__main__":
    main()
