"""The deterministic workflow runtime, driven by hand: history events in, commands out.

``Run`` plays the partition owner's part (see ``ledgerflow/engine/processor.py``): it
numbers and timestamps input events, feeds them to a ``WorkflowInstance``, and
records the commands the code emits as the history events the owner would
append. Most tests end by replaying the recorded history into a fresh
instance, as the owner does after a cache miss or a failover.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from ledgerflow import ActivityError, NonDeterminismError, activity, workflow
from ledgerflow.engine.errors import UnknownQueryError
from ledgerflow.engine.workflow import commands as cmd
from ledgerflow.engine.workflow.dag import DAG_WORKFLOW, DAG_WORKFLOW_NAME
from ledgerflow.engine.workflow.instance import WorkflowInstance
from ledgerflow.engine.workflow.replayer import replay, replay_run
from ledgerflow.schemas import events as ev
from ledgerflow.schemas.common import ActivityOptions, Failure, RetryPolicy
from ledgerflow.schemas.dag import DagDefinition, dag_from_json
from ledgerflow.sdk.context import WorkflowInfo
from ledgerflow.sdk.definition import WorkflowDefinition, WorkflowRegistry, definition_of

GOLDEN = Path(__file__).parent / "golden"
T0 = 1_763_990_000.0


# ---------------------------------------------------------------- activities
# Their bodies run on workers, never in these tests: only names and types matter.
@activity.defn
def validate_order(order: dict[str, Any]) -> dict[str, Any]:
    raise NotImplementedError


@activity.defn
def charge_card(order: dict[str, Any]) -> str:
    raise NotImplementedError


@activity.defn
def ship_order(order: dict[str, Any], receipt: str) -> str:
    raise NotImplementedError


@activity.defn
def add_one(n: int) -> int:
    raise NotImplementedError


# ------------------------------------------------------------------ the owner
class Run:
    """One run, driven the way the partition owner drives it."""

    def __init__(
        self,
        definition: WorkflowDefinition,
        *,
        workflow_id: str = "wf-1",
        run_id: str = "run-1",
        dag: DagDefinition | None = None,
    ) -> None:
        self.definition = definition
        self.info = WorkflowInfo(workflow_id, run_id, dag.id if dag else definition.name, 3, dag)
        self.instance = WorkflowInstance(definition, self.info)
        self.history: list[ev.HistoryEvent] = []
        self.now = T0
        self.closed = False

    def _append(self, event_type: type[Any], **fields: Any) -> ev.HistoryEvent:
        event: ev.HistoryEvent = event_type(index=len(self.history) + 1, time=self.now, **fields)
        self.history.append(event)
        return event

    def start(self, input: Any = None) -> list[cmd.Command]:
        return self.feed(
            ev.WorkflowStarted, workflow_type=self.info.workflow_type, input=input, dag=self.info.dag
        )

    def feed(self, event_type: type[Any], *, after: float = 0.0, **fields: Any) -> list[cmd.Command]:
        """Append an input event ``after`` seconds later; return (and record) the commands."""
        assert not self.closed, "the run is closed"
        self.now += after
        commands = self.instance.activate(self._append(event_type, **fields))
        for command in commands:
            if not self.closed:
                self._record(command)
        return commands

    def complete(self, seq: int, result: Any = None, *, after: float = 1.0) -> list[cmd.Command]:
        return self.feed(ev.ActivityCompleted, after=after, seq=seq, attempt=1, result=result)

    def _record(self, command: cmd.Command) -> None:
        match command:
            case cmd.ScheduleActivity():
                self._append(
                    ev.ActivityScheduled,
                    seq=command.seq,
                    activity_type=command.activity_type,
                    args=command.args,
                    options=command.options,
                )
            case cmd.RequestCancelActivity():
                self._append(ev.ActivityCancelRequested, seq=command.seq)
            case cmd.StartTimer():
                self._append(ev.TimerStarted, seq=command.seq, fire_at=self.now + command.seconds)
            case cmd.CancelTimer():
                self._append(ev.TimerCanceled, seq=command.seq)
            case cmd.StartChildWorkflow():
                self._append(
                    ev.ChildWorkflowStarted,
                    seq=command.seq,
                    workflow_id=command.workflow_id,
                    workflow_type=command.workflow_type,
                    input=command.input,
                )
            case cmd.CompleteUpdate():
                self._append(
                    ev.UpdateCompleted,
                    update_id=command.update_id,
                    result=command.result,
                    failure=command.failure,
                )
            case cmd.RecordPatch():
                self._append(ev.PatchRecorded, patch_id=command.patch_id)
            case cmd.CompleteWorkflow():
                self._append(ev.WorkflowCompleted, result=command.result)
                self.closed = True
            case cmd.FailWorkflow():
                self._append(ev.WorkflowFailed, failure=command.failure)
                self.closed = True
            case cmd.CancelWorkflowDone():
                self._append(ev.WorkflowCanceled, reason="canceled")
                self.closed = True
            case cmd.ContinueAsNew():
                self._append(ev.WorkflowContinuedAsNew, new_run_id="run-2", input=command.input)
                self.closed = True

    def assert_replays(self) -> WorkflowInstance:
        """A fresh instance reproduces the recorded history exactly."""
        fresh = WorkflowInstance(self.definition, self.info)
        replay(fresh, self.history)
        assert fresh.closed == self.instance.closed
        assert not fresh.replaying
        return fresh


def code_run(target: Any, **kwargs: Any) -> Run:
    return Run(definition_of(target), **kwargs)


def scheduled(commands: list[cmd.Command]) -> list[tuple[int, str, list[Any]]]:
    return [(c.seq, c.activity_type, c.args) for c in commands if isinstance(c, cmd.ScheduleActivity)]


def only(commands: list[cmd.Command], kind: type[Any]) -> Any:
    assert len(commands) == 1 and isinstance(commands[0], kind), commands
    return commands[0]


# ---------------------------------------------------------------- workflows
@workflow.defn
class ThreeSteps:
    @workflow.run
    async def run(self, order: dict[str, Any]) -> Any:
        checked = await workflow.execute_activity(validate_order, order, start_to_close_timeout=10)
        receipt = await workflow.execute_activity(charge_card, checked, start_to_close_timeout=10)
        return await workflow.execute_activity(ship_order, checked, receipt, start_to_close_timeout=10)


@workflow.defn(name="ThreeSteps")
class ThreeStepsReordered:
    """Today's code after a careless deploy: charges before validating."""

    @workflow.run
    async def run(self, order: dict[str, Any]) -> Any:
        receipt = await workflow.execute_activity(charge_card, order, start_to_close_timeout=10)
        checked = await workflow.execute_activity(validate_order, order, start_to_close_timeout=10)
        return await workflow.execute_activity(ship_order, checked, receipt, start_to_close_timeout=10)


