"""Schedules: kept by the owner of their id's partition, like a workflow.

A schedule's record (``s/<id>``) is written in the batch's transaction and changelog, and its
next fire is a durable timer in the partition's timer index, so a schedule survives kill -9,
failover and restore as runs do. When the timer fires, every fire time that has come is taken
in order: started (a ``start_workflow`` to the inbox, in the same transaction, with the id
``<prefix>-<fire time>`` and a request id naming the fire, so a fire applied twice starts one
run), skipped, buffered, or counted as missed when older than the catch-up window.

Runs it started carry the search attributes ``TemporalScheduledById`` and
``TemporalScheduledStartTime`` (as in Temporal); when such a run closes, or its start is
refused, its owner tells the schedule (``scheduled_run_closed``), which is how overlap
policies know what is running.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from pydantic import BaseModel, Field, ValidationError

from ledgerflow import namespaces
from ledgerflow.engine import metrics
from ledgerflow.engine.run_writer import RunWriter
from ledgerflow.engine.state import keys
from ledgerflow.engine.state.models import TimerEntry
from ledgerflow.schedule_times import backfill_times, fire_times, jitter_of, next_fire_times
from ledgerflow.schemas import commands as c
from ledgerflow.schemas.common import ID_MAX_LENGTH
from ledgerflow.schemas.schedules import (
    MAX_BUFFERED,
    STORED,
    OverlapPolicy,
    Schedule,
    ScheduleActionResult,
    ScheduleDescription,
    ScheduleInfo,
)
from ledgerflow.schemas.search import SearchAttributes, SearchAttributeValue

log = logging.getLogger("ledgerflow.engine.schedules")

SCHEDULED_BY = "TemporalScheduledById"
SCHEDULED_TIME = "TemporalScheduledStartTime"
RECENT_ACTIONS = 10
MAX_TRACKED_RUNS = 1000
"""Open runs a schedule follows (an ``allow_all`` schedule may have more; the oldest are let go)."""
MAX_DUE_PER_TURN = 1000
"""Fire times one timer turn takes; more come in the next batch."""
MAX_MISSED_COUNTED = 1000
"""Missed fires counted one by one after a downtime; beyond, the schedule skips ahead uncounted."""
TIME_SUFFIX = len("-2026-01-01T00:00:00Z")


class Buffered(BaseModel):
    fire_time: float
    overlap: OverlapPolicy


class Action(BaseModel):
    fire_time: float
    started_at: float
    workflow_id: str
    status: str | None = None
    reason: str | None = None


class ScheduleRecord(BaseModel):
    """A schedule as its owner keeps it."""

    schedule_id: str
    schedule: Schedule
    created_at: float
    updated_at: float
    token: int = 0
    """Changed by every update, pause and unpause: a timer set before carries the old one and
    is ignored when it fires."""
    after: float
    """Fire times up to here are decided."""
    armed: float | None = None
    """When the timer set last fires (deleted when a change sets another)."""
    running: list[str] = Field(default_factory=list)
    buffered: list[Buffered] = Field(default_factory=list)
    recent: list[Action] = Field(default_factory=list)
    actions: int = 0
    missed: int = 0
    skipped: int = 0


def stored_record(raw: bytes | None) -> ScheduleRecord | None:
    """A record as its owner wrote it: its spec was checked when it came in, so its cron
    expressions are not parsed again here (``STORED``)."""
    return ScheduleRecord.model_validate_json(raw, context=STORED) if raw is not None else None


def scheduled_by(workflow_id: str, attributes: SearchAttributes) -> str | None:
    """The engine id of the schedule that started the run ``workflow_id`` (its attributes say),
    or None."""
    value = attributes.get(SCHEDULED_BY)
    if value is None or value.type != "keyword" or not isinstance(value.value, str):
        return None
    if namespaces.SEPARATOR in value.value or not value.value:
        return None
    return namespaces.qualify(namespaces.namespace_of(workflow_id), value.value)


def scheduled_time(attributes: SearchAttributes) -> float | None:
    value = attributes.get(SCHEDULED_TIME)
    if value is None or value.type != "datetime":
        return None
    try:
        return datetime.fromisoformat(str(value.value)).timestamp()
    except ValueError:
        return None


def run_id_problem(schedule_id: str, schedule: Schedule) -> str | None:
    """Why the runs of ``schedule`` could not be named, or None."""
    prefix = schedule.action.workflow_id or namespaces.split(schedule_id)[1]
    longest = len(namespaces.qualify(namespaces.namespace_of(schedule_id), prefix)) + TIME_SUFFIX
    if longest > ID_MAX_LENGTH:
        return (
            f"the runs' ids ({prefix[:50]!r}... plus '-<fire time>') would be {longest} characters; "
            f"at most {ID_MAX_LENGTH}: shorten the schedule id or action.workflow_id"
        )
    return None


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class Schedules:
    """The schedules of one partition."""

    def __init__(self, writer: RunWriter) -> None:
        self.w = writer

    # ------------------------------------------------------------- commands
    def handle(self, command: c.InboxCommand) -> str | None:
        """Apply a schedule command; the reason when it goes to the dead-letter topic."""
        w = self.w
        assert isinstance(command, c.SCHEDULE_COMMANDS)
        record = self.load(command.schedule_id)
        if isinstance(command, c.CreateSchedule):
            if record is not None:
                return f"schedule {command.schedule_id!r} exists already"
            problem = run_id_problem(command.schedule_id, command.schedule)
            if problem is not None:
                return problem
            record = ScheduleRecord(
                schedule_id=command.schedule_id,
                schedule=command.schedule,
                created_at=w.now,
                updated_at=w.now,
                after=w.now,
            )
            if command.trigger_immediately:
                self._take(record, w.now, record.schedule.policy.overlap, "trigger")
            self._due(record)
            self.save(record)
            return None
        if record is None:
            if isinstance(command, c.ScheduledRunClosed):
                return None  # deleted since: its runs go on alone
            return f"schedule {command.schedule_id!r} not found"
        match command:
            case c.UpdateSchedule():
                problem = run_id_problem(command.schedule_id, command.schedule)
                if problem is not None:
                    return problem
                record.schedule = command.schedule
                record.after = max(record.after, w.now)
                self._rearm(record)
            case c.PauseSchedule():
                state = record.schedule.state.model_copy(
                    update={"paused": command.paused, "note": command.note}
                )
                if not command.paused and record.schedule.state.paused:
                    record.after = max(
                        record.after, w.now
                    )  # what it would have fired meanwhile is not caught up
                record.schedule = record.schedule.model_copy(update={"state": state})
                self._rearm(record)
            case c.TriggerSchedule():
                self._take(record, w.now, command.overlap or record.schedule.policy.overlap, "trigger")
            case c.BackfillSchedule():
                start, end = command.start_at.timestamp(), command.end_at.timestamp()
                try:
                    times = backfill_times(record.schedule.spec, start, end)
                except ValueError as exc:
                    return str(exc)
                overlap = command.overlap or record.schedule.policy.overlap
                for t in times:
                    self._take(record, t, overlap, "backfill")
            case c.DeleteSchedule():
                self._disarm(record)
                w.txn.delete(keys.schedule_key(command.schedule_id))
                return None
            case c.ScheduledRunClosed():
                self._closed(record, command)
        record.updated_at = w.now
        self.save(record)
        return None

    def fire(self, entry: TimerEntry) -> None:
        """The schedule's timer: take what has come."""
        record = self.load(entry.workflow_id)
        if record is None or str(record.token) != entry.run_id:
            return  # deleted, or changed since this timer was set
        record.armed = None  # this one, popped as it fired
        self._due(record)
        self.save(record)

    # --------------------------------------------------------------- reads
    def load(self, schedule_id: str) -> ScheduleRecord | None:
        return stored_record(self.w.txn.get(keys.schedule_key(schedule_id)))

    def save(self, record: ScheduleRecord) -> None:
        """Write the record; ``PayloadTooLarge`` (this command or fire fails alone, rolled back)
        when it would not fit one changelog record: its spec, up to 1,000 followed run ids and
        1,000 waiting starts are bounded, their sum against the record limit only here."""
        raw = record.model_dump_json().encode()
        what = lambda: f"schedule {record.schedule_id!r}'s record"  # noqa: E731
        self.w.ctx.settings.check_size("max_record_bytes", len(raw), what)
        self.w.txn.put(keys.schedule_key(record.schedule_id), raw)

    # -------------------------------------------------------------- firing
    def _due(self, record: ScheduleRecord) -> None:
        """Take every fire time up to now, then set the timer for the next."""
        w, schedule = self.w, record.schedule
        if schedule.state.paused or schedule.state.remaining_actions == 0:
            return
        # late by more than the window, beyond the jitter it was meant to wait
        horizon = w.now - schedule.policy.catchup_window - schedule.spec.jitter
        if record.after < horizon:
            missed = 0
            for t in fire_times(schedule.spec, record.after):
                if t > horizon or missed == MAX_MISSED_COUNTED:
                    break
                missed += 1
            record.missed += missed
            metrics.SCHEDULE_MISSED.inc(missed)
            record.after = horizon
        for taken, t in enumerate(fire_times(schedule.spec, record.after), 1):  # the due, then the next
            if record.schedule.state.remaining_actions == 0:
                return
            start_at = t + jitter_of(record.schedule_id, t, schedule.spec.jitter)
            if start_at > w.now:  # each fire waits its own jitter; the later ones wait behind it
                self._arm(record, start_at)
                return
            record.after = t
            self._take(record, t, record.schedule.policy.overlap, "fire")
            if taken == MAX_DUE_PER_TURN:
                self._arm(record, w.now)  # the rest in the next batch
                return

    def _arm(self, record: ScheduleRecord, fire_at: float) -> None:
        entry = TimerEntry(
            workflow_id=record.schedule_id, run_id=str(record.token), kind="schedule_fire", fire_at=fire_at
        )
        self.w.timers.add(self.w.txn, entry)
        record.armed = fire_at

    def _disarm(self, record: ScheduleRecord) -> None:
        """Delete the timer set last (before a change sets another, or the schedule goes)."""
        if record.armed is not None:
            tag = TimerEntry.tag_of("schedule_fire", str(record.token), 0, 0)
            self.w.txn.delete(keys.timer_key(record.armed, record.schedule_id, tag))
            record.armed = None

    def _rearm(self, record: ScheduleRecord) -> None:
        self._disarm(record)
        record.token += 1
        self._due(record)

    def _take(self, record: ScheduleRecord, t: float, overlap: OverlapPolicy, cause: str) -> None:
        """One fire (or trigger, or backfilled time) under ``overlap``."""
        if not record.running or overlap == "allow_all":
            self._start(record, t, cause)
            return
        match overlap:
            case "skip":
                self._skip(record, overlap)
            case "buffer_one" | "buffer_all":
                limit = 1 if overlap == "buffer_one" else MAX_BUFFERED
                if len(record.buffered) >= limit:
                    self._skip(record, overlap)
                else:
                    record.buffered.append(Buffered(fire_time=t, overlap=overlap))
            case "cancel_other":
                for workflow_id in dict.fromkeys(record.running):
                    reason = f"schedule {record.schedule_id!r}: cancel_other, for its fire at {iso(t)}"
                    self.w.out.inbox(workflow_id, c.CancelWorkflow(workflow_id=workflow_id, reason=reason))
                record.buffered = [Buffered(fire_time=t, overlap=overlap)]
            case "terminate_other":
                for workflow_id in dict.fromkeys(record.running):
                    reason = f"schedule {record.schedule_id!r}: terminate_other, for its fire at {iso(t)}"
                    self.w.out.inbox(workflow_id, c.TerminateWorkflow(workflow_id=workflow_id, reason=reason))
                for action in record.recent:
                    if action.workflow_id in record.running and action.status is None:
                        action.status = "TERMINATED"
                record.running = []
                self._start(record, t, cause)

    def _skip(self, record: ScheduleRecord, overlap: str) -> None:
        record.skipped += 1
        metrics.SCHEDULE_SKIPPED.labels(overlap=overlap).inc()

    def _start(self, record: ScheduleRecord, t: float, cause: str) -> None:
        w, schedule = self.w, record.schedule
        if schedule.state.remaining_actions == 0:
            return
        namespace, bare_schedule = namespaces.split(record.schedule_id)
        action = schedule.action
        workflow_id = namespaces.qualify(namespace, f"{action.workflow_id or bare_schedule}-{iso(t)}")
        if workflow_id in record.running:  # two starts in one second name one run: it is running
            self._skip(record, "same_second")
            return
        request_id = f"schedule-{iso(t)}"
        attributes = {
            **action.search_attributes,
            SCHEDULED_BY: SearchAttributeValue(type="keyword", value=bare_schedule),
            SCHEDULED_TIME: SearchAttributeValue(
                type="datetime", value=datetime.fromtimestamp(t, UTC).isoformat()
            ),
        }
        try:
            command = c.StartWorkflow(
                workflow_id=workflow_id,
                workflow_type=action.workflow_type,
                input=action.input,
                execution_timeout=action.execution_timeout,
                search_attributes=attributes,
                memo=action.memo,
                request_id=request_id,
                run_id=c.start_run_id(workflow_id, request_id),
            )
        except ValidationError as exc:  # e.g. 64 attributes of its own: no room for the two above
            reason = c.error_summary(exc)
            record.recent.append(
                Action(
                    fire_time=t, started_at=w.now, workflow_id=workflow_id, status="REFUSED", reason=reason
                )
            )
            del record.recent[:-RECENT_ACTIONS]
            return
        w.out.inbox(workflow_id, command)
        remaining = schedule.state.remaining_actions
        if remaining is not None:
            state = schedule.state.model_copy(update={"remaining_actions": remaining - 1})
            record.schedule = schedule.model_copy(update={"state": state})
        record.running.append(workflow_id)
        del record.running[:-MAX_TRACKED_RUNS]
        record.recent.append(Action(fire_time=t, started_at=w.now, workflow_id=workflow_id))
        del record.recent[:-RECENT_ACTIONS]
        record.actions += 1
        metrics.SCHEDULE_ACTIONS.labels(cause=cause).inc()
        log.info(
            "schedule %s started %s for %s",
            record.schedule_id,
            workflow_id,
            iso(t),
            extra={"workflowId": workflow_id, "partition": w.partition},
        )

    def _closed(self, record: ScheduleRecord, command: c.ScheduledRunClosed) -> None:
        closed = command.scheduled_workflow_id
        if closed not in record.running:
            return  # not a run it follows (a run that set its attribute itself, or one let go)
        record.running = [workflow_id for workflow_id in record.running if workflow_id != closed]
        for action in record.recent:
            if action.workflow_id == closed and action.status is None:
                action.status, action.reason = command.status, command.reason
        state = record.schedule.state
        failed = command.status in ("FAILED", "REFUSED")
        if failed and record.schedule.policy.pause_on_failure and not state.paused:
            note = f"paused: {namespaces.split(closed)[1]} ended {command.status}"
            paused = state.model_copy(update={"paused": True, "note": note})
            record.schedule = record.schedule.model_copy(update={"state": paused})
            self._disarm(record)
            record.token += 1  # unpausing sets another timer
        self._start_buffered(record)

    def _start_buffered(self, record: ScheduleRecord) -> None:
        """The first waiting start, once nothing runs. A pause stops fires, not the starts already
        waiting (as in Temporal)."""
        if record.buffered and not record.running:
            waiting = record.buffered.pop(0)
            self._start(record, waiting.fire_time, "buffered")


