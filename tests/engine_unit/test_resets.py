"""Resets on the partition state machine over a real RocksDB store, without Kafka: the new run
begins with the old one's history up to the point, reopens what was open there, and every
invariant holds across both runs (the checker's chain check compares the copied events)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ledgerflow.engine.outbox import Outbox
from ledgerflow.engine.processor import PartitionProcessor
from ledgerflow.engine.state.committed import read_history, read_run
from ledgerflow.schemas import events as ev
from ledgerflow.schemas.commands import (
    CancelWorkflow,
    ChildWorkflowClosed,
    ResetWorkflow,
    SignalWorkflow,
    StartWorkflow,
    TaskCompleted,
    TaskFailed,
    inbox_command_adapter,
)
from ledgerflow.schemas.common import Failure
from ledgerflow.sdk.definition import WorkflowRegistry
from ledgerflow.testing.invariants import check_workflow
from tests.engine_unit.test_processor import FLOWS, batch, processor_at, start, tasks


class StoreSource:
    """The committed runs of a processor's store, as the invariants checker reads them."""

    def __init__(self, processor: PartitionProcessor) -> None:
        self.store = processor.store

    def describe(self, workflow_id: str) -> dict[str, Any]:
        run = read_run(self.store, workflow_id)
        assert run is not None
        return run.model_dump(mode="json")

    def history(self, workflow_id: str, run_id: str | None = None) -> list[ev.HistoryEvent]:
        assert run_id is not None
        return read_history(self.store, workflow_id, run_id)


def assert_invariants(processor: PartitionProcessor, workflow_id: str) -> None:
    registry = WorkflowRegistry.from_modules([FLOWS])
    assert check_workflow(StoreSource(processor), workflow_id, registry) == []


def refused(processor: PartitionProcessor, now: float, command: ResetWorkflow) -> str:
    out = Outbox(processor.ctx.settings)
    processor.begin(now, out)
    reason = processor.handle(command)
    processor.store.write(dict(processor.finish()), None)
    assert reason is not None
    return reason


def complete(processor: PartitionProcessor, out: Outbox, run_id: str, now: float, value: int) -> Outbox:
    (task,) = tasks(out)
    assert task.run_id == run_id
    done = TaskCompleted(workflow_id="w", run_id=run_id, seq=task.seq, attempt=task.attempt, result=value)
    return batch(processor, now, done)


def test_a_reset_run_begins_with_the_history_before_the_point_and_runs_the_rest_again(tmp_path: Path) -> None:
    processor = processor_at(tmp_path)
    out = batch(processor, 1.0, start(1))
    out = complete(processor, out, "r", 2.0, 2)
    out = complete(processor, out, "r", 3.0, 3)  # step 2 done (event #5); step 3 running
    old = read_run(processor.store, "w")
    assert old is not None and old.status == "RUNNING" and old.history_length == 6

    out = batch(processor, 4.0, ResetWorkflow(workflow_id="w", to_event=5, reason="bad step 2"))
    new = read_run(processor.store, "w")
    assert new is not None and new.run_id != "r" and new.status == "RUNNING"
    assert new.previous_runs == ["r"]
    history = read_history(processor.store, "w", new.run_id)
    assert history[:4] == read_history(processor.store, "w", "r")[:4]
    assert isinstance(history[4], ev.WorkflowReset)
    assert (history[4].reset_run_id, history[4].to_event, history[4].reason) == ("r", 5, "bad step 2")
    closed = read_history(processor.store, "w", "r")[-1]
    assert isinstance(closed, ev.WorkflowTerminated) and new.run_id in closed.reason
    (again,) = tasks(out)  # step 2 is dispatched again, to the new run
    assert (again.run_id, again.seq, again.attempt, again.args) == (new.run_id, 2, 1, [2])

    out = complete(processor, out, new.run_id, 5.0, 30)  # the fixed step 2 answers otherwise
    complete(processor, out, new.run_id, 6.0, 31)
    done = read_run(processor.store, "w")
    assert done is not None and done.status == "COMPLETED" and done.result == 31
    late = TaskCompleted(workflow_id="w", run_id="r", seq=3, attempt=1, result=99)
    batch(processor, 7.0, late)  # the old run's attempt reports late: dropped
    assert read_run(processor.store, "w").result == 31  # type: ignore[union-attr]
    assert_invariants(processor, "w")


