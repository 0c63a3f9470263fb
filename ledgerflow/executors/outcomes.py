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
from ledgerflow.schemas.commands import TaskCompleted, TaskFailed, TaskHeartbeat
from ledgerflow.schemas.common import Failure
from ledgerflow.schemas.events import EVENT_ENVELOPE_BYTES

log = logging.getLogger("ledgerflow.worker")

Outcome = TaskCompleted | TaskFailed
TEXT_ROOM = 512
"""Bytes kept for a cut failure's message and stack before its details are dropped."""
TYPE_ROOM = 128
"""Bytes of JSON a failure type keeps when its failure has to be cut to make room."""


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


def fit_failure(failure: Failure, room: int) -> Failure:
    """``failure`` with its JSON cut to at most ``room`` bytes (``room`` of 512 bytes or more).

    The message keeps its start, the stack its start and its end (the outer calls, and the
    innermost ones with the error), each marked with how many bytes were cut; details that
    leave the two less than ``TEXT_ROOM`` are dropped, with a note saying so. A failure that
    fits is returned as is.
    """
    if _size(failure) <= room:
        return failure
    bare = failure.model_copy(update={"message": "", "stack": None})
    if _size(bare) + TEXT_ROOM > room:
        dropped = f"[{_size(failure.details)} bytes of details dropped to fit the payload limit]"
        bare = bare.model_copy(update={"type": _cut(failure.type, TYPE_ROOM), "details": dropped})
    # Both texts replace their placeholder in ``bare``: "" for the message, null for the stack.
    free = room - _size(bare) + len(b'""')
    if failure.stack is None:
        return bare.model_copy(update={"message": _cut(failure.message, free)})
    free += len(b"null")
    message = _cut(failure.message, max(free // 2, free - _size(failure.stack)))
    stack = _cut(failure.stack, free - _size(message), middle=True)
    return bare.model_copy(update={"message": message, "stack": stack})


def _cut(text: str, room: int, middle: bool = False) -> str:
    """``text`` whose JSON string takes at most ``room`` bytes, cut at its end (or in its
    ``middle``, keeping both ends), with a marker saying how many bytes were cut."""
    if _size(text) <= room:
        return text
    size = len(text.encode())
    keep = min(len(text), room)  # characters: each takes at least a byte of JSON
    while True:
        tail = keep // 2 if middle else 0
        head, end = text[: keep - tail], text[len(text) - tail :]
        marker = f"… [{size - len(head.encode()) - len(end.encode())} bytes cut]"
        candidate = f"{head}{marker} …{end}" if middle else f"{head}{marker}"
        over = _size(candidate) - room
        if over <= 0:
            return candidate
        if keep == 0:
            return ""
        keep = max(0, keep - over)


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
