"""A run's node-level timeline, folded from its history.

One entry per activity, timer and child workflow: when it was scheduled, when
it completed or failed for good, and how many attempts it took. For a DAG run an
activity's entry names its node (recorded in the activity's options); timers of
``sleep`` and ``wait-signal`` nodes are listed as timers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ledgerflow.api.models import TimelineEntry
from ledgerflow.schemas import events as ev


def build_timeline(history: Sequence[ev.HistoryEvent]) -> list[TimelineEntry]:
    """Entries in the order they were scheduled."""
    entries: dict[tuple[str, int], dict[str, Any]] = {}

    def entry(kind: str, seq: int) -> dict[str, Any] | None:
        return entries.get((kind, seq))

    for event in history:
        match event:
            case ev.ActivityScheduled():
                entries[("activity", event.seq)] = {
                    "seq": event.seq,
                    "kind": "activity",
                    "name": event.activity_type,
                    "node": event.options.node,
                    "status": "scheduled",
                    "scheduled_at": event.time,
                    "attempts": 1,
                }
            case ev.ActivityAttemptFailed():
                if (found := entry("activity", event.seq)) is not None:
                    found["status"] = "retrying"
                    found["attempts"] = max(found["attempts"], event.attempt)
                    found["last_failure"] = f"{event.failure.type}: {event.failure.message}"
            case ev.ActivityAttemptRetried():
                if (found := entry("activity", event.seq)) is not None:
                    found["status"] = "scheduled"
                    found["attempts"] = max(found["attempts"], event.attempt)
            case ev.ActivityCompleted():
                if (found := entry("activity", event.seq)) is not None:
                    found.update(status="completed", completed_at=event.time)
                    found["attempts"] = max(found["attempts"], event.attempt)
            case ev.ActivityFailed():
                if (found := entry("activity", event.seq)) is not None:
                    found.update(status="failed", failed_at=event.time)
                    found["attempts"] = max(found["attempts"], event.attempt)
                    found["last_failure"] = f"{event.failure.type}: {event.failure.message}"
            case ev.ActivityCancelRequested():
                if (found := entry("activity", event.seq)) is not None and found["status"] != "completed":
                    found.update(status="canceled", failed_at=event.time)
            case ev.TimerStarted():
                entries[("timer", event.seq)] = {
                    "seq": event.seq,
                    "kind": "timer",
                    "name": "timer",
                    "status": "scheduled",
                    "scheduled_at": event.time,
                }
            case ev.TimerFired():
                if (found := entry("timer", event.seq)) is not None:
                    found.update(status="completed", completed_at=event.time)
            case ev.TimerCanceled():
                if (found := entry("timer", event.seq)) is not None:
                    found.update(status="canceled", failed_at=event.time)
            case ev.ChildWorkflowStarted():
                entries[("child", event.seq)] = {
                    "seq": event.seq,
                    "kind": "child_workflow",
                    "name": event.workflow_type,
                    "status": "scheduled",
                    "scheduled_at": event.time,
                }
            case ev.ChildWorkflowCompleted():
                if (found := entry("child", event.seq)) is not None:
                    found.update(status="completed", completed_at=event.time)
            case ev.ChildWorkflowFailed():
                if (found := entry("child", event.seq)) is not None:
                    found.update(status="failed", failed_at=event.time)
                    found["last_failure"] = f"{event.failure.type}: {event.failure.message}"
            case _:
                pass
    ordered = sorted(entries.values(), key=lambda d: (d["scheduled_at"], d["seq"]))
    out = []
    for data in ordered:
        end = data.get("completed_at") or data.get("failed_at")
        if end is not None:
            data["duration_seconds"] = round(end - data["scheduled_at"], 6)
        out.append(TimelineEntry.model_validate(data))
    return out