@workflow.defn
async def counter(n: int) -> Any:
    a = await workflow.execute_activity(add_one, n)
    return await workflow.execute_activity(
        "add_one",
        a,
        queue="math",
        start_to_close_timeout=timedelta(seconds=5),
        heartbeat_timeout=2,
        retry_policy=RetryPolicy(maximum_attempts=3),
        result_type=int,
    )


@workflow.defn
async def sleeper(seconds: float) -> dict[str, float]:
    before = workflow.now().timestamp()
    await workflow.sleep(seconds)
    await workflow.sleep(timedelta(minutes=1))
    return {"before": before, "after": workflow.now().timestamp()}


@workflow.defn
async def approval(timeout: float) -> Any:
    try:
        return await workflow.wait_signal("approve", timeout=timeout)
    except TimeoutError as exc:
        return f"timed out: {exc}"


@workflow.defn
async def strict_approval() -> Any:
    return await workflow.wait_signal("approve", timeout=30)


@workflow.defn
class Collector:
    def __init__(self) -> None:
        self.got: list[Any] = []

    @workflow.run
    async def run(self) -> list[Any]:
        await workflow.execute_activity(add_one, 0)
        self.got.append(await workflow.wait_signal("go", timeout=10))
        self.got.append(await workflow.wait_signal("go", timeout=10))
        self.got.append(await workflow.wait_signal("go"))
        return self.got

    @workflow.query
    def received(self) -> list[Any]:
        return list(self.got)


@workflow.defn
async def fan_out() -> list[Any]:
    left, right = await asyncio.gather(
        workflow.execute_activity("left", 1), workflow.execute_activity("right", 2)
    )
    return [left, right]


@workflow.defn
async def cancellable() -> str:
    await workflow.execute_activity("slow", 1)
    return "finished"


@workflow.defn
async def cleans_up() -> str:
    try:
        await workflow.execute_activity("slow", 1)
    except asyncio.CancelledError:
        await workflow.execute_activity("cleanup", 1)
        raise
    return "finished"


@workflow.defn
async def handles_failure() -> str:
    try:
        await workflow.execute_activity(charge_card, {"id": 1})
    except ActivityError as exc:
        return f"{exc.activity_type}#{exc.seq}: {exc.failure.type}: {exc.failure.message}"
    return "charged"


@workflow.defn
async def ignores_failure() -> Any:
    return await workflow.execute_activity(charge_card, {"id": 1})


@workflow.defn
async def looper(n: int) -> Any:
    total = await workflow.execute_activity(add_one, n)
    if total < 3:
        workflow.continue_as_new(total)
    return total


@workflow.defn
async def dice() -> list[Any]:
    return [
        str(workflow.uuid4()),
        str(workflow.uuid4()),
        workflow.random().random(),
        workflow.random().randint(0, 10**9),
    ]


@workflow.defn
async def naps() -> None:
    await asyncio.sleep(1)


@workflow.defn
async def raises() -> None:
    raise ValueError("bad input")


# ---------------------------------------------------------------- activities
def test_activities_run_one_after_another() -> None:
    run = code_run(ThreeSteps)
    order = {"id": 7, "amount": 30}
    first = only(run.start(order), cmd.ScheduleActivity)
    assert (first.seq, first.activity_type, first.args) == (1, "validate_order", [order])
    assert first.options == ActivityOptions(start_to_close_timeout=10)

    second = only(run.complete(1, {**order, "ok": True}), cmd.ScheduleActivity)
    assert (second.seq, second.activity_type, second.args) == (2, "charge_card", [{**order, "ok": True}])

    third = only(run.complete(2, "rcpt-9"), cmd.ScheduleActivity)
    assert (third.seq, third.activity_type, third.args) == (
        3,
        "ship_order",
        [{**order, "ok": True}, "rcpt-9"],
    )

    assert run.complete(3, "shipped") == [cmd.CompleteWorkflow("shipped")]
    assert run.instance.closed
    run.assert_replays()


def test_activity_options_and_typed_results() -> None:
    run = code_run(counter)
    first = only(run.start(5), cmd.ScheduleActivity)
    assert first.options.queue == "default"
    assert first.options.start_to_close_timeout == workflow.DEFAULT_START_TO_CLOSE
    second = only(run.complete(1, 6), cmd.ScheduleActivity)
    assert second.args == [6]
    assert second.options == ActivityOptions(
        queue="math",
        start_to_close_timeout=5.0,
        heartbeat_timeout=2.0,
        retry=RetryPolicy(maximum_attempts=3),
    )
    assert run.complete(2, 7) == [cmd.CompleteWorkflow(7)]
    run.assert_replays()


