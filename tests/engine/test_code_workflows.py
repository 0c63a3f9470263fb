"""Code workflows through a real broker, engine and worker."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from ledgerflow import Client, WorkflowFailedError, WorkflowNotFoundError
from ledgerflow.engine.workflow import commands as cmd
from ledgerflow.engine.workflow.instance import WorkflowInstance
from ledgerflow.engine.workflow.replayer import replay_run
from ledgerflow.local.processes import Cluster
from ledgerflow.schemas import events as ev
from ledgerflow.sdk.context import WorkflowInfo
from ledgerflow.sdk.definition import WorkflowRegistry
from tests.fixtures import FLOWS, assert_invariants, slept
from tests.waits import wait_until

pytestmark = pytest.mark.kafka


def kinds(client: Client, workflow_id: str) -> list[str]:
    return [e.kind for e in client.history(workflow_id)]


def received(client: Client, workflow_id: str) -> list[object]:
    try:
        return list(client.query(workflow_id, "received"))
    except WorkflowNotFoundError:
        return []


def test_three_activities_complete_with_the_right_result(running: Cluster, client: Client) -> None:
    handle = client.start_workflow("ThreeSteps", 10, id="three")
    assert handle.result(timeout=30) == 13
    assert kinds(client, "three") == [
        "workflow_started",
        *["activity_scheduled", "activity_completed"] * 3,
        "workflow_completed",
    ]
    assert_invariants(client, "three")


def test_retries_with_backoff_appear_in_history(running: Cluster, client: Client) -> None:
    handle = client.start_workflow("Flaky", ["k", 2], id="flaky")
    assert handle.result(timeout=30) == "k ok on attempt 3"
    history = client.history("flaky")
    failed = [e for e in history if isinstance(e, ev.ActivityAttemptFailed)]
    assert [(e.attempt, e.retry_in) for e in failed] == [(1, 0.2), (2, 0.4)]
    assert "planned failure on attempt 1" in failed[0].failure.message
    retried = [e for e in history if isinstance(e, ev.ActivityAttemptRetried)]
    assert [e.attempt for e in retried] == [2, 3]
    # the backoff was waited: attempt 2 is dispatched no earlier than 0.2 s after attempt 1 failed
    assert retried[0].time - failed[0].time >= 0.2
    assert_invariants(client, "flaky")


def test_non_retryable_failure_fails_the_workflow(running: Cluster, client: Client) -> None:
    client.start_workflow("Hopeless", None, id="hopeless")
    with pytest.raises(WorkflowFailedError) as info:
        client.result("hopeless", timeout=30)
    assert "CardDeclined" in str(info.value)
    assert [e.kind for e in client.history("hopeless")].count("activity_attempt_failed") == 0
    assert_invariants(client, "hopeless")


def test_timer_fires_no_earlier_than_asked_and_survives_engine_restart(
    running: Cluster, client: Client
) -> None:
    started = time.time()
    client.start_workflow("Sleeper", 4.0, id="sleeper")
    time.sleep(1.0)
    engine = running.nodes[0]
    running.restart(engine, hard=True)
    engine.wait_ready()
    result = client.result("sleeper", timeout=60)
    assert slept(result) >= 4.0
    assert time.time() - started >= 4.0
    timer = next(e for e in client.history("sleeper") if isinstance(e, ev.TimerStarted))
    fired = next(e for e in client.history("sleeper") if isinstance(e, ev.TimerFired))
    assert fired.time >= timer.fire_at
    assert_invariants(client, "sleeper")


def test_signals_are_delivered_exactly_once(running: Cluster, client: Client) -> None:
    client.start_workflow("SignalCounter", None, id="signals")
    for i in range(5):
        client.signal("signals", "add", i)
    # the same signal sent twice with one idempotency key counts once
    client.signal("signals", "add", "dup", request_id="same-key")
    client.signal("signals", "add", "dup", request_id="same-key")
    wait_until(lambda: len(received(client, "signals")) >= 6, "the six 'add' signals to be applied", 20)
    client.signal("signals", "done")
    assert client.result("signals", timeout=20) == [0, 1, 2, 3, 4, "dup"]
    assert_invariants(client, "signals")


def test_cancel_stops_the_workflow_and_reaches_its_activity(
    running: Cluster, client: Client, tmp_path: Path
) -> None:
    markers = tmp_path / "markers"
    markers.mkdir()
    client.start_workflow("SlowCancellable", str(markers), id="cancel-me")
    wait_until((markers / "started").exists, "the activity to start", 20)
    client.cancel("cancel-me", reason="test")
    with pytest.raises(WorkflowFailedError) as info:
        client.result("cancel-me", timeout=30)
    assert info.value.status == "CANCELED"
    wait_until((markers / "cancelled").exists, "the running activity to be told to stop", 10)
    assert (markers / "cleanup").exists(), "the workflow's cleanup step did not run"
    history_kinds = kinds(client, "cancel-me")
    assert "cancel_requested" in history_kinds and "activity_cancel_requested" in history_kinds
    assert_invariants(client, "cancel-me")


def test_one_open_run_per_workflow_id_and_every_run_kept(running: Cluster, client: Client) -> None:
    first = client.start_workflow("SignalCounter", None, id="reuse")
    wait_until(
        lambda: client.describe("reuse")["status"] == "RUNNING", "the first run of 'reuse' to start", 20
    )
    again = client.start_workflow("SignalCounter", None, id="reuse")
    assert again.already_started and again.run_id == first.run_id
    client.signal("reuse", "done")
    assert client.result("reuse", timeout=20) == []
    second = client.start_workflow("ThreeSteps", 1, id="reuse")
    assert not second.already_started and second.run_id != first.run_id
    assert second.result(timeout=20) == 4
    assert first.result(timeout=20) == []  # a handle reads its own run, not the latest
    state = client.describe("reuse")
    assert state["run_id"] == second.run_id and state["previous_runs"] == [first.run_id]
    assert kinds(client, "reuse")[-1] == "workflow_completed"
    assert client.history("reuse", first.run_id)[-1].kind == "workflow_completed"


def test_child_workflows_and_continue_as_new(running: Cluster, client: Client) -> None:
    client.start_workflow("Parent", 10, id="parent")
    assert client.result("parent", timeout=30) == [13, 14]
    countdown = client.start_workflow("Countdown", 3, id="countdown")
    assert client.result("countdown", timeout=30) == "liftoff"
    assert countdown.result(timeout=10) == "liftoff"  # the first run's handle follows the chain
    state = client.describe("countdown")
    assert len(state["previous_runs"]) == 3
    assert_invariants(client, "parent")
    assert_invariants(client, "countdown")


def replayed_result(workflow_id: str, run_id: str, history: list[ev.HistoryEvent]) -> Any:
    """The result a fresh instance of today's code computes from ``history``'s input events.

    The instance sees only what the engine feeds it (start, completions, fired timers...), never
    the commands history records, so what it returns is re-derived, not read back.
    """
    started = history[0]
    assert isinstance(started, ev.WorkflowStarted)
    definition = WorkflowRegistry.from_modules([FLOWS]).get(started.workflow_type)
    assert definition is not None
    instance = WorkflowInstance(definition, WorkflowInfo(workflow_id, run_id, started.workflow_type, 0))
    commands = []
    for event in history:
        if not isinstance(event, (*ev.COMMAND_EVENTS, *ev.CLOSING_EVENTS)):
            commands += instance.activate(event)
    closing = commands[-1]
    assert isinstance(closing, cmd.CompleteWorkflow), commands
    return closing.result


def test_deterministic_helpers_replay_identically(running: Cluster, client: Client) -> None:
    first = client.start_workflow("Deterministic", None, id="det")
    result = first.result(timeout=20)
    assert result["uuid"] != result["uuid2"]
    history = client.history("det")
    run_id = str(client.describe("det")["run_id"])
    # replay re-derives the same uuid4() and random() values from the run id
    assert replayed_result("det", run_id, history) == result
    registry = WorkflowRegistry.from_modules([FLOWS])
    assert replay_run(registry, "det", run_id, history).deterministic
    # ...which they are derived from: another run id gives other values
    elsewhere = replayed_result("det", "another-run-id", history)
    assert all(elsewhere[k] != result[k] for k in ("uuid", "rand", "uuid2")), (elsewhere, result)
    second = client.start_workflow("Deterministic", None, id="det-other")
    other = second.result(timeout=20)
    assert all(other[k] != result[k] for k in ("uuid", "rand", "uuid2")), (other, result)

    # now() is the time of the event being applied, on the first run and on replay alike
    sleeper = client.start_workflow("Sleeper", 0.1, id="det-now")
    times = sleeper.result(timeout=20)
    sleep_history = client.history("det-now")
    fired = next(e for e in sleep_history if isinstance(e, ev.TimerFired))
    # (to the microsecond: workflow.now() is a datetime)
    assert times == pytest.approx({"before": sleep_history[0].time, "after": fired.time}, abs=2e-6)
    assert replayed_result("det-now", str(client.describe("det-now")["run_id"]), sleep_history) == times
    assert_invariants(client, "det")


def test_heartbeat_and_schedule_to_close_timeouts(running: Cluster, client: Client) -> None:
    client.start_workflow("Timeouts", None, id="timeouts")
    assert client.result("timeouts", timeout=60) == ["HeartbeatTimeout", "ScheduleToCloseTimeout"]
    history = client.history("timeouts")
    attempts = [e for e in history if isinstance(e, ev.ActivityAttemptFailed)]
    assert attempts[0].failure.type == "HeartbeatTimeout"  # attempt 1 of 2, retried
    assert_invariants(client, "timeouts")


def test_a_result_too_large_for_kafka_fails_the_activity_with_a_clear_error(
    running: Cluster, client: Client
) -> None:
    client.start_workflow("Huge", None, id="huge")
    assert client.result("huge", timeout=30) == "PayloadTooLarge"
    failed = [e for e in client.history("huge") if isinstance(e, ev.ActivityFailed)]
    assert "store large data elsewhere" in failed[0].failure.message


def test_a_waiting_caller_hears_of_the_close_one_commit_after_it(cluster: Cluster, client: Client) -> None:
    """The owner holds ``/internal/closed/{id}`` (the long poll ``Client.result`` waits with) until the run
    closes, and answers at once then; it answers an open run after the seconds asked."""
    engine = cluster.engine([FLOWS])
    engine.wait_ready()
    client.start_workflow("Sleeper", 1.0, id="long-poll").describe()  # waits until applied
    started = time.monotonic()
    held = engine.get("/internal/closed/long-poll", params={"seconds": 0.3}, timeout=10)
    assert held.status_code == 200 and held.json()["status"] == "RUNNING"
    assert 0.25 <= time.monotonic() - started < 1.0
    answered = engine.get("/internal/closed/long-poll", params={"seconds": 20}, timeout=30)
    waited = time.monotonic() - started
    assert answered.status_code == 200 and answered.json()["status"] == "COMPLETED"
    assert 0.9 <= waited < 3.0, f"the close was answered {waited:.2f} s after the start"
    missing = engine.get("/internal/closed/nobody", params={"seconds": 0.2})
    assert missing.status_code == 404
    assert client.result("long-poll", timeout=5)["after"] >= 1.0
