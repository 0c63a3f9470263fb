"""Standby replicas: a takeover restores only the tail after the warm copy's checkpoint."""

from __future__ import annotations

import time

import httpx
import pytest

from ledgerflow import Client
from ledgerflow.testing.processes import Cluster
from tests.fixtures import ACTS, FLOWS

pytestmark = pytest.mark.kafka


def rows(url: str | None) -> dict[int, dict[str, object]]:
    data = httpx.get(f"{url}/internal/partitions", timeout=5).json()
    return {int(r["partition"]): r for r in data["partitions"]}


def test_a_standby_copy_makes_a_failover_restore_only_the_tail(cluster: Cluster, client: Client) -> None:
    extra = ["--standby", "--session-timeout-ms", "3000"]
    a = cluster.engine([FLOWS], name="engine-a", extra=extra)
    cluster.worker([ACTS])
    a.wait_ready()
    b = cluster.engine([FLOWS], name="engine-b", extra=extra)
    b.wait_ready()
    deadline = time.time() + 30
    while time.time() < deadline and not (rows(a.url) and rows(b.url)):
        time.sleep(0.2)
    taken_over = sorted(rows(a.url))
    assert taken_over and rows(b.url), "the two engines did not share the partitions"
    ids = [f"sb-{i}" for i in range(40)]
    for i, wid in enumerate(ids):
        client.start_workflow("ThreeSteps", i, id=wid)
    for i, wid in enumerate(ids):
        assert client.result(wid, timeout=60) == i + 3
    time.sleep(1.0)  # let b's standby copies catch up with a's last writes
    a.kill()
    deadline = time.time() + 30
    while time.time() < deadline and sorted(rows(b.url)) != list(range(cluster.partitions)):
        time.sleep(0.2)
    after = rows(b.url)
    assert sorted(after) == list(range(cluster.partitions))
    for p in taken_over:
        restored_from = after[p]["restored_from_offset"]
        # b never owned p: without the standby copy it would restore from offset 0
        assert restored_from is None or int(restored_from) > 0, after[p]
    for i, wid in enumerate(ids):
        assert client.describe(wid)["result"] == i + 3
    client.start_workflow("ThreeSteps", 100, id="after-takeover")
    assert client.result("after-takeover", timeout=60) == 103
