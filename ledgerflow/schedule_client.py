"""Schedules from Python: create one, then pause, trigger, backfill, update, describe or delete it
through its handle (as ``temporalio.client.ScheduleHandle``).

    handle = await client.create_schedule(
        "nightly-report",
        Schedule(
            action=ScheduleAction(workflow_type="Report", input={"day": "yesterday"}),
            spec=ScheduleSpec(cron_expressions=["0 2 * * *"], time_zone="Europe/Paris"),
        ),
    )
    await handle.pause(note="maintenance")

Each change is an inbox command to the schedule's owner; a call returns once the owner applied
it (``LedgerflowError`` after ``APPLY_WAIT`` seconds without), so a describe that follows sees it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ledgerflow import namespaces
from ledgerflow.errors import LedgerflowError, ScheduleAlreadyRunningError, ScheduleNotFoundError
from ledgerflow.owner_reads import OwnerReads
from ledgerflow.schedule_times import backfill_times
from ledgerflow.schemas import commands as c
from ledgerflow.schemas.owner import ScheduleSummaryJson
from ledgerflow.schemas.schedules import OverlapPolicy, Schedule, ScheduleDescription

APPLY_WAIT = 10.0
"""Seconds a change waits for the owner to apply it."""
PAGE = 100

Send = Callable[[str, c.InboxCommand], Awaitable[None]]
"""How a client writes one inbox command (keyed by its first argument)."""


@dataclass(frozen=True)
class ScheduleListEntry:
    """One schedule in ``list_schedules``."""

    id: str
    workflow_type: str
    paused: bool
    note: str
    next_fire_time: datetime | None
    actions: int
    running: int


@dataclass
class AsyncScheduleHandle:
    """One schedule, by id (``AsyncClient.get_schedule_handle``)."""

    id: str
    engine_id: str
    reads: OwnerReads
    send: Send

    async def describe(self) -> ScheduleDescription:
        """The schedule, its next fire times and its recent actions (``ScheduleNotFoundError``)."""
        try:
            data = await self.reads.schedule(self.engine_id)
        except ScheduleNotFoundError:
            raise ScheduleNotFoundError(self.id) from None
        return ScheduleDescription.model_validate(data)

    async def pause(self, note: str = "") -> None:
        await self._change(c.PauseSchedule(schedule_id=self.engine_id, paused=True, note=note))

    async def unpause(self, note: str = "") -> None:
        """Fires from now on; what it would have fired while paused is not caught up."""
        await self._change(c.PauseSchedule(schedule_id=self.engine_id, paused=False, note=note))

    async def trigger(self, overlap: OverlapPolicy | None = None) -> None:
        """Start the action now (paused or not), under ``overlap`` or the schedule's policy."""
        await self._change(c.TriggerSchedule(schedule_id=self.engine_id, overlap=overlap))

    async def backfill(
        self, start_at: datetime, end_at: datetime, overlap: OverlapPolicy | None = None
    ) -> None:
        """Take every fire time from ``start_at`` to ``end_at`` now, as if they had come;
        ``ValueError`` for a range of more than ``MAX_BACKFILL`` (1,000) fire times."""
        described = await self.describe()
        backfill_times(described.schedule.spec, start_at.timestamp(), end_at.timestamp())
        await self._change(
            c.BackfillSchedule(schedule_id=self.engine_id, start_at=start_at, end_at=end_at, overlap=overlap)
        )

    async def update(self, updater: Schedule | Callable[[ScheduleDescription], Schedule]) -> None:
        """Replace the schedule (or what ``updater`` makes of its description); counters, running
        runs and recent actions are kept, and fires are counted from now."""
        schedule = updater if isinstance(updater, Schedule) else updater(await self.describe())
        await self._change(c.UpdateSchedule(schedule_id=self.engine_id, schedule=schedule))

    async def delete(self) -> None:
        """Delete the schedule; the runs it started go on."""
        await self._change(c.DeleteSchedule(schedule_id=self.engine_id))

    async def _change(self, command: c.InboxCommand) -> None:
        await self.describe()  # ScheduleNotFoundError now, not a dead letter later
        await self.apply(command)

    async def apply(self, command: c.InboxCommand) -> None:
        """Send ``command`` with a fresh request id and wait until the owner applied it."""
        request_id = str(uuid.uuid4())
        command = command.model_copy(update={"request_id": request_id})
        await self.send(self.engine_id, command)
        deadline = time.monotonic() + APPLY_WAIT
        while (remaining := deadline - time.monotonic()) > 0:
            outcome = await self.reads.started(self.engine_id, request_id, "", remaining)
            if outcome["applied"]:
                return
        raise LedgerflowError(
            f"{command.kind} of schedule {self.id!r} was not applied within {APPLY_WAIT:.0f} s "
            "(the dead-letter topic says why if it was refused)"
        )


async def create(handle: AsyncScheduleHandle, schedule: Schedule, trigger_immediately: bool) -> None:
    """Create the schedule of ``handle``; ``ScheduleAlreadyRunningError`` when it exists."""
    try:
        await handle.describe()
    except ScheduleNotFoundError:
        pass
    else:
        raise ScheduleAlreadyRunningError(handle.id)
    command = c.CreateSchedule(
        schedule_id=handle.engine_id, schedule=schedule, trigger_immediately=trigger_immediately
    )
    try:
        await handle.apply(command)
    except LedgerflowError:
        if (await handle.describe()).schedule != schedule:
            raise ScheduleAlreadyRunningError(handle.id) from None  # another creator came first
        raise


async def list_all(reads: OwnerReads, namespace: str) -> list[ScheduleListEntry]:
    """Every schedule of ``namespace``, in id order."""
    entries: list[ScheduleListEntry] = []
    after: str | None = None
    while True:
        rows, after = await reads.schedules(namespace, after, PAGE)
        entries += [list_entry(namespace, row) for row in rows]
        if after is None:
            return entries


def list_entry(namespace: str, row: ScheduleSummaryJson) -> ScheduleListEntry:
    fire = row["next_fire_time"]
    return ScheduleListEntry(
        id=namespaces.within(namespace, row["schedule_id"]),
        workflow_type=row["workflow_type"],
        paused=row["paused"],
        note=row["note"],
        next_fire_time=datetime.fromtimestamp(fire).astimezone() if fire is not None else None,
        actions=row["actions"],
        running=row["running"],
    )


class ScheduleHandle:
    """The synchronous handle: the same calls as ``AsyncScheduleHandle``, on the Client's loop."""

    def __init__(self, run: Callable[[Coroutine[Any, Any, Any]], Any], handle: AsyncScheduleHandle) -> None:
        self._run = run
        self._handle = handle
        self.id = handle.id

    def describe(self) -> ScheduleDescription:
        described: ScheduleDescription = self._run(self._handle.describe())
        return described

    def pause(self, note: str = "") -> None:
        self._run(self._handle.pause(note))

    def unpause(self, note: str = "") -> None:
        self._run(self._handle.unpause(note))

    def trigger(self, overlap: OverlapPolicy | None = None) -> None:
        self._run(self._handle.trigger(overlap))

    def backfill(self, start_at: datetime, end_at: datetime, overlap: OverlapPolicy | None = None) -> None:
        self._run(self._handle.backfill(start_at, end_at, overlap))

    def update(self, updater: Schedule | Callable[[ScheduleDescription], Schedule]) -> None:
        self._run(self._handle.update(updater))

    def delete(self) -> None:
        self._run(self._handle.delete())


__all__ = ["AsyncScheduleHandle", "ScheduleHandle", "ScheduleListEntry"]
