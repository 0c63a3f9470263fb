"""Kafka ingress fuzz, long form (issue 12; the short form is tests/engine/test_ingress_fuzz.py).

Generated inbox records of every category of ``ledgerflow.testing.fuzz`` (an equal share each),
produced straight to the inbox with a plain producer, interleaved with real workflows started
through the Client (three activities; a durable timer; the sample fan-out/fan-in DAG). Then:
where every record ended against where it must, every real workflow completed exactly once
with its result and its invariants, the engine's owner session restarts and its memory.

    python -m bench.fuzz_ingress --records 10000 --workflows 1000
"""

from __future__ import annotations

import sys
import time

from bench.common import arguments, local_stack, report_header, save_report
from ledgerflow.testing.fuzz import CATEGORIES, Target, generate
from ledgerflow.testing.ingress_fuzz import (
    ENGINE_ADDRESS_SPACE_MB,
    SAMPLES,
    IngressFuzz,
    limit_memory,
    real_runs,
)

SEED = 20261201


def main() -> None:
    parser = arguments(__doc__, ".ledgerflow/bench-fuzz", "bench/results/fuzz_ingress.md", partitions=4)
    parser.add_argument(
        "--records", type=int, default=10_000, help="Records in all, shared by the categories."
    )
    parser.add_argument("--workflows", type=int, default=1_000, help="Real workflows started meanwhile.")
    parser.add_argument("--seed", type=int, default=SEED, help="The same seed draws the same records.")
    parser.add_argument("--timeout", type=float, default=1800.0, help="Seconds to wait for the engine.")
    args = parser.parse_args()
    per_category = -(-args.records // len(CATEGORIES))
    with local_stack(args, "fuzz") as cluster:
        engine = cluster.engine([SAMPLES])
        cluster.worker([SAMPLES], concurrency=100)
        engine.wait_ready(120)
        limit_memory(engine.pid)
        tag = cluster.prefix.rstrip(".")
        runs = real_runs(args.workflows, tag)
        with cluster.client() as client:
            began = time.monotonic()
            records = generate(
                per_category, args.seed, Target(client.settings, tag, tuple(r.workflow_id for r in runs))
            )
            drawn = time.monotonic() - began
            report = IngressFuzz(client, engine).run(records, runs, args.seed, args.timeout)
    problems = report.problems()
    setup = (
        f"1 Kafka broker, 1 engine (address space capped at {ENGINE_ADDRESS_SPACE_MB} MiB), 1 worker, "
        f"{args.partitions} partitions"
    )
    command = "python -m bench.fuzz_ingress " + " ".join(
        f"--{name} {getattr(args, name)}" for name in ("records", "workflows", "seed")
    )
    lines = [
        *report_header("Kafka ingress fuzz", setup, command),
        f"{per_category} records per category drawn with hypothesis in {drawn:.1f} s, produced straight to "
        "the inbox while the real workflows started; each record judged by where it ended (the "
        "dead-letter topic and its reason, the events topic) against where the engine must put it "
        "(`ledgerflow.testing.fuzz`).",
        "",
        *report.markdown(),
        "",
        f"Problems: {len(problems)}",
        *[f"- {p[:500]}" for p in problems[:50]],
    ]
    save_report(args.report, lines, report.figures())
    sys.exit(1 if problems else 0)


if __name__ == "__main__":
    main()
