"""An activity and a workflow for the worker delivery tests (tests/executors)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from ledgerflow import RetryPolicy, activity, workflow


@activity.defn
def reported(marker_dir: str, seconds: float, size: int) -> str:
    """Appends this worker's process id to ``runs``, sleeps, appends it to ``finished``,
    and returns ``size`` characters."""
    with Path(marker_dir, "runs").open("a") as runs:
        runs.write(f"{os.getpid()}\n")
    time.sleep(seconds)
    with Path(marker_dir, "finished").open("a") as finished:
        finished.write(f"{os.getpid()}\n")
    return "x" * size


@workflow.defn
class Reported:
    """One attempt of ``reported``: a lost or twice-recorded result shows in the run."""

    @workflow.run
    async def run(self, marker_dir: str, seconds: float, size: int) -> int:
        result = await workflow.execute_activity(
            reported,
            marker_dir,
            seconds,
            size,
            start_to_close_timeout=60,
            retry_policy=RetryPolicy(maximum_attempts=1),
        )
        return len(result)


@activity.defn
def sized(size: int) -> str:
    """Returns ``size`` characters."""
    return "x" * size


@workflow.defn
class Sized:
    """Returns the length of ``sized``'s result; the run fails with the activity's failure."""

    @workflow.run
    async def run(self, size: int) -> int:
        return len(await workflow.execute_activity(sized, size, start_to_close_timeout=60))


@activity.defn
def raises(marker_dir: str, size: int) -> None:
    """Appends this worker's process id to ``runs``, then raises with a ``size``-character message."""
    with Path(marker_dir, "runs").open("a") as runs:
        runs.write(f"{os.getpid()}\n")
    raise ValueError("y" * size)


@workflow.defn
class Raises:
    """Three attempts of ``raises``, 0.2 s apart; the run fails with the last failure."""

    @workflow.run
    async def run(self, marker_dir: str, size: int) -> None:
        await workflow.execute_activity(
            raises,
            marker_dir,
            size,
            start_to_close_timeout=60,
            retry_policy=RetryPolicy(initial_interval=0.2, backoff_coefficient=1.0, maximum_attempts=3),
        )
