"""Promises of the engine that no other test held it to, each through a real broker, engine and worker.

Execution timeouts, named task queues, request-id deduplication, starts carrying an earlier
run id, and the failure and cancellation of child workflows. Each test names the behaviour
it proves; its docstring says what it waits on, so a broken engine fails it instead of
leaving it to a sleep.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer, TopicPartition

from ledgerflow import Client, WorkflowFailedError, WorkflowNotFoundError
from ledgerflow.engine.kafka.admin import ensure_topics
from ledgerflow.local.processes import Cluster, NodeProcess
from ledgerflow.schemas import commands as c
from ledgerflow.schemas import events as ev
from tests.fixtures import ACTS, FLOWS, assert_invariants, lifecycle_counts, lifecycle_events

pytestmark = pytest.mark.kafka


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll ``condition`` until it holds; return the seconds it took (fail after ``timeout``)."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < timeout, f"gave up after {timeout} s waiting for {what}"
        time.sleep(0.1)
    return time.monotonic() - started


def status(client: Client, workflow_id: str) -> str | None:
    try:
        return str(client.describe(workflow_id)["status"])
    except WorkflowNotFoundError:
        return None


def kinds(client: Client, workflow_id: str, run_id: str | None = None) -> list[str]:
    """The kinds of a run's events ([] while its start is not applied yet)."""
    try:
        return [e.kind for e in client.history(workflow_id, run_id)]
    except WorkflowNotFoundError:
        return []


def closings(history: list[ev.HistoryEvent]) -> list[str]:
    """The events of a history that close its run (there must be exactly one, last)."""
    return [e.kind for e in history if e.kind.startswith("workflow_") and e.kind != "workflow_started"]


def same_partition_id(client: Client, base: str, like: str) -> str:
    """A workflow id beginning with ``base`` that lands on the partition of ``like``."""
    target = client.settings.partition_of(like)
    return next(f"{base}-{n}" for n in range(1000) if client.settings.partition_of(f"{base}-{n}") == target)


def topic_values(cluster: Cluster, topic: str) -> list[tuple[str, dict[str, Any]]]:
    """Every committed record of ``topic`` (key, parsed JSON value), read to its high watermark."""
    consumer = Consumer(
        {"bootstrap.servers": cluster.bootstrap, "group.id": "reader", "isolation.level": "read_committed"}
    )
    try:
        count = len(consumer.list_topics(topic, timeout=10).topics[topic].partitions)
        partitions = [TopicPartition(topic, p, 0) for p in range(count)]
        ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in partitions}
        consumer.assign(partitions)
        found: list[tuple[str, dict[str, Any]]] = []
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is not None and not message.error():
                found.append(((message.key() or b"").decode(), json.loads(message.value() or b"null")))
            positions = consumer.position([TopicPartition(topic, p) for p in ends])
            if all(tp.offset >= ends[tp.partition] or ends[tp.partition] == 0 for tp in positions):
                return found
        raise AssertionError(f"could not read {topic} to its end in 30 s")
    finally:
        consumer.close()


def served_by(pid: int, nodes: list[NodeProcess]) -> int | None:
    """Which of ``nodes`` is process ``pid`` or one of its ancestors (by /proc)."""
    roots = {node.pid for node in nodes}
    while pid > 1:
        if pid in roots:
            return pid
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            return None
        pid = int(stat.rsplit(")", 1)[1].split()[1])  # the field after the state: the parent's pid
    return None


def engine_metric(node: NodeProcess, name: str) -> float:
    """One unlabelled metric of an engine node (0 when not exported yet)."""
    for line in httpx.get(f"{node.url}/metrics", timeout=5).text.splitlines():
        if line.startswith(f"{name} "):
            return float(line.split()[1])
    return 0.0