def test_a_failed_run_is_reset_to_its_failing_activity_and_completes(tmp_path: Path) -> None:
    processor = processor_at(tmp_path)
    out = batch(processor, 1.0, StartWorkflow(workflow_id="w", workflow_type="Hopeless", run_id="r"))
    assert [t.activity_type for t in tasks(out)] == ["always_fails"]
    declined = Failure(type="CardDeclined", message="no", non_retryable=True)
    batch(processor, 2.0, TaskFailed(workflow_id="w", run_id="r", seq=1, attempt=1, failure=declined))
    failed = read_run(processor.store, "w")
    assert failed is not None and failed.status == "FAILED"
    failed_at = next(
        e.index for e in read_history(processor.store, "w", "r") if isinstance(e, ev.ActivityFailed)
    )

    out = batch(processor, 3.0, ResetWorkflow(workflow_id="w", run_id="r", to_event=failed_at))
    new = read_run(processor.store, "w")
    assert new is not None and new.status == "RUNNING" and set(new.activities) == {1}
    (again,) = tasks(out)
    ok = TaskCompleted(workflow_id="w", run_id=new.run_id, seq=1, attempt=again.attempt, result="paid")
    batch(processor, 4.0, ok)
    assert read_run(processor.store, "w").result == "paid"  # type: ignore[union-attr]
    assert_invariants(processor, "w")


def test_signals_from_the_point_on_are_sent_again_in_order(tmp_path: Path) -> None:
    processor = processor_at(tmp_path)
    batch(processor, 1.0, StartWorkflow(workflow_id="w", workflow_type="SignalCounter", run_id="r"))
    add = [SignalWorkflow(workflow_id="w", name="add", payload=n) for n in (1, 2, 3)]
    batch(processor, 2.0, *add)
    signals = [e.index for e in read_history(processor.store, "w", "r") if isinstance(e, ev.SignalReceived)]

    out = batch(processor, 3.0, ResetWorkflow(workflow_id="w", to_event=signals[1]))
    resent = [inbox_command_adapter.validate_json(r.value or b"") for r in out.records if ".inbox" in r.topic]
    assert [(s.name, s.payload) for s in resent if isinstance(s, SignalWorkflow)] == [("add", 2), ("add", 3)]
    batch(processor, 4.0, *resent, SignalWorkflow(workflow_id="w", name="done"))
    run = read_run(processor.store, "w")
    assert run is not None and run.status == "COMPLETED" and run.result == [1, 2, 3]
    assert_invariants(processor, "w")


def test_a_reset_that_cannot_be_made_says_why_and_changes_nothing(tmp_path: Path) -> None:
    processor = processor_at(tmp_path)
    out = batch(processor, 1.0, start(1))
    complete(processor, out, "r", 2.0, 2)
    reasons = [
        refused(processor, 3.0, ResetWorkflow(workflow_id="w", to_event=2)),
        refused(processor, 3.0, ResetWorkflow(workflow_id="w", to_event=40)),
        refused(processor, 3.0, ResetWorkflow(workflow_id="w", run_id="other", to_event=3)),
        refused(processor, 3.0, ResetWorkflow(workflow_id="nobody", to_event=3)),
    ]
    assert "event #2 is activity_scheduled; a run is reset to an event its code reacted to" in reasons[0]
    assert "the run has 4 events; there is no event #40" in reasons[1]
    assert "run other is not the latest run (the latest run of 'w' is r)" in reasons[2]
    assert "has no run" in reasons[3]
    run = read_run(processor.store, "w")
    assert run is not None and run.run_id == "r" and run.status == "RUNNING" and run.history_length == 4
    assert_invariants(processor, "w")


def test_a_point_with_a_child_open_is_refused(tmp_path: Path) -> None:
    processor = processor_at(tmp_path)
    parent = StartWorkflow(workflow_id="w", workflow_type="ChildFailureHandled", run_id="r")
    batch(processor, 1.0, parent)
    assert any(isinstance(e, ev.ChildWorkflowStarted) for e in read_history(processor.store, "w", "r"))
    batch(processor, 2.0, SignalWorkflow(workflow_id="w", name="nudge"))  # an input after the child started
    received = next(
        e.index for e in read_history(processor.store, "w", "r") if isinstance(e, ev.SignalReceived)
    )
    reason = refused(processor, 3.0, ResetWorkflow(workflow_id="w", to_event=received))
    assert "child workflows #1 (w-child) are open before event" in reason


