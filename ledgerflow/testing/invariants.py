"""The engine's promises, checked on a recorded run.

- history is gap-free (indices 1..n);
- each activity attempt has at most one recorded outcome;
- the run closes at most once, and nothing follows its closing event;
- the run's state equals the replay of its history (for code workflows, the
  code replays without divergence and reaches the recorded ending).
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from ledgerflow.engine.state.models import CLOSING_STATUS
from ledgerflow.engine.workflow.context import WorkflowInfo
from ledgerflow.engine.workflow.dag import DAG_WORKFLOW
from ledgerflow.engine.workflow.definition import WorkflowRegistry
from ledgerflow.engine.workflow.instance import WorkflowInstance
from ledgerflow.engine.workflow.replayer import replay
from ledgerflow.schemas import events as ev


def check_run(
    state: dict[str, Any], history: list[ev.HistoryEvent], registry: WorkflowRegistry | None = None
) -> list[str]:
    """Every broken invariant of one run (empty when all hold)."""
    problems: list[str] = []
    workflow_id = state["workflow_id"]
    indices = [e.index for e in history]
    if indices != list(range(1, len(history) + 1)):
        problems.append(f"{workflow_id}: history not gap-free: {indices}")
    if len(history) != state["history_length"]:
        problems.append(
            f"{workflow_id}: state says {state['history_length']} events, history has {len(history)}"
        )
    outcomes = Counter(
        (e.seq, e.attempt)
        for e in history
        if isinstance(e, (ev.ActivityCompleted, ev.ActivityAttemptFailed, ev.ActivityFailed))
    )
    problems += [f"{workflow_id}: attempt {k} recorded {n} outcomes" for k, n in outcomes.items() if n > 1]
    closing = [i for i, e in enumerate(history) if isinstance(e, ev.CLOSING_EVENTS)]
    if len(closing) > 1:
        problems.append(f"{workflow_id}: closed {len(closing)} times")
    if closing and closing[0] != len(history) - 1:
        problems.append(f"{workflow_id}: events after the closing event")
    expected_status = CLOSING_STATUS[type(history[closing[0]])] if closing else "RUNNING"
    if state["status"] != expected_status:
        problems.append(f"{workflow_id}: state status {state['status']} but history says {expected_status}")
    last = history[closing[0]] if closing else None
    if isinstance(last, ev.WorkflowCompleted) and last.result != state["result"]:
        problems.append(f"{workflow_id}: state result differs from the history's")
    started = history[0] if history else None
    if registry is not None and isinstance(started, ev.WorkflowStarted):
        definition = DAG_WORKFLOW if started.dag is not None else registry.get(started.workflow_type)
        if definition is not None:
            info = WorkflowInfo(workflow_id, state["run_id"], started.workflow_type, 0, started.dag)
            instance = WorkflowInstance(definition, info)
            try:
                replay(instance, history)
            except Exception as exc:
                problems.append(f"{workflow_id}: replay diverges: {exc}")
    return problems