# ------------------------------------------------------------- execution timeout
def test_execution_timeout_fails_the_run_cancels_its_activity_and_closes_it_once(
    running: Cluster, client: Client, tmp_path: Path
) -> None:
    """A run that would outlast ``execution_timeout`` ends FAILED with WorkflowExecutionTimeout,
    its running activity is told to stop, and its history closes once. A run that completes
    in time is not failed when its timeout comes due later.

    ``within`` and ``outlasts`` share a partition and ``within``'s timeout is due first, so
    once ``outlasts`` failed, ``within``'s timeout has fired too (timers fire in order).
    """
    markers = tmp_path / "markers"
    markers.mkdir()
    timeout = 10.0
    within = "within"
    outlasts = same_partition_id(client, "outlasts", within)
    started = time.time()
    client.start_workflow("ThreeSteps", 1, id=within, execution_timeout=timeout)
    client.start_workflow("SlowCancellable", str(markers), id=outlasts, execution_timeout=timeout)
    assert client.result(within, timeout=30) == 4
    wait_for(lambda: (markers / "started").exists(), 30, "the long activity to start")
    with pytest.raises(WorkflowFailedError) as info:
        client.result(outlasts, timeout=60)
    failed_after = time.time() - started
    assert info.value.status == "FAILED"
    assert info.value.failure.type == "WorkflowExecutionTimeout"
    cancelled_after = wait_for(lambda: (markers / "cancelled").exists(), 30, "the activity to be cancelled")

    history = client.history(outlasts)
    assert [e.kind for e in history] == ["workflow_started", "activity_scheduled", "workflow_failed"]
    assert history[-1].time - history[0].time >= timeout
    # The attempt's report after its cancel is stale: nothing is appended to a closed run,
    # and the workflow code does not run again (its cleanup step is for a cancel request).
    time.sleep(2.0)
    assert len(client.history(outlasts)) == len(history)
    assert not (markers / "cleanup").exists()
    assert client.describe(outlasts)["activities"] == {}

    assert closings(client.history(within)) == ["workflow_completed"]
    assert status(client, within) == "COMPLETED"
    failed = lifecycle_counts(running, "WORKFLOW_FAILED", {outlasts})
    assert failed[outlasts] == 1 and failed[within] == 0
    assert_invariants(client, within)
    assert_invariants(client, outlasts)
    print(
        f"\nexecution timeout {timeout} s: failed after {failed_after:.1f} s, "
        f"activity saw its cancel {cancelled_after:.1f} s later"
    )


# ------------------------------------------------------------------ task queues
def test_an_activity_routed_to_a_named_queue_runs_only_on_that_queues_worker(
    cluster: Cluster, client: Client
) -> None:
    """The 'payments' activity waits while only a 'default' worker runs (though it loads the same
    activities), goes out on ``tasks.payments``, and is run by the worker of ``--queue payments``."""
    engine = cluster.engine([FLOWS])
    default = cluster.worker([ACTS], name="worker-default")
    engine.wait_ready()
    ensure_topics(client.settings, ("payments",))  # as `ledgerflow topics --queue payments` would
    started = time.monotonic()
    handle = client.start_workflow("RoutedToPayments", None, id="routed")
    wait_for(lambda: "activity_scheduled" in kinds(client, "routed"), 30, "the activity to be scheduled")
    time.sleep(3.0)  # the default worker is idle and has the activity: it must not take it
    assert kinds(client, "routed") == ["workflow_started", "activity_scheduled"]
    payments = cluster.worker([ACTS], name="worker-payments", queue="payments")
    result = handle.result(timeout=60)
    took = time.monotonic() - started
    # Each worker ran its queue's activity (in its own process, or in one it started).
    assert {queue: served_by(pid, [payments, default]) for queue, pid in result.items()} == {
        "payments": payments.pid,
        "default": default.pid,
    }

    scheduled = [e for e in client.history("routed") if isinstance(e, ev.ActivityScheduled)]
    assert [(e.seq, e.options.queue) for e in scheduled] == [(1, "payments"), (2, "default")]
    on_payments = topic_values(cluster, f"{cluster.prefix}tasks.payments")
    on_default = topic_values(cluster, f"{cluster.prefix}tasks.default")
    assert [(k, v["kind"], v["seq"]) for k, v in on_payments] == [("routed", "activity_task", 1)]
    assert [(k, v["kind"], v["seq"]) for k, v in on_default] == [("routed", "activity_task", 2)]
    queues = [
        (e["data"]["seq"], e["data"]["queue"])
        for e in lifecycle_events(cluster, "TASK_SCHEDULED", {"routed"})
        if e["workflow_id"] == "routed"
    ]
    assert queues == [(1, "payments"), (2, "default")]
    assert_invariants(client, "routed")
    print(f"\nrouted run completed {took:.1f} s after its start (3 s of it waiting for a payments worker)")


