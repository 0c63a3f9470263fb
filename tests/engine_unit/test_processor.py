"""The partition state machine on a real RocksDB store, without Kafka."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path
from typing import Any

import pytest

from ledgerflow.config import Settings
from ledgerflow.engine import metrics
from ledgerflow.engine.context import Admission, EngineContext
from ledgerflow.engine.outbox import Outbox
from ledgerflow.engine.processor import PartitionProcessor
from ledgerflow.engine.state import keys
from ledgerflow.engine.state.committed import read_history, read_run
from ledgerflow.engine.state.store import PartitionStore
from ledgerflow.schemas.commands import (
    SignalWorkflow,
    StartSignal,
    StartWorkflow,
    TaskCompleted,
    TerminateWorkflow,
    UpdateWorkflow,
    inbox_command_adapter,
)
from ledgerflow.schemas.tasks import ActivityTask, task_message_adapter
from ledgerflow.sdk.definition import WorkflowRegistry
from ledgerflow.testing.invariants import check_run

FLOWS = "tests.testapps.flows"


def batch(processor: PartitionProcessor, now: float, *commands: object) -> Outbox:
    out = Outbox(processor.ctx.settings)
    processor.begin(now, out)
    for command in commands:
        assert processor.handle(command) is None  # type: ignore[arg-type]
    processor.fire_timers()
    processor.store.write(dict(processor.finish()), None)
    return out


def processor_at(tmp_path: Path, **context: Any) -> PartitionProcessor:
    """A partition processor over a fresh RocksDB store, running the test workflows."""
    ctx = EngineContext(Settings(), WorkflowRegistry.from_modules([FLOWS]), lambda _id: None, **context)
    return PartitionProcessor(0, PartitionStore(tmp_path / "p0"), ctx)


def run_three_steps(processor: PartitionProcessor, n: int) -> None:
    """Start ThreeSteps(n) as workflow 'w' and complete its activities, one batch each."""
    complete_steps(processor, batch(processor, 1.0, start(n)), n)


def complete_steps(processor: PartitionProcessor, out: Outbox, n: int) -> None:
    """Complete the activities of ThreeSteps(n) 'w', one batch each; ``out`` holds the first task."""
    value = n
    for step in range(3):
        (task,) = tasks(out)
        value += 1
        done = TaskCompleted(workflow_id="w", run_id="r", seq=task.seq, attempt=task.attempt, result=value)
        out = batch(processor, 2.0 + step, done)


def start(n: int) -> StartWorkflow:
    return StartWorkflow(workflow_id="w", workflow_type="ThreeSteps", input=n, run_id="r")


def tasks(out: Outbox) -> list[ActivityTask]:
    found = [task_message_adapter.validate_json(r.value or b"") for r in out.records if ".tasks." in r.topic]
    return [t for t in found if isinstance(t, ActivityTask)]


def test_a_cached_instance_is_reused_across_activations(tmp_path: Path) -> None:
    processor = processor_at(tmp_path)
    replays_before = metrics.REPLAYS._value.get()
    run_three_steps(processor, 1)
    assert metrics.REPLAYS._value.get() == replays_before, "an activation replayed history despite the cache"
    run = read_run(processor.store, "w")
    assert run is not None and run.status == "COMPLETED" and run.result == 4
    registry = WorkflowRegistry.from_modules([FLOWS])
    history = read_history(processor.store, "w", "r")
    assert check_run(run.model_dump(mode="json"), history, registry) == []


def test_a_cache_miss_rebuilds_by_replay_and_carries_on(tmp_path: Path) -> None:
    processor = processor_at(tmp_path, cache_size=0)
    replays_before = metrics.REPLAYS._value.get()
    run_three_steps(processor, 10)
    assert metrics.REPLAYS._value.get() == replays_before + 3
    run = read_run(processor.store, "w")
    assert run is not None and run.result == 13


def test_an_instance_leaving_the_cache_is_freed_without_the_cycle_collector(tmp_path: Path) -> None:
    """Evicted and closed runs' instances are freed by reference counting (WorkflowInstance.dispose):
    left to the cycle collector, its full collections took a third of the owner loop under load."""
    processor = processor_at(tmp_path, cache_size=1)
    gc.collect()
    gc.disable()
    try:
        batch(processor, 1.0, StartWorkflow(workflow_id="a", workflow_type="SignalCounter", run_id="ra"))
        waiting = weakref.ref(processor.cache.peek("a", "ra"))  # its code waits in asyncio.wait
        out = batch(processor, 2.0, start(1))  # 'w' takes the only cache slot
        assert waiting() is None, "the evicted instance is left for the cycle collector"
        three_steps = weakref.ref(processor.cache.peek("w", "r"))
        complete_steps(processor, out, 1)
        assert three_steps() is None, "the completed run's instance is left for the cycle collector"
    finally:
        gc.enable()
    # The evicted run is rebuilt by replay and carries on.
    add = SignalWorkflow(workflow_id="a", name="add", payload=5)
    batch(processor, 9.0, add, SignalWorkflow(workflow_id="a", name="done"))
    run = read_run(processor.store, "a")
    assert run is not None and run.status == "COMPLETED" and run.result == [5]
    assert read_run(processor.store, "w").result == 4  # type: ignore[union-attr]


def test_an_engine_error_fails_only_that_run_and_leaves_no_half_applied_state(tmp_path: Path) -> None:
    processor = processor_at(tmp_path)
    batch(processor, 1.0, StartWorkflow(workflow_id="bad", workflow_type="BadChild", run_id="r"), start(5))
    out = batch(processor, 2.0)  # the timer fires; starting the child raises inside the engine
    assert not [r for r in out.records if r.topic.endswith(".inbox")], "the child start leaked out"
    run = read_run(processor.store, "bad")
    assert run is not None and run.status == "FAILED" and run.failure is not None
    assert run.failure.type == "EngineError" and "workflow_id" in run.failure.message
    history = read_history(processor.store, "bad", "r")
    assert [e.kind for e in history][-1] == "workflow_failed"
    assert check_run(run.model_dump(mode="json"), history, WorkflowRegistry.from_modules([FLOWS])) == []
    batch(processor, 3.0)  # nothing left to fire: the failed run does not block the partition
    other = read_run(processor.store, "w")
    assert other is not None and other.status == "RUNNING" and len(tasks(out)) == 0


def test_a_refused_start_does_not_use_up_its_idempotency_key(tmp_path: Path) -> None:
    limits = Admission(max_per_partition=1)
    processor = processor_at(tmp_path, limits=limits)
    batch(processor, 1.0, StartWorkflow(workflow_id="a", workflow_type="SignalCounter"))
    second = StartWorkflow(workflow_id="b", workflow_type="SignalCounter", request_id="once")
    out = Outbox(processor.ctx.settings)
    processor.begin(2.0, out)
    assert "capacity" in (processor.handle(second) or "")
    processor.store.write(dict(processor.finish()), None)
    batch(processor, 3.0, TerminateWorkflow(workflow_id="a"))
    batch(processor, 4.0, second)  # same key, now accepted
    run = read_run(processor.store, "b")
    assert run is not None and run.status == "RUNNING"


def test_a_child_whose_id_is_taken_fails_in_the_parent_instead_of_hanging(tmp_path: Path) -> None:
    processor = processor_at(tmp_path)
    out = batch(processor, 1.0, StartWorkflow(workflow_id="me", workflow_type="OwnIdChild", run_id="r"))
    for step in range(2):  # the child start, then the parent's notice, travel through the inbox
        (record,) = [r for r in out.records if r.topic.endswith(".inbox")]
        out = batch(processor, 2.0 + step, inbox_command_adapter.validate_json(record.value or b""))
    run = read_run(processor.store, "me")
    assert run is not None and run.status == "COMPLETED" and run.result == "WorkflowAlreadyStarted"


def keys_of(processor: PartitionProcessor, workflow_id: str) -> list[bytes]:
    """Every stored key that belongs to ``workflow_id``."""
    return [key for key, _ in processor.store.scan(b"") if keys.workflow_of(key) == workflow_id]


def test_a_closed_run_is_deleted_after_its_retention_and_open_ones_are_kept(tmp_path: Path) -> None:
    processor = processor_at(tmp_path, retention=10.0)
    batch(processor, 0.5, StartWorkflow(workflow_id="open", workflow_type="SignalCounter", request_id="k1"))
    batch(
        processor,
        0.6,
        StartWorkflow(workflow_id="w", workflow_type="ThreeSteps", input=1, run_id="r", request_id="k2"),
    )
    for step, seq in enumerate((1, 2, 3)):
        batch(
            processor, 2.0 + step, TaskCompleted(workflow_id="w", run_id="r", seq=seq, attempt=1, result=step)
        )
    run = read_run(processor.store, "w")
    assert run is not None and run.status == "COMPLETED"  # closed at t=4
    batch(processor, 13.9)
    assert read_run(processor.store, "w") is not None, "deleted before its retention"
    batch(processor, 14.1)
    assert read_run(processor.store, "w") is None and read_history(processor.store, "w", "r") == []
    assert keys_of(processor, "w") == [], "history, timers or idempotency keys left behind"
    still_open = read_run(processor.store, "open")
    assert still_open is not None and still_open.status == "RUNNING" and keys_of(processor, "open")
    batch(processor, 15.0, StartWorkflow(workflow_id="w", workflow_type="SignalCounter", request_id="k2"))
    restarted = read_run(processor.store, "w")
    assert restarted is not None and restarted.status == "RUNNING", "the expired id could not start again"


def test_retention_of_an_earlier_run_keeps_the_workflows_later_run(tmp_path: Path) -> None:
    processor = processor_at(tmp_path, retention=10.0)
    batch(processor, 1.0, StartWorkflow(workflow_id="w", workflow_type="SignalCounter", run_id="first"))
    batch(processor, 2.0, TerminateWorkflow(workflow_id="w"))
    batch(processor, 3.0, StartWorkflow(workflow_id="w", workflow_type="SignalCounter", run_id="second"))
    later = read_run(processor.store, "w")
    assert later is not None and later.previous_runs == ["first"]
    batch(processor, 12.5)
    later = read_run(processor.store, "w")
    assert later is not None and later.run_id == "second" and later.status == "RUNNING"
    assert later.previous_runs == [] and read_history(processor.store, "w", "first") == []
    assert len(read_history(processor.store, "w", "second")) == later.history_length


def test_a_finished_attempt_leaves_no_timeout_timer_behind(tmp_path: Path) -> None:
    processor = processor_at(tmp_path)
    run_three_steps(processor, 1)  # every activity has a start-to-close timeout
    assert [key for key in keys_of(processor, "w") if key.startswith(keys.TIMER)] == []


def test_a_retention_timer_deletes_nothing_once_retention_is_turned_off(tmp_path: Path) -> None:
    processor = processor_at(tmp_path, retention=10.0)
    batch(processor, 1.0, StartWorkflow(workflow_id="w", workflow_type="SignalCounter", run_id="r"))
    batch(processor, 2.0, TerminateWorkflow(workflow_id="w"))  # arms the retention timer
    processor.store.close()
    restarted = processor_at(tmp_path)  # the engine restarted without --retention
    batch(restarted, 20.0)
    run = read_run(restarted.store, "w")
    assert run is not None and run.status == "TERMINATED"
    assert len(read_history(restarted.store, "w", "r")) == run.history_length


def test_an_update_is_applied_once_per_id_and_the_state_is_the_historys_fold(tmp_path: Path) -> None:
    registry = WorkflowRegistry.from_modules(["tests.sdk.hello"])
    ctx = EngineContext(Settings(), registry, lambda _id: None)
    processor = PartitionProcessor(0, PartitionStore(tmp_path / "p0"), ctx)
    batch(processor, 1.0, StartWorkflow(workflow_id="l", workflow_type="LanguageWorkflow", run_id="r"))
    change = UpdateWorkflow(workflow_id="l", update_id="u1", name="set_language", payload="fr")
    unsupported = UpdateWorkflow(workflow_id="l", update_id="u2", name="set_language", payload="de")
    batch(processor, 2.0, change, unsupported)
    batch(processor, 3.0, change, unsupported)  # sent again (no request id to catch it): still once
    run = read_run(processor.store, "l")
    assert run is not None and run.is_open
    assert (run.updates["u1"].status, run.updates["u1"].result) == ("completed", "en")
    failure = run.updates["u2"].failure
    assert run.updates["u2"].status == "rejected" and failure is not None
    assert failure.message == "de is not supported"
    history = read_history(processor.store, "l", "r")
    assert [e.kind for e in history] == [
        "workflow_started",
        "update_accepted",
        "update_completed",
        "update_rejected",
    ]
    assert check_run(run, history, registry) == []


def test_a_run_whose_code_stops_replaying_stays_open_holds_its_commands_and_goes_on_once_fixed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bad deploy (Versioned's version 2 calls another activity first) blocks the run instead
    of failing it; what arrives meanwhile is held in order, and the fixed deploy applies it."""
    registry = WorkflowRegistry.from_modules([FLOWS])
    store = PartitionStore(tmp_path / "p0")

    def deployed() -> PartitionProcessor:  # a fresh engine over the same state: nothing cached
        return PartitionProcessor(0, store, EngineContext(Settings(), registry, lambda _id: None))

    monkeypatch.delenv("LEDGERFLOW_TEST_VERSION", raising=False)
    processor = deployed()
    (task,) = tasks(batch(processor, 1.0, StartWorkflow(workflow_id="v", workflow_type="Versioned", input=1)))
    batch(processor, 2.0, TaskCompleted(workflow_id="v", run_id=task.run_id, seq=1, attempt=1, result=2))

    monkeypatch.setenv("LEDGERFLOW_TEST_VERSION", "2")  # the bad deploy
    processor = deployed()
    go = SignalWorkflow(workflow_id="v", name="go")
    out = batch(processor, 3.0, go, SignalWorkflow(workflow_id="v", name="go", payload="again"))
    assert not [r for r in out.records if r.topic.endswith("inbox.dlq")]  # nothing refused
    run = read_run(store, "v")
    assert run is not None and run.status == "RUNNING"
    assert run.blocked is not None and "NonDeterminismError" in run.blocked and "'double'" in run.blocked
    assert [held["name"] for held in run.held] == ["go", "go"]
    assert run.history_length == 3  # nothing recorded while blocked
    batch(processor, 20.0)  # the run's code is tried again: still the bad code
    assert read_run(store, "v").blocked is not None  # type: ignore[union-attr]

    monkeypatch.delenv("LEDGERFLOW_TEST_VERSION")  # the fixed deploy
    processor = deployed()
    out = batch(processor, 100.0)  # its next try replays: the held signals go to the code
    run = read_run(store, "v")
    assert run is not None and run.blocked is None and run.held == []
    (task,) = tasks(out)
    assert task.activity_type == "add_one" and task.args == [2]
    batch(processor, 101.0, TaskCompleted(workflow_id="v", run_id=run.run_id, seq=2, attempt=1, result=3))
    run = read_run(store, "v")
    assert run is not None and (run.status, run.result) == ("COMPLETED", 3)
    history = read_history(store, "v", run.run_id)
    assert [e.kind for e in history].count("signal_received") == 2  # both, in order, once
    assert check_run(run, history, registry) == []


