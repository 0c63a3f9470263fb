"""Helpers for testing code that uses Ledgerflow (like ``temporalio.testing``).

:class:`Replayer` replays recorded runs against new workflow code (a deploy's determinism check);

:mod:`ledgerflow.testing.invariants` checks a workflow's history and state;
:mod:`ledgerflow.testing.kafka` finds or starts a Kafka for a test session;
:mod:`ledgerflow.testing.chaos` and :mod:`ledgerflow.testing.fuzz` drive failures and hostile
input. The processes and ports they use are in :mod:`ledgerflow.local`.
"""

from ledgerflow.testing.replayer import Replayer, ReplayResults

__all__ = ["ReplayResults", "Replayer"]
