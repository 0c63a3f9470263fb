"""When a schedule fires: cron (5 and 6 fields, aliases) in a time zone across DST changes,
calendars, intervals with offsets, one-off times and bounds (ledgerflow/schedule_times.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from ledgerflow.schedule_times import backfill_times, jitter_of, next_fire_times
from ledgerflow.schemas.schedules import CalendarSpec, IntervalSpec, ScheduleSpec


def utc(*args: int) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()  # type: ignore[arg-type]


def shown(times: list[float]) -> list[str]:
    return [datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ") for t in times]


def test_a_daily_time_skipped_by_spring_forward_fires_once_at_the_end_of_the_gap() -> None:
    spec = ScheduleSpec(cron_expressions=["30 2 * * *"], time_zone="America/New_York")
    # 2026-03-08: 02:00 EST jumps to 03:00 EDT
    assert shown(next_fire_times(spec, utc(2026, 3, 7, 12), 3)) == [
        "2026-03-08T07:00:00Z",  # 03:00 EDT, the end of the gap
        "2026-03-09T06:30:00Z",  # 02:30 EDT
        "2026-03-10T06:30:00Z",
    ]


def test_a_daily_time_repeated_by_fall_back_fires_once_and_an_hourly_step_fires_in_both_hours() -> None:
    daily = ScheduleSpec(cron_expressions=["30 1 * * *"], time_zone="America/New_York")
    # 2026-11-01: 02:00 EDT falls back to 01:00 EST; 01:30 happens at 05:30Z and 06:30Z
    assert shown(next_fire_times(daily, utc(2026, 10, 31, 12), 2)) == [
        "2026-11-01T05:30:00Z",
        "2026-11-02T06:30:00Z",
    ]
    half_hourly = ScheduleSpec(cron_expressions=["*/30 * * * *"], time_zone="America/New_York")
    assert shown(next_fire_times(half_hourly, utc(2026, 11, 1, 4, 50), 4)) == [
        "2026-11-01T05:00:00Z",
        "2026-11-01T05:30:00Z",
        "2026-11-01T06:00:00Z",  # 01:00 again, by the clock
        "2026-11-01T06:30:00Z",
    ]


def test_six_fields_start_with_seconds_and_sources_merge_in_order_once_each() -> None:
    spec = ScheduleSpec(
        cron_expressions=["*/20 * * * * *", "@hourly"],
        intervals=[IntervalSpec(every=60, offset=20)],
        at=[datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC)],
    )
    assert shown(next_fire_times(spec, utc(2026, 1, 1) - 0.5, 6)) == [
        "2026-01-01T00:00:00Z",  # @hourly and */20 s at once: one fire
        "2026-01-01T00:00:20Z",  # */20 s and the interval's offset
        "2026-01-01T00:00:30Z",  # the one-off time
        "2026-01-01T00:00:40Z",
        "2026-01-01T00:01:00Z",
        "2026-01-01T00:01:20Z",
    ]


def test_calendars_bounds_and_jitter() -> None:
    spec = ScheduleSpec(
        calendars=[CalendarSpec(hour=[9, "13-14"], minute=30, day_of_week="MON-FRI")],
        start_at=datetime(2026, 1, 2, 13, 30, tzinfo=UTC),
        end_at=datetime(2026, 1, 5, 9, 30, tzinfo=UTC),
    )
    assert shown(next_fire_times(spec, 0, 10)) == [
        "2026-01-02T13:30:00Z",  # start_at itself counts
        "2026-01-02T14:30:00Z",
        "2026-01-05T09:30:00Z",  # Monday; end_at itself counts; nothing on the weekend
    ]
    delays = {jitter_of("s", t, 60) for t in range(100)}
    assert all(0 <= d < 60 for d in delays) and len(delays) == 100
    assert jitter_of("s", 5, 60) == jitter_of("s", 5, 60)


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"cron_expressions": ["61 * * * *"]}, "cron_expressions.0"),
        ({"cron_expressions": ["* * *"]}, "cron_expressions.0"),
        ({"cron_expressions": ["0 0 30 2 *"]}, "matches no date"),
        ({"intervals": [{"every": 0.5}]}, "intervals.0.every"),
        ({"intervals": [{"every": 60, "offset": 60}]}, "intervals.0"),
        ({"at": ["2026-01-01T00:00:00"]}, "at.0"),
        ({"cron_expressions": ["@daily"], "time_zone": "../../etc/passwd"}, "time_zone"),
        ({"calendars": [{"hour": "25"}]}, "calendars.0"),
        ({}, "spec needs"),
    ],
)
def test_a_bad_spec_is_refused_naming_the_field(fields: dict[str, object], named: str) -> None:
    with pytest.raises(ValidationError) as caught:
        ScheduleSpec.model_validate(fields)
    assert named in str(caught.value)


def test_a_backfill_takes_at_most_a_thousand_fire_times() -> None:
    every_second = ScheduleSpec(cron_expressions=["* * * * * *"])
    assert len(backfill_times(every_second, 1000.0, 1999.0)) == 1000  # both ends included
    with pytest.raises(ValueError, match="more than 1000 fire times"):
        backfill_times(every_second, 1000.0, 2000.0)
