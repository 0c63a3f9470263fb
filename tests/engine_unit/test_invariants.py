"""The invariants checker names every kind of violation, and passes real runs.

Real histories come from the partition processor over a real RocksDB store
(``Owner`` below answers activity tasks and carries inbox records back, as
workers and Kafka would). Each violation is then crafted from a real history by
changing what a broken engine would have changed, and the checker must name it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from ledgerflow.config import Settings
from ledgerflow.engine.context import EngineContext
from ledgerflow.engine.outbox import Outbox
from ledgerflow.engine.processor import PartitionProcessor
from ledgerflow.engine.state.committed import read_history, read_run
from ledgerflow.engine.state.store import PartitionStore
from ledgerflow.schemas import events as ev
from ledgerflow.schemas.commands import (
    CancelWorkflow,
    InboxCommand,
    SignalWorkflow,
    StartWorkflow,
    TaskCompleted,
    TaskFailed,
    inbox_command_adapter,
)
from ledgerflow.schemas.common import Failure
from ledgerflow.schemas.tasks import ActivityTask, task_message_adapter
from ledgerflow.sdk.definition import WorkflowRegistry
from ledgerflow.testing.invariants import check_run, check_workflow

FLOWS = "tests.testapps.flows"
REGISTRY = WorkflowRegistry.from_modules([FLOWS])


class Owner:
    """One partition owner over RocksDB, with activities answered in-process."""

    def __init__(self, tmp_path: Path, answer: Callable[[ActivityTask], Any] | None = None) -> None:
        ctx = EngineContext(Settings(), REGISTRY, lambda _id: None)
        self.processor = PartitionProcessor(0, PartitionStore(tmp_path / "p0"), ctx)
        self.now = 1_000.0
        self.answer = answer or (lambda task: task.args[0] + 1)
        self.pending: list[InboxCommand] = []

    def step(self, *commands: InboxCommand, advance: float = 1.0) -> None:
        """One batch of ``commands`` (and of whatever the last batch sent back) at the next time."""
        self.now += advance
        out = Outbox(self.processor.ctx.settings)
        self.processor.begin(self.now, out)
        todo, self.pending = [*self.pending, *commands], []
        for command in todo:
            assert self.processor.handle(command) is None
        self.processor.fire_timers()
        self.processor.store.write(dict(self.processor.finish()), None)
        for record in out.records:
            if record.topic.endswith(".inbox"):
                self.pending.append(inbox_command_adapter.validate_json(record.value or b""))
            elif ".tasks." in record.topic:
                task = task_message_adapter.validate_json(record.value or b"")
                if isinstance(task, ActivityTask):
                    self.pending.append(self._outcome(task))

    def _outcome(self, task: ActivityTask) -> InboxCommand:
        ids = {
            "workflow_id": task.workflow_id,
            "run_id": task.run_id,
            "seq": task.seq,
            "attempt": task.attempt,
        }
        try:
            return TaskCompleted(**ids, result=self.answer(task))
        except Exception as exc:
            return TaskFailed(**ids, failure=Failure(type=type(exc).__name__, message=str(exc)))

    def settle(self, *commands: InboxCommand, steps: int = 30) -> None:
        self.step(*commands)
        for _ in range(steps):
            self.step()

    # A RunSource, as the checker reads one from the Client.
    def describe(self, workflow_id: str) -> dict[str, Any]:
        run = read_run(self.processor.store, workflow_id)
        assert run is not None
        return run.model_dump(mode="json")

    def history(self, workflow_id: str, run_id: str | None = None) -> list[ev.HistoryEvent]:
        return read_history(self.processor.store, workflow_id, run_id or self.describe(workflow_id)["run_id"])


def start(workflow_id: str, workflow_type: str, input: Any = None) -> StartWorkflow:
    return StartWorkflow(
        workflow_id=workflow_id, workflow_type=workflow_type, input=input, run_id=f"{workflow_id}-1"
    )


def recorded(owner: Owner, workflow_id: str) -> tuple[dict[str, Any], list[ev.HistoryEvent]]:
    return owner.describe(workflow_id), owner.history(workflow_id)


def renumbered(events: Sequence[ev.HistoryEvent]) -> list[ev.HistoryEvent]:
    return [e.model_copy(update={"index": i}) for i, e in enumerate(events, start=1)]


def inserted(history: list[ev.HistoryEvent], after: int, event: ev.HistoryEvent) -> list[ev.HistoryEvent]:
    """``history`` with ``event`` after its event ``after`` (1-based), indices renumbered."""
    return renumbered([*history[:after], event, *history[after:]])


def one(problems: list[str], *words: str) -> None:
    """The checker found the violation: one of its problems names every one of ``words``."""
    assert len(problems) >= 1, "the checker missed the violation"
    assert any(all(w in p for w in words) for p in problems), problems


def of_kind(history: list[ev.HistoryEvent], kind: type[ev._Event]) -> list[Any]:
    return [e for e in history if isinstance(e, kind)]


# ------------------------------------------------------------- real runs pass
@pytest.fixture
def owner(tmp_path: Path) -> Owner:
    return Owner(tmp_path)


def test_real_runs_of_every_kind_hold_every_invariant(tmp_path: Path) -> None:
    attempts: dict[str, int] = {}

    def answer(task: ActivityTask) -> Any:
        if task.activity_type == "fail_times":
            key, failures = task.args
            attempts[key] = attempts.get(key, 0) + 1
            if attempts[key] <= failures:
                raise RuntimeError(f"attempt {attempts[key]} fails")
            return f"ok after {attempts[key]}"
        return task.args[0] + 1

    owner = Owner(tmp_path, answer)
    owner.settle(
        start("three", "ThreeSteps", 1),
        start("flaky", "Flaky", ["k", 2]),
        start("sleeper", "Sleeper", 2.5),
        start("countdown", "Countdown", 2),
        start("parent", "Parent", 10),
        start("signals", "SignalCounter"),
    )
    owner.settle(SignalWorkflow(workflow_id="signals", name="add", payload=1))
    owner.step(start("open", "SignalCounter"))
    for workflow_id, status in [
        ("three", "COMPLETED"),
        ("flaky", "COMPLETED"),
        ("sleeper", "COMPLETED"),
        ("countdown", "COMPLETED"),
        ("parent", "COMPLETED"),
        ("signals", "RUNNING"),
        ("open", "RUNNING"),
    ]:
        assert owner.describe(workflow_id)["status"] == status, workflow_id
        assert check_workflow(owner, workflow_id, REGISTRY) == [], workflow_id
    assert len(owner.describe("countdown")["previous_runs"]) == 2
    assert of_kind(owner.history("flaky"), ev.ActivityAttemptRetried), "no retry was exercised"


# ------------------------------------------------------------ activity outcomes
def test_one_activity_completed_by_two_attempts(owner: Owner) -> None:
    owner.settle(start("w", "ThreeSteps", 1))
    state, history = recorded(owner, "w")
    first = of_kind(history, ev.ActivityCompleted)[0]
    twice = first.model_copy(update={"attempt": 2})
    bad = inserted(history, first.index, twice)
    state["history_length"] = len(bad)
    one(check_run(state, bad), "activity #1 already ended")


def test_an_outcome_for_an_attempt_never_dispatched(owner: Owner) -> None:
    owner.settle(start("w", "ThreeSteps", 1))
    state, history = recorded(owner, "w")
    completed = of_kind(history, ev.ActivityCompleted)[0]
    bad = [e if e is not completed else completed.model_copy(update={"attempt": 2}) for e in history]
    one(check_run(state, bad), "attempt 2", "dispatched is 1")


def test_an_activity_outcome_after_its_cancellation(owner: Owner) -> None:
    owner.step(start("w", "ThreeSteps", 1))
    owner.pending.clear()  # the worker never answers
    state, history = recorded(owner, "w")
    cancel = ev.ActivityCancelRequested(index=1, time=owner.now, seq=1)
    late = ev.ActivityCompleted(index=1, time=owner.now, seq=1, attempt=1, result=2)
    bad = renumbered([*history, cancel, late])
    one(check_run(state, bad), "activity #1 already ended")


def test_a_retry_before_its_backoff_ended(tmp_path: Path) -> None:
    owner = Owner(tmp_path, lambda task: (_ for _ in ()).throw(RuntimeError("no")))
    owner.settle(start("w", "Flaky", ["k", 5]))
    state, history = recorded(owner, "w")
    failed = of_kind(history, ev.ActivityAttemptFailed)[0]
    retried = of_kind(history, ev.ActivityAttemptRetried)[0]
    early = retried.model_copy(update={"time": failed.time + (failed.retry_in or 0) - 0.1})
    bad = [e if e is not retried else early for e in history]
    one(check_run(state, bad), "before its backoff ended")


# --------------------------------------------------------------------- timers
def test_a_timer_that_fired_99_seconds_early(owner: Owner) -> None:
    owner.settle(start("w", "Sleeper", 100.0), steps=0)
    owner.step(advance=100.0)
    owner.settle()
    state, history = recorded(owner, "w")
    fired = of_kind(history, ev.TimerFired)[0]
    bad = [e if e is not fired else fired.model_copy(update={"time": fired.time - 99}) for e in history]
    one(check_run(state, bad), "timer #1 fired 9", "early")


def test_a_timer_that_fired_twice(owner: Owner) -> None:
    owner.settle(start("w", "Sleeper", 0.5))
    state, history = recorded(owner, "w")
    fired = of_kind(history, ev.TimerFired)[0]
    bad = inserted(history, fired.index, fired)
    state["history_length"] = len(bad)
    one(check_run(state, bad), "timer #1 already fired")


# ------------------------------------------------------------ run lifecycle
def test_a_gap_in_the_history(owner: Owner) -> None:
    owner.settle(start("w", "ThreeSteps", 1))
    state, history = recorded(owner, "w")
    bad = history[:3] + history[4:]
    state["history_length"] = len(bad)
    one(check_run(state, bad), "not gap-free")


def test_a_run_closed_twice_and_events_after_its_close(owner: Owner) -> None:
    owner.settle(start("w", "ThreeSteps", 1))
    state, history = recorded(owner, "w")
    closing = history[-1]
    signal = ev.SignalReceived(index=1, time=closing.time, name="late")
    bad = renumbered([*history, signal, closing])
    problems = check_run(state, bad)
    one(problems, "SignalReceived", "follows the closing event")
    one(problems, "WorkflowCompleted", "follows the closing event")


# ---------------------------------------------------------- state vs history
def test_a_stored_result_that_differs_from_the_history(owner: Owner) -> None:
    owner.settle(start("w", "ThreeSteps", 1))
    state, history = recorded(owner, "w")
    state["result"] = 5
    one(check_run(state, history), "state result is 5", "implies 4")


def test_a_pending_activity_the_state_lost(owner: Owner) -> None:
    owner.step(start("w", "ThreeSteps", 1))
    state, history = recorded(owner, "w")
    assert state["activities"], "the run should wait on its first activity"
    state["activities"] = {}
    one(check_run(state, history, REGISTRY), "state activities is {}", "(1, 'running')")


def test_an_open_timer_at_another_time_in_the_state(owner: Owner) -> None:
    owner.step(start("w", "Sleeper", 60.0))
    state, history = recorded(owner, "w")
    state["timers"] = {"1": state["timers"]["1"] + 30}
    one(check_run(state, history, REGISTRY), "state timers")


def test_a_cancellation_the_state_forgot(owner: Owner) -> None:
    owner.step(start("w", "SignalCounter"))
    owner.step(CancelWorkflow(workflow_id="w"))
    state, history = recorded(owner, "w")
    assert of_kind(history, ev.CancelRequested)
    state["cancel_requested"] = False
    state["status"] = "RUNNING"
    problems = check_run(state, history)
    one(problems, "cancel_requested")
    one(problems, "state status is 'RUNNING'")


def test_a_history_longer_than_the_state_says(owner: Owner) -> None:
    owner.settle(start("w", "ThreeSteps", 1))
    state, history = recorded(owner, "w")
    state["history_length"] -= 1
    one(check_run(state, history), "events, history has")


# ------------------------------------------------------------------- replay
def test_a_replay_whose_result_differs_from_the_recorded_one(owner: Owner) -> None:
    owner.settle(start("w", "ThreeSteps", 1))
    state, history = recorded(owner, "w")
    completed = history[-1]
    assert isinstance(completed, ev.WorkflowCompleted)
    bad = [*history[:-1], completed.model_copy(update={"result": 99})]
    state["result"] = 99
    assert check_run(state, bad) == [], "without a registry, the history is consistent"
    one(check_run(state, bad, REGISTRY), "replay diverges", "result 4 where history has 99")


def test_a_replay_that_schedules_other_arguments(owner: Owner) -> None:
    owner.settle(start("w", "ThreeSteps", 1))
    state, history = recorded(owner, "w")
    scheduled = of_kind(history, ev.ActivityScheduled)[1]
    bad = [e if e is not scheduled else scheduled.model_copy(update={"args": [7]}) for e in history]
    one(check_run(state, bad, REGISTRY), "replay diverges", "arguments [2] where history has [7]")


def test_an_unknown_workflow_type_is_a_finding_not_a_skip(owner: Owner) -> None:
    owner.settle(start("w", "ThreeSteps", 1))
    state, history = recorded(owner, "w")
    other = WorkflowRegistry([])
    one(check_run(state, history, other), "'ThreeSteps' is not registered")


def test_code_that_awaits_what_history_closed(owner: Owner) -> None:
    """An open run whose history lost a TimerStarted: the code awaits a timer history never opened."""
    owner.step(start("w", "Sleeper", 60.0))
    state, history = recorded(owner, "w")
    bad = [e for e in history if not isinstance(e, ev.TimerStarted)]
    state["timers"], state["history_length"] = {}, len(bad)
    one(check_run(state, bad, REGISTRY), "replay diverges", "start timer #1")


# ------------------------------------------------------ chains and children
class Edited:
    """A RunSource that returns an owner's runs with one history edited."""

    def __init__(
        self, owner: Owner, run_id: str, edit: Callable[[list[ev.HistoryEvent]], list[ev.HistoryEvent]]
    ):
        self.owner, self.run_id, self.edit = owner, run_id, edit

    def describe(self, workflow_id: str) -> dict[str, Any]:
        return self.owner.describe(workflow_id)

    def history(self, workflow_id: str, run_id: str | None = None) -> list[ev.HistoryEvent]:
        history = self.owner.history(workflow_id, run_id)
        return self.edit(history) if run_id == self.run_id else history