def test_results_of_unknown_or_finished_activities_are_ignored() -> None:
    run = code_run(ThreeSteps)
    run.start({"id": 1})
    assert run.complete(42, "stray") == []
    assert run.feed(ev.TimerFired, seq=1) == []  # seq 1 is an activity, not a timer
    assert scheduled(run.complete(1, {"id": 1})) == [(2, "charge_card", [{"id": 1}])]
    assert run.complete(1, "duplicate") == []  # at-least-once delivery: a second result of #1


def test_closed_instance_ignores_further_events() -> None:
    run = code_run(raises)
    failure = only(run.start(), cmd.FailWorkflow).failure
    assert (failure.type, failure.message) == ("ValueError", "bad input")
    assert "raise ValueError" in (failure.stack or "")
    event = ev.SignalReceived(index=99, time=T0, name="x")
    assert run.instance.activate(event) == []
    assert run.instance.applied == 99


# -------------------------------------------------------------------- timers
def test_durable_sleep_starts_timers_and_the_clock_follows_events() -> None:
    run = code_run(sleeper)
    assert run.start(90) == [cmd.StartTimer(1, 90.0)]
    assert run.feed(ev.TimerFired, after=90, seq=1) == [cmd.StartTimer(2, 60.0)]
    assert run.feed(ev.TimerFired, after=60.5, seq=2) == [
        cmd.CompleteWorkflow({"before": T0, "after": T0 + 150.5})
    ]
    fresh = run.assert_replays()
    assert fresh.now().timestamp() == T0 + 150.5


def test_wait_signal_with_timeout_signal_wins() -> None:
    run = code_run(approval)
    assert run.start(30) == [cmd.StartTimer(1, 30.0)]
    assert run.feed(ev.SignalReceived, after=5, name="approve", payload={"by": "ada"}) == [
        cmd.CancelTimer(1),
        cmd.CompleteWorkflow({"by": "ada"}),
    ]
    run.assert_replays()


def test_wait_signal_with_timeout_timer_wins() -> None:
    run = code_run(approval)
    assert run.start(30) == [cmd.StartTimer(1, 30.0)]
    assert run.feed(ev.SignalReceived, after=1, name="other", payload=1) == []
    assert run.feed(ev.TimerFired, after=29, seq=1) == [
        cmd.CompleteWorkflow("timed out: no signal 'approve' within 30.0 s")
    ]
    run.assert_replays()


def test_unhandled_signal_timeout_fails_the_workflow_with_timeout_error() -> None:
    run = code_run(strict_approval)
    run.start()
    failure = only(run.feed(ev.TimerFired, after=30, seq=1), cmd.FailWorkflow).failure
    assert failure.type == "TimeoutError"
    assert failure.message == "no signal 'approve' within 30.0 s"
    run.assert_replays()


def test_signals_that_arrive_before_the_wait_are_buffered_in_order() -> None:
    run = code_run(Collector)
    assert scheduled(run.start()) == [(1, "add_one", [0])]
    assert run.feed(ev.SignalReceived, name="go", payload="first") == []
    assert run.feed(ev.SignalReceived, name="go", payload="second") == []
    assert run.feed(ev.SignalReceived, name="stop", payload="ignored") == []
    assert run.instance.query("received", []) == []
    # both buffered signals are consumed at once: no timer for the waits with a timeout
    assert run.complete(1, 1) == []
    assert run.instance.query("received", []) == ["first", "second"]
    assert run.feed(ev.SignalReceived, name="go", payload="third") == [
        cmd.CompleteWorkflow(["first", "second", "third"])
    ]
    fresh = run.assert_replays()
    assert fresh.query("received", []) == ["first", "second", "third"]


def test_unknown_query_names_the_known_ones() -> None:
    run = code_run(Collector)
    run.start()
    with pytest.raises(UnknownQueryError, match=r"no query 'nope' \(known: received\)"):
        run.instance.query("nope", [])


# ------------------------------------------------------------------- fan-out
def test_gather_schedules_both_activities_in_one_activation() -> None:
    run = code_run(fan_out)
    assert scheduled(run.start()) == [(1, "left", [1]), (2, "right", [2])]
    assert run.complete(2, "R") == []  # out of order
    assert run.complete(1, "L") == [cmd.CompleteWorkflow(["L", "R"])]
    run.assert_replays()


# -------------------------------------------------------------- cancellation
def test_cancel_request_cancels_the_activity_and_ends_the_run() -> None:
    run = code_run(cancellable)
    run.start()
    assert run.feed(ev.CancelRequested, after=3, reason="user asked") == [
        cmd.RequestCancelActivity(1),
        cmd.CancelWorkflowDone(),
    ]
    assert run.instance.closed
    run.assert_replays()


def test_code_may_clean_up_after_a_cancel() -> None:
    run = code_run(cleans_up)
    run.start()
    assert run.feed(ev.CancelRequested, reason="user asked") == [
        cmd.RequestCancelActivity(1),
        cmd.ScheduleActivity(2, "cleanup", [1], ActivityOptions(start_to_close_timeout=300)),
    ]
    assert not run.instance.closed
    assert run.complete(1, "late result of the cancelled one") == []
    assert run.complete(2, None) == [cmd.CancelWorkflowDone()]
    run.assert_replays()


# ------------------------------------------------------------------ failures
def test_activity_failure_is_raised_into_the_code() -> None:
    run = code_run(handles_failure)
    run.start()
    failure = Failure(type="CardDeclined", message="insufficient funds", non_retryable=True)
    assert run.feed(ev.ActivityFailed, seq=1, attempt=3, failure=failure) == [
        cmd.CompleteWorkflow("charge_card#1: CardDeclined: insufficient funds")
    ]
    run.assert_replays()


