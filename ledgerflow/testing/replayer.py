"""Replay recorded runs against today's workflow code: a deploy's determinism check, as a library.

    from ledgerflow import Client
    from ledgerflow.testing import Replayer

    replayer = Replayer(workflows=[Checkout])
    with Client() as client:
        for run in client.list_workflows(workflow_type="Checkout", limit=200):
            replayer.replay_workflow(client.fetch_history(run["workflow_id"], run["run_id"]))

``replay_workflow`` raises ``NonDeterminismError`` at a run's first divergence (the same check
the engine makes when it rebuilds a run, plus the payloads: arguments, timers, results), so a
test that replays a sample of production histories fails before a deploy would block them.
``ledgerflow replay`` is the same check from the command line.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ledgerflow.codec.base import PayloadCodec
from ledgerflow.engine.workflow.replayer import ReplayResult, replay_run
from ledgerflow.errors import NonDeterminismError
from ledgerflow.schemas.history import WorkflowHistory
from ledgerflow.sdk.definition import WorkflowRegistry, definition_of


@dataclass(frozen=True)
class ReplayResults:
    """What ``replay_workflows`` found: one result per history, in order."""

    results: list[ReplayResult] = field(default_factory=list)

    @property
    def failures(self) -> dict[str, NonDeterminismError]:
        """The runs that did not replay, by run id, each with its first divergence."""
        return {
            r.run_id: NonDeterminismError(r.workflow_id, r.divergence)
            for r in self.results
            if r.divergence is not None
        }


class Replayer:
    """Replays histories with the given ``@workflow.defn`` classes or functions.

    ``codec``: the payload codec, for histories of encrypted payloads (the engines' key file:
    ``ledgerflow.codec.keyfile.load_codec``).
    """

    def __init__(self, *, workflows: Sequence[Any], codec: PayloadCodec | None = None) -> None:
        if not workflows:
            raise ValueError("a Replayer needs the workflows to replay (workflows=[...])")
        self._registry = WorkflowRegistry(definition_of(w) for w in workflows)
        self._codec = codec

    def replay_workflow(
        self, history: WorkflowHistory, *, raise_on_replay_failure: bool = True
    ) -> ReplayResult:
        """Replay one run. A divergence raises ``NonDeterminismError`` (or, with
        ``raise_on_replay_failure=False``, is the result's ``divergence``); a history of a
        workflow type not given raises ``LookupError``."""
        result = replay_run(self._registry, history.workflow_id, history.run_id, history.events, self._codec)
        if raise_on_replay_failure and result.divergence is not None:
            raise NonDeterminismError(history.workflow_id, f"run {history.run_id}: {result.divergence}")
        return result

    def replay_workflows(
        self, histories: Iterable[WorkflowHistory], *, raise_on_replay_failure: bool = True
    ) -> ReplayResults:
        """Replay every run; raise at the first divergence, or (``raise_on_replay_failure=False``)
        replay them all and report each divergence in ``ReplayResults.failures``. A history that
        cannot be replayed at all (a workflow type not given, payloads without their codec)
        raises either way."""
        results = [
            self.replay_workflow(history, raise_on_replay_failure=raise_on_replay_failure)
            for history in histories
        ]
        return ReplayResults(results)


__all__ = ["ReplayResult", "ReplayResults", "Replayer"]
