"""What goes wrong inside an engine, by name: each under ``EngineError`` (a ``LedgerflowError``)."""

from __future__ import annotations

from ledgerflow.errors import LedgerflowError


class EngineError(LedgerflowError):
    """Root of the errors an engine raises about itself, its code or its Kafka calls."""


class WorkflowTypeNotLoaded(EngineError):
    """An open run's code workflow type is not loaded on this engine (see ``--workflows``)."""

    def __init__(self, workflow_type: str) -> None:
        super().__init__(
            f"workflow type {workflow_type!r} is not loaded on this engine (start it with "
            f"--workflows naming the module that defines it)"
        )
        self.workflow_type = workflow_type


class RunBlocked(EngineError):
    """An open run's code cannot go on here: it no longer replays the run's history (a deploy
    changed it without ``workflow.patched``), or its type is not loaded on this engine. The run
    stays open and holds what arrives for it until code that replays is deployed."""

    def __init__(self, workflow_id: str, reason: str) -> None:
        super().__init__(f"run of {workflow_id!r} blocked: {reason}")
        self.workflow_id = workflow_id
        self.reason = reason


class UnknownQueryError(EngineError):
    """A query names no ``@workflow.query`` method of the run's workflow."""


class HistoryGapError(EngineError):
    """A run's stored history misses an event: an invariant is broken, nothing is applied."""


class ChangelogReadError(EngineError):
    """Reading a partition's changelog failed (restore, or going back to the last commit)."""


class UndeliveredRecordError(EngineError):
    """A record of a batch's transaction was refused by Kafka: the transaction is aborted."""


class UnusableQueueError(EngineError):
    """A task queue's topic cannot be created; the batch is retried with its runs failing."""


class StuckCallError(EngineError):
    """A Kafka call did not return in time; the client it was made on must not be used again."""