def test_unhandled_activity_failure_fails_the_workflow_with_an_activity_error_caused_by_it() -> None:
    run = code_run(ignores_failure)
    run.start()
    failure = Failure(type="CardDeclined", message="insufficient funds")
    failed = only(run.feed(ev.ActivityFailed, seq=1, attempt=1, failure=failure), cmd.FailWorkflow)
    assert failed.failure.type == "ActivityError"
    assert (failed.failure.activity_type, failed.failure.seq) == ("charge_card", 1)
    assert failed.failure.message == "activity 'charge_card' (#1) failed"  # what went wrong is the cause
    assert failed.failure.cause == failure
    run.assert_replays()


def test_asyncio_sleep_is_a_durable_timer() -> None:
    run = code_run(naps)
    assert run.start() == [cmd.StartTimer(1, 1.0)]
    assert run.feed(ev.TimerFired, after=1.0, seq=1) == [cmd.CompleteWorkflow(None)]
    run.assert_replays()


@workflow.defn
async def impatient() -> str:
    try:
        await asyncio.wait_for(workflow.wait_signal("go"), timeout=5)
    except TimeoutError:
        return "gave up"
    return "went"


def test_asyncio_wait_for_times_out_on_a_durable_timer_and_a_signal_cancels_it() -> None:
    timed_out = code_run(impatient)
    assert timed_out.start() == [cmd.StartTimer(1, 5.0)]
    assert timed_out.feed(ev.TimerFired, after=5.0, seq=1) == [cmd.CompleteWorkflow("gave up")]
    timed_out.assert_replays()
    signalled = code_run(impatient)
    signalled.start()
    assert signalled.feed(ev.SignalReceived, after=1.0, name="go", payload=None) == [
        cmd.CancelTimer(1),
        cmd.CompleteWorkflow("went"),
    ]
    signalled.assert_replays()


# ---------------------------------------------------- signal handlers, conditions
@workflow.defn
class Greeter:
    """Temporal's hello_signal, as written for temporalio."""

    def __init__(self) -> None:
        self._pending: asyncio.Queue[str] = asyncio.Queue()
        self._exit = False

    @workflow.run
    async def run(self) -> list[str]:
        greetings: list[str] = []
        while True:
            await workflow.wait_condition(lambda: not self._pending.empty() or self._exit)
            while not self._pending.empty():
                greetings.append(f"Hello, {self._pending.get_nowait()}")
            if self._exit:
                return greetings

    @workflow.signal
    async def submit_greeting(self, name: str) -> None:
        await self._pending.put(name)

    @workflow.signal
    def exit(self) -> None:
        self._exit = True


def test_signal_handlers_run_in_order_and_wake_a_waiting_condition() -> None:
    run = code_run(Greeter)
    assert run.start() == []
    for name in ("a", "b"):
        assert run.feed(ev.SignalReceived, after=1.0, name="submit_greeting", payload=name) == []
    assert run.feed(ev.SignalReceived, after=1.0, name="exit", payload=None) == [
        cmd.CompleteWorkflow(["Hello, a", "Hello, b"])
    ]
    run.assert_replays()


@workflow.defn
class Waiter:
    def __init__(self) -> None:
        self.ready = False

    @workflow.run
    async def run(self) -> str:
        try:
            await workflow.wait_condition(lambda: self.ready, timeout=timedelta(seconds=30))
        except TimeoutError:
            return "timed out"
        return "ready"

    @workflow.signal(name="ready")
    def mark_ready(self) -> None:
        self.ready = True

    @workflow.signal
    def broken(self, reason: str) -> None:
        raise ValueError(reason)


def test_wait_condition_times_out_on_a_durable_timer_or_wakes_and_cancels_it() -> None:
    timed_out = code_run(Waiter)
    assert timed_out.start() == [cmd.StartTimer(1, 30.0)]
    assert timed_out.feed(ev.TimerFired, after=30.0, seq=1) == [cmd.CompleteWorkflow("timed out")]
    timed_out.assert_replays()
    woken = code_run(Waiter)
    woken.start()
    assert woken.feed(ev.SignalReceived, after=1.0, name="ready", payload=None) == [
        cmd.CancelTimer(1),
        cmd.CompleteWorkflow("ready"),
    ]
    woken.assert_replays()


def test_a_signal_handler_that_raises_fails_the_run_with_its_error() -> None:
    run = code_run(Waiter)
    run.start()
    failed = only(run.feed(ev.SignalReceived, after=1.0, name="broken", payload="bad data"), cmd.FailWorkflow)
    assert (failed.failure.type, failed.failure.message) == ("ValueError", "bad data")


@workflow.defn
class Language:
    """Temporal's message-passing sample's update with a validator."""

    def __init__(self) -> None:
        self.greetings = {"en": "Hello", "fr": "Bonjour"}
        self.language = "en"
        self.done = False

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self.done)
        return f"{self.greetings[self.language]}, World!"

    @workflow.update
    def set_language(self, language: str) -> str:
        previous, self.language = self.language, language
        return previous

    @set_language.validator
    def validate_language(self, language: str) -> None:
        if language not in self.greetings:
            raise ValueError(f"{language} is not supported")

    @workflow.update
    async def finish(self) -> str:
        await workflow.sleep(1)
        self.done = True
        return "finishing"

    @workflow.update
    def broken(self) -> None:
        raise ValueError("nope")

    @workflow.query
    def current_language(self) -> str:
        return self.language


