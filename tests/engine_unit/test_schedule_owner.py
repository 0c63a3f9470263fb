"""A schedule's owner (engine/schedules.py) over a real RocksDB store, without Kafka: what its
commands, timers and runs' closes do to its record, its timer and the starts it writes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from ledgerflow import workflow
from ledgerflow.config import Settings
from ledgerflow.engine.context import EngineContext
from ledgerflow.engine.outbox import Outbox
from ledgerflow.engine.processor import PartitionProcessor
from ledgerflow.engine.state import keys
from ledgerflow.engine.state.store import PartitionStore
from ledgerflow.schemas import commands as c
from ledgerflow.schemas.schedules import Schedule, ScheduleAction, SchedulePolicy, ScheduleSpec
from ledgerflow.sdk.definition import WorkflowRegistry

SETTINGS = Settings(partitions=1)


@workflow.defn
class Tick:
    @workflow.run
    async def run(self, n: int) -> int:
        return n


class Owner:
    """One partition's processor; ``batch`` applies commands at a time and routes what it
    writes to the inbox back as the next batch's commands (as Kafka would)."""

    def __init__(self, folder: Path) -> None:
        ctx = EngineContext(SETTINGS, WorkflowRegistry.from_modules([__name__]), lambda _id: None)
        self.p = PartitionProcessor(0, PartitionStore(folder), ctx)

    def batch(self, commands: list[c.InboxCommand], now: float) -> list[c.InboxCommand]:
        out = Outbox(SETTINGS)
        self.p.begin(now, out)
        for command in commands:
            assert self.p.handle(command) is None
        self.p.fire_timers()
        self.p.store.write(dict(self.p.finish()), None)
        return [c.read_command(r.value, "inbox") for r in out.records if r.topic == SETTINGS.topic("inbox")]

    def settle(self, commands: list[c.InboxCommand], now: float) -> None:
        commands = self.batch(commands, now)  # at least one: its timers fire
        while commands:
            commands = self.batch(commands, now)

    def record(self, schedule_id: str) -> object:
        return self.p.schedules.load(schedule_id)

    def timers(self) -> list[bytes]:
        return [k for k, _ in self.p.store.scan(keys.TIMER) if b"schedule_fire" in k]


@pytest.fixture
def owner(tmp_path: Path) -> Iterator[Owner]:
    o = Owner(tmp_path / "p0")
    yield o
    o.p.store.close()


def daily(**policy: object) -> Schedule:
    return Schedule(
        action=ScheduleAction(workflow_type="Tick", input=1),
        spec=ScheduleSpec(cron_expressions=["0 9 * * *"]),
        policy=SchedulePolicy(**policy),  # type: ignore[arg-type]
    )


NOW = 1_800_000_000.0


def test_two_triggers_in_one_second_start_one_run_and_the_schedule_goes_on(owner: Owner) -> None:
    owner.settle([c.CreateSchedule(schedule_id="s", schedule=daily(overlap="buffer_one"))], NOW)
    starts = owner.batch([c.TriggerSchedule(schedule_id="s"), c.TriggerSchedule(schedule_id="s")], NOW + 0.2)
    assert len(starts) == 1  # the second names the same run, which is running
    owner.settle(starts, NOW + 0.3)  # the run completes; its close reaches the schedule
    record = owner.record("s")  # the buffered start named the run that had run: it ended at once
    assert record.running == [] and record.buffered == []  # type: ignore[attr-defined]
    assert len(owner.batch([c.TriggerSchedule(schedule_id="s")], NOW + 5)) == 1  # not stuck


