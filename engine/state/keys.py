"""Key layout of a partition store; one prefix letter per kind of record."""

from __future__ import annotations

RUN = b"r/"
HISTORY = b"h/"
TIMER = b"t/"
REQUEST = b"q/"
META = b"m/"
OPEN_RUNS = META + b"open_runs"
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
    return TIMER + f"{int(fire_at * 1000):015d}\x00{workflow_id}\x00{tag}".encode()


def request_key(workflow_id: str, request_id: str) -> bytes:
    """Marks an idempotency key as seen."""
    return REQUEST + f"{workflow_id}\x00{request_id}".encode()
