"""Temporal's ``hello_cron`` and schedules samples, ported: a greeting every minute and a
schedule described, paused, triggered and backfilled, on the in-process time-skipping
environment (minutes pass in milliseconds). Temporal's own advice is to use Schedules rather
than a ``cron_schedule`` on the start, so the port creates a schedule."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

from ledgerflow import (
    Schedule,
    ScheduleAction,
    SchedulePolicy,
    ScheduleSpec,
    activity,
    workflow,
)
from ledgerflow.testing import WorkflowEnvironment


@activity.defn
async def compose_greeting(name: str) -> str:
    return f"Hello, {name}!"


@workflow.defn
class GreetingWorkflow:
    @workflow.run
    async def run(self, name: str) -> str:
        return await workflow.execute_activity(
            compose_greeting, name, start_to_close_timeout=timedelta(seconds=10)
        )


def greeting_environment() -> WorkflowEnvironment:
    return WorkflowEnvironment.start_time_skipping(
        workflows=[GreetingWorkflow], activities=[compose_greeting]
    )


def test_hello_cron_greets_once_a_minute() -> None:
    with WorkflowEnvironment.start_time_skipping(
        workflows=[GreetingWorkflow], activities=[compose_greeting]
    ) as env:
        client = env.client
        handle = client.create_schedule(
            "hello-cron",
            Schedule(
                action=ScheduleAction(workflow_type="GreetingWorkflow", input="World"),
                spec=ScheduleSpec(cron_expressions=["* * * * *"]),
                policy=SchedulePolicy(overlap="allow_all"),
            ),
        )
        for _ in range(3):  # three minutes, each to its next fire
            env.sleep(60)
        info = handle.describe().info
        assert info.actions == 3 and info.missed == 0
        runs = client.list_workflows(query="TemporalScheduledById = 'hello-cron'")
        assert len(runs) == 3
        assert {client.result(r["workflow_id"]) for r in runs} == {"Hello, World!"}
        minutes = sorted(datetime.strptime(r["workflow_id"][-20:], "%Y-%m-%dT%H:%M:%SZ") for r in runs)
        assert [b - a for a, b in itertools.pairwise(minutes)] == [timedelta(minutes=1)] * 2


def test_hello_schedule_describe_pause_trigger_and_backfill() -> None:
    with WorkflowEnvironment.start_time_skipping(
        workflows=[GreetingWorkflow], activities=[compose_greeting]
    ) as env:
        client = env.client
        handle = client.create_schedule(
            "hello-schedule",
            Schedule(
                action=ScheduleAction(
                    workflow_type="GreetingWorkflow", input="Temporal", workflow_id="greet"
                ),
                spec=ScheduleSpec(cron_expressions=["0 9 * * *"], time_zone="Asia/Tokyo"),
            ),
        )
        upcoming = handle.describe().info.next_fire_times
        assert len(upcoming) == 10 and all(t.astimezone(UTC).hour == 0 for t in upcoming)  # 09:00 JST
        handle.pause(note="holiday")
        assert handle.describe().info.next_fire_times == []
        env.sleep(2 * 86400)
        assert handle.describe().info.actions == 0  # paused: nothing fired
        handle.trigger()
        day = datetime(2026, 1, 1, tzinfo=UTC)
        handle.backfill(day, day + timedelta(days=1), overlap="allow_all")
        env.sleep(1)
        described = handle.describe()
        assert described.info.actions == 3
        ids = [a.workflow_id for a in described.info.recent_actions]
        assert ids[1:] == ["greet-2026-01-01T00:00:00Z", "greet-2026-01-02T00:00:00Z"]
        assert all(client.result(i) == "Hello, Temporal!" for i in ids)
        assert [s.id for s in client.list_schedules()] == ["hello-schedule"]


def test_a_daily_schedule_keeps_its_wall_clock_time_across_daylight_saving_changes() -> None:
    with greeting_environment() as env:
        client = env.client
        handle = client.create_schedule(
            "new-york-0230",
            Schedule(
                action=ScheduleAction(workflow_type="GreetingWorkflow", input="NY"),
                spec=ScheduleSpec(cron_expressions=["30 2 * * *"], time_zone="America/New_York"),
                policy=SchedulePolicy(overlap="allow_all"),
            ),
        )
        start = env.now()
        spring = datetime(start.year + 1, 3, 1, tzinfo=UTC)  # the next spring-forward is in March
        env.sleep((spring - start).total_seconds() + 20 * 86400)
        actions = handle.describe().info.actions
        runs = client.list_workflows(query="TemporalScheduledById = 'new-york-0230'", limit=1000)
        fired = sorted(datetime.strptime(r["workflow_id"][-20:], "%Y-%m-%dT%H:%M:%SZ") for r in runs)
        assert len(fired) == actions > 100 and len({f.date() for f in fired}) == len(fired)
        utc_hours = {f.strftime("%H:%M") for f in fired}
        # 02:30 EST is 07:30Z; 02:30 EDT is 06:30Z; on the spring-forward day 02:30 does not
        # exist and the fire comes at the end of the gap, 03:00 EDT (07:00Z), once.
        assert utc_hours == {"07:30", "06:30", "07:00"}
        gap_day = [f for f in fired if f.strftime("%H:%M") == "07:00"]
        assert len(gap_day) == 1 and gap_day[0].month == 3
