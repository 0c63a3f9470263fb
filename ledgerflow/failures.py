"""Failures made to fit a byte budget: a worker's attempt failure, an engine's workflow failure.

A failure is text of any size (a message, a traceback, details, a chain of causes); a record has
a limit (``max_payload_bytes``). These cut a failure to fit, keeping what a person reads first.
"""

from __future__ import annotations

from pydantic_core import to_json

from ledgerflow.schemas.common import Failure

TEXT_ROOM = 512
"""Bytes kept for a cut failure's message and stack before its details are dropped."""
TYPE_ROOM = 128
"""Bytes of JSON a failure type keeps when its failure has to be cut to make room."""


def fit_failure(failure: Failure, room: int) -> Failure:
    """``failure`` with its JSON cut to at most ``room`` bytes (``room`` of 512 bytes or more).

    The message keeps its start, the stack its start and its end (the outer calls, and the
    innermost ones with the error), each marked with how many bytes were cut. What says what
    went wrong comes first: when the failure's own texts (``TEXT_ROOM``) and its cause do not fit
    beside its details, the details are dropped, with a note saying so; then a cause that still
    does not fit is cut in turn to the room left (and dropped when that is too little for it).
    A failure that fits is returned as is.
    """
    if _size(failure) <= room:
        return failure
    own = failure.model_copy(update={"message": "", "stack": None, "cause": None})
    cause_size = _size(failure.cause) if failure.cause is not None else 0
    if _size(own) + TEXT_ROOM + cause_size > room:
        dropped = f"[{_size(failure.details)} bytes of details dropped to fit the payload limit]"
        own = own.model_copy(update={"type": _cut(failure.type, TYPE_ROOM), "details": dropped})
    bare = own
    if failure.cause is not None:
        # The cause (an ActivityError's is the activity's own failure) keeps the room this
        # failure's own texts do not need.
        cause_room = room - _size(own) - 2 * TEXT_ROOM
        cause = failure.cause if cause_size <= cause_room else None
        if cause is None and cause_room >= 2 * TEXT_ROOM:
            cause = fit_failure(failure.cause, cause_room)
        bare = own.model_copy(update={"cause": cause})
    # Both texts replace their placeholder in ``bare``: "" for the message, null for the stack.
    free = room - _size(bare) + len(b'""')
    if failure.stack is None:
        return bare.model_copy(update={"message": _cut(failure.message, free)})
    free += len(b"null")
    message = _cut(failure.message, max(free // 2, free - _size(failure.stack)))
    stack = _cut(failure.stack, free - _size(message), middle=True)
    return bare.model_copy(update={"message": message, "stack": stack})


def same_or_cut(full: str, recorded: str) -> bool:
    """True when ``recorded`` is ``full``, or ``full`` cut at its end by ``fit_failure`` (what a
    replay of a failure's message finds in history when the message was over the room)."""
    if recorded == full:
        return True
    head, marker, rest = recorded.rpartition("… [")
    return bool(marker) and rest.endswith(" bytes cut]") and full.startswith(head) and len(full) > len(head)


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


def _size(value: object) -> int:
    """Bytes of ``value``'s JSON, as pydantic writes it in a record."""
    return len(to_json(value))