def description(record: ScheduleRecord, now: float) -> ScheduleDescription:
    """What describe answers: the schedule, what it did, and its next 10 fire times."""
    state = record.schedule.state
    upcoming: list[float] = []
    if not state.paused and state.remaining_actions != 0:
        upcoming = next_fire_times(record.schedule.spec, max(record.after, now), 10)
        if state.remaining_actions is not None:
            upcoming = upcoming[: state.remaining_actions]
    namespace = namespaces.namespace_of(record.schedule_id)
    return ScheduleDescription(
        schedule_id=namespaces.within(namespace, record.schedule_id),
        schedule=record.schedule,
        info=ScheduleInfo(
            created_at=_utc(record.created_at),
            updated_at=_utc(record.updated_at),
            next_fire_times=[_utc(t) for t in upcoming],
            recent_actions=[
                ScheduleActionResult(
                    fire_time=_utc(a.fire_time),
                    started_at=_utc(a.started_at),
                    workflow_id=namespaces.within(namespace, a.workflow_id),
                    status=a.status,
                    reason=a.reason,
                )
                for a in record.recent
            ],
            running=[
                namespaces.within(namespace, workflow_id) for workflow_id in dict.fromkeys(record.running)
            ],
            buffered=len(record.buffered),
            actions=record.actions,
            missed=record.missed,
            skipped=record.skipped,
        ),
    )


def _utc(t: float) -> datetime:
    return datetime.fromtimestamp(t, UTC)
