"""A zombie owner is fenced: a paused engine that wakes up after losing its partitions cannot
commit what it had in memory.

Engine a is frozen with SIGSTOP while its partitions hold open runs: activities in flight
and durable timers due while it is frozen. The group moves its partitions to engine b after
the session timeout; b fires the timers and records the results. Then SIGCONT: a's owner
loop resumes where it stopped, finds those timers due in its stale memory and tries to
commit their firing (or the transaction it was in). Kafka must refuse that commit (its
transactional id was fenced by b, and its group generation is stale), so that nothing is
applied twice: each run completes exactly once, each attempt's outcome is recorded once.
"""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from ledgerflow import Client
from ledgerflow.config import Settings
from ledgerflow.local.processes import Cluster
from ledgerflow.schemas.commands import StartWorkflow
from tests.fixtures import ACTS, FLOWS, assert_invariants, lifecycle_counts, owned, settled_shares, slept

pytestmark = pytest.mark.kafka

SESSION_MS = 3000
SLEEP = 8.0
"""Seconds the Sleeper runs wait: their timers come due while engine a is frozen."""
REFUSED = "transaction failed, aborting"
CYCLES = 3
"""Freezes tried: a frozen between transactions may learn of its lost session (librdkafka's
own session timeout) before it commits again, which is safe too but proves nothing here."""


def send_load(client: Client, ids: list[str], stop: threading.Event) -> None:
    """Start Mixed runs on engine a's partitions until ``stop``, so a is mostly mid-transaction."""
    n = 0
    while not stop.is_set():
        workflow_id = f"{ids[0]}-{n}"
        client.send(workflow_id, StartWorkflow(workflow_id=workflow_id, workflow_type="Mixed", input=n))
        ids.append(workflow_id)
        n += 1
        time.sleep(0.003)  # a few hundred runs a second: a stays busy, the checks stay short


def test_a_paused_owner_resumed_after_failover_cannot_commit_its_stale_work(
    cluster: Cluster, client: Client
) -> None:
    session = ["--session-timeout-ms", str(SESSION_MS)]
    a = cluster.engine([FLOWS], name="engine-a", extra=session)
    b = cluster.engine([FLOWS], name="engine-b", extra=session)
    cluster.worker([ACTS], concurrency=100)
    a.wait_ready()
    b.wait_ready()
    settings = Settings(partitions=cluster.partitions)
    sleepers: list[str] = []
    mixed: list[str] = []
    figures: list[str] = []
    refusal = None
    for cycle in range(CYCLES):
        a_partitions = settled_shares([a, b], cluster.partitions, timeout=60)[0]
        candidates = (f"sleep-{cycle}-{i}" for i in range(100))
        cycle_sleepers = [w for w in candidates if settings.partition_of(w) in a_partitions][:8]
        for workflow_id in cycle_sleepers:
            client.start_workflow("Sleeper", SLEEP, id=workflow_id)
        load = [f"mixed-{cycle}"]
        stop = threading.Event()
        sender = threading.Thread(target=send_load, args=(client, load, stop))
        sender.start()
        time.sleep(1.5)  # a dispatches activities, fires timers and commits batch after batch
        before = a.log_path.read_text(errors="replace").count(REFUSED)
        frozen_at = time.monotonic()
        os.kill(a.pid, signal.SIGSTOP)
        try:
            time.sleep(0.5)
            stop.set()
            sender.join()
            deadline = time.monotonic() + 60
            while sorted(owned(b)) != list(range(cluster.partitions)):
                assert time.monotonic() < deadline, "engine b never took engine a's partitions"
                time.sleep(0.2)
            failover = time.monotonic() - frozen_at
            # b makes progress on a's partitions: timers fire, results are recorded, runs close.
            for workflow_id in cycle_sleepers:
                outcome = client.result(workflow_id, timeout=60)
                assert slept(outcome) >= SLEEP
            for workflow_id in load[1:]:
                assert client.result(workflow_id, timeout=60) == int(workflow_id.rsplit("-", 1)[1]) + 2
            frozen_for = time.monotonic() - frozen_at
        finally:
            os.kill(a.pid, signal.SIGCONT)
        sleepers += cycle_sleepers
        mixed += load[1:]
        figures.append(
            f"cycle {cycle}: {len(load) - 1} Mixed runs and {len(cycle_sleepers)} sleepers on a's "
            f"partitions {a_partitions}; failover {failover:.1f} s, a frozen {frozen_for:.1f} s"
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and refusal is None:
            lines = a.log_path.read_text(errors="replace").splitlines()
            refused = [line for line in lines if REFUSED in line]
            if len(refused) > before:
                refusal = refused[before]
            time.sleep(0.2)
        assert a.alive(), a.log_tail()
        if refusal is not None:
            break
    assert refusal is not None, f"engine a never tried a stale commit in {CYCLES} freezes:\n{a.log_tail()}"
    # a rejoins as an ordinary member and takes partitions back from the committed state.
    settled_shares([a, b], cluster.partitions, timeout=60)

    ids = sleepers + mixed
    for workflow_id in ids:
        assert client.describe(workflow_id)["status"] == "COMPLETED", workflow_id
        assert_invariants(client, workflow_id)
    completed = lifecycle_counts(cluster, "WORKFLOW_COMPLETED", set(ids))
    assert set(completed) == set(ids)
    twice = {k: n for k, n in completed.items() if n != 1}
    assert not twice, f"completed more than once: {twice}"
    print("; ".join(figures), f"; a's stale commit: {refusal[-200:]}")
