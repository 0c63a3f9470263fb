"""The in-process test environment (ledgerflow.testing): the real engine state machine without
Kafka, time that skips, mocked activities, and ActivityEnvironment. The Temporal hello samples
run on it too (tests/sdk, the ``in-process`` parameter)."""

from __future__ import annotations

import asyncio
import itertools
import time
from datetime import timedelta

import pytest

from ledgerflow import ApplicationError, WorkflowAlreadyStartedError, WorkflowFailedError, activity, workflow
from ledgerflow.sdk.definition import WorkflowRegistry, definition_of
from ledgerflow.testing import ActivityEnvironment, WorkflowEnvironment
from ledgerflow.testing.invariants import check_workflow


@activity.defn
async def notify(day: int) -> str:
    return f"reminder {day} sent"


@workflow.defn
class MonthOfReminders:
    @workflow.run
    async def run(self, days: int) -> list[str]:
        sent = []
        for day in range(1, days + 1):
            await workflow.sleep(timedelta(days=1))
            sent.append(await workflow.execute_activity(notify, day, start_to_close_timeout=10))
        return sent


@workflow.defn
class HourNap:
    @workflow.run
    async def run(self) -> str:
        await asyncio.sleep(3600)
        return "rested"


def invariants_hold(env: WorkflowEnvironment, workflow_id: str) -> None:
    registry = WorkflowRegistry([definition_of(MonthOfReminders), definition_of(HourNap)])
    assert check_workflow(env.client, workflow_id, registry) == []


def test_a_workflow_that_sleeps_thirty_days_completes_in_under_a_second() -> None:
    with WorkflowEnvironment.start_time_skipping(workflows=[MonthOfReminders], activities=[notify]) as env:
        started = time.monotonic()
        before = env.now()
        handle = env.client.start_workflow(MonthOfReminders.run, 30, id="reminders")
        assert handle.result(timeout=10) == [f"reminder {day} sent" for day in range(1, 31)]
        took = time.monotonic() - started
        assert took < 1.0, f"30 days took {took:.2f} s"
        assert env.now() - before >= timedelta(days=30)
        fired = [e for e in handle.history() if e.kind == "timer_fired"]
        assert len(fired) == 30 and all(b.time - a.time >= 86_400 for a, b in itertools.pairwise(fired))
        invariants_hold(env, "reminders")


async def test_an_async_test_awaits_the_environments_async_client() -> None:
    """Temporal's tests are ``async def``: ``env.async_client`` is the AsyncClient they await."""
    with WorkflowEnvironment.start_time_skipping(workflows=[HourNap]) as env:
        handle = await env.async_client.start_workflow(HourNap.run, id="nap")
        assert not handle.already_started
        assert await handle.result(timeout=10) == "rested"
        with pytest.raises(WorkflowAlreadyStartedError):
            await env.async_client.start_workflow(HourNap.run, id="nap", id_reuse_policy="reject_duplicate")
        invariants_hold(env, "nap")


def test_an_activity_is_mocked_by_a_function_of_its_name() -> None:
    @activity.defn(name="notify")
    async def failing_notify(day: int) -> str:
        raise ApplicationError("mail server down", type="MailDown", non_retryable=True)

    with WorkflowEnvironment.start_time_skipping(
        workflows=[MonthOfReminders], activities=[failing_notify]
    ) as env:
        handle = env.client.start_workflow(MonthOfReminders.run, 3, id="mocked")
        with pytest.raises(WorkflowFailedError) as failed:
            handle.result(timeout=10)
        assert failed.value.failure.cause is not None and failed.value.failure.cause.type == "MailDown"
        invariants_hold(env, "mocked")


def test_time_moves_only_when_asked_without_skipping() -> None:
    with WorkflowEnvironment.start_local(workflows=[HourNap]) as env:
        handle = env.client.start_workflow(HourNap.run, id="nap")
        with pytest.raises(TimeoutError):
            handle.result(timeout=0.5)  # on the wall clock: an hour is an hour
        env.sleep(3600)
        assert handle.result(timeout=5) == "rested"
        invariants_hold(env, "nap")


def test_skipping_can_be_turned_off_for_a_block() -> None:
    with WorkflowEnvironment.start_time_skipping(workflows=[HourNap]) as env:
        handle = env.client.start_workflow(HourNap.run, id="nap")
        with env.auto_time_skipping_disabled(), pytest.raises(TimeoutError):
            handle.result(timeout=0.5)
        assert handle.result(timeout=5) == "rested"


def test_what_the_engine_refuses_is_a_dead_letter_with_the_reason() -> None:
    with WorkflowEnvironment.start_time_skipping(workflows=[HourNap]) as env:
        env.client.signal("nobody", "wake")
        deadline = time.monotonic() + 5
        while not env.dead_letters and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [d.reason for d in env.dead_letters] == ["signal 'wake': workflow 'nobody' has no open run"]


def test_an_activity_runs_alone_with_heartbeats_info_and_cancellation() -> None:
    @activity.defn(name="count")
    def count_to(goal: int) -> list[int]:
        for n in range(1, goal + 1):
            activity.heartbeat(n)
        return [goal, activity.info().attempt]

    env = ActivityEnvironment()
    seen: list[int] = []
    env.on_heartbeat = seen.append
    assert env.run(count_to, 3) == [3, 1]
    assert env.heartbeats == seen == [1, 2, 3]

    @activity.defn
    async def wait_for_cancel() -> str:
        for _ in range(500):  # bounded: a cancel that never arrives fails the test, not hangs it
            activity.heartbeat()
            await asyncio.sleep(0.01)
        return "never cancelled"

    cancelled = ActivityEnvironment()
    cancelled.on_heartbeat = lambda _details: cancelled.cancel() if len(cancelled.heartbeats) > 2 else None
    with pytest.raises((activity.ActivityCancelledError, asyncio.CancelledError)):
        cancelled.run(wait_for_cancel)
    assert len(cancelled.heartbeats) == 3, "the attempt ran on after its cancel"


def test_a_result_no_record_can_hold_fails_the_activity_at_once() -> None:
    @activity.defn(name="notify")
    async def lone_surrogate(day: int) -> str:
        return "\ud800"  # no UTF-8 encoding: its record cannot be written

    with WorkflowEnvironment.start_time_skipping(
        workflows=[MonthOfReminders], activities=[lone_surrogate]
    ) as env:
        handle = env.client.start_workflow(MonthOfReminders.run, 1, id="unsendable")
        with pytest.raises(WorkflowFailedError) as failed:
            handle.result(timeout=10)
        cause = failed.value.failure.cause
        assert cause is not None and cause.type == "UnsendableResult" and cause.non_retryable
        attempts = [e for e in handle.history() if e.kind == "activity_attempt_failed"]
        assert attempts == [], "a result that cannot be sent is not retried"
