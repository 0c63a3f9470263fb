"""Kafka ingress fuzz, short form (issue 12): hostile inbox records stop nothing.

Records of every category in ``ledgerflow.testing.fuzz`` (invalid JSON, bytes that are not
UTF-8, the wrong schema, unknown kinds, oversized values, deep nesting, huge ids, ids with
control characters, unknown workflow types, hostile DAG expressions, null keys, keys that are
not the workflow id, and valid commands for workflows that do not exist) are produced straight
to the inbox with a plain producer while real workflows run through the Client. Each record
must end where the engine's documented behaviour puts it (most in the dead-letter topic, with
the reason), every real workflow must complete exactly once with its result, and the engine
must neither restart its owner session nor grow without bound.

The long form, with its figures: ``python -m bench.fuzz_ingress`` (bench/results/fuzz_ingress.md).
"""

from __future__ import annotations

import pytest

from ledgerflow import Client
from ledgerflow.local.processes import Cluster
from ledgerflow.testing.fuzz import CATEGORIES, Target, generate
from ledgerflow.testing.ingress_fuzz import SAMPLES, IngressFuzz, limit_memory, real_runs

pytestmark = pytest.mark.kafka

SEED = 20261201
"""Change it to fuzz other records; a failure names its records, and this seed reproduces them."""
PER_CATEGORY = 16
WORKFLOWS = 24
PEAK_RSS_MB = 600
"""Generous: an idle engine holds ~90 MiB; a batch may hold a few records of up to 1 MB."""


def test_hostile_inbox_records_stop_nothing_and_real_workflows_complete_once(
    cluster: Cluster, client: Client
) -> None:
    engine = cluster.engine([SAMPLES])
    cluster.worker([SAMPLES])
    engine.wait_ready()
    limit_memory(engine.pid)  # a record making it allocate without bound kills it, not the machine
    tag = cluster.prefix.rstrip(".")
    runs = real_runs(WORKFLOWS, tag)
    target = Target(client.settings, tag, tuple(run.workflow_id for run in runs))
    records = generate(PER_CATEGORY, SEED, target)

    report = IngressFuzz(client, engine).run(records, runs, SEED, timeout=90)
    print("\n".join(report.markdown()))

    problems = report.problems()
    assert not problems, f"{len(problems)} problems (seed {SEED}):\n" + "\n".join(problems[:40])
    assert report.records == PER_CATEGORY * len(CATEGORIES)
    assert report.completed_once == WORKFLOWS
    assert report.memory_after is not None and report.memory_after.peak < PEAK_RSS_MB, report.memory_after