# ------------------------------------------------------------------ deduplication
def test_a_second_start_with_the_same_request_id_is_dropped(running: Cluster, client: Client) -> None:
    """A start repeating an applied start's request_id starts nothing, even once the first run
    closed (when a start without the key would open a new run): the Client answers with the run
    the first start led to, and the engine drops the repeat when it is sent anyway (a producer
    writing to Kafka). Waits on the engine's count of dropped duplicates."""
    engine = running.nodes[0]
    first = client.start_workflow("ThreeSteps", 1, id="dedup", request_id="order-1-start")
    assert first.result(timeout=30) == 4
    again = client.start_workflow("ThreeSteps", 100, id="dedup", request_id="order-1-start")
    assert (again.already_started, again.run_id) == (True, first.run_id)
    assert again.result(timeout=5) == 4  # the first start's run, not one that never exists
    before = engine_metric(engine, "ledgerflow_duplicate_commands_total")
    repeat = c.StartWorkflow(
        workflow_id="dedup", workflow_type="ThreeSteps", input=100, run_id="r-2", request_id="order-1-start"
    )
    client.send("dedup", repeat)
    took = wait_for(
        lambda: (
            engine_metric(engine, "ledgerflow_duplicate_commands_total") > before
            or client.describe("dedup")["run_id"] != first.run_id
        ),
        30,
        "the engine to drop the repeated start",
    )
    state = client.describe("dedup")
    assert (state["run_id"], state["status"], state["previous_runs"]) == (first.run_id, "COMPLETED", [])
    with pytest.raises(WorkflowNotFoundError):
        client.history("dedup", "r-2")
    assert closings(client.history("dedup")) == ["workflow_completed"]
    starts = [
        e["run_id"]
        for e in lifecycle_events(running, "WORKFLOW_STARTED", {"dedup"})
        if e["workflow_id"] == "dedup"
    ]
    assert starts == [first.run_id]
    assert_invariants(client, "dedup")
    print(f"\nrepeated start dropped within {took:.1f} s")


# ------------------------------------------------------------- earlier run ids
def test_a_start_carrying_an_earlier_run_id_is_ignored(running: Cluster, client: Client) -> None:
    """Starts naming a run that continued as new, or the closed latest run, open nothing and
    change no history. A later start with a fresh run id, on the same key (so applied after
    them), is the barrier."""
    handle = client.start_workflow("Countdown", 2, id="again")
    assert handle.result(timeout=60) == "liftoff"
    state = client.describe("again")
    runs = [*state["previous_runs"], state["run_id"]]
    assert len(runs) == 3 and runs[0] == handle.run_id
    lengths = {run_id: len(client.history("again", run_id)) for run_id in runs}
    assert_invariants(client, "again")
    for run_id in runs:  # no request_id: only the run id can tell these apart from a new start
        client.send(
            "again", c.StartWorkflow(workflow_id="again", workflow_type="ThreeSteps", input=1, run_id=run_id)
        )
    fresh = client.start_workflow("ThreeSteps", 10, id="again")
    assert fresh.result(timeout=30) == 13

    state = client.describe("again")
    assert state["run_id"] == fresh.run_id and state["previous_runs"] == runs
    for run_id in runs:
        history = client.history("again", run_id)
        assert len(history) == lengths[run_id], f"run {run_id} changed"
        assert len(closings(history)) == 1
    starts = [
        e["run_id"]
        for e in lifecycle_events(running, "WORKFLOW_STARTED", {"again"})
        if e["workflow_id"] == "again"
    ]
    assert starts == [*runs, fresh.run_id]
    assert_invariants(client, "again")


