"""Admission control: starts beyond an engine's capacity are refused with the reason, nothing lost."""

from __future__ import annotations

import functools
import time

import httpx
import pytest
from confluent_kafka import Consumer, TopicPartition

from ledgerflow import Client, WorkflowNotFoundError
from ledgerflow.errors import CapacityError
from ledgerflow.local.processes import Cluster
from ledgerflow.schemas.commands import StartWorkflow
from tests.fixtures import ACTS, FLOWS
from tests.waits import wait_until

pytestmark = pytest.mark.kafka


def dead_letters(cluster: Cluster) -> dict[bytes, bytes]:
    consumer = Consumer(
        {"bootstrap.servers": cluster.bootstrap, "group.id": "dlq", "isolation.level": "read_committed"}
    )
    consumer.assign([TopicPartition(f"{cluster.prefix}inbox.dlq", p, 0) for p in range(cluster.partitions)])
    found: dict[bytes, bytes] = {}
    for _ in range(20):
        message = consumer.poll(0.2)
        if message is not None and not message.error():
            found[message.key()] = dict(message.headers() or [])["ledgerflow.dlq.reason"]
    consumer.close()
    return found


def test_starts_beyond_capacity_are_refused_then_accepted_once_capacity_frees(
    cluster: Cluster, client: Client
) -> None:
    engine = cluster.engine([FLOWS], extra=["--max-open-workflows", "2"])
    cluster.worker([ACTS])
    engine.wait_ready()
    client.start_workflow("SignalCounter", None, id="open-1")
    client.start_workflow("SignalCounter", None, id="open-2")
    for wid in ("open-1", "open-2"):
        wait_until(functools.partial(client.describe, wid), f"the start of {wid!r} to be applied", 20)
    # The Client reads the engine's admission first and refuses at once, naming the limit ...
    with pytest.raises(CapacityError, match="limit 2"):
        client.start_workflow("ThreeSteps", 1, id="third")
    # ... and a start written to Kafka straight away (as any producer may) is refused by the engine.
    client.send("third", StartWorkflow(workflow_id="third", workflow_type="ThreeSteps", input=1))
    reason = wait_until(lambda: dead_letters(cluster).get(b"third"), "the start of 'third' to be refused", 20)
    assert b"capacity" in reason and b"limit 2" in reason, reason
    with pytest.raises(WorkflowNotFoundError):
        client.describe("third")
    rows = engine.get("/internal/partitions").json()
    assert sum(r["open_workflows"] for r in rows["partitions"]) == 2
    assert rows["limits"]["max_open_per_engine"] == 2
    client.signal("open-1", "done")
    assert client.result("open-1", timeout=20) == []
    client.start_workflow("ThreeSteps", 1, id="fourth")
    assert client.result("fourth", timeout=30) == 4


def test_gateway_answers_429_with_the_reason_then_accepts_once_capacity_frees(
    cluster: Cluster, client: Client
) -> None:
    engine = cluster.engine([FLOWS], extra=["--max-open-per-partition", "1"])
    cluster.worker([ACTS])
    gateway = cluster.gateway([ACTS])
    engine.wait_ready()
    gateway.wait_ready()
    url = f"{gateway.url}/api/v1/workflows"
    first = httpx.post(
        url, json={"id": "cap-a", "type": "SignalCounter", "input": None}, headers=gateway.headers, timeout=10
    )
    assert first.status_code == 202, first.text
    partition = first.json()["partition"]
    same_shard = next(
        f"cap-{i}" for i in range(1000) if client.settings.partition_of(f"cap-{i}") == partition
    )
    deadline = time.time() + 20
    refused = httpx.post(
        url, json={"id": same_shard, "type": "ThreeSteps", "input": 1}, headers=gateway.headers, timeout=10
    )
    while refused.status_code == 202 and time.time() < deadline:  # the first start not applied yet
        time.sleep(0.2)
        refused = httpx.post(
            url,
            json={"id": same_shard, "type": "ThreeSteps", "input": 1},
            headers=gateway.headers,
            timeout=10,
        )
    assert refused.status_code == 429, refused.text
    assert refused.headers["Retry-After"] == "1"
    assert "limit 1 per partition" in refused.json()["detail"]
    client.signal("cap-a", "done")
    assert client.result("cap-a", timeout=20) == []
    accepted = httpx.post(
        url, json={"id": same_shard, "type": "ThreeSteps", "input": 1}, headers=gateway.headers, timeout=10
    )
    assert accepted.status_code == 202, accepted.text
    assert client.result(same_shard, timeout=30) == 4