def test_id_policies_decide_what_a_start_of_a_taken_id_does(tmp_path: Path) -> None:
    processor = processor_at(tmp_path)

    def start(run_id: str, **policies: Any) -> str | None:
        command = StartWorkflow(workflow_id="p", workflow_type="SignalCounter", run_id=run_id, **policies)
        processor.begin(1.0, Outbox(processor.ctx.settings))
        reason = processor.handle(command)
        processor.store.write(dict(processor.finish()), None)
        return reason

    assert start("r1") is None
    assert start("r2") is None  # use_existing: nothing started, r1 goes on
    assert read_run(processor.store, "p").run_id == "r1"  # type: ignore[union-attr]
    refused = start("r3", id_conflict_policy="fail")
    assert refused is not None and "already running" in refused and "r1" in refused
    assert start("r4", id_conflict_policy="terminate_existing") is None
    run = read_run(processor.store, "p")
    assert run is not None and (run.run_id, run.status, run.previous_runs) == ("r4", "RUNNING", ["r1"])
    assert [e.kind for e in read_history(processor.store, "p", "r1")][-1] == "workflow_terminated"
    batch(processor, 2.0, TerminateWorkflow(workflow_id="p", reason="done"))
    refused = start("r5", id_reuse_policy="reject_duplicate")
    assert refused is not None and "TERMINATED" in refused and "reject_duplicate" in refused
    assert start("r6", id_reuse_policy="allow_duplicate_failed_only") is None  # r4 did not complete
    assert read_run(processor.store, "p").run_id == "r6"  # type: ignore[union-attr]


