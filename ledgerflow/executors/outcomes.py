"""What a worker sends for an attempt, made to fit the limits the engine and Kafka apply.

A record Kafka refused would be sent again forever, and a payload over ``max_payload_bytes``
would fail the whole run at the engine. So a worker measures each outcome as the engine will, with
``Settings.check_size``: the result's or failure's JSON plus what its history event adds
(``EVENT_ENVELOPE_BYTES``) against ``max_payload_bytes``. A result over it is replaced by a
non-retryable ``PayloadTooLarge`` failure; a failure over it is cut until it fits. The record
then fits ``max_record_bytes`` too: a payload is at most a third of it, and the rest of the
record (two ids of at most 256 characters, a few numbers) takes a few KiB at most.
"""

from __future__ import annotations

import logging

from pydantic_core import to_json

from ledgerflow.config import Settings
from ledgerflow.errors import PayloadTooLarge
from ledgerflow.failures import fit_failure
from ledgerflow.schemas.commands import TaskCompleted, TaskFailed, TaskHeartbeat
from ledgerflow.schemas.common import Failure
from ledgerflow.schemas.events import EVENT_ENVELOPE_BYTES

log = logging.getLogger("ledgerflow.worker")

Outcome = TaskCompleted | TaskFailed


def outcome_record(outcome: Outcome, activity_type: str, settings: Settings) -> bytes:
    """The record value to send for ``outcome``: itself when it fits, else a failure that does."""
    what = "result" if isinstance(outcome, TaskCompleted) else "failure"

    def named() -> str:
        return f"the {what} of activity {activity_type!r} (attempt {outcome.attempt})"

    try:
        settings.check_size("max_payload_bytes", _payload_size(outcome) + EVENT_ENVELOPE_BYTES, named)
    except PayloadTooLarge as too_large:
        log.warning("%s: %s", too_large, "cut to fit" if what == "failure" else "sent as a failure")
        return _fitted(outcome, too_large, settings.max_payload_bytes - EVENT_ENVELOPE_BYTES)
    return outcome.model_dump_json().encode()


def heartbeat_record(beat: TaskHeartbeat, activity_type: str, settings: Settings) -> bytes:
    """The record value of a heartbeat; details over ``max_payload_bytes`` are left out (the
    engine keeps the last ones in the run's state, where every payload is bounded by it)."""
    try:
        settings.check_size(
            "max_payload_bytes",
            _size(beat.details),
            lambda: f"the heartbeat details of activity {activity_type!r} (attempt {beat.attempt})",
        )
    except PayloadTooLarge as too_large:
        log.warning("%s: the heartbeat is sent without them", too_large)
        beat = beat.model_copy(update={"details": None})
    return beat.model_dump_json().encode()


def _fitted(outcome: Outcome, too_large: PayloadTooLarge, room: int) -> bytes:
    """A failed outcome whose failure takes at most ``room`` bytes, in place of ``outcome``."""
    if isinstance(outcome, TaskFailed):
        failure = outcome.failure
    else:
        failure = Failure(
            type="PayloadTooLarge",
            message=f"{too_large}: store large data elsewhere and return a reference",
            non_retryable=True,
        )
    fitted = TaskFailed(
        workflow_id=outcome.workflow_id,
        run_id=outcome.run_id,
        seq=outcome.seq,
        attempt=outcome.attempt,
        request_id=outcome.request_id,
        failure=fit_failure(failure, room),
    )
    return fitted.model_dump_json().encode()


def _payload_size(outcome: Outcome) -> int:
    return _size(outcome.result if isinstance(outcome, TaskCompleted) else outcome.failure)


def _size(value: object) -> int:
    """Bytes of ``value``'s JSON, as pydantic writes it in a record."""
    return len(to_json(value))