def test_an_accepted_update_runs_its_handler_and_completes_with_its_result() -> None:
    run = code_run(Language)
    run.start()
    assert run.instance.validate_update("set_language", "fr") is None
    assert run.feed(ev.UpdateAccepted, after=1.0, update_id="u1", name="set_language", payload="fr") == [
        cmd.CompleteUpdate("u1", "en")
    ]
    assert run.feed(ev.UpdateAccepted, after=1.0, update_id="u2", name="finish", payload=None) == [
        cmd.StartTimer(1, 1.0)
    ]
    assert run.feed(ev.TimerFired, after=1.0, seq=1) == [
        cmd.CompleteUpdate("u2", "finishing"),
        cmd.CompleteWorkflow("Bonjour, World!"),
    ]
    run.assert_replays()


def test_a_validator_or_an_unknown_name_rejects_an_update_and_nothing_runs() -> None:
    run = code_run(Language)
    run.start()
    rejected = run.instance.validate_update("set_language", "de")
    assert rejected is not None
    assert (rejected.type, rejected.message) == ("ValueError", "de is not supported")
    unknown = run.instance.validate_update("set_colour", "red")
    assert unknown is not None and unknown.type == "UnknownUpdate"
    assert "set_language" in unknown.message  # names the updates it has
    bad_argument = run.instance.validate_update("set_language", {"not": "a string"})
    assert bad_argument is not None and bad_argument.type == "ValidationError"
    assert run.instance.query("current_language", []) == "en"  # no validator changed anything


def test_an_update_whose_handler_raises_fails_alone_and_the_run_goes_on() -> None:
    run = code_run(Language)
    run.start()
    completed = only(
        run.feed(ev.UpdateAccepted, after=1.0, update_id="u1", name="broken"), cmd.CompleteUpdate
    )
    assert completed.result is None and completed.failure is not None
    assert (completed.update_id, completed.failure.type, completed.failure.message) == (
        "u1",
        "ValueError",
        "nope",
    )
    assert not run.instance.closed
    run.assert_replays()


def test_a_signal_whose_payload_does_not_fit_its_handler_is_dropped_and_the_run_goes_on() -> None:
    run = code_run(Greeter)
    run.start()
    assert run.feed(ev.SignalReceived, after=1.0, name="submit_greeting", payload={"not": "a name"}) == []
    assert not run.instance.closed
    run.feed(ev.SignalReceived, after=1.0, name="submit_greeting", payload="c")
    assert run.feed(ev.SignalReceived, after=1.0, name="exit") == [cmd.CompleteWorkflow(["Hello, c"])]
    run.assert_replays()


@workflow.defn
async def clockwatcher() -> str:
    started = workflow.now()
    step = asyncio.ensure_future(workflow.execute_activity("step", start_to_close_timeout=30))
    await workflow.wait_condition(lambda: workflow.now() - started >= timedelta(seconds=5))
    return f"late, step done: {step.done()}"


def test_replay_runs_no_code_on_events_the_engine_only_records() -> None:
    """A retried attempt's events are recorded, not handed to the code: a condition on the clock
    must not wake on them in a replay when it did not live."""
    run = code_run(clockwatcher)
    assert [type(c) for c in run.start()] == [cmd.ScheduleActivity]
    run.now += 10
    failure = Failure(type="Boom", message="attempt 1")
    run._append(ev.ActivityAttemptFailed, seq=1, attempt=1, failure=failure, retry_in=1.0)
    run._append(ev.ActivityAttemptRetried, seq=1, attempt=2)
    completed = run.feed(ev.ActivityCompleted, after=10.0, seq=1, attempt=2, result="x")
    assert completed == [cmd.CompleteWorkflow("late, step done: True")]
    run.assert_replays()


# ------------------------------------------------------------------- versioning
@workflow.defn(name="Pay")
class PayBefore:
    @workflow.run
    async def run(self) -> str:
        await workflow.execute_activity("charge", start_to_close_timeout=10)
        return "paid"


@workflow.defn(name="Pay")
class PayPatched:
    @workflow.run
    async def run(self) -> str:
        if workflow.patched("receipt"):
            await workflow.execute_activity("receipt", start_to_close_timeout=10)
        await workflow.execute_activity("charge", start_to_close_timeout=10)
        return "paid" + (" with receipt" if workflow.patched("receipt") else "")


@workflow.defn(name="Pay")
class PayDeprecated:
    @workflow.run
    async def run(self) -> str:
        workflow.deprecate_patch("receipt")
        await workflow.execute_activity("receipt", start_to_close_timeout=10)
        await workflow.execute_activity("charge", start_to_close_timeout=10)
        return "paid with receipt"


def test_a_patched_run_records_its_new_path_and_replays() -> None:
    run = code_run(PayPatched)
    started = run.start()
    assert started[0] == cmd.RecordPatch("receipt")
    assert [c.activity_type for c in started[1:]] == ["receipt"]  # type: ignore[attr-defined]
    assert [c.activity_type for c in run.complete(1)] == ["charge"]  # type: ignore[attr-defined]
    assert run.complete(2) == [cmd.CompleteWorkflow("paid with receipt")]
    assert sum(isinstance(e, ev.PatchRecorded) for e in run.history) == 1  # asked twice, recorded once
    run.assert_replays()


def test_a_run_recorded_before_the_patch_keeps_its_old_path_on_the_patched_code() -> None:
    before = code_run(PayBefore)
    before.start()  # charge scheduled; then the patched code is deployed
    with pytest.raises(NonDeterminismError):  # the change without a patch breaks the run
        replay(WorkflowInstance(definition_of(PayDeprecated), before.info), before.history)
    patched = WorkflowInstance(definition_of(PayPatched), before.info)
    replay(patched, before.history)
    completed = patched.activate(ev.ActivityCompleted(index=3, time=T0 + 1, seq=1, attempt=1, result=None))
    assert completed == [cmd.CompleteWorkflow("paid")]


