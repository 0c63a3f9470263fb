"""Helpers for testing code that uses Ledgerflow (like ``temporalio.testing``).

:class:`WorkflowEnvironment` runs workflows in-process, without Kafka, with time that skips;
:class:`ActivityEnvironment` runs one activity function with an attempt context;
:class:`Replayer` replays recorded runs against new workflow code (a deploy's determinism check);

:mod:`ledgerflow.testing.invariants` checks a workflow's history and state;
:mod:`ledgerflow.testing.kafka` finds or starts a Kafka for a test session;
:mod:`ledgerflow.testing.chaos` and :mod:`ledgerflow.testing.fuzz` drive failures and hostile
input. The processes and ports they use are in :mod:`ledgerflow.local`.
"""

from ledgerflow.testing.activity_environment import ActivityEnvironment
from ledgerflow.testing.environment import DeadLetter, WorkflowEnvironment
from ledgerflow.testing.replayer import Replayer, ReplayResults

__all__ = ["ActivityEnvironment", "DeadLetter", "ReplayResults", "Replayer", "WorkflowEnvironment"]
