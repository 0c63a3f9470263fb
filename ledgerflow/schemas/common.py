"""Value objects shared by commands, events and tasks."""

from __future__ import annotations

import math
from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    TypeAdapter,
    field_validator,
)
from pydantic_core import CoreSchema, core_schema

JSON = Any
"""A JSON value: what pydantic turns payloads into on the wire."""


RunStatus = Literal["RUNNING", "COMPLETED", "FAILED", "CANCELED", "TERMINATED", "CONTINUED_AS_NEW"]
"""Where a run is: open (RUNNING), or how it closed."""

ID_MAX_LENGTH = 256
NAMESPACE_PATTERN = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
"""A namespace name (ledgerflow/namespaces.py): 1 to 63 of a-z, 0-9 and '-', not at either end."""
BARE_ID_PATTERN = r"^[^\x00-\x1f\x7f/]+$"
ID_PATTERN = rf"^(?:{NAMESPACE_PATTERN}/)?[^\x00-\x1f\x7f/]+$"
BARE_ID_RULE = "1 to 256 characters, none of them a control character (\\x00-\\x1f, \\x7f) or '/'"
ID_RULE = f"{BARE_ID_RULE}, after an optional '<namespace>/'"
"""The one rule for workflow, run, request and definition ids, wherever they come from.

An id is a Kafka key and part of RocksDB keys, where ``\\x00`` separates an id from what
follows (ledgerflow/engine/state/keys.py), and a URL path segment at the gateway, where ``/`` would
split it; control characters have no place in either, nor in logs. Callers name bare ids
(``BareId``); inside the engine an id of a namespace other than the default one carries it
as a prefix, ``<namespace>/<id>`` (``Id``).
"""


class _IdRule:
    """Validates an id against a pattern in pydantic's core (no Python call per id), with one
    error (``invalid_id``) that says the rule, and the rule in the JSON Schema."""

    def __init__(self, pattern: str, rule: str) -> None:
        self.pattern = pattern
        self.rule = rule

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.custom_error_schema(
            core_schema.str_schema(pattern=self.pattern, min_length=1, max_length=ID_MAX_LENGTH),
            custom_error_type="invalid_id",
            custom_error_message=f"an id is {self.rule}",
        )


Id = Annotated[str, _IdRule(ID_PATTERN, ID_RULE)]
"""A workflow, run, request or definition id as the engine holds it: ``<namespace>/`` and a bare
id, or a bare id (the default namespace). See ``ID_RULE``."""
BareId = Annotated[str, _IdRule(BARE_ID_PATTERN, BARE_ID_RULE)]
"""An id as a caller of the gateway names it, within its namespace (``BARE_ID_RULE``)."""
id_adapter: TypeAdapter[str] = TypeAdapter(Id)
bare_id_adapter: TypeAdapter[str] = TypeAdapter(BareId)


class WireModel(BaseModel):
    """Base of every wire model: camelCase-free, strict about unknown fields."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


def seconds_of(value: object) -> object:
    """A duration given as a ``timedelta`` in seconds (as temporalio's RetryPolicy takes them)."""
    return value.total_seconds() if isinstance(value, timedelta) else value


PositiveSeconds = Annotated[float, Field(gt=0), BeforeValidator(seconds_of)]
"""Seconds (more than 0), given as a number or a ``timedelta``; stored and sent as a number."""


class RetryPolicy(WireModel):
    """How a failed activity attempt is retried.

    The delay before attempt ``n + 1`` is
    ``min(initial_interval * backoff_coefficient ** (n - 1), maximum_interval)``.
    """

    initial_interval: PositiveSeconds = 1.0
    """Seconds to wait before the first retry."""
    backoff_coefficient: float = Field(default=2.0, ge=1.0)
    """Multiplier applied to the delay after each failed attempt."""
    maximum_interval: PositiveSeconds | None = 100.0
    """Upper bound on the delay between attempts, in seconds."""
    maximum_attempts: int = Field(default=0, ge=0)
    """Attempts in all, the first included; 0 means unlimited."""
    non_retryable_error_types: tuple[str, ...] = ()
    """Error type names that fail the activity at once."""

    def delay_after(self, attempt: int) -> float | None:
        """Seconds to wait after failed ``attempt`` (1-based), or None when attempts are spent."""
        if self.maximum_attempts and attempt >= self.maximum_attempts:
            return None
        try:
            delay = self.initial_interval * self.backoff_coefficient ** (attempt - 1)
        except OverflowError:  # e.g. 2.0 ** 1025 after a day of capped retries
            delay = math.inf
        if self.maximum_interval is not None:
            delay = min(delay, self.maximum_interval)
        return delay

    @staticmethod
    def seconds(value: float | timedelta | None) -> float | None:
        """Normalise a duration given as seconds or a timedelta."""
        return None if value is None else float(seconds_of(value))  # type: ignore[arg-type]


class Failure(WireModel):
    """A failure as it travels: an activity's exception, a timeout, a cancellation."""

    type: str
    """Name of the error type, e.g. ``ValueError`` or ``Timeout``."""
    message: str
    """Human-readable message."""
    non_retryable: bool = False
    """True when the raiser asked for no retry."""
    details: JSON = None
    """Extra JSON details."""
    stack: str | None = None
    """Traceback text from where it was raised, when known."""
    cause: Failure | None = None
    """The failure that led to this one: under an ``ActivityError`` the activity's own failure,
    under an exception raised ``from`` another that other one (at most ``MAX_CAUSE_DEPTH``
    deep)."""
    activity_type: str | None = None
    """Set on an ``ActivityError``: the type of the activity that failed."""
    seq: int | None = Field(default=None, ge=1)
    """Set on an ``ActivityError`` or ``ChildWorkflowError``: the history's sequence number of
    the command that scheduled the activity or started the child."""

    @field_validator("cause")
    @classmethod
    def _bounded_chain(cls, cause: Failure | None) -> Failure | None:
        depth, link = 1, cause
        while link is not None:
            depth += 1
            if depth > MAX_CAUSE_DEPTH:
                raise ValueError(f"a failure's cause chain may be at most {MAX_CAUSE_DEPTH} deep")
            link = link.cause
        return cause


MAX_CAUSE_DEPTH = 16
"""Failures in one chain (a failure and its causes): deeper chains are cut when made
(``failure_from_exception``) and refused when received."""


QUEUE_PATTERN = r"^[A-Za-z0-9._-]{1,128}$"
"""A task queue names a Kafka topic (``<prefix>tasks.<queue>``): letters, digits, ``.``, ``_``, ``-``."""


class ActivityOptions(WireModel):
    """Per-call options of an activity (code workflows) or a node (DAG workflows)."""

    queue: str = Field(default="default", pattern=QUEUE_PATTERN)
    """Task queue whose workers run it."""
    start_to_close_timeout: float | None = Field(default=None, gt=0)
    """Seconds one attempt may take before it is failed as timed out."""
    schedule_to_close_timeout: float | None = Field(default=None, gt=0)
    """Seconds all attempts together may take."""
    heartbeat_timeout: float | None = Field(default=None, gt=0)
    """Seconds between heartbeats before an attempt is failed as timed out."""
    retry: RetryPolicy = RetryPolicy()
    """Retry policy for failed attempts."""
    node: str | None = None
    """The DAG node this activity runs, recorded for timelines (None in code workflows)."""