def test_deprecate_patch_replays_the_runs_recorded_with_the_patch() -> None:
    run = code_run(PayPatched)
    run.start()
    deprecated = WorkflowInstance(definition_of(PayDeprecated), run.info)
    replay(deprecated, run.history)
    assert not deprecated.closed


def test_two_handlers_of_one_signal_are_refused_at_definition() -> None:
    with pytest.raises(ValueError, match=r"two @workflow\.signal handlers of signal 'x'"):

        @workflow.defn
        class Twice:
            @workflow.run
            async def run(self) -> None: ...

            @workflow.signal(name="x")
            def one(self) -> None: ...

            @workflow.signal(name="x")
            def two(self) -> None: ...


def test_bad_input_fails_the_workflow_naming_the_problem() -> None:
    run = code_run(counter)
    failure = only(run.start("not a number"), cmd.FailWorkflow).failure
    assert failure.type == "ValidationError"
    assert "int" in failure.message


# ----------------------------------------------------------- continue-as-new
def test_continue_as_new_ends_the_run_with_the_new_input() -> None:
    run = code_run(looper)
    run.start(0)
    assert run.complete(1, 1) == [cmd.ContinueAsNew(1)]
    assert run.instance.closed
    run.assert_replays()

    last = code_run(looper, run_id="run-2")
    last.start(2)
    assert last.complete(1, 3) == [cmd.CompleteWorkflow(3)]


def test_continue_as_new_outside_a_workflow_is_a_clear_error() -> None:
    with pytest.raises(workflow.NotInWorkflowError, match="not in a workflow"):
        workflow.continue_as_new(1)


# --------------------------------------------------------------- determinism
def test_uuid4_and_random_are_the_same_for_the_same_run_id() -> None:
    results = []
    for run_id in ("run-a", "run-a", "run-b"):
        run = code_run(dice, run_id=run_id)
        results.append(only(run.start(), cmd.CompleteWorkflow).result)
    first, again, other = results
    assert first == again
    assert first != other
    ids = [uuid.UUID(first[0]), uuid.UUID(first[1])]
    assert ids[0] != ids[1]
    assert {u.version for u in ids} == {4}
    assert 0.0 <= first[2] < 1.0


def test_deterministic_helpers_need_a_workflow() -> None:
    with pytest.raises(workflow.NotInWorkflowError):
        workflow.uuid4()
    with pytest.raises(workflow.NotInWorkflowError):
        workflow.now()


def test_is_replaying_is_true_only_during_replay() -> None:
    seen: list[bool] = []

    @workflow.defn
    async def spy() -> None:
        seen.append(workflow.is_replaying())
        await workflow.sleep(1)
        seen.append(workflow.is_replaying())

    run = code_run(spy)
    run.start()
    run.feed(ev.TimerFired, after=1, seq=1)
    assert seen == [False, False]
    run.assert_replays()
    assert seen == [False, False, True, True]


# -------------------------------------------------------------------- replay
def load_golden(name: str) -> tuple[str, str, list[ev.HistoryEvent]]:
    document = json.loads((GOLDEN / name).read_text(encoding="utf-8"))
    events = [ev.history_event_adapter.validate_python(e) for e in document["events"]]
    return document["workflow_id"], document["run_id"], events


def golden_instance(definition: WorkflowDefinition) -> WorkflowInstance:
    workflow_id, run_id, _ = load_golden("three_steps.json")
    return WorkflowInstance(definition, WorkflowInfo(workflow_id, run_id, "ThreeSteps", 0))


def recorded_command(event: ev.HistoryEvent) -> cmd.Command:
    """The command a history event records (only the kinds the golden runs hold)."""
    match event:
        case ev.ActivityScheduled():
            return cmd.ScheduleActivity(event.seq, event.activity_type, event.args, event.options)
        case ev.TimerStarted():
            return cmd.StartTimer(event.seq, event.fire_at - event.time)
        case ev.WorkflowCompleted():
            return cmd.CompleteWorkflow(event.result)
    raise AssertionError(f"no command records {event!r}")


def test_golden_history_is_what_the_runtime_records_today() -> None:
    _, _, events = load_golden("three_steps.json")
    assert [e.kind for e in events] == [
        "workflow_started",
        *["activity_scheduled", "activity_completed"] * 3,
        "workflow_completed",
    ]
    assert [e.index for e in events] == list(range(1, 9))
    # Drive today's runtime with the golden run's inputs only: after each input event it must
    # ask for exactly the commands the golden history records next, arguments and options included.
    instance = golden_instance(definition_of(ThreeSteps))
    steps = 0
    for position, event in enumerate(events):
        if isinstance(event, (*ev.COMMAND_EVENTS, *ev.CLOSING_EVENTS)):
            continue
        following = itertools.takewhile(
            lambda e: isinstance(e, (*ev.COMMAND_EVENTS, *ev.CLOSING_EVENTS)), events[position + 1 :]
        )
        expected = [recorded_command(e) for e in following]
        assert instance.activate(event) == expected, f"after golden event #{event.index} ({event.kind})"
        steps += 1
    assert steps == 4 and instance.closed
    assert [e.activity_type for e in events if isinstance(e, ev.ActivityScheduled)] == [
        "validate_order",
        "charge_card",
        "ship_order",
    ]


def test_golden_history_replays_cleanly() -> None:
    _, _, events = load_golden("three_steps.json")
    instance = golden_instance(definition_of(ThreeSteps))
    replay(instance, events)
    assert instance.closed
    assert not instance.replaying


def test_replayed_instance_counts_every_history_event() -> None:
    _, _, events = load_golden("three_steps.json")
    instance = golden_instance(definition_of(ThreeSteps))
    replay(instance, events)
    assert instance.applied == len(events)


