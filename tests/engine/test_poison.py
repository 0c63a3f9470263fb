"""Nothing a caller sends can stop a partition (issue 12), on a real broker.

Each of these used to abort every batch that held it, restart the owner session and
meet the same record again, forever: a DAG node on a queue no worker has served yet
(its topic did not exist), an input over Kafka's record limit, an expression that
builds a huge value, a long chain of nodes (1,200 then; 500 here, as deep as
max_dag_depth allows; tests/engine/test_dead_letters.py sends the 1,200). Now the
first waits for its worker, the others fail or refuse only themselves, and ordinary
runs carry on throughout.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

from ledgerflow import Client
from ledgerflow.local.processes import Cluster, failed_batches
from tests.fixtures import ACTS, FLOWS, assert_invariants, dead_letters
from tests.waits import wait_until

pytestmark = pytest.mark.kafka


def ended(client: Client, workflow_id: str) -> dict[str, Any]:
    """The state of ``workflow_id`` once its run closed."""
    return wait_until(
        lambda: (d := client.describe(workflow_id))["status"] != "RUNNING" and d, f"{workflow_id} to end"
    )


def test_poison_inputs_stop_only_themselves_and_a_queue_without_workers_waits(
    cluster: Cluster, client: Client
) -> None:
    engine = cluster.engine([FLOWS])
    cluster.worker([ACTS])
    engine.wait_ready()
    client.register_dag(
        {"id": "later", "nodes": [{"id": "n", "type": "echo", "input": {"v": 7}, "queue": "nobody"}]}
    )
    client.register_dag(
        {"id": "hostile", "nodes": [{"id": "n", "type": "echo", "input": {"v": "{{ 'a' * 2000000 }}"}}]}
    )
    chain = [{"id": f"n{i}", "type": "echo"} for i in range(500)]  # as deep as max_dag_depth allows
    edges = [{"source": f"n{i}", "target": f"n{i + 1}"} for i in range(499)]
    client.register_dag({"id": "chain", "nodes": chain, "edges": edges})
    # Kafka refuses a topic whose name differs from an existing one only by '.' versus '_'.
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    admin.create_topics([NewTopic(f"{cluster.prefix}tasks.pay.eu", 1, 1)])[
        f"{cluster.prefix}tasks.pay.eu"
    ].result(30)
    client.register_dag({"id": "clash", "nodes": [{"id": "n", "type": "echo", "queue": "pay_eu"}]})
    client.start_workflow("clash", None, id="clash-1")
    client.start_workflow("later", None, id="waits-for-worker")
    client.start_workflow("hostile", None, id="hostile-1")
    inbox = f"{cluster.prefix}inbox"
    producer = Producer({"bootstrap.servers": cluster.bootstrap, "message.max.bytes": 2_000_000})
    huge = {
        "kind": "start_workflow",
        "workflow_id": "huge",
        "workflow_type": "ThreeSteps",
        "input": "x" * 600_000,
    }
    producer.produce(
        inbox, key=b"huge", value=json.dumps(huge).encode(), partition=client.settings.partition_of("huge")
    )
    producer.flush(10)
    for i in range(5):
        client.start_workflow("ThreeSteps", i, id=f"ordinary-{i}")
    for i in range(5):
        assert client.result(f"ordinary-{i}", timeout=60) == i + 3, "an ordinary run stalled behind poison"
        assert_invariants(client, f"ordinary-{i}")

    hostile = ended(client, "hostile-1")
    assert hostile["status"] == "FAILED", hostile
    assert "would build 2,000,000 items" in json.dumps(hostile["failure"]), hostile["failure"]
    clash = wait_until(
        lambda: (d := client.describe("clash-1"))["status"] != "RUNNING" and d,
        "the clashing queue's run to end",
    )
    assert clash["status"] == "FAILED" and clash["failure"]["type"] == "QueueUnavailable", clash
    assert "'pay_eu'" in clash["failure"]["message"], clash["failure"]
    letters = dead_letters(cluster, {b"huge"})
    reason = letters[b"huge"]["ledgerflow.dlq.reason"].decode()
    assert "PayloadTooLarge: WorkflowStarted" in reason and "max_payload_bytes" in reason, reason

    waiting = client.describe("waits-for-worker")
    assert waiting["status"] == "RUNNING" and waiting["activities"], waiting
    assert waiting["queue_workers"] == {"nobody": 0}, "describe must say that nobody serves the queue"
    assert 'ledgerflow_task_queue_workers{queue="nobody"} 0.0' in httpx.get(f"{engine.url}/metrics").text
    topics = admin.list_topics(timeout=10).topics
    assert f"{cluster.prefix}tasks.nobody" in topics
    assert len(topics[f"{cluster.prefix}tasks.nobody"].partitions) == cluster.partitions

    cluster.worker([ACTS], name="worker-nobody", queue="nobody")
    assert client.result("waits-for-worker", timeout=60) == {"n": {"v": 7}}
    wait_until(
        lambda: (
            'ledgerflow_task_queue_workers{queue="nobody"} 1.0' in httpx.get(f"{engine.url}/metrics").text
        ),
        "the engine to see the queue's worker",
    )
    client.start_workflow("chain", None, id="chain-1")  # its definition was read despite its depth
    wait_until(
        lambda: sum(e.kind == "activity_completed" for e in client.history("chain-1")) >= 3,
        "the 500-node chain to make progress",
    )
    for workflow_id in ("waits-for-worker", "hostile-1", "clash-1"):
        assert_invariants(client, workflow_id)
    log = engine.log_path.read_text()
    # One batch aborted (and retried inside the group), to fail the clashing queue's run; none else.
    failed = failed_batches(log)
    assert len(failed) == 1 and "task queue 'pay_eu' is unusable" in failed[0], failed or log[-3000:]
