"""Activities used by the integration tests (run by real worker processes)."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

from ledgerflow import ApplicationError, activity

_attempts: dict[str, int] = {}
PROCESS = f"{os.getpid()}-{uuid.uuid4().hex[:8]}"
"""This worker process, told apart from a later one even when it gets the same pid (a busy
machine's pid counter wraps: CI saw a killed worker's pid given to the next worker)."""


@activity.defn
def add_one(n: int) -> int:
    return n + 1


@activity.defn
async def double(n: int) -> int:
    return n * 2


@activity.defn
def fail_times(key: str, failures: int) -> str:
    info = activity.info()
    if info.attempt <= failures:
        raise RuntimeError(f"{key}: planned failure on attempt {info.attempt}")
    return f"{key} ok on attempt {info.attempt}"


@activity.defn
def flaky_add_one(n: int, failures: int) -> int:
    """``n + 1``, after failing the first ``failures`` attempts: retries whose result is known."""
    attempt = activity.info().attempt
    if attempt <= failures:
        raise RuntimeError(f"planned failure on attempt {attempt}")
    return n + 1


@activity.defn
def always_fails() -> str:
    raise ApplicationError("card declined", type="CardDeclined", non_retryable=True)


@activity.defn
def write_marker(marker_dir: str, name: str) -> str:
    Path(marker_dir, name).write_text(str(time.time()))
    return name


@activity.defn
def slow_until_cancelled(marker_dir: str) -> str:
    """Heartbeats until cancelled; leaves 'cancelled' behind when it was."""
    Path(marker_dir, "started").write_text(str(os.getpid()))
    for _ in range(600):
        try:
            activity.heartbeat()
        except activity.ActivityCancelledError:
            Path(marker_dir, "cancelled").write_text(str(time.time()))
            raise
        time.sleep(0.1)
    return "finished"


@activity.defn
def count_runs(marker_dir: str) -> str:
    """Records each run; the first run takes long enough for the test to kill its worker."""
    runs = Path(marker_dir, "runs")
    with runs.open("a") as handle:
        handle.write(f"{PROCESS}\n")
    count = len(runs.read_text().splitlines())
    if count == 1:
        time.sleep(30)
    return f"run {count}"


@activity.defn
def silent_sleeper(seconds: float) -> str:
    """Runs without heartbeating."""
    time.sleep(seconds)
    return "woke"


@activity.defn
def huge_result() -> str:
    return "x" * 1_000_000


@activity.defn
def worker_pid() -> int:
    """The process id of the worker that ran this attempt."""
    return os.getpid()


@activity.defn
def await_approval(token_dir: str) -> Any:
    """Completed by whoever approves (its result is theirs): writes its task token, one file per
    attempt."""
    info = activity.info()
    Path(token_dir, f"attempt-{info.attempt}").write_text(info.task_token)
    activity.raise_complete_async()


@activity.defn
async def buggy_add_one(n: int) -> int:
    """``add_one`` with a bug while ``LEDGERFLOW_TEST_BUG`` is set: it fails for good."""
    if os.environ.get("LEDGERFLOW_TEST_BUG"):
        raise ApplicationError("off by one", type="Bug", non_retryable=True)
    return n + 1


@activity.defn
def tally(order: dict[str, Any]) -> dict[str, Any]:
    """One a DAG node may run: its one argument takes the node's rendered input."""
    return {"lines": len(order.get("lines", []))}
