"""The Python clients against the engine itself, in one session on one stack.

Latency, one run at a time: ``start_workflow`` then ``result()`` through the synchronous
``Client`` and the ``AsyncClient``, beside the engine's own end-to-end latency for the same
workflow (Kafka-native starts, completion read from the events topic), the three taking turns
run by run. The difference is what a
client adds: its start (a Kafka write it waits to be acknowledged, then the owner's long poll
answered at the commit that decided the start) and how soon it learns of the close (a long poll
the owner answers at the commit that closed the run).

Throughput, sustained: for ``--seconds`` each path keeps ``--in-flight`` runs open (a run that
completes is replaced by a new one) and the runs completed per second are counted after the
first ``--warmup`` seconds: Kafka-native starts (the engine's own rate, a completion counted when
the engine applied it), one ``AsyncClient`` (counted when ``await handle.result()`` returned)
and the synchronous ``Client`` from ``--threads`` threads. This is the rate a client process can
drive the engine at; a burst of ``--load`` runs started at once and awaited is reported beside it
(a burst's rate also holds the time the client takes to send every start and the last results'
trip back, which a sustained load spreads over many runs).

    python -m bench.client --runs 200 --seconds 20 --in-flight 500 --report bench/results/client.md
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
from bench.core import (
    EventReader,
    Scenario,
    run_load,
    run_sequential,
    run_sustained,
    send_start,
    start_producer,
)

ORDER = {"order_id": "bench", "amount": 1.0}


async def latencies(
    cluster: Any, reader: EventReader, runs: int
) -> tuple[Scenario, list[float], list[float]]:
    """One run at a time, the three paths taking turns run by run (the box's drift hits each
    alike): a Kafka-native start (the engine's own end-to-end latency, from the events topic),
    then milliseconds from ``start_workflow`` to ``result()`` returning through the ``Client``,
    then through the ``AsyncClient``."""
    tag = uuid.uuid4().hex[:6]
    own = Scenario("engine-own", "ProcessOrder", ORDER, runs)
    producer = start_producer(cluster.bootstrap)
    through_client: list[float] = []
    through_async: list[float] = []
    with cluster.client() as client:
        async with cluster.async_client() as async_client:
            for i in range(runs):
                send_start(producer, cluster.prefix, own, f"own-{tag}-{i}")
                producer.flush(10)
                reader.drain(own, 30, until=i + 1)
                started = time.perf_counter()
                client.start_workflow("ProcessOrder", ORDER, id=f"client-{tag}-{i}").result(timeout=30)
                through_client.append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                handle = await async_client.start_workflow("ProcessOrder", ORDER, id=f"async-{tag}-{i}")
                await handle.result(timeout=30)
                through_async.append((time.perf_counter() - started) * 1000)
    return own, through_client, through_async


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


def sustained_rate(completions: list[float], began: float, warmup: float, ended: float) -> float:
    """Completions per second between ``began + warmup`` and ``ended`` (``time.time()`` values)."""
    counted = began + warmup
    return sum(1 for t in completions if counted <= t <= ended) / (ended - counted)


async def async_client_sustained(cluster: Any, seconds: float, warmup: float, in_flight: int) -> float:
    """Runs completed per second by one AsyncClient keeping ``in_flight`` runs open."""
    tag = uuid.uuid4().hex[:6]
    completions: list[float] = []
    async with cluster.async_client() as client:
        began = time.time()
        end = began + seconds

        async def lane(lane_no: int) -> None:
            i = 0
            while time.time() < end:
                handle = await client.start_workflow("ProcessOrder", ORDER, id=f"async-s-{tag}-{lane_no}-{i}")
                await handle.result(timeout=120)
                completions.append(time.time())
                i += 1

        await asyncio.gather(*(lane(n) for n in range(in_flight)))
    return sustained_rate(completions, began, warmup, end)


def sync_client_sustained(cluster: Any, seconds: float, warmup: float, threads: int) -> float:
    """Runs completed per second by one Client from ``threads`` threads, each run after the last."""
    tag = uuid.uuid4().hex[:6]
    completions: list[float] = []
    with cluster.client() as client:
        began = time.time()
        end = began + seconds

        def lane(lane_no: int) -> None:
            i = 0
            while time.time() < end:
                client.start_workflow("ProcessOrder", ORDER, id=f"sync-s-{tag}-{lane_no}-{i}").result(
                    timeout=120
                )
                completions.append(time.time())
                i += 1

        with ThreadPoolExecutor(threads) as pool:
            list(pool.map(lane, range(threads)))
    return sustained_rate(completions, began, warmup, end)


def native_sustained(
    cluster: Any, reader: EventReader, seconds: float, warmup: float, in_flight: int
) -> float:
    """Runs the engine completed per second with ``in_flight`` Kafka-native starts kept open."""
    scenario = Scenario("native-sustained", "ProcessOrder", ORDER, 0)
    run_sustained(cluster.bootstrap, cluster.prefix, reader, scenario, seconds, in_flight)
    assert scenario.window is not None
    began, ended = scenario.window
    return sustained_rate(list(scenario.completed.values()), began, warmup, ended)


def main() -> None:
    parser = arguments(__doc__, ".ledgerflow/bench", "bench/results/client.md", partitions=4)
    parser.add_argument("--runs", type=int, default=200, help="Runs of each latency scenario, one at a time.")
    parser.add_argument("--seconds", type=float, default=20.0, help="Length of each sustained scenario.")
    parser.add_argument("--warmup", type=float, default=3.0, help="Seconds of each not counted.")
    parser.add_argument("--in-flight", type=int, default=500, help="Runs kept open (native and AsyncClient).")
    parser.add_argument("--threads", type=int, default=32, help="Threads driving the synchronous Client.")
    parser.add_argument("--load", type=int, default=1000, help="Runs of each burst scenario.")
    parser.add_argument("--rounds", type=int, default=3, help="Rounds of the throughput scenarios.")
    args = parser.parse_args()
    with local_stack(args, "bench-client") as cluster:
        engine = cluster.engine([SAMPLES])
        worker = cluster.worker([SAMPLES], concurrency=200)
        engine.wait_ready(120)
        reader = EventReader(cluster)
        run_sequential(
            cluster.bootstrap, cluster.prefix, reader, Scenario("warmup", "ProcessOrder", ORDER, 50)
        )
        asyncio.run(latencies(cluster, reader, 20))  # warm the clients' paths too
        own, through_client, through_async = asyncio.run(latencies(cluster, reader, args.runs))
        pids = {"engine": engine.pid, "worker": worker.pid, "this process": os.getpid()}
        pids.update({f"broker {i}": pid for i, pid in enumerate(broker_pids(args))})
        paths = ("native", "async", "sync")
        sustained: dict[str, list[float]] = {path: [] for path in paths}
        burst: dict[str, list[float]] = {path: [] for path in paths}
        cpu: dict[str, dict[str, float]] = {}
        split = CpuSplit(pids)
        for _ in range(args.rounds):  # interleaved: the box's drift hits every path alike
            split.start()
            sustained["native"].append(
                native_sustained(cluster, reader, args.seconds, args.warmup, args.in_flight)
            )
            cpu["native"] = split.stop()
            split.start()
            sustained["async"].append(
                asyncio.run(async_client_sustained(cluster, args.seconds, args.warmup, args.in_flight))
            )
            cpu["async"] = split.stop()
            split.start()
            sustained["sync"].append(sync_client_sustained(cluster, args.seconds, args.warmup, args.threads))
            cpu["sync"] = split.stop()
            native = Scenario("native-load", "ProcessOrder", ORDER, args.load)
            run_load(cluster.bootstrap, cluster.prefix, reader, native, timeout=300)
            burst["native"].append(native.throughput())
            burst["async"].append(asyncio.run(async_client_load(cluster, args.load, args.load)))
            burst["sync"].append(sync_client_load(cluster, args.load, args.threads))
        reader.consumer.close()
    steady = {path: percentile(sustained[path], 50) for path in paths}
    bursts = {path: percentile(burst[path], 50) for path in paths}
    engine_figures = own.summary()
    figures: dict[str, Any] = {
        "runs": args.runs,
        "seconds": args.seconds,
        "warmup": args.warmup,
        "in_flight": args.in_flight,
        "load": args.load,
        "client_p50_ms": percentile(through_client, 50),
        "client_p99_ms": percentile(through_client, 99),
        "async_client_p50_ms": percentile(through_async, 50),
        "async_client_p99_ms": percentile(through_async, 99),
        "engine_p50_ms": engine_figures["e2e_p50_ms"],
        "engine_p99_ms": engine_figures["e2e_p99_ms"],
        "native_per_s": steady["native"],
        "async_client_per_s": steady["async"],
        "sync_client_per_s": steady["sync"],
        "sustained_per_round": sustained,
        "burst_per_s": bursts,
        "burst_per_round": burst,
        "cores_busy_last_round": cpu,
    }
    command = (
        f"python -m bench.client --runs {args.runs} --seconds {args.seconds:g} --warmup {args.warmup:g} "
        f"--in-flight {args.in_flight} --threads {args.threads} --load {args.load} --rounds {args.rounds}"
    )
    lines = report_header(
        "Python clients beside the engine: latency one run at a time, and throughput",
        "one broker, one engine, one worker and this process on one machine; ProcessOrder (3 activities)",
        command,
    )

    def share(rates: dict[str, float], path: str) -> str:
        return f"{100 * rates[path] / rates['native']:.0f} %"

    def shares(per_round: dict[str, list[float]], path: str) -> str:
        """Each round's share of that round's Kafka-native rate (the paths ran side by side)."""
        pairs = zip(per_round[path], per_round["native"], strict=True)
        each = [100 * mine / native for mine, native in pairs]
        return ", ".join(f"{x:.0f} %" for x in each) + f" (median {percentile(each, 50):.0f} %)"

    lines += [
        "## Latency, one run at a time",
        "",
        f"{args.runs} runs of each path, taking turns run by run.",
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
        f"## Throughput, sustained: runs kept open for {args.seconds:g} s, counted after the first "
        f"{args.warmup:g} s",
        "",
        f"Median of {args.rounds} rounds, the paths interleaved in each; every round's figure in the JSON "
        "beside this file. A run counts when the engine applied its completion (native) or when "
        "`result()` returned (the clients).",
        "",
        "| path | workflows/s | share of Kafka-native |",
        "|---|---|---|",
        f"| Kafka-native starts, {args.in_flight} runs open (the engine's own rate) | "
        f"{steady['native']:.0f} | 100 % |",
        f"| one AsyncClient, {args.in_flight} runs open | {steady['async']:.0f} | {share(steady, 'async')} |",
        f"| one Client, {args.threads} threads | {steady['sync']:.0f} | {share(steady, 'sync')} |",
        "",
        f"Each round's share of the Kafka-native rate measured beside it: AsyncClient "
        f"{shares(sustained, 'async')}; Client {shares(sustained, 'sync')}.",
        "",
        "Cores busy during each sustained scenario (last round):",
        "",
        "| process | " + " | ".join(cpu) + " |",
        "|---|" + "---|" * len(cpu),
        *(
            f"| {name} | " + " | ".join(f"{cpu[scenario][name]:.2f}" for scenario in cpu) + " |"
            for name in pids
        ),
        "",
        f"## Throughput, a burst: {args.load} runs started at once, then awaited",
        "",
        "From the first start to the last completion (native: the engine applying it; the clients: "
        "`result()` returning). Besides the engine's work, a client's burst holds the time it takes to "
        "send every start and the last results' way back: the last completion's commit and the "
        "long poll's answer.",
        "",
        "| path | workflows/s | share of Kafka-native |",
        "|---|---|---|",
        f"| Kafka-native starts | {bursts['native']:.0f} | 100 % |",
        f"| one AsyncClient, all {args.load} at once | {bursts['async']:.0f} | {share(bursts, 'async')} |",
        f"| one Client, {args.threads} threads | {bursts['sync']:.0f} | {share(bursts, 'sync')} |",
    ]
    save_report(args.report, lines, figures)


if __name__ == "__main__":
    main()
