"""A run's node-level timeline, folded from its history.

One entry per activity, timer and child workflow: when it was scheduled, when
it completed or failed for good, and how many attempts it took. For a DAG run
the entry names its node when that is unambiguous: the history records the
activity type and the rendered input, not the node id, so a node is named when
its type is unique in the DAG, or when its input has no template and equals
the recorded arguments.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ledgerflow.api.models import TimelineEntry
from ledgerflow.schemas import events as ev
from ledgerflow.schemas.dag import DagDefinition


def _has_template(value: Any) -> bool:
    if isinstance(value, str):
        return "{{" in value
    if isinstance(value, dict):
        return any(_has_template(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_template(v) for v in value)
    return False


class _NodeMatcher:
    def __init__(self, dag: DagDefinition | None) -> None:
        self.by_type: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        self.used: set[str] = set()
        self.timers_ambiguous = dag is not None and any(n.type == "wait-signal" for n in dag.nodes)
        """A wait-signal node with a timeout starts a timer too: then timers name no node."""
        if dag is not None:
            for node in dag.nodes:
                self.by_type.setdefault(node.type, []).append((node.id, dict(node.input)))

    def match(self, node_type: str, args: Sequence[Any] | None) -> str | None:
        candidates = [(nid, raw) for nid, raw in self.by_type.get(node_type, []) if nid not in self.used]
        found: str | None = None
        if len(self.by_type.get(node_type, [])) == 1 and candidates:
            found = candidates[0][0]
        elif args is not None:
            literal = [nid for nid, raw in candidates if not _has_template(raw) and [raw] == list(args)]
            if len(literal) == 1:
                found = literal[0]
        if found is not None:
            self.used.add(found)
        return found

    def settle(self, unnamed: list[dict[str, Any]]) -> None:
        """Name what is left: one unnamed entry of a type and one unused node of it."""
        by_type: dict[str, list[dict[str, Any]]] = {}
        for data in unnamed:
            by_type.setdefault(data["name"], []).append(data)
        for node_type, rows in by_type.items():
            left = [nid for nid, _ in self.by_type.get(node_type, []) if nid not in self.used]
            if len(rows) == 1 and len(left) == 1:
                rows[0]["node"] = left[0]
                self.used.add(left[0])


def build_timeline(history: Sequence[ev.HistoryEvent]) -> list[TimelineEntry]:
    """Entries in the order they were scheduled."""
    dag: DagDefinition | None = None
    if history and isinstance(history[0], ev.WorkflowStarted):
        dag = history[0].dag
    matcher = _NodeMatcher(dag)
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
                    "node": matcher.match(event.activity_type, event.args) if dag else None,
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
                    "node": matcher.match("sleep", None) if dag and not matcher.timers_ambiguous else None,
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
    if dag is not None:
        matcher.settle([d for d in ordered if d["kind"] == "activity" and d.get("node") is None])
    out = []
    for data in ordered:
        end = data.get("completed_at") or data.get("failed_at")
        if end is not None:
            data["duration_seconds"] = round(end - data["scheduled_at"], 6)
        out.append(TimelineEntry.model_validate(data))
    return out