def test_a_timer_open_at_the_point_keeps_its_fire_time(tmp_path: Path) -> None:
    processor = processor_at(tmp_path)
    batch(processor, 1.0, StartWorkflow(workflow_id="w", workflow_type="Sleeper", input=10, run_id="r"))
    batch(processor, 2.0, SignalWorkflow(workflow_id="w", name="unused"))  # a point after the timer started
    batch(processor, 3.0, ResetWorkflow(workflow_id="w", to_event=3))
    new = read_run(processor.store, "w")
    assert new is not None and new.timers == {1: 11.0}
    batch(processor, 10.0)
    assert read_run(processor.store, "w").status == "RUNNING"  # type: ignore[union-attr]
    batch(processor, 11.5)
    done = read_run(processor.store, "w")
    assert done is not None and done.status == "COMPLETED" and done.result == {"before": 1.0, "after": 11.5}
    assert_invariants(processor, "w")


def inbox_of(out: Outbox) -> list[Any]:
    """The inbox commands a batch wrote (to be fed back, as Kafka would)."""
    return [
        inbox_command_adapter.validate_json(r.value or b"") for r in out.records if r.topic.endswith("inbox")
    ]


def test_a_reset_run_can_be_reset_again(tmp_path: Path) -> None:
    processor = processor_at(tmp_path)
    out = batch(processor, 1.0, start(1))
    out = complete(processor, out, "r", 2.0, 2)
    out = complete(processor, out, "r", 3.0, 3)
    out = batch(processor, 4.0, ResetWorkflow(workflow_id="w", to_event=5))
    first = read_run(processor.store, "w")
    assert first is not None
    out = complete(processor, out, first.run_id, 5.0, 3)  # step 2 again: event #6; step 3 runs
    batch(processor, 6.0, ResetWorkflow(workflow_id="w", to_event=6))  # back to step 2's new result
    second = read_run(processor.store, "w")
    assert second is not None and second.previous_runs == ["r", first.run_id]
    markers = [
        e for e in read_history(processor.store, "w", second.run_id) if isinstance(e, ev.WorkflowReset)
    ]
    assert [(m.reset_run_id, m.to_event) for m in markers] == [("r", 5), (first.run_id, 6)]
    assert_invariants(processor, "w")


def test_a_reset_child_reports_to_its_parent_from_its_new_run(tmp_path: Path) -> None:
    processor = processor_at(tmp_path)
    out = batch(
        processor, 1.0, StartWorkflow(workflow_id="p", workflow_type="ParentOfSleeper", input=10, run_id="pr")
    )
    out = batch(processor, 1.5, *inbox_of(out))  # the child starts: its 10 s timer is set
    batch(processor, 2.0, SignalWorkflow(workflow_id="p-child", name="unused"))
    out = batch(processor, 3.0, ResetWorkflow(workflow_id="p-child", to_event=3))
    assert not [c for c in inbox_of(out) if isinstance(c, ChildWorkflowClosed)], (
        "the parent heard of the reset"
    )
    out = batch(processor, 12.0)  # the child's timer fires: the new run completes
    closed = [c for c in inbox_of(out) if isinstance(c, ChildWorkflowClosed)]
    assert [(c.run_id, c.status) for c in closed] == [("pr", "COMPLETED")]
    batch(processor, 12.5, *closed)
    parent = read_run(processor.store, "p")
    assert parent is not None and parent.result == "child completed"
    assert_invariants(processor, "p")


def test_a_run_with_an_open_child_is_not_reset(tmp_path: Path) -> None:
    processor = processor_at(tmp_path)
    out = batch(
        processor, 1.0, StartWorkflow(workflow_id="p", workflow_type="ParentOfSleeper", input=10, run_id="pr")
    )
    batch(processor, 1.5, *inbox_of(out))
    batch(processor, 2.0, SignalWorkflow(workflow_id="p", name="unused"))
    history = read_history(processor.store, "p", "pr")
    received = next(e.index for e in history if isinstance(e, ev.SignalReceived))
    reason = refused(processor, 3.0, ResetWorkflow(workflow_id="p", to_event=received))
    assert "child workflows #1 (p-child) are open" in reason