def test_changed_code_against_golden_history_names_both_sides() -> None:
    _, _, events = load_golden("three_steps.json")
    instance = golden_instance(definition_of(ThreeStepsReordered))
    with pytest.raises(NonDeterminismError) as caught:
        replay(instance, events)
    message = str(caught.value)
    assert "history event #2" in message
    assert "ActivityScheduled 'validate_order' (#1)" in message
    assert "the code asked to schedule activity 'charge_card' (#1)" in message
    assert caught.value.workflow_id == "order-1042"
    assert not instance.replaying


def test_replay_run_reports_the_divergence_without_raising() -> None:
    workflow_id, run_id, events = load_golden("three_steps.json")
    good = replay_run(WorkflowRegistry([definition_of(ThreeSteps)]), workflow_id, run_id, events)
    assert good.deterministic
    assert good.events == 8
    bad = replay_run(WorkflowRegistry([definition_of(ThreeStepsReordered)]), workflow_id, run_id, events)
    assert not bad.deterministic
    assert "'validate_order'" in (bad.divergence or "")
    assert "'charge_card'" in (bad.divergence or "")


def test_code_that_asks_for_more_than_history_records() -> None:
    _, _, events = load_golden("three_steps.json")

    @workflow.defn(name="ThreeSteps")
    async def four_steps(order: dict[str, Any]) -> Any:
        for _ in range(3):
            await workflow.execute_activity(add_one, 1)
        return await workflow.execute_activity(add_one, 1)

    # seq numbers match but activity types do not
    with pytest.raises(NonDeterminismError, match=r"'add_one' \(#1\)"):
        replay(golden_instance(definition_of(four_steps)), events)


def test_history_that_records_more_than_the_code_asks_for() -> None:
    @workflow.defn(name="ThreeSteps")
    async def one_step(order: dict[str, Any]) -> str:
        return "done"

    _, _, events = load_golden("three_steps.json")
    with pytest.raises(NonDeterminismError) as caught:
        replay(golden_instance(definition_of(one_step)), events)
    message = str(caught.value)
    assert "history event #2" in message
    assert "ActivityScheduled 'validate_order' (#1)" in message
    assert "complete the workflow" in message


def test_dropped_timer_is_a_divergence() -> None:
    run = code_run(sleeper)
    run.start(5)
    run.feed(ev.TimerFired, after=5, seq=1)

    @workflow.defn(name="sleeper")
    async def no_sleep(seconds: float) -> None:
        await workflow.execute_activity(add_one, 1)

    with pytest.raises(NonDeterminismError, match=r"TimerStarted #1.*schedule activity 'add_one' \(#1\)"):
        replay(WorkflowInstance(definition_of(no_sleep), run.info), run.history)


# ------------------------------------------------------------------------ DAG
def dag_run(definition: dict[str, Any]) -> Run:
    dag = dag_from_json(definition)
    return Run(DAG_WORKFLOW, dag=dag, workflow_id="dag-1")


DIAMOND = {
    "id": "diamond",
    "nodes": [
        {"id": "a", "type": "fetch", "input": {"n": "{{ input.n }}"}},
        {"id": "b", "type": "double", "input": {"x": "{{ nodes.a.output }}"}, "queue": "cpu"},
        {"id": "c", "type": "square", "input": {"x": "{{ nodes.a.output }}"}, "timeoutSeconds": 5},
        {"id": "d", "type": "join", "input": {"sum": "{{ nodes.b.output + nodes.c.output }}"}},
    ],
    "edges": [
        {"source": "a", "target": "b"},
        {"source": "a", "target": "c"},
        {"source": "b", "target": "d"},
        {"source": "c", "target": "d"},
    ],
}


def test_dag_fans_out_in_parallel_and_joins_after_both() -> None:
    run = dag_run(DIAMOND)
    assert run.info.workflow_type == "diamond"
    assert DAG_WORKFLOW.name == DAG_WORKFLOW_NAME
    assert scheduled(run.start({"n": 3})) == [(1, "fetch", [{"n": 3}])]
    fan = run.complete(1, 3)
    assert scheduled(fan) == [(2, "double", [{"x": 3}]), (3, "square", [{"x": 3}])]
    by_type = {c.activity_type: c.options for c in fan if isinstance(c, cmd.ScheduleActivity)}
    assert by_type["double"].queue == "cpu"
    assert by_type["double"].start_to_close_timeout == 300.0
    assert by_type["square"].start_to_close_timeout == 5.0
    assert run.complete(3, 9) == []  # the join still waits for b
    assert scheduled(run.complete(2, 6)) == [(4, "join", [{"sum": 15}])]
    assert run.complete(4, "joined") == [cmd.CompleteWorkflow({"a": 3, "b": 6, "c": 9, "d": "joined"})]
    run.assert_replays()


BRANCH = {
    "id": "branch",
    "nodes": [
        {"id": "check", "type": "check"},
        {"id": "big", "type": "review"},
        {"id": "small", "type": "approve"},
        {"id": "after_big", "type": "notify"},
    ],
    "edges": [
        {"source": "check", "target": "big", "condition": "nodes.check.output.amount > 100"},
        {"source": "check", "target": "small", "condition": "nodes.check.output.amount <= 100"},
        {"source": "big", "target": "after_big"},
    ],
}


def test_dag_false_condition_skips_the_node_and_its_descendants() -> None:
    run = dag_run(BRANCH)
    assert scheduled(run.start()) == [(1, "check", [{}])]
    assert scheduled(run.complete(1, {"amount": 50})) == [(2, "approve", [{}])]
    assert run.complete(2, "ok") == [cmd.CompleteWorkflow({"check": {"amount": 50}, "small": "ok"})]
    run.assert_replays()


