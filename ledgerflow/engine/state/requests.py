"""What the engine recorded under a command's request id (``keys.request_key``).

A start's record names the run it led to (the one it opened, found open, or handed its signal
to): a caller that repeats the start, or waits for it to be applied, learns which run that was.
Other commands record that they were applied. A refused start records why, so its caller hears
the engine's own decision; a refusal does not count as applied, so the same request id may be
sent again (say, once capacity frees) and is then decided afresh.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Literal

APPLIED = b"1"
"""The record of an applied command that is not a start."""
REFUSED = b"!"
"""The first byte of a refused start's record (a JSON ``StartRefusal`` follows)."""

RefusalKind = Literal["already_started", "capacity", "limit"]


@dataclass(frozen=True)
class StartRefusal:
    """Why the engine did not apply a start.

    ``already_started``: an id policy refused it (``run_id``/``status``: the run that holds the
    id); ``capacity``: the partition or engine is at its open-run limit; ``limit``: the start
    itself breaks a limit (its input is too large, say; ``error`` names the error class).
    """

    kind: RefusalKind
    message: str
    run_id: str | None = None
    status: str | None = None
    error: str | None = None
    start_run_id: str | None = None
    """The run id the refused start asked for: a caller that sent the request again (with a new
    run id) tells this refusal of an earlier send from the decision on its own."""

    def encode(self) -> bytes:
        return REFUSED + json.dumps(self.__dict__, separators=(",", ":")).encode()


def taken(raw: bytes | None) -> bool:
    """Whether a record says its command was applied (a refusal was not: it may be sent again)."""
    return raw is not None and not raw.startswith(REFUSED)


def started_run(raw: bytes | None) -> str | None:
    """The run an applied start led to, or None (no record, a refusal, another command)."""
    if not taken(raw) or raw == APPLIED:
        return None
    assert raw is not None
    return raw.decode()


def refusal(raw: bytes | None) -> StartRefusal | None:
    """The refusal a record holds, or None."""
    if raw is None or not raw.startswith(REFUSED):
        return None
    return StartRefusal(**json.loads(raw[len(REFUSED) :]))