def test_the_cancel_request_after_the_point_is_sent_again(tmp_path: Path) -> None:
    processor = processor_at(tmp_path)
    batch(processor, 1.0, StartWorkflow(workflow_id="w", workflow_type="Sleeper", input=100, run_id="r"))
    batch(processor, 2.0, SignalWorkflow(workflow_id="w", name="unused"))
    batch(processor, 3.0, CancelWorkflow(workflow_id="w", reason="no longer needed"))
    assert read_run(processor.store, "w").status == "CANCELED"  # type: ignore[union-attr]
    out = batch(processor, 4.0, ResetWorkflow(workflow_id="w", to_event=3))  # the signal, before the cancel
    resent = inbox_of(out)
    assert [(type(c).__name__, getattr(c, "reason", None)) for c in resent] == [
        ("SignalWorkflow", None),
        ("CancelWorkflow", "no longer needed"),
    ]
    batch(processor, 5.0, *resent)
    again = read_run(processor.store, "w")
    assert again is not None and again.run_id != "r" and again.status == "CANCELED"
    assert_invariants(processor, "w")


def test_an_activity_reopened_by_a_reset_has_its_attempts_again(tmp_path: Path) -> None:
    processor = processor_at(tmp_path)
    out = batch(
        processor, 1.0, StartWorkflow(workflow_id="w", workflow_type="TwoAttempts", input=1, run_id="r")
    )
    boom = Failure(type="Down", message="service down")
    batch(processor, 2.0, TaskFailed(workflow_id="w", run_id="r", seq=1, attempt=1, failure=boom))
    out = batch(processor, 3.0)  # the retry: attempt 2
    assert [t.attempt for t in tasks(out)] == [2]
    batch(processor, 4.0, TaskFailed(workflow_id="w", run_id="r", seq=1, attempt=2, failure=boom))
    assert read_run(processor.store, "w").status == "FAILED"  # type: ignore[union-attr]
    failed_at = next(
        e.index for e in read_history(processor.store, "w", "r") if isinstance(e, ev.ActivityFailed)
    )

    out = batch(processor, 5.0, ResetWorkflow(workflow_id="w", to_event=failed_at))
    new = read_run(processor.store, "w")
    assert new is not None and [t.attempt for t in tasks(out)] == [2]
    batch(processor, 6.0, TaskFailed(workflow_id="w", run_id=new.run_id, seq=1, attempt=2, failure=boom))
    assert read_run(processor.store, "w").activities[1].state == "backoff"  # type: ignore[union-attr]
    out = batch(processor, 7.0)
    (third,) = tasks(out)
    batch(
        processor,
        8.0,
        TaskCompleted(workflow_id="w", run_id=new.run_id, seq=1, attempt=third.attempt, result=2),
    )
    assert read_run(processor.store, "w").result == 2  # type: ignore[union-attr]
    assert_invariants(processor, "w")


def test_a_reset_that_cannot_be_made_leaves_the_run_as_it_was(tmp_path: Path) -> None:
    processor = processor_at(tmp_path)
    out = batch(processor, 1.0, start(1))
    out = complete(processor, out, "r", 2.0, 2)
    processor.ctx.unusable_queues["default"] = "a topic that cannot be made"
    reason = refused(processor, 3.0, ResetWorkflow(workflow_id="w", to_event=3))
    assert "QueueUnavailable" in reason
    run = read_run(processor.store, "w")
    assert run is not None and run.run_id == "r" and run.status == "RUNNING" and run.history_length == 4


def test_a_blocked_run_is_reset_and_what_it_held_reaches_the_new_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    processor = processor_at(tmp_path, cache_size=0)  # every activation replays
    out = batch(
        processor, 1.0, StartWorkflow(workflow_id="w", workflow_type="Versioned", input=1, run_id="r")
    )
    complete(processor, out, "r", 2.0, 2)
    monkeypatch.setenv("LEDGERFLOW_TEST_VERSION", "2")  # a deploy that does not replay the run
    batch(processor, 3.0, SignalWorkflow(workflow_id="w", name="go"))
    blocked = read_run(processor.store, "w")
    assert blocked is not None and blocked.blocked is not None and len(blocked.held) == 1
    monkeypatch.delenv("LEDGERFLOW_TEST_VERSION")  # the fix

    out = batch(processor, 4.0, ResetWorkflow(workflow_id="w", to_event=3))
    new = read_run(processor.store, "w")
    assert new is not None and new.blocked is None and new.held == []
    held = inbox_of(out)
    assert [(type(c).__name__, getattr(c, "name", None)) for c in held] == [("SignalWorkflow", "go")]
    (again,) = tasks(out)
    done = TaskCompleted(workflow_id="w", run_id=new.run_id, seq=1, attempt=again.attempt, result=2)
    out = batch(processor, 5.0, done, *held)
    complete(processor, out, new.run_id, 6.0, 3)
    assert read_run(processor.store, "w").result == 3  # type: ignore[union-attr]
    assert_invariants(processor, "w")
