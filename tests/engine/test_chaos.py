"""Chaos, short form: 150 workflows (activities with retries, timers, signals, children) on three
brokers (RF 3, min.insync.replicas 2), two engines and two workers, while an engine, a worker and
the broker coordinating the engine group are each killed with -9 and restarted once. Nothing is
lost, nothing completes twice, every result is right, one closing event per run, every invariant
holds. The long form is ``python -m bench.chaos`` (bench/results/chaos.md)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from ledgerflow.testing.chaos import COUNTS, ChaosConfig, ChaosReport, kill_schedule, run_chaos
from tests.fixtures import ACTS, FLOWS, ROOT
from tests.testapps.chaos import chaos_plans

pytestmark = [pytest.mark.kafka, pytest.mark.cluster]

WORKFLOWS = 150
SECONDS = 60.0
"""Starts are spread over this; one kill cycle (engine at 10 s, worker at 30 s, broker at 50 s,
each down 12 s) falls inside it."""


# Three brokers, four Ledgerflow processes and the load on a busy 2-core machine: about three
# minutes when the box is idle, so this test gets twice the suite's 300 s limit.
@pytest.mark.timeout(600)
def test_chaos_kill_9_engine_worker_and_broker_nothing_lost_nothing_twice(tmp_path: Path) -> None:
    plans = chaos_plans(WORKFLOWS, SECONDS, uuid.uuid4().hex[:6])
    config = ChaosConfig(tmp_path, [FLOWS], [ACTS], kill_schedule(cycles=1), pythonpath=[ROOT], log=print)
    report = run_chaos(config, plans)
    print(summary(report))
    assert not report.findings, "\n".join(report.findings)
    assert report.completed == WORKFLOWS
    assert {kind: report.kills(kind) for kind in COUNTS} == {"engine": 1, "worker": 1, "broker": 1}
    engine = next(o for o in report.outages if o.kind == "engine")
    assert engine.partitions, "the killed engine owned no partition"
    # a signal written while its owner was dead is in Kafka: the run gets it (its result holds it)
    assert engine.signals_sent > 0, f"no signal went to engine {engine.index}'s partitions while it was down"


def summary(report: ChaosReport) -> str:
    lines = [
        f"{report.workflows} workflows ({report.runs} runs with children), {report.completed} completed "
        f"right, {len(report.lost)} lost, {len(report.completed_twice)} completed twice, "
        f"{len(report.invariant_findings)} invariant findings, {report.elapsed_s:.0f} s; longest time "
        f"without a run closing: {report.longest_stall_s:.1f} s from {report.stall_from:.1f} s"
    ]
    lines += [
        f"  {o.kind} {o.index} killed at {o.killed_at:.1f} s, restarted at {o.restarted_at or 0:.1f} s"
        f"{'' if o.recovered_s is None else f', usable {o.recovered_s:.1f} s later'}; sent while down: "
        f"{o.starts_sent} starts, {o.signals_sent} signals"
        for o in report.outages
    ]
    return "\n".join(lines)
