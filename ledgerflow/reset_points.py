"""Where a run may be reset to (``ledgerflow reset``): checked alike by the engine that makes the
reset and by the Client and the gateway that ask for it, so a caller hears at once why not.

A run is reset to an event its code reacted to, after its start: every command of the
activations before such an event is recorded before it, so the history kept ends where the code
was waiting. A child workflow open at that point would report to the run that started it, so
such a point is refused.
"""

from __future__ import annotations

from collections.abc import Sequence

from ledgerflow.schemas import events as ev

RESET_POINTS = tuple(kind for kind in ev.DELIVERED_EVENTS if kind is not ev.WorkflowStarted)
"""Events a run may be reset to."""


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
