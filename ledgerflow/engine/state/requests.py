"""What the engine recorded under a command's request id (``keys.request_key``).

A start's record names the run it led to (the one it opened, found open, or handed its signal
to): a caller that repeats the start, or waits for it to be applied, learns which run that was.
A start waiting for its workflow type is recorded as pending until it is decided. Other commands
record that they were applied. A refused start records why, so its caller hears the engine's own
decision; a refusal does not count as applied, so the same request id may be sent again (say,
once capacity frees) and is then decided afresh, and it is deleted after ``REFUSAL_KEPT``.

A record is a run id (ids hold no control characters) or starts with one of the marker bytes.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Literal

APPLIED = b"\x01"
"""The record of an applied command that is not a start."""
PENDING = b"\x02"
"""The record of a start waiting for its workflow type (``engine/starts.py``): taken, not decided."""
REFUSED = b"\x00"
"""The first byte of a refused start's record (a JSON ``StartRefusal`` follows)."""
LEGACY_APPLIED = b"1"
"""What engines before these markers recorded for an applied command that is not a start."""
REFUSAL_KEPT = 600.0
"""Seconds a refusal is kept for its caller (a handle returned before the decision asks for it
from ``result``) before it is deleted: refused starts of ids that never get a run would otherwise
stay in the partition's state for good."""

RefusalKind = Literal["already_started", "capacity", "limit", "rejected"]


@dataclass(frozen=True)
class StartRefusal:
    """Why the engine did not apply a start.

    ``already_started``: an id policy refused it (``run_id``/``status``: the run that holds the
    id); ``capacity``: the partition or engine is at its open-run limit; ``limit``: the start
    itself breaks a limit (its input is too large, say; ``error`` names the error class);
    ``rejected``: the engine could not apply it (it went to the dead-letter topic with ``message``).
    """

    kind: RefusalKind
    message: str
    run_id: str | None = None
    status: str | None = None
    error: str | None = None
    start_run_id: str | None = None
    """The run id the refused start asked for: a caller that sent the request again (with a new
    run id) tells this refusal of an earlier send from the decision on its own."""
    refused_at: float | None = None
    """When (the batch's clock): the record is kept ``REFUSAL_KEPT`` from then."""

    def encode(self) -> bytes:
        return REFUSED + json.dumps(asdict(self), separators=(",", ":")).encode()


def taken(raw: bytes | None) -> bool:
    """Whether a record says its command was applied, or is pending (a refusal was not: the
    request may be sent again)."""
    return raw is not None and not raw.startswith(REFUSED)


def decided(raw: bytes | None) -> bool:
    """Whether a record says its command was applied (not pending, not refused)."""
    return taken(raw) and raw != PENDING


def started_run(raw: bytes | None) -> str | None:
    """The run an applied start led to, or None (no record, pending, a refusal, another command)."""
    if not decided(raw) or raw in (APPLIED, LEGACY_APPLIED):
        return None
    assert raw is not None
    return raw.decode()


def refusal(raw: bytes | None) -> StartRefusal | None:
    """The refusal a record holds, or None."""
    if raw is None or not raw.startswith(REFUSED):
        return None
    return StartRefusal(**json.loads(raw[len(REFUSED) :]))
