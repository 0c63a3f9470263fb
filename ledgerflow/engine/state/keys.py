"""Key layout of a partition store; one prefix letter per kind of record."""

from __future__ import annotations

RUN = b"r/"
HISTORY = b"h/"
TIMER = b"t/"
SCHEDULE = b"s/"
REQUEST = b"q/"
VISIBLE = b"v/"
"""The visibility index: each workflow's latest run in start-time order (engine/state/visibility.py)."""
POSTING = b"x/"
"""The visibility index's equality postings: one key per (attribute, value, run)."""
META = b"m/"
OPEN_RUNS = META + b"open_runs"
MOVED_TO = META + b"moved_to"
"""Prefix the partition's workflows were moved to by ``ledgerflow reshard`` (the partition is sealed)."""
VISIBILITY_BUILT = META + b"visibility_built"
"""Set once the visibility index holds every run (a store from before the index is filled in steps)."""
OWNER_KEY = META + b"owner"
"""Transactional id of the producer that last owned the partition (to fence it after a crash)."""


def run_key(workflow_id: str) -> bytes:
    """The workflow's latest run state."""
    return RUN + workflow_id.encode()


def history_prefix(workflow_id: str, run_id: str) -> bytes:
    return HISTORY + f"{workflow_id}\x00{run_id}\x00".encode()


def history_key(workflow_id: str, run_id: str, index: int) -> bytes:
    return history_prefix(workflow_id, run_id) + f"{index:010d}".encode()


def timer_key(fire_at: float, workflow_id: str, tag: str) -> bytes:
    """Timers sort by fire time (milliseconds)."""
    return timer_bound(int(fire_at * 1000)) + f"\x00{workflow_id}\x00{tag}".encode()


def timer_bound(millis: int) -> bytes:
    """Sorts before every timer due at ``millis`` and after every earlier one."""
    return TIMER + f"{max(millis, 0):015d}".encode()


def timer_millis(key: bytes) -> int:
    """The fire time of a timer key, in whole milliseconds."""
    return int(key[len(TIMER) : len(TIMER) + 15])


def schedule_key(schedule_id: str) -> bytes:
    """A schedule's record (``engine/schedules.py``), on its id's partition."""
    return SCHEDULE + schedule_id.encode()


def request_prefix(workflow_id: str) -> bytes:
    return REQUEST + f"{workflow_id}\x00".encode()


def request_key(workflow_id: str, request_id: str) -> bytes:
    """Marks an idempotency key as seen."""
    return request_prefix(workflow_id) + request_id.encode()


def workflow_of(key: bytes) -> str | None:
    """The workflow id a key belongs to, or None for a partition's own ``m/`` keys.

    Every record but the partition's metadata belongs to exactly one workflow id,
    which is what lets ``reshard`` move records to the shard of their workflow.
    """
    kind, rest = key[:2], key[2:]
    if kind == META:
        return None
    if kind in (RUN, SCHEDULE):  # a schedule moves with the partition of its id
        return rest.decode()
    if kind in (HISTORY, REQUEST):
        return rest.split(b"\x00", 1)[0].decode()
    if kind == TIMER:
        return rest.split(b"\x00", 2)[1].decode()
    if kind in (VISIBLE, POSTING):
        return rest.rsplit(b"\x00", 1)[1].decode()
    raise ValueError(f"unknown state key {key[:40]!r}")
