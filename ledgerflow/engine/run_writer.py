"""What the parts of a partition's state machine share: the batch being built and the history
writes every change goes through.

``PartitionProcessor`` implements it; ``ActivityAttempts`` (attempts.py), ``Starts``
(starts.py) and ``Resets`` (resets.py) act on runs through it alone, so each part sees only what
it needs.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Protocol

from ledgerflow.engine.context import EngineContext
from ledgerflow.engine.outbox import Outbox
from ledgerflow.engine.state.models import RunState
from ledgerflow.engine.state.requests import StartRefusal
from ledgerflow.engine.state.store import StoreTransaction
from ledgerflow.engine.timers import TimerIndex
from ledgerflow.errors import TooManyPending
from ledgerflow.schemas import commands as c
from ledgerflow.schemas import events as ev
from ledgerflow.schemas.lifecycle import LifecycleType


class RunWriter(Protocol):
    """The current batch of one partition and the writes that record a run's changes."""

    partition: int
    ctx: EngineContext
    now: float
    """The batch's clock: every event and timer of the batch is stamped with it."""
    out: Outbox
    txn: StoreTransaction
    timers: TimerIndex
    open_runs: int

    def run(self, workflow_id: str) -> RunState | None:
        """The workflow's latest run (read into the batch), or None."""
        ...

    def history(self, workflow_id: str, run_id: str, length: int) -> list[ev.HistoryEvent]:
        """The first ``length`` events of a run (as this batch sees them)."""
        ...

    def append(self, run: RunState, event_type: type[Any], **fields: Any) -> None:
        """Record an event the workflow code need not see."""
        ...

    def deliver(self, run: RunState, event_type: type[Any], **fields: Any) -> None:
        """Record an input event and let the workflow code react to it."""
        ...

    def lifecycle(self, run: RunState, kind: LifecycleType, index: int | None, data: Any) -> None:
        """Publish a lifecycle event of the run (the events topic)."""
        ...

    def add_timer(self, run: RunState, kind: Any, fire_at: float, seq: int = 0, attempt: int = 0) -> None:
        """Set a durable timer of the run."""
        ...

    def open_run(
        self, command: c.StartWorkflow, previous: RunState | None, continued_from: str | None
    ) -> RunState:
        """Start a run as ``command`` asks (admitted already)."""
        ...

    def begin_run(self, run: RunState) -> None:
        """Make ``run`` the workflow's latest run, open (its history is still to be written)."""
        ...

    def record(self, run: RunState, raw: bytes, event_type: type[Any]) -> None:
        """Append an event already serialized (``raw``, numbered as the run's next) to its history."""
        ...

    def tell_schedule(self, workflow_id: str, attributes: Any, status: str, reason: str | None) -> None:
        """Tell the schedule that started ``workflow_id`` (if one did) that its run is over."""
        ...

    def terminate(self, run: RunState, reason: str, notify_parent: bool = True) -> None:
        """Close an open run as terminated (its code is not asked); its parent, if any, is told
        unless ``notify_parent`` is False (a reset: the run that replaces it reports instead)."""
        ...

    def signal(self, run: RunState, name: str, payload: Any) -> None:
        """Deliver a signal to an open run."""
        ...

    def record_start(self, command: c.StartWorkflow) -> None:
        """Record what a start waiting for its workflow type led to."""
        ...

    def refuse_start(self, command: c.StartWorkflow, refusal: StartRefusal) -> None:
        """Record why a start was refused, for its caller."""
        ...

    def savepoint(self, workflow_id: str | None) -> AbstractContextManager[None]:
        """Undo everything done inside it, for this workflow, when it raises."""
        ...


def check_room(writer: RunWriter, run: RunState, held: int, what: str, setting: str) -> None:
    """Refuse one more of ``what`` when the run already holds its limit (``setting``)."""
    limit: int = getattr(writer.ctx.settings, setting)
    if held >= limit:
        raise TooManyPending(run.run_id, what, limit, setting)
