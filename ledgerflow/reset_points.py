"""Where a run may be reset to (``ledgerflow reset``): checked alike by the engine that makes the
reset and by the Client and the gateway that ask for it, so a caller hears at once why not.

A run is reset to an event its code reacted to, after its start: every command of the
activations before such an event is recorded before it, so the history kept ends where the code
was waiting. A child workflow open at that point would report to the run that started it, so
such a point is refused (and so is a child's outcome, its child being open just before it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ledgerflow.schemas import events as ev

RESET_POINTS = (
    ev.ActivityCompleted,
    ev.ActivityFailed,
    ev.TimerFired,
    ev.SignalReceived,
    ev.UpdateAccepted,
    ev.CancelRequested,
)
"""Events a run may be reset to: those its code reacted to after its start, but a child's
outcome (its child is open before it)."""


def reset_refusal(history: Sequence[ev.HistoryEvent], to_event: int) -> str | None:
    """Why the run whose history begins with ``history`` (its first ``to_event`` events, or all
    of them) cannot be reset to its event ``to_event``; None when it can."""
    if to_event < 2:
        return f"event #{to_event}: a run is reset to an event after its start (#2 or later)"
    if to_event > len(history):
        return f"the run has {len(history)} events; there is no event #{to_event}"
    target = history[to_event - 1]
    if not isinstance(target, RESET_POINTS):
        kinds = ", ".join(sorted(kind.model_fields["kind"].default for kind in RESET_POINTS))
        return f"event #{to_event} is {target.kind}; a run is reset to an event its code reacted to ({kinds})"
    children: dict[int, str] = {}
    for event in history[: to_event - 1]:
        if isinstance(event, ev.ChildWorkflowStarted):
            children[event.seq] = event.workflow_id
        elif isinstance(event, ev.ChildWorkflowCompleted | ev.ChildWorkflowFailed):
            children.pop(event.seq, None)
    if children:
        seqs = ", ".join(f"#{seq} ({workflow_id})" for seq, workflow_id in sorted(children.items()))
        return (
            f"child workflows {seqs} are open before event #{to_event}; reset to an event before "
            "the child started or after its outcome"
        )
    return None


def children_refusal(state: Mapping[str, Any]) -> str | None:
    """Why the run whose state (``describe``'s JSON) is ``state`` cannot be reset now: it is open
    with child workflows open, which report to it; None when it can."""
    children = state.get("children") or {}
    if state.get("status") != "RUNNING" or not children:
        return None
    ordered = sorted(children.items(), key=lambda item: int(item[0]))
    seqs = ", ".join(f"#{seq} ({workflow_id})" for seq, workflow_id in ordered)
    return f"its child workflows {seqs} are open; reset it once they have ended (or terminate them first)"