# ------------------------------------------------------------- child workflows
def test_a_failed_child_raises_child_workflow_error_in_its_parent(running: Cluster, client: Client) -> None:
    """A child that fails reaches its parent as ChildWorkflowFailed with the child's failure:
    a parent that catches ChildWorkflowError completes with what it caught (down the chain to
    the activity's error); one that does not fails with a ChildWorkflowError caused by it."""
    client.start_workflow("ChildFailureHandled", None, id="handled")
    client.start_workflow("ChildFailureUnhandled", None, id="unhandled")
    assert client.result("handled", timeout=60) == {
        "caught": "ChildWorkflowError",
        "cause": "ActivityError of always_fails",
        "type": "CardDeclined",
        "message": "card declined",
    }
    with pytest.raises(WorkflowFailedError) as info:
        client.result("unhandled", timeout=60)
    assert info.value.status == "FAILED"
    failure = info.value.failure
    assert failure.type == "ChildWorkflowError" and failure.cause and failure.cause.type == "ActivityError"
    assert failure.cause.cause and failure.cause.cause.type == "CardDeclined"

    for parent in ("handled", "unhandled"):
        child = f"{parent}-child"
        described = client.describe(child)
        assert described["status"] == "FAILED" and described["failure"]["type"] == "ActivityError"
        assert described["failure"]["cause"]["type"] == "CardDeclined"
        assert described["parent_workflow_id"] == parent
        history = client.history(parent)
        failed = [e for e in history if isinstance(e, ev.ChildWorkflowFailed)]
        assert [(e.seq, e.failure.type) for e in failed] == [(1, "ActivityError")]
        assert closings(history) == ["workflow_completed" if parent == "handled" else "workflow_failed"]
        assert_invariants(client, parent)
        assert_invariants(client, child)


def start_parent_with_sleeping_child(client: Client, parent: str) -> str:
    """Start ``ParentOfSleeper`` and wait until its child sleeps (an hour); return the child's id."""
    client.start_workflow("ParentOfSleeper", 3600, id=parent)
    child = f"{parent}-child"
    wait_for(
        lambda: status(client, child) == "RUNNING" and "timer_started" in kinds(client, child),
        30,
        "the child to sleep",
    )
    return child


def test_cancelling_a_child_ends_the_parents_wait_with_a_child_workflow_error(
    running: Cluster, client: Client
) -> None:
    """A cancelled child ends CANCELED and its parent's await raises ChildWorkflowError whose
    failure type is CANCELED; the parent handles it as coded and completes."""
    child = start_parent_with_sleeping_child(client, "p1")
    client.cancel(child, reason="test")
    with pytest.raises(WorkflowFailedError) as info:
        client.result(child, timeout=30)
    assert info.value.status == "CANCELED"
    assert client.result("p1", timeout=30) == "child ended: CANCELED"
    child_kinds = kinds(client, child)
    assert "cancel_requested" in child_kinds and closings(client.history(child)) == ["workflow_canceled"]
    failed = [e for e in client.history("p1") if isinstance(e, ev.ChildWorkflowFailed)]
    assert [(e.seq, e.failure.type) for e in failed] == [(1, "CANCELED")]
    assert_invariants(client, "p1")
    assert_invariants(client, child)


def test_cancelling_a_parent_closes_it_once_and_does_not_reach_its_child(
    running: Cluster, client: Client
) -> None:
    """A cancel reaches only the run it names: the parent ends CANCELED; its child (there is no
    parent-close policy) runs on, and when the child closes later the report to the closed
    parent changes nothing. A fresh start of the parent's id, on the same key as that report
    and so applied after it, is the barrier."""
    child = start_parent_with_sleeping_child(client, "p2")
    parent_run = client.describe("p2")["run_id"]
    client.cancel("p2", reason="test")
    with pytest.raises(WorkflowFailedError) as info:
        client.result("p2", timeout=30)
    assert info.value.status == "CANCELED"
    history = client.history("p2")
    assert closings(history) == ["workflow_canceled"] and "cancel_requested" in [e.kind for e in history]
    assert_invariants(client, "p2")
    assert status(client, child) == "RUNNING"
    assert "cancel_requested" not in kinds(client, child)

    client.terminate(child, reason="test")
    wait_for(lambda: status(client, child) == "TERMINATED", 30, "the child to be terminated")
    fresh = client.start_workflow("ThreeSteps", 1, id="p2")
    assert fresh.result(timeout=30) == 4
    assert [e.kind for e in client.history("p2", parent_run)] == [e.kind for e in history]
    assert lifecycle_counts(running, "WORKFLOW_CANCELED", {"p2"})["p2"] == 1
    assert_invariants(client, "p2")
    assert_invariants(client, child)
