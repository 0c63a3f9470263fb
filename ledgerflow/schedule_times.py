"""When a schedule fires: the times of its spec after a given instant, in order.

Cron expressions and calendars are read by croniter in the spec's time zone, so a daily 09:00
in Europe/Paris stays 09:00 across daylight saving changes. Around a change (the rule many cron
implementations and Temporal's Go time arithmetic share):

- a wall time the clocks skip (02:30 when 02:00 jumps to 03:00) fires once, at the end of the gap;
- a wall time that happens twice (01:30 when 02:00 falls back to 01:00) fires once, at its
  first occurrence, unless the hour field is ``*`` or a step (``*/2``), which fire by the clock
  in both hours.

Intervals count from the Unix epoch (plus their offset), one-off times are what they say, and
the union is bounded by the spec's ``start_at`` and ``end_at``.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import heapq
import math
from collections.abc import Iterator
from datetime import datetime
from itertools import islice
from zoneinfo import ZoneInfo

from croniter import CroniterBadDateError, croniter

from ledgerflow.schemas.schedules import MAX_BACKFILL, MAX_YEARS_BETWEEN_FIRES, ScheduleSpec

SAME_TIME = 0.0005
"""Seconds within which two sources' times are one fire (a cron and an interval both at 09:00)."""


def fire_times(spec: ScheduleSpec, after: float) -> Iterator[float]:
    """Every fire time of ``spec`` strictly after ``after`` (Unix seconds), ascending, once each."""
    start = spec.start_at.timestamp() if spec.start_at else None
    end = spec.end_at.timestamp() if spec.end_at else math.inf
    if start is not None and start > after:
        after = start - 0.001  # a fire at start_at itself counts (a datetime keeps microseconds)
    zone = ZoneInfo(spec.time_zone)
    sources: list[Iterator[float]] = [_cron_times(e, zone, after) for e in spec.cron_expressions]
    sources += [_cron_times(calendar.cron(), zone, after) for calendar in spec.calendars]
    sources += [_interval_times(i.every, i.offset, after) for i in spec.intervals]
    sources.append(iter(sorted(t for t in (at.timestamp() for at in spec.at) if t > after)))
    last = -math.inf
    for t in heapq.merge(*sources):
        if t > end:
            return
        if t - last > SAME_TIME:
            last = t
            yield t


def next_fire_times(spec: ScheduleSpec, after: float, count: int) -> list[float]:
    return list(islice(fire_times(spec, after), count))


def backfill_times(spec: ScheduleSpec, start: float, end: float) -> list[float]:
    """The fire times from ``start`` to ``end`` (both included) a backfill takes; ``ValueError``
    naming the limit when there are more than ``MAX_BACKFILL``."""
    times: list[float] = []
    for t in fire_times(spec, start - 0.001):
        if t > end:
            break
        if len(times) == MAX_BACKFILL:
            raise ValueError(
                f"backfill: more than {MAX_BACKFILL} fire times from {_iso(start)} to {_iso(end)}; "
                "send the range in parts"
            )
        times.append(t)
    return times


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t).astimezone().isoformat()


def jitter_of(schedule_id: str, fire_time: float, most: float) -> float:
    """The delay (0 to ``most`` seconds) of this schedule's start for ``fire_time``: spread, and
    the same each time it is computed (a fire retried after a crash waits as long)."""
    if most <= 0:
        return 0.0
    digest = hashlib.sha256(f"{schedule_id}\x00{fire_time:.3f}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 * most


def _cron_times(expression: str, zone: ZoneInfo, after: float) -> Iterator[float]:
    fields = expression.split()
    with_seconds = len(fields) == 6
    hour = fields[2 if with_seconds else 1] if len(fields) > 1 else ("*" if expression == "@hourly" else "0")
    once_in_repeated_hour = "*" not in hour and "/" not in hour
    times = copy.copy(_parsed(expression, with_seconds))  # its parse shared, its position its own
    times.set_current(datetime.fromtimestamp(after, zone), force=True)
    while True:
        try:
            t = times.get_next(float)
        except CroniterBadDateError:  # no more matches (a spec's own end, or Feb 30)
            return
        if t <= after:  # croniter's own start is inclusive at the second
            continue
        if once_in_repeated_hour and _second_occurrence(t, zone):
            continue
        yield t


@functools.lru_cache(maxsize=4096)
def _parsed(expression: str, with_seconds: bool) -> croniter:
    """A croniter of ``expression``, parsed once (the parse costs more than the steps after it);
    callers step copies of it."""
    return croniter(
        expression, 0.0, second_at_beginning=with_seconds, max_years_between_matches=MAX_YEARS_BETWEEN_FIRES
    )


def _second_occurrence(t: float, zone: ZoneInfo) -> bool:
    """Whether ``t`` is the second time its wall-clock time happens (the hour a fall-back repeats)."""
    local = datetime.fromtimestamp(t, zone)
    return local.fold == 1 and local.replace(fold=0).utcoffset() != local.utcoffset()


def _interval_times(every: float, offset: float, after: float) -> Iterator[float]:
    k = math.floor((after - offset) / every) + 1
    while True:
        t = k * every + offset
        if t > after:
            yield t
        k += 1
