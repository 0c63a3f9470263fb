"""Chaos, long form: tests/engine/test_chaos.py's workload and kill cycle, at size.

Three brokers (RF 3, min.insync.replicas 2), two engines, two workers; ``--workflows`` runs
(activities with retries, timers, signals, children) started evenly over ``--minutes`` while,
every minute, an engine, then a worker, then a broker is killed with -9 and restarted 12 s
later (engines and workers rotate; the broker is the one coordinating the engine group). Then
every run is judged: lost, completed twice, wrong result, closing events on the events topic,
the engine's invariants (children included).

    python -m bench.chaos --workflows 5000 --minutes 10

Writes the figures to --report (and its .json); exits 1 when anything was found. The run's
folder (Kafka data, node logs) is removed when nothing was found and kept otherwise.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import uuid
from pathlib import Path

from bench.common import report_header, save_report
from ledgerflow.testing.chaos import COUNTS, ChaosConfig, ChaosReport, Outage, kill_schedule, run_chaos
from tests.fixtures import ACTS, FLOWS, ROOT
from tests.testapps.chaos import chaos_plans

PERIOD = 60.0
"""Seconds of one kill cycle (engine, worker, broker)."""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workflows", type=int, default=5000)
    parser.add_argument("--minutes", type=float, default=10.0, help="Starts are spread over this.")
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--drain-timeout", type=float, default=300.0)
    parser.add_argument("--work-dir", type=Path, default=Path(".ledgerflow/bench-chaos"))
    parser.add_argument("--report", type=Path, default=Path("bench/results/chaos.md"))
    args = parser.parse_args()
    seconds = args.minutes * 60
    cycles = max(1, int(seconds // PERIOD))
    tag = uuid.uuid4().hex[:6]
    run_dir = (args.work_dir / f"run-{tag}").resolve()
    config = ChaosConfig(
        run_dir,
        [FLOWS],
        [ACTS],
        kill_schedule(cycles, period=PERIOD),
        partitions=args.partitions,
        pythonpath=[ROOT],
        drain_timeout=args.drain_timeout,
        log=lambda line: print(line, flush=True),
    )
    report = run_chaos(config, chaos_plans(args.workflows, seconds, tag))
    write_report(args, cycles, report)
    if report.findings:
        print(f"kept {run_dir} (Kafka data and node logs)")
        sys.exit(1)
    shutil.rmtree(run_dir, ignore_errors=True)


def write_report(args: argparse.Namespace, cycles: int, report: ChaosReport) -> None:
    setup = (
        f"3 Kafka brokers (local launcher, RF 3, min.insync.replicas 2), 2 engines, 2 workers, "
        f"{args.partitions} partitions; {args.workflows} workflows started over {args.minutes:g} min; "
        f"{cycles} kill cycle(s) of {PERIOD:.0f} s"
    )
    command = f"python -m bench.chaos --workflows {args.workflows} --minutes {args.minutes:g}"
    lines = [
        *report_header("Chaos run", setup, command),
        "Workload (tests/testapps/chaos.py): half `ChaosMix` (an activity that fails 0-2 times "
        "before it succeeds, a 1 s timer, two signals it waits for, a child), the rest `Parent` "
        "(two children at once), `SignalCounter` (signals only) and `Mixed` (activities around a "
        "timer). Every run's result is known in advance.",
        "",
        "| figure | value |",
        "|---|---|",
        f"| workflows started | {report.workflows} |",
        f"| runs (children included) | {report.runs} |",
        f"| completed once with the right result | {report.completed} |",
        f"| lost | {len(report.lost)} |",
        f"| completed twice | {len(report.completed_twice)} |",
        f"| wrong result | {len(report.wrong_results)} |",
        f"| runs without exactly one closing event (events topic) | {len(report.closing_events)} |",
        f"| invariant findings (every run, children included) | {len(report.invariant_findings)} |",
        *(f"| kill -9 survived: {kind} | {report.kills(kind)} |" for kind in COUNTS),
        f"| elapsed (first start to last run closed) | {report.elapsed_s:.0f} s |",
        f"| longest time without a run closing | {report.longest_stall_s:.1f} s "
        f"(from {report.stall_from:.0f} s) |",
        "",
        "Kill schedule as it happened (seconds from the first start; 'usable': an engine's /ready, "
        "a broker back in a cluster that answers with every node; sent while down: signals to an "
        "engine count only those for its partitions):",
        "",
        "| node | killed at | restarted at | usable after | starts while down | signals while down |",
        "|---|---|---|---|---|---|",
        *(
            f"| {o.kind} {o.index}{f' (partitions {o.partitions})' if o.partitions else ''} | "
            f"{o.killed_at:.1f} s | {o.restarted_at or 0:.1f} s | "
            f"{usable(o)} | {o.starts_sent} | {o.signals_sent} |"
            for o in report.outages
        ),
    ]
    if report.findings:
        lines += ["", "Findings (first 50):", "", *(f"- {finding}" for finding in report.findings[:50])]
    save_report(args.report, lines, dataclasses.asdict(report))


def usable(outage: Outage) -> str:
    if outage.problem:
        return "**never** (see findings)"
    return "-" if outage.recovered_s is None else f"{outage.recovered_s:.1f} s"


if __name__ == "__main__":
    main()