def test_a_backfill_over_times_that_ran_does_not_leave_the_schedule_busy(owner: Owner) -> None:
    owner.settle([c.CreateSchedule(schedule_id="s", schedule=daily())], NOW)
    backfill = c.BackfillSchedule(
        schedule_id="s", start_at="2026-01-01T00:00:00Z", end_at="2026-01-01T12:00:00Z"
    )  # type: ignore[arg-type]
    owner.settle([backfill], NOW + 1)
    owner.settle([backfill.model_copy(update={"request_id": None})], NOW + 2)  # the same times again
    record = owner.record("s")
    assert record.running == [], record  # type: ignore[attr-defined]
    assert len(owner.batch([c.TriggerSchedule(schedule_id="s")], NOW + 3)) == 1


def test_a_close_of_a_run_it_does_not_follow_changes_nothing(owner: Owner) -> None:
    owner.settle([c.CreateSchedule(schedule_id="s", schedule=daily(pause_on_failure=True))], NOW)
    forged = c.ScheduledRunClosed(
        schedule_id="s", scheduled_workflow_id="s-2020-01-01T00:00:00Z", status="FAILED"
    )
    owner.settle([forged], NOW + 1)
    assert not owner.record("s").schedule.state.paused  # type: ignore[attr-defined]


def test_a_change_replaces_the_timer_and_a_delete_removes_it(owner: Owner) -> None:
    owner.settle([c.CreateSchedule(schedule_id="s", schedule=daily())], NOW)
    assert len(owner.timers()) == 1
    owner.settle([c.PauseSchedule(schedule_id="s", paused=True)], NOW + 1)
    assert owner.timers() == []
    owner.settle([c.PauseSchedule(schedule_id="s", paused=False)], NOW + 2)
    owner.settle([c.UpdateSchedule(schedule_id="s", schedule=daily(overlap="allow_all"))], NOW + 3)
    assert len(owner.timers()) == 1
    owner.settle([c.DeleteSchedule(schedule_id="s", request_id="del-1")], NOW + 4)
    assert owner.timers() == [] and owner.record("s") is None
    assert owner.p.store.get(keys.request_key("s", "del-1")) is not None
    owner.batch([], NOW + 4 + 601)  # a caller's request key is kept ten minutes
    assert owner.p.store.get(keys.request_key("s", "del-1")) is None


def test_fires_delayed_by_their_jitter_are_not_counted_missed(owner: Owner) -> None:
    every_minute = Schedule(
        action=ScheduleAction(workflow_type="Tick", input=1),
        spec=ScheduleSpec(cron_expressions=["* * * * *"], jitter=300),
        policy=SchedulePolicy(overlap="allow_all", catchup_window=60),
    )
    start = (NOW // 60) * 60 + 1
    owner.settle([c.CreateSchedule(schedule_id="j", schedule=every_minute)], start)
    for second in range(10, 1200, 10):  # 20 minutes: each fire waits its own jitter, up to 300 s
        owner.settle([], start + second)
    record = owner.record("j")
    assert record.missed == 0 and record.actions >= 14, record  # type: ignore[attr-defined]
    fired = sorted(a.fire_time for a in record.recent)  # type: ignore[attr-defined]
    assert fired == [f for f in fired if f % 60 == 0]


def test_a_schedule_whose_record_would_not_fit_fails_alone(tmp_path: Path) -> None:
    small = Settings(partitions=1, max_payload_bytes=10_000, max_record_bytes=30_000)
    ctx = EngineContext(small, WorkflowRegistry.from_modules([__name__]), lambda _id: None)
    p = PartitionProcessor(0, PartitionStore(tmp_path / "small"), ctx)
    big = Schedule(
        action=ScheduleAction(workflow_type="Tick", input="x" * 40_000),
        spec=ScheduleSpec(cron_expressions=["0 9 * * *"]),
    )
    p.begin(NOW, Outbox(small))
    reason = p.handle(c.CreateSchedule(schedule_id="big", schedule=big))
    assert reason is not None and "max_record_bytes" in reason
    assert p.handle(c.CreateSchedule(schedule_id="ok", schedule=daily())) is None  # the next one is applied
    p.store.write(dict(p.finish()), None)
    assert p.schedules.load("big") is None and p.schedules.load("ok") is not None
    p.store.close()
