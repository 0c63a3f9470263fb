"""Reads of the schedules a node's partitions keep (describe one, list a page), served beside
the owner loop from committed state, like run reads."""

from __future__ import annotations

from collections.abc import Iterable

from ledgerflow import namespaces
from ledgerflow.engine.schedules import ScheduleRecord, description, stored_record
from ledgerflow.engine.state import keys
from ledgerflow.engine.state.store import PartitionStore
from ledgerflow.schedule_times import next_fire_times
from ledgerflow.schemas.owner import ScheduleListingJson, ScheduleSummaryJson
from ledgerflow.schemas.schedules import ScheduleDescription


def read_schedule(store: PartitionStore, schedule_id: str, now: float) -> ScheduleDescription | None:
    record = stored_record(store.get(keys.schedule_key(schedule_id)))
    return description(record, now) if record is not None else None


def list_schedules(
    stores: Iterable[tuple[int, PartitionStore]],
    namespace: str | None,
    after: str | None,
    limit: int,
    now: float,
) -> ScheduleListingJson:
    """Up to ``limit`` schedules of these partitions in id order after ``after`` (engine ids),
    with ``next_after`` where the next page starts (null: none)."""
    rows: list[ScheduleSummaryJson] = []
    partitions: list[int] = []
    for partition, store in stores:
        partitions.append(partition)
        start = keys.schedule_key(after) + b"\x00" if after is not None else keys.SCHEDULE
        taken = 0
        for _key, raw in store.scan_range(start, keys.SCHEDULE[:-1] + b"0"):
            record = stored_record(raw)
            assert record is not None
            if namespace is not None and namespaces.namespace_of(record.schedule_id) != namespace:
                continue
            rows.append(summary(record, now))
            taken += 1
            if taken == limit:
                break
    rows.sort(key=lambda row: row["schedule_id"])
    page = rows[:limit]
    return {
        "partitions": partitions,
        "schedules": page,
        "next_after": page[-1]["schedule_id"] if len(rows) >= limit else None,
    }


def summary(record: ScheduleRecord, now: float) -> ScheduleSummaryJson:
    schedule = record.schedule
    upcoming = [] if schedule.state.paused else next_fire_times(schedule.spec, max(record.after, now), 1)
    return {
        "schedule_id": record.schedule_id,
        "workflow_type": schedule.action.workflow_type,
        "paused": schedule.state.paused,
        "note": schedule.state.note,
        "next_fire_time": upcoming[0] if upcoming and schedule.state.remaining_actions != 0 else None,
        "actions": record.actions,
        "running": len(set(record.running)),
    }