def test_an_earlier_run_of_a_continue_as_new_chain_is_checked(owner: Owner) -> None:
    owner.settle(start("c", "Countdown", 2))
    first = owner.describe("c")["previous_runs"][0]
    gap = Edited(owner, first, lambda h: h[:2] + h[3:])
    one(check_workflow(gap, "c", REGISTRY), f"c run {first}", "not gap-free")


def test_a_broken_continue_as_new_link(owner: Owner) -> None:
    owner.settle(start("c", "Countdown", 2))
    first = owner.describe("c")["previous_runs"][0]

    def elsewhere(history: list[ev.HistoryEvent]) -> list[ev.HistoryEvent]:
        return [*history[:-1], history[-1].model_copy(update={"new_run_id": "nowhere"})]

    one(check_workflow(Edited(owner, first, elsewhere), "c", REGISTRY), "continued as nowhere")


def test_an_earlier_run_that_never_closed(owner: Owner) -> None:
    owner.settle(start("c", "Countdown", 1))
    first = owner.describe("c")["previous_runs"][0]
    one(check_workflow(Edited(owner, first, lambda h: h[:-1]), "c"), "never closed")


def test_a_child_whose_result_the_parent_recorded_wrongly(owner: Owner) -> None:
    owner.settle(start("p", "Parent", 10))
    assert owner.describe("p")["status"] == "COMPLETED"
    parent_run = owner.describe("p")["run_id"]

    def wrong(history: list[ev.HistoryEvent]) -> list[ev.HistoryEvent]:
        return [
            e.model_copy(update={"result": -1})
            if isinstance(e, ev.ChildWorkflowCompleted) and e.seq == 1
            else e
            for e in history
        ]

    problems = check_workflow(Edited(owner, parent_run, wrong), "p")
    one(problems, "child #1 recorded as completed with -1", "child completed with 13")
    assert check_workflow(Edited(owner, parent_run, wrong), "p", children=False) == []


def test_a_child_run_is_checked_with_its_parent(owner: Owner) -> None:
    owner.settle(start("p", "Parent", 10))
    child_run = owner.describe("p-child-0")["run_id"]
    one(check_workflow(Edited(owner, child_run, lambda h: h[:2] + h[3:]), "p"), "p-child-0", "not gap-free")
