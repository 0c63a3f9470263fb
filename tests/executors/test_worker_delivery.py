"""The worker's commit-after-acknowledge on a real broker: at-least-once runs, exactly-once records.

A result delivery is made to fail for real and for as long as the test wants: the inbox
topic's ``max.message.bytes`` is set below the size of the activity's result, so the broker
refuses the record (MESSAGE_TOO_LARGE) until the limit is lifted. Meanwhile the task's
offset must stay uncommitted in the worker group: then a retry, or the next worker after a
kill -9, delivers the result, and the engine records it once.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    ResourceType,
)

from ledgerflow import Client
from ledgerflow.local.processes import Cluster, NodeProcess
from tests.fixtures import FLOWS, assert_invariants_with

pytestmark = pytest.mark.kafka

APPS = "tests.testapps.delivery"
LIMIT = 10_000
"""The inbox's max.message.bytes while deliveries must fail."""
RESULT = 50_000
"""Characters the activity returns: over LIMIT, far under the worker's own 900 kB cap."""
SEND_FAILED = "could not report a task result"


def set_inbox_limit(cluster: Cluster, max_bytes: int | None) -> None:
    """Set the inbox topic's max.message.bytes, or drop the override (None)."""
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    entry = ConfigEntry(
        "max.message.bytes",
        None if max_bytes is None else str(max_bytes),
        incremental_operation=AlterConfigOpType.DELETE if max_bytes is None else AlterConfigOpType.SET,
    )
    resource = ConfigResource(ResourceType.TOPIC, f"{cluster.prefix}inbox", incremental_configs=[entry])
    admin.incremental_alter_configs([resource])[resource].result(30)


def wait_for_log(node: NodeProcess, text: str, timeout: float = 30.0) -> float:
    """Seconds until ``text`` appears in the node's log."""
    started = time.monotonic()
    while text not in node.log_path.read_text(errors="replace"):
        assert time.monotonic() - started < timeout, f"{text!r} never logged:\n{node.log_tail()}"
        time.sleep(0.1)
    return time.monotonic() - started


def task_position(cluster: Cluster, workflow_id: str, timeout: float = 20.0) -> TopicPartition:
    """Partition and offset of the workflow's activity task on the default queue."""
    topic = f"{cluster.prefix}tasks.default"
    consumer = Consumer(
        {
            "bootstrap.servers": cluster.bootstrap,
            "group.id": "task-reader",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(cluster.partitions)])
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            task = json.loads(message.value())
            if task.get("kind") == "activity_task" and task["workflow_id"] == workflow_id:
                return TopicPartition(topic, message.partition(), message.offset())
    finally:
        consumer.close()
    raise AssertionError(f"no task of {workflow_id} on {topic}")


def committed(cluster: Cluster, task: TopicPartition) -> int:
    """The worker group's committed offset on the task's partition (negative: none)."""
    group = f"{cluster.prefix}workers.default"
    consumer = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": group})
    try:
        [position] = consumer.committed([TopicPartition(task.topic, task.partition)], timeout=10)
    finally:
        consumer.close()
    return int(position.offset)


def assert_recorded_once(client: Client, workflow_id: str) -> None:
    """Attempt 1 completed, recorded once, and nothing else happened to the activity."""
    kinds = [e.kind for e in client.history(workflow_id)]
    assert kinds.count("activity_completed") == 1, kinds
    assert "activity_attempt_failed" not in kinds and "activity_failed" not in kinds, kinds
    assert_invariants_with(client, workflow_id, [APPS])


def runs_of(markers: Path) -> list[str]:
    return (markers / "runs").read_text().split()


def test_a_refused_result_is_sent_again_and_its_task_stays_uncommitted_until_it_lands(
    cluster: Cluster, client: Client, tmp_path: Path
) -> None:
    engine = cluster.engine([FLOWS, APPS])
    worker = cluster.worker([APPS])
    engine.wait_ready()
    set_inbox_limit(cluster, LIMIT)
    markers = tmp_path / "m"
    markers.mkdir()
    client.start_workflow("Reported", [str(markers), 0.2, RESULT], id="refused")
    failing_after = wait_for_log(worker, SEND_FAILED)
    task = task_position(cluster, "refused")
    time.sleep(2.0)  # ten commit rounds and a few resends while the broker keeps refusing
    assert committed(cluster, task) <= task.offset, "the task was committed although its result never landed"

    set_inbox_limit(cluster, None)
    lifted = time.monotonic()
    assert client.result("refused", timeout=45) == RESULT
    delivered_after = time.monotonic() - lifted
    assert len(runs_of(markers)) == 1, "the worker ran the activity again instead of resending its result"
    assert_recorded_once(client, "refused")
    deadline = time.monotonic() + 15
    while committed(cluster, task) <= task.offset:
        assert time.monotonic() < deadline, "the task was never committed after its result landed"
        time.sleep(0.2)
    print(f"refusal logged after {failing_after:.1f} s; recorded {delivered_after:.1f} s after the lift")


def test_a_worker_killed_before_its_result_is_acknowledged_leaves_the_task_to_the_next_one(
    cluster: Cluster, client: Client, tmp_path: Path
) -> None:
    engine = cluster.engine([FLOWS, APPS])
    worker = cluster.worker([APPS], name="worker-a")
    engine.wait_ready()
    set_inbox_limit(cluster, LIMIT)
    markers = tmp_path / "m"
    markers.mkdir()
    client.start_workflow("Reported", [str(markers), 0.2, RESULT], id="killed")
    wait_for_log(worker, SEND_FAILED)
    task = task_position(cluster, "killed")
    time.sleep(1.0)
    worker.kill()  # sent, never acknowledged
    assert committed(cluster, task) <= task.offset, "the task was committed although its result never landed"

    set_inbox_limit(cluster, None)
    restarted = time.monotonic()
    cluster.worker([APPS], name="worker-b")
    assert client.result("killed", timeout=45) == RESULT
    completed_after = time.monotonic() - restarted
    pids = runs_of(markers)
    assert len(pids) == 2 and pids[0] != pids[1], f"the task did not run again on the next worker: {pids}"
    assert_recorded_once(client, "killed")  # at least once run, exactly once recorded
    print(f"run completed {completed_after:.1f} s after the second worker started (its group join included)")