def test_a_blocked_run_holds_each_request_once_holds_a_start_signal_and_still_times_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = WorkflowRegistry.from_modules([FLOWS])
    store = PartitionStore(tmp_path / "p0")

    def deployed() -> PartitionProcessor:
        return PartitionProcessor(0, store, EngineContext(Settings(), registry, lambda _id: None))

    monkeypatch.delenv("LEDGERFLOW_TEST_VERSION", raising=False)
    processor = deployed()
    start = StartWorkflow(workflow_id="v", workflow_type="Versioned", input=1, execution_timeout=100)
    (task,) = tasks(batch(processor, 1.0, start))
    batch(processor, 2.0, TaskCompleted(workflow_id="v", run_id=task.run_id, seq=1, attempt=1, result=2))
    monkeypatch.setenv("LEDGERFLOW_TEST_VERSION", "2")
    processor = deployed()
    once = SignalWorkflow(workflow_id="v", name="go", request_id="go-1")
    with_signal = StartWorkflow(
        workflow_id="v", workflow_type="Versioned", run_id="other", start_signal=StartSignal(name="go")
    )
    batch(processor, 3.0, once, once, with_signal)  # the first blocks the run; the same request again
    run = read_run(store, "v")
    assert run is not None and run.blocked is not None
    assert [(h["kind"], h["name"]) for h in run.held] == [
        ("signal_workflow", "go"),
        ("signal_workflow", "go"),
    ]
    assert run.held[0]["request_id"] == "go-1" and run.held[1].get("request_id") is None
    big = SignalWorkflow(workflow_id="v", name="go", payload="x" * 300_000)
    processor.begin(4.0, Outbox(processor.ctx.settings))
    refused = [processor.handle(big) for _ in range(3)]
    processor.store.write(dict(processor.finish()), None)
    assert refused[0] is None and refused[2] is not None and "outgrow its state record" in refused[2]
    batch(processor, 200.0)  # the execution timeout needs no code: it fires while blocked
    run = read_run(store, "v")
    assert run is not None and run.status == "FAILED" and run.failure is not None
    assert run.failure.type == "WorkflowExecutionTimeout" and run.held == [] and run.blocked is None
