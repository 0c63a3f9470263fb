"""The Python Client's latency: one run at a time, started with ``client.start_workflow`` and
awaited with ``handle.result()``, beside the engine's own end-to-end latency for the same
workflow in the same session (Kafka-native starts, completion read from the events topic).

The difference is what the Client adds: its start (a Kafka write it waits to be acknowledged,
after an admission read), and how soon it learns of the close (a long poll the owner answers
one commit after the close; before it, a status read every 50 ms).

    python -m bench.client --runs 200 --report bench/results/client.md
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from bench.common import SAMPLES, arguments, local_stack, percentile, report_header, save_report
from bench.core import EventReader, Scenario, run_sequential

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


def main() -> None:
    parser = arguments(__doc__, ".ledgerflow/bench", "bench/results/client.md", partitions=4)
    parser.add_argument("--runs", type=int, default=200, help="Runs of each scenario, one at a time.")
    args = parser.parse_args()
    with local_stack(args, "bench-client") as cluster:
        engine = cluster.engine([SAMPLES])
        cluster.worker([SAMPLES], concurrency=50)
        engine.wait_ready(120)
        reader = EventReader(cluster)
        run_sequential(
            cluster.bootstrap, cluster.prefix, reader, Scenario("warmup", "ProcessOrder", ORDER, 50)
        )
        client_runs(cluster, 20)  # warm the client's connections too
        own = Scenario("engine-own", "ProcessOrder", ORDER, args.runs)
        run_sequential(cluster.bootstrap, cluster.prefix, reader, own)
        through_client = client_runs(cluster, args.runs)
        reader.consumer.close()
    engine_figures = own.summary()
    figures: dict[str, Any] = {
        "runs": args.runs,
        "client_p50_ms": percentile(through_client, 50),
        "client_p99_ms": percentile(through_client, 99),
        "engine_p50_ms": engine_figures["e2e_p50_ms"],
        "engine_p99_ms": engine_figures["e2e_p99_ms"],
    }
    command = f"python -m bench.client --runs {args.runs}"
    lines = report_header(
        "Python Client latency, one run at a time",
        "one broker, one engine, one worker and this process on one machine; ProcessOrder (3 activities)",
        command,
    )
    lines += [
        "| path | P50 ms | P99 ms |",
        "|---|---|---|",
        f"| `client.start_workflow` → `handle.result()` | {figures['client_p50_ms']:.1f} | "
        f"{figures['client_p99_ms']:.1f} |",
        f"| engine's own (Kafka start → WORKFLOW_COMPLETED event) | {figures['engine_p50_ms']:.1f} | "
        f"{figures['engine_p99_ms']:.1f} |",
        "",
        f"The Client adds {figures['client_p50_ms'] - figures['engine_p50_ms']:.1f} ms at the median.",
    ]
    save_report(args.report, lines, figures)


if __name__ == "__main__":
    main()
