"""Schedules on the wire: when a schedule fires (its spec), what it starts (its action), and what
it does when runs overlap or the engine was down (its policy).

A schedule is kept by the owner of its id's partition, like a workflow (``engine/schedules.py``);
these models are what a caller sends to create or update one, and what describe answers. Times
are UTC datetimes or seconds; a cron expression or calendar is read in ``time_zone``.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, croniter
from pydantic import AfterValidator, BeforeValidator, Field, ValidationInfo, field_validator, model_validator

from ledgerflow.schemas.common import JSON, PositiveSeconds, WireModel, seconds_of
from ledgerflow.schemas.search import Memo, SearchAttributes

OverlapPolicy = Literal["skip", "buffer_one", "buffer_all", "cancel_other", "terminate_other", "allow_all"]
"""What a fire does while a run the schedule started is still open: nothing (``skip``); wait for
it, keeping at most one start (``buffer_one``) or every start (``buffer_all``); cancel it and
start once it closed (``cancel_other``); terminate it and start now (``terminate_other``); start
anyway (``allow_all``)."""

MAX_EXPRESSIONS = 32
"""Cron expressions, calendars, intervals and one-off times a spec holds, each."""
MAX_BACKFILL = 1000
"""Fire times one backfill takes (send a longer range in parts): each is a start the engine writes
in the batch that applies it, and a batch stays short."""
MAX_BUFFERED = 1000
"""Starts a ``buffer_all`` schedule keeps waiting; a fire beyond them is skipped."""
DEFAULT_CATCHUP_WINDOW = 365 * 86400.0
"""Seconds after its time a fire missed while no engine ran still starts (Temporal's default)."""
MIN_CATCHUP_WINDOW = 10.0
MIN_INTERVAL = 1.0
"""Seconds: the shortest interval, and the finest grain of a cron or calendar spec."""
CRON_FIELD = r"^[A-Za-z0-9*/,?#L-]{1,128}$"


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("a time needs its offset or zone (e.g. 2026-01-01T00:00:00Z)")
    return value.astimezone(UTC)


UtcTime = Annotated[datetime, AfterValidator(_aware)]
"""An instant, given with its offset; kept in UTC."""


STORED = {"stored": True}
"""Validation context of a schedule read back from an owner's store: checked when it came in, its
cron expressions and calendars are not parsed again (a croniter parse is the dearest step of a
fire)."""


MAX_YEARS_BETWEEN_FIRES = 8
"""Years a cron expression or calendar may go without a fire (February 29 needs up to 8): the
search for the next fire stops there, so no spec costs more to step than that."""
RANDOM_FIELD = re.compile(r"(^|[\s,/-])[RH]([\s,/-]|$)")


def _stored(info: ValidationInfo) -> bool:
    return isinstance(info.context, dict) and bool(info.context.get("stored"))


def matches_a_date(text: str, what: str) -> None:
    """``ValueError`` unless the cron expression ``text`` (seconds first when 6 fields) fires within
    ``MAX_YEARS_BETWEEN_FIRES`` of 2000-01-01, and has no random (``R``) or hashed (``H``) field:
    each engine would draw another value."""
    if RANDOM_FIELD.search(text):
        raise ValueError(
            f"{what}: random (R) and hashed (H) fields are not taken: every engine would draw its own"
        )
    try:
        start = datetime(2000, 1, 1, tzinfo=UTC)
        croniter(
            text, start, second_at_beginning=True, max_years_between_matches=MAX_YEARS_BETWEEN_FIRES
        ).get_next(float)
    except CroniterBadDateError:
        raise ValueError(f"{what} matches no date (e.g. February 30)") from None


def _cron(expression: str, info: ValidationInfo) -> str:
    if _stored(info):
        return expression
    text = " ".join(expression.split())
    if not croniter.is_valid(text, second_at_beginning=True) or len(text.split()) not in (1, 5, 6):
        raise ValueError(
            f"{expression[:200]!r} is not a cron expression: 5 fields (minute hour day-of-month "
            "month day-of-week), 6 with seconds first, or an alias such as @daily"
        )
    matches_a_date(text, repr(expression[:200]))
    return text


CronExpression = Annotated[str, Field(min_length=1, max_length=256), AfterValidator(_cron)]


def _field_text(value: object) -> object:
    """A calendar field given as a number or a list of numbers and "a-b" ranges, as cron text."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, list):
        return ",".join(str(item) for item in value)
    return value


CalendarField = Annotated[str, BeforeValidator(_field_text), Field(pattern=CRON_FIELD)]
"""One field of a calendar in cron's own syntax: ``*``, ``5``, ``1-5``, ``0,30``, ``*/15``, ``MON-FRI``
(or a number, or a list of numbers and ranges)."""


class CalendarSpec(WireModel):
    """Calendar times: every combination of the fields' values matches (as cron, with seconds)."""

    second: CalendarField = "0"
    minute: CalendarField = "0"
    hour: CalendarField = "0"
    day_of_month: CalendarField = "*"
    month: CalendarField = "*"
    day_of_week: CalendarField = "*"
    comment: str = Field(default="", max_length=256)

    def cron(self) -> str:
        """This calendar as a cron expression with seconds first."""
        return " ".join(
            (self.second, self.minute, self.hour, self.day_of_month, self.month, self.day_of_week)
        )

    @model_validator(mode="after")
    def _valid(self, info: ValidationInfo) -> CalendarSpec:
        if _stored(info):
            return self
        what = f"the calendar {self.cron()!r} (second minute hour day month weekday)"
        if not croniter.is_valid(self.cron(), second_at_beginning=True):
            raise ValueError(f"{what} matches no time")
        matches_a_date(self.cron(), what)
        return self


class IntervalSpec(WireModel):
    """Every ``every`` seconds, counted from the Unix epoch plus ``offset`` (as Temporal's)."""

    every: Annotated[float, Field(ge=MIN_INTERVAL), BeforeValidator(seconds_of)]
    offset: Annotated[float, Field(ge=0), BeforeValidator(seconds_of)] = 0.0

    @model_validator(mode="after")
    def _offset_within(self) -> IntervalSpec:
        if self.offset >= self.every:
            raise ValueError(f"offset {self.offset} must be less than every ({self.every})")
        return self


class ScheduleSpec(WireModel):
    """When a schedule fires: the union of its cron expressions, calendars, intervals and
    one-off times, within ``start_at`` and ``end_at``."""

    cron_expressions: list[CronExpression] = Field(default_factory=list, max_length=MAX_EXPRESSIONS)
    calendars: list[CalendarSpec] = Field(default_factory=list, max_length=MAX_EXPRESSIONS)
    intervals: list[IntervalSpec] = Field(default_factory=list, max_length=MAX_EXPRESSIONS)
    at: list[UtcTime] = Field(default_factory=list, max_length=MAX_EXPRESSIONS)
    """One-off times."""
    start_at: UtcTime | None = None
    """No fire before this time."""
    end_at: UtcTime | None = None
    """No fire after this time."""
    jitter: Annotated[float, Field(ge=0, le=86400), BeforeValidator(seconds_of)] = 0.0
    """Each start is delayed by up to this many seconds, the same delay for the same fire time."""
    time_zone: str = Field(default="UTC", min_length=1, max_length=64)
    """The IANA zone cron expressions and calendars are read in (DST: see docs/schedules.md)."""

    @field_validator("time_zone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value[:100]!r} is not an IANA time zone (e.g. Europe/Paris, UTC)") from None
        return value

    @model_validator(mode="after")
    def _fires(self) -> ScheduleSpec:
        if not (self.cron_expressions or self.calendars or self.intervals or self.at):
            raise ValueError("a spec needs cron_expressions, calendars, intervals or at")
        if self.start_at and self.end_at and self.end_at <= self.start_at:
            raise ValueError("end_at must be after start_at")
        return self


class ScheduleAction(WireModel):
    """The workflow each fire starts, with id ``<workflow_id>-<fire time, ISO 8601 UTC>``."""

    workflow_type: str = Field(min_length=1, max_length=256, pattern=r"^[^\x00-\x1f\x7f]+$")
    """A code workflow's name, or a registered DAG's id."""
    workflow_id: str | None = Field(
        default=None, min_length=1, max_length=200, pattern=r"^[^\x00-\x1f\x7f/]+$"
    )
    """The runs' id prefix; the schedule's id when absent."""
    input: JSON = None
    execution_timeout: PositiveSeconds | None = None
    search_attributes: SearchAttributes = Field(default_factory=dict)
    memo: Memo = Field(default_factory=dict)


class SchedulePolicy(WireModel):
    overlap: OverlapPolicy = "skip"
    catchup_window: Annotated[float, Field(ge=MIN_CATCHUP_WINDOW), BeforeValidator(seconds_of)] = (
        DEFAULT_CATCHUP_WINDOW
    )
    """Seconds: after downtime, a missed fire no older than this still starts; older ones are
    counted as missed."""
    pause_on_failure: bool = False
    """Pause the schedule when a run it started fails (or times out)."""


class ScheduleState(WireModel):
    paused: bool = False
    note: str = Field(default="", max_length=1000)
    remaining_actions: int | None = Field(default=None, ge=0)
    """Starts left before the schedule stops firing; unlimited when null."""


class Schedule(WireModel):
    action: ScheduleAction
    spec: ScheduleSpec
    policy: SchedulePolicy = Field(default_factory=SchedulePolicy)
    state: ScheduleState = Field(default_factory=ScheduleState)


class ScheduleActionResult(WireModel):
    """One start a schedule made, and how that run ended (null while it is open)."""

    fire_time: UtcTime
    """The time it was for (a trigger's: when it was triggered)."""
    started_at: UtcTime
    workflow_id: str
    status: str | None = None
    """The run's final status; ``REFUSED`` when the start was refused (``reason`` says why)."""
    reason: str | None = None


class ScheduleInfo(WireModel):
    """What a schedule did and will do, kept by its owner."""

    created_at: UtcTime
    updated_at: UtcTime
    next_fire_times: list[UtcTime] = Field(default_factory=list)
    """The next (up to 10) times it fires, unless paused."""
    recent_actions: list[ScheduleActionResult] = Field(default_factory=list)
    """The last (up to 10) starts, oldest first."""
    running: list[str] = Field(default_factory=list)
    """Workflow ids of runs it started that are still open."""
    buffered: int = 0
    """Starts waiting for a running run to close (``buffer_one``, ``buffer_all``, ``cancel_other``)."""
    actions: int = 0
    """Starts made so far."""
    missed: int = 0
    """Fires older than the catch-up window when an engine got to them."""
    skipped: int = 0
    """Fires not taken because a run was open (``skip``, or a buffer already full)."""


class ScheduleDescription(WireModel):
    schedule_id: str
    schedule: Schedule
    info: ScheduleInfo


__all__ = [
    "CalendarSpec",
    "IntervalSpec",
    "OverlapPolicy",
    "Schedule",
    "ScheduleAction",
    "ScheduleActionResult",
    "ScheduleDescription",
    "ScheduleInfo",
    "SchedulePolicy",
    "ScheduleSpec",
    "ScheduleState",
]
