"""Standby replicas: a takeover restores only the tail after the warm copy's checkpoint."""

from __future__ import annotations

import functools
import time

import pytest

from ledgerflow import Client
from ledgerflow.local.processes import Cluster, NodeProcess
from ledgerflow.schemas import events as ev
from tests.fixtures import ACTS, FLOWS, slept
from tests.waits import wait_until

pytestmark = pytest.mark.kafka


def rows(engine: NodeProcess) -> dict[int, dict[str, object]]:
    data = engine.get("/internal/partitions").json()
    return {int(r["partition"]): r for r in data["partitions"]}


def timers(client: Client, workflow_id: str) -> dict[str, float]:
    found: dict[str, float] = client.describe(workflow_id)["timers"]
    return found


def test_a_standby_copy_makes_a_failover_restore_only_the_tail(cluster: Cluster, client: Client) -> None:
    extra = ["--standby", "--session-timeout-ms", "3000"]
    a = cluster.engine([FLOWS], name="engine-a", extra=extra)
    cluster.worker([ACTS])
    a.wait_ready()
    b = cluster.engine([FLOWS], name="engine-b", extra=extra)
    b.wait_ready()
    deadline = time.time() + 30
    while time.time() < deadline and not (rows(a) and rows(b)):
        time.sleep(0.2)
    taken_over = sorted(rows(a))
    assert taken_over and rows(b), "the two engines did not share the partitions"
    ids = [f"sb-{i}" for i in range(40)]
    for i, wid in enumerate(ids):
        client.start_workflow("ThreeSteps", i, id=wid)
    for i, wid in enumerate(ids):
        assert client.result(wid, timeout=60) == i + 3
    # Runs left open on a's partitions when it dies: waiting on a signal, or on a durable timer.
    on_a = (f"sb-open-{i}" for i in range(1000) if client.settings.partition_of(f"sb-open-{i}") in taken_over)
    waiting = [next(on_a) for _ in range(4)]
    sleeping = [next(on_a) for _ in range(4)]
    for i, wid in enumerate(waiting):
        client.start_workflow("SignalCounter", id=wid)
        client.signal(wid, "add", i)
    for wid in sleeping:
        client.start_workflow("Sleeper", 8.0, id=wid)
    for i, wid in enumerate(waiting):
        assert wait_until(functools.partial(client.query, wid, "received"), f"{wid}'s signal") == [i]
    for wid in sleeping:
        wait_until(functools.partial(timers, client, wid), f"{wid}'s timer to start")
    time.sleep(1.0)  # let b's standby copies catch up with a's last writes
    listed = a.get("/internal/workflows", params={"status": "RUNNING"}).json()["runs"]
    assert {r["workflow_id"] for r in listed} >= {*waiting, *sleeping}, listed
    a.kill()
    killed_at = time.time()
    deadline = time.time() + 30
    while time.time() < deadline and sorted(rows(b)) != list(range(cluster.partitions)):
        time.sleep(0.2)
    after = rows(b)
    assert sorted(after) == list(range(cluster.partitions))
    for p in taken_over:
        restored_from = after[p]["restored_from_offset"]
        # b never owned p: without the standby copy it would restore from offset 0
        assert restored_from is None or int(restored_from) > 0, after[p]
    for i, wid in enumerate(ids):
        assert client.describe(wid)["result"] == i + 3
    # the runs open at the kill carry on under b: signals still count, timers still fire
    for i, wid in enumerate(waiting):
        client.signal(wid, "done")
        assert client.result(wid, timeout=60) == [i]
    for wid in sleeping:
        result = client.result(wid, timeout=60)
        assert slept(result) >= 8.0, result
        fired = next(e for e in client.history(wid) if isinstance(e, ev.TimerFired))
        assert fired.time > killed_at, f"{wid}'s timer fired before the kill: it was not open then"
    client.start_workflow("ThreeSteps", 100, id="after-takeover")
    assert client.result("after-takeover", timeout=60) == 103