def test_dag_true_condition_takes_the_other_branch() -> None:
    run = dag_run(BRANCH)
    run.start()
    assert scheduled(run.complete(1, {"amount": 500})) == [(2, "review", [{}])]
    assert scheduled(run.complete(2, "reviewed")) == [(3, "notify", [{}])]
    assert run.complete(3, "sent") == [
        cmd.CompleteWorkflow({"check": {"amount": 500}, "big": "reviewed", "after_big": "sent"})
    ]


def test_dag_join_runs_when_one_incoming_edge_is_taken() -> None:
    definition = {
        "id": "partial-join",
        "nodes": [{"id": n, "type": n} for n in ("a", "b", "c")],
        "edges": [
            {"source": "a", "target": "c", "condition": "false"},
            {"source": "b", "target": "c"},
        ],
    }
    run = dag_run(definition)
    assert scheduled(run.start()) == [(1, "a", [{}]), (2, "b", [{}])]
    assert run.complete(2, "B") == []
    assert scheduled(run.complete(1, "A")) == [(3, "c", [{}])]


def test_dag_built_in_sleep_and_wait_signal_nodes() -> None:
    definition = {
        "id": "waits",
        "nodes": [
            {"id": "nap", "type": "sleep", "input": {"seconds": "{{ input.delay }}"}},
            {"id": "gate", "type": "wait-signal", "input": {"name": "go", "timeout": 60}},
        ],
        "edges": [{"source": "nap", "target": "gate"}],
    }
    run = dag_run(definition)
    assert run.start({"delay": 10}) == [cmd.StartTimer(1, 10.0)]
    assert run.feed(ev.TimerFired, after=10, seq=1) == [cmd.StartTimer(2, 60.0)]
    assert run.feed(ev.SignalReceived, name="go", payload={"ok": True}) == [
        cmd.CancelTimer(2),
        cmd.CompleteWorkflow({"nap": {"slept": 10}, "gate": {"ok": True}}),
    ]
    run.assert_replays()


def test_dag_node_failure_fails_the_run() -> None:
    run = dag_run(DIAMOND)
    run.start({"n": 1})
    failure = Failure(type="HTTPError", message="503")
    failed = only(run.feed(ev.ActivityFailed, seq=1, attempt=3, failure=failure), cmd.FailWorkflow)
    assert (failed.failure.type, failed.failure.seq, failed.failure.cause) == ("ActivityError", 1, failure)


def test_dag_bad_condition_fails_the_run_naming_the_expression() -> None:
    definition = {
        "id": "bad",
        "nodes": [{"id": "a", "type": "a"}, {"id": "b", "type": "b"}],
        "edges": [{"source": "a", "target": "b", "condition": "len(nodes) > 1"}],
    }
    run = dag_run(definition)
    run.start()
    failed = only(run.complete(1, "A"), cmd.FailWorkflow)
    assert failed.failure.type == "ExpressionError"
    assert "'len(nodes)' is not allowed in an expression" in failed.failure.message


@workflow.defn
class FirstOfThree:
    """The race pattern: wait for the first of three activities, cancel the others."""

    @workflow.run
    async def run(self) -> Any:
        calls = [asyncio.ensure_future(workflow.execute_activity("slow", i)) for i in range(3)]
        done, pending = await asyncio.wait(set(calls), return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        return [t.result() for t in done]


def test_asyncio_wait_sets_iterate_the_same_on_every_replay() -> None:
    orders = set()
    for _ in range(20):
        run = code_run(FirstOfThree)
        run.start()
        commands = run.complete(2, "two")
        orders.add(tuple(c.seq for c in commands if isinstance(c, cmd.RequestCancelActivity)))
        run.assert_replays()
    assert len(orders) == 1, f"cancellations came out in {len(orders)} different orders: {orders}"


@workflow.defn
class HashesTasks:
    @workflow.run
    async def run(self) -> list[int]:
        calls = [asyncio.ensure_future(workflow.execute_activity("slow", i)) for i in range(3)]
        future = asyncio.get_running_loop().create_future()
        return [hash(c) for c in calls] + [hash(future)]


def test_workflow_futures_hash_the_same_in_every_instance() -> None:
    """Set order follows hashes; an address-based hash would differ between replays."""
    first = only(code_run(HashesTasks).start()[-1:], cmd.CompleteWorkflow).result
    again = only(code_run(HashesTasks).start()[-1:], cmd.CompleteWorkflow).result
    assert first == again


def test_futures_of_different_runs_do_not_share_hashes() -> None:
    """Every task enters asyncio's process-wide set; equal hashes across runs made that set slow."""
    hashes = [
        only(code_run(HashesTasks, run_id=f"run-{i}").start()[-1:], cmd.CompleteWorkflow).result
        for i in range(50)
    ]
    assert len({h for run in hashes for h in run}) == 50 * 4


@workflow.defn
class Exits:
    @workflow.run
    async def run(self) -> None:
        raise SystemExit("workflow code called sys.exit")


def test_system_exit_in_workflow_code_fails_the_run_not_the_engine() -> None:
    run = code_run(Exits)
    failed = only(run.start(), cmd.FailWorkflow)
    assert failed.failure.type == "SystemExit"


@workflow.defn
class ChildWithBadId:
    @workflow.run
    async def run(self) -> None:
        await workflow.execute_child_workflow("Anything", id="child/1")


def test_a_child_id_that_breaks_the_id_rule_fails_the_run_before_any_child_command() -> None:
    run = code_run(ChildWithBadId)
    failed = only(run.start(), cmd.FailWorkflow)
    assert failed.failure.type == "InvalidIdError"
    assert failed.failure.message.startswith("child workflow id 'child/1': an id is 1 to 256 characters")
    run.assert_replays()
