"""The engine's promises, checked on recorded runs: what every exactly-once claim rests on.

``check_run`` checks one run's history, and the run's stored state against it:

- the history is gap-free (indices 1..n) and begins with its one ``WorkflowStarted``;
- every activity outcome belongs to the attempt in flight: no outcome for an attempt that
  was never dispatched, none after the activity's final outcome or its cancellation (one
  activity completed by two attempts is a violation), retries only after the recorded
  backoff;
- timers fire once, never before their fire time, and never after being cancelled; child
  results arrive once, for children that were started;
- the run closes at most once and nothing follows its closing event;
- the stored state equals the state folded from the history: status, result, failure,
  pending activities (attempt and state), open timers, open children, cancellation,
  history length, start and close times, search attributes (as started, then upserted) and memo;
- the code replays the history strictly (same commands with the same arguments, timers,
  child inputs and ending) and, afterwards, awaits exactly what the history leaves open. A
  workflow type that the registry does not know is a finding, never a skip.

``check_workflow`` walks every run of a workflow id (its continue-as-new chain) and every
child it started, and checks the links between them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from ledgerflow.engine.state.models import CLOSING_STATUS, RunState
from ledgerflow.engine.workflow.dag import definition_for
from ledgerflow.engine.workflow.instance import WorkflowInstance, info_for
from ledgerflow.engine.workflow.replayer import replay
from ledgerflow.schemas import events as ev
from ledgerflow.schemas.search import SearchAttributeValue, upserted
from ledgerflow.sdk.definition import WorkflowRegistry

EARLY = 1e-6
"""Seconds a timer or retry may appear before its due time (float rounding), and no more."""


class RunSource(Protocol):
    """Where the checker reads runs from; ``ledgerflow.Client`` is one."""

    def describe(self, workflow_id: str) -> dict[str, Any]: ...

    def history(self, workflow_id: str, run_id: str | None = None) -> list[ev.HistoryEvent]: ...


ChildOutcome = ev.ChildWorkflowCompleted | ev.ChildWorkflowFailed


@dataclass
class _Activity:
    attempt: int = 1
    state: Literal["running", "backoff", "done"] = "running"
    retry_at: float | None = None
    ended_at: int = 0
    """Index of the event that ended it (final outcome or cancellation)."""


@dataclass
class Fold:
    """The state a run's history implies, and every way the history breaks the rules."""

    label: str
    problems: list[str] = field(default_factory=list)
    started: ev.WorkflowStarted | None = None
    closing: ev.HistoryEvent | None = None
    activities: dict[int, _Activity] = field(default_factory=dict)
    timers: dict[int, float] = field(default_factory=dict)
    """Open timers: seq -> fire time."""
    children: dict[int, str] = field(default_factory=dict)
    """Open children: seq -> workflow id."""
    child_outcomes: dict[int, ChildOutcome] = field(default_factory=dict)
    child_starts: dict[int, ev.ChildWorkflowStarted] = field(default_factory=dict)
    closed_timers: set[int] = field(default_factory=set)
    cancel_requested: bool = False
    seqs: set[int] = field(default_factory=set)
    updates: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Update id -> its outcome as ``RunState.updates`` holds it."""
    search_attributes: dict[str, SearchAttributeValue] = field(default_factory=dict)
    """As started, with the upserts so far."""

    def fail(self, event: ev.HistoryEvent, message: str) -> None:
        self.problems.append(f"{self.label}: event #{event.index} {type(event).__name__}: {message}")

    # ---------------------------------------------------------------- events
    def apply(self, event: ev.HistoryEvent) -> None:
        if self.closing is not None:
            self.fail(event, f"follows the closing event #{self.closing.index}")
        if isinstance(event, ev.WorkflowStarted):
            if self.started is not None or event.index != 1:
                self.fail(event, "a run starts once, with its first event")
            self.started = event
        elif self.started is None:
            self.fail(event, "comes before the run's WorkflowStarted")
        if isinstance(event, (ev.ActivityScheduled, ev.TimerStarted, ev.ChildWorkflowStarted)):
            if event.seq in self.seqs:
                self.fail(event, f"sequence number #{event.seq} used twice")
            self.seqs.add(event.seq)
        match event:
            case ev.WorkflowStarted():
                self.search_attributes = dict(event.search_attributes)
            case ev.SearchAttributesUpserted():
                self.search_attributes = upserted(self.search_attributes, event.attributes)
            case ev.ActivityScheduled(seq=seq):
                self.activities[seq] = _Activity()
            case ev.ActivityAttemptFailed() | ev.ActivityAttemptRetried() | ev.ActivityCompleted():
                self._activity_event(event)
            case ev.ActivityFailed() | ev.ActivityCancelRequested():
                self._activity_event(event)
            case ev.TimerStarted(seq=seq, fire_at=fire_at):
                if fire_at < event.time - EARLY:
                    self.fail(event, f"fire time {fire_at} is before the timer started ({event.time})")
                self.timers[seq] = fire_at
            case ev.TimerFired(seq=seq) | ev.TimerCanceled(seq=seq):
                self._timer_event(event, seq)
            case ev.CancelRequested():
                if self.cancel_requested:
                    self.fail(event, "cancellation recorded twice")
                self.cancel_requested = True
            case ev.ChildWorkflowStarted(seq=seq, workflow_id=child_id):
                self.children[seq] = child_id
                self.child_starts[seq] = event
            case ev.UpdateAccepted(update_id=update_id) | ev.UpdateRejected(update_id=update_id):
                if update_id in self.updates:
                    self.fail(event, f"update {update_id!r} applied twice")
                if isinstance(event, ev.UpdateAccepted):
                    self.updates[update_id] = {"status": "accepted", "result": None, "failure": None}
                else:
                    self.updates[update_id] = {"status": "rejected", "result": None, "failure": event.failure}
            case ev.UpdateCompleted(update_id=update_id):
                outcome = self.updates.get(update_id)
                if outcome is None or outcome["status"] != "accepted":
                    status = outcome["status"] if outcome else "never accepted"
                    self.fail(event, f"update {update_id!r} completed while {status}")
                self.updates[update_id] = {
                    "status": "failed" if event.failure else "completed",
                    "result": event.result,
                    "failure": event.failure,
                }
            case ev.ChildWorkflowCompleted(seq=seq) | ev.ChildWorkflowFailed(seq=seq):
                if self.children.pop(seq, None) is None:
                    self.fail(event, f"child #{seq} was not started, or its outcome was already recorded")
                self.child_outcomes[seq] = event
        if isinstance(event, ev.CLOSING_EVENTS) and self.closing is None:
            self.closing = event

    def _activity_event(
        self,
        event: ev.ActivityAttemptFailed
        | ev.ActivityAttemptRetried
        | ev.ActivityCompleted
        | ev.ActivityFailed
        | ev.ActivityCancelRequested,
    ) -> None:
        activity = self.activities.get(event.seq)
        if activity is None:
            self.fail(event, f"activity #{event.seq} was never scheduled")
            return
        if activity.state == "done":
            self.fail(event, f"activity #{event.seq} already ended at event #{activity.ended_at}")
            return
        if isinstance(event, ev.ActivityCancelRequested):
            activity.state, activity.ended_at = "done", event.index
            return
        if isinstance(event, ev.ActivityAttemptRetried):
            if activity.state != "backoff" or event.attempt != activity.attempt + 1:
                self.fail(
                    event,
                    f"attempt {event.attempt} of activity #{event.seq} dispatched while attempt "
                    f"{activity.attempt} is {activity.state}",
                )
            elif activity.retry_at is not None and event.time < activity.retry_at - EARLY:
                self.fail(event, f"retried {activity.retry_at - event.time:.3f} s before its backoff ended")
            activity.attempt, activity.state, activity.retry_at = event.attempt, "running", None
            return
        if event.attempt != activity.attempt:
            self.fail(
                event,
                f"outcome of attempt {event.attempt} of activity #{event.seq}, but the attempt "
                f"dispatched is {activity.attempt}",
            )
            return
        if isinstance(event, ev.ActivityFailed):  # a schedule-to-close timeout may end a backoff
            activity.state, activity.ended_at = "done", event.index
            return
        if activity.state != "running":
            self.fail(event, f"attempt {event.attempt} of activity #{event.seq} already failed")
            return
        if isinstance(event, ev.ActivityCompleted):
            activity.state, activity.ended_at = "done", event.index
        else:
            activity.state = "backoff"
            activity.retry_at = None if event.retry_in is None else event.time + event.retry_in

    def _timer_event(self, event: ev.TimerFired | ev.TimerCanceled, seq: int) -> None:
        fire_at = self.timers.pop(seq, None)
        if fire_at is None:
            what = "already fired or was cancelled" if seq in self.closed_timers else "was never started"
            self.fail(event, f"timer #{seq} {what}")
            return
        self.closed_timers.add(seq)
        if isinstance(event, ev.TimerFired) and event.time < fire_at - EARLY:
            self.fail(event, f"timer #{seq} fired {fire_at - event.time:.3f} s early")

    # ----------------------------------------------------------------- state
    @property
    def is_open(self) -> bool:
        return self.closing is None

    def expected_state(self) -> dict[str, Any]:
        """The fields of ``RunState`` that the history determines."""
        started, closing = self.started, self.closing
        assert started is not None
        open_activities = {s: (a.attempt, a.state) for s, a in self.activities.items() if a.state != "done"}
        return {
            "workflow_type": started.workflow_type,
            "status": CLOSING_STATUS[type(closing)] if closing is not None else "RUNNING",
            "is_dag": started.dag is not None,
            "input": started.input,
            "started_at": started.time,
            "closed_at": closing.time if closing is not None else None,
            "result": closing.result if isinstance(closing, ev.WorkflowCompleted) else None,
            "failure": closing.failure if isinstance(closing, ev.WorkflowFailed) else None,
            "activities": open_activities if self.is_open else {},
            "timers": dict(self.timers) if self.is_open else {},
            "children": dict(self.children),
            "parent_workflow_id": started.parent_workflow_id,
            "parent_run_id": started.parent_run_id,
            "parent_seq": started.parent_seq,
            "cancel_requested": self.cancel_requested,
            "updates": self.updates,
            "search_attributes": self.search_attributes,
            "memo": started.memo,
        }


def fold_history(label: str, history: Sequence[ev.HistoryEvent]) -> Fold:
    """Fold a run's history into the state it implies, collecting every broken rule."""
    fold = Fold(label)
    indices = [e.index for e in history]
    if indices != list(range(1, len(history) + 1)):
        fold.problems.append(f"{label}: history not gap-free: indices {_short(indices)}")
    if not history:
        fold.problems.append(f"{label}: empty history")
    for event in history:
        fold.apply(event)
    return fold


def _stored_state(run: RunState) -> dict[str, Any]:
    stored = run.model_dump(include=_STATE_FIELDS)
    stored["activities"] = {s: (a.attempt, a.state) for s, a in run.activities.items()}
    stored["failure"] = run.failure
    stored["search_attributes"] = run.search_attributes
    stored["updates"] = {
        update_id: {"status": u.status, "result": u.result, "failure": u.failure}
        for update_id, u in run.updates.items()
    }
    return stored


_STATE_FIELDS = {
    "workflow_type",
    "status",
    "is_dag",
    "input",
    "started_at",
    "closed_at",
    "result",
    "timers",
    "children",
    "parent_workflow_id",
    "parent_run_id",
    "parent_seq",
    "cancel_requested",
    "memo",
}


def check_run(
    state: dict[str, Any] | RunState | None,
    history: Sequence[ev.HistoryEvent],
    registry: WorkflowRegistry | None = None,
    *,
    workflow_id: str | None = None,
    run_id: str | None = None,
) -> list[str]:
    """Every broken invariant of one run (empty when all hold).

    ``state`` is the run's stored state (a ``RunState`` or its JSON, as ``describe``
    answers); None for an earlier run of the id, whose state is no longer kept. Without a
    ``registry`` the code is not replayed.
    """
    run = RunState.model_validate(state) if isinstance(state, dict) else state
    workflow_id = workflow_id or (run.workflow_id if run else "?")
    run_id = run_id or (run.run_id if run else "?")
    return _check_run(run, history, registry, workflow_id, run_id).problems


def _check_run(
    run: RunState | None,
    history: Sequence[ev.HistoryEvent],
    registry: WorkflowRegistry | None,
    workflow_id: str,
    run_id: str,
) -> Fold:
    """The run's fold, its ``problems`` holding every finding of ``check_run``."""
    label = f"{workflow_id} run {run_id}"
    fold = fold_history(label, history)
    problems = fold.problems
    if fold.started is None:
        return fold
    if run is not None:
        if run.history_length != len(history):
            problems.append(f"{label}: state says {run.history_length} events, history has {len(history)}")
        expected, stored = fold.expected_state(), _stored_state(run)
        for name, value in expected.items():
            if stored[name] != value:
                problems.append(f"{label}: state {name} is {stored[name]!r}, history implies {value!r}")
    elif fold.is_open:
        problems.append(f"{label}: an earlier run of the workflow never closed")
    if registry is not None:
        problems += _replay_problems(label, fold, history, registry, workflow_id, run_id)
    return fold


def _replay_problems(
    label: str,
    fold: Fold,
    history: Sequence[ev.HistoryEvent],
    registry: WorkflowRegistry,
    workflow_id: str,
    run_id: str,
) -> list[str]:
    started = fold.started
    assert started is not None
    failed_by_engine = isinstance(fold.closing, ev.WorkflowFailed) and fold.closing.origin == "engine"
    definition = definition_for(started.workflow_type, started.dag, registry)
    if definition is None:
        if failed_by_engine and len(history) == 2:
            return []  # the engine refused the unknown type at start, as it should
        known = ", ".join(registry.names()) or "none"
        return [f"{label}: workflow type {started.workflow_type!r} is not registered (known: {known})"]
    instance = WorkflowInstance(definition, info_for(workflow_id, run_id, 0, started))
    try:
        replay(instance, history, strict=True)
        if fold.is_open:
            awaiting = instance.awaiting()
            implied = {
                "activities": {s for s, a in fold.activities.items() if a.state != "done"},
                "timers": set(fold.timers),
                "children": set(fold.children),
            }
            return [
                f"{label}: after replay the code awaits {kind} {sorted(awaiting[kind])}, "
                f"history leaves {sorted(implied[kind])} open"
                for kind in implied
                if awaiting[kind] != implied[kind]
            ]
    except Exception as exc:
        return [f"{label}: replay diverges: {exc}"]
    finally:
        instance.dispose()
    return []


def check_workflow(
    source: RunSource, workflow_id: str, registry: WorkflowRegistry | None = None, *, children: bool = True
) -> list[str]:
    """Every broken invariant of a workflow id: each of its runs, the links of its continue-as-new
    chain, and (with ``children``) each child it started, recursively."""
    problems: list[str] = []
    _check_chain(source, workflow_id, registry, children, problems, seen=set())
    return problems


@dataclass
class _Chain:
    runs: list[tuple[str, list[ev.HistoryEvent]]]
    """(run id, history), oldest first."""

    @property
    def last(self) -> ev.HistoryEvent | None:
        return self.runs[-1][1][-1] if self.runs and self.runs[-1][1] else None


def _check_chain(
    source: RunSource,
    workflow_id: str,
    registry: WorkflowRegistry | None,
    children: bool,
    problems: list[str],
    seen: set[str],
) -> _Chain:
    seen.add(workflow_id)
    state = source.describe(workflow_id)
    run = RunState.model_validate(state)
    chain = _Chain([])
    folds: list[Fold] = []
    for run_id in [*run.previous_runs, run.run_id]:
        history = source.history(workflow_id, run_id)
        fold = _check_run(run if run_id == run.run_id else None, history, registry, workflow_id, run_id)
        problems += fold.problems
        chain.runs.append((run_id, history))
        folds.append(fold)
    problems += _chain_links(workflow_id, chain)
    if not children:
        return chain
    for (run_id, _), fold in zip(chain.runs, folds, strict=True):
        for seq, started in fold.child_starts.items():
            if started.workflow_id in seen:
                continue
            child = _check_chain(source, started.workflow_id, registry, children, problems, seen)
            problems += _child_links(f"{workflow_id} run {run_id}", run_id, seq, fold, child)
    return chain


def _chain_links(workflow_id: str, chain: _Chain) -> list[str]:
    """Each run that continued as new names the next run, which names it back and got its input;
    a run made by a reset begins with exactly the events of the run it reset, up to its point."""
    problems = []
    for (run_id, history), (next_id, next_history) in zip(chain.runs, chain.runs[1:], strict=False):
        closing, started = history[-1] if history else None, next_history[0] if next_history else None
        if not isinstance(started, ev.WorkflowStarted):
            continue  # reported by check_run
        # The run's own reset marker: the last (a run reset from a reset run holds the earlier
        # marker too, copied).
        reset = next((e for e in reversed(next_history) if isinstance(e, ev.WorkflowReset)), None)
        if reset is not None:
            kept = reset.to_event - 1
            if reset.reset_run_id != run_id:
                problems.append(
                    f"{workflow_id}: run {next_id} says it reset run {reset.reset_run_id}, not {run_id}"
                )
            elif reset.index != kept + 1 or next_history[:kept] != history[:kept]:
                problems.append(
                    f"{workflow_id}: run {next_id} does not begin with the {kept} events of run {run_id} "
                    f"before its reset point #{reset.to_event}"
                )
            continue
        if isinstance(closing, ev.WorkflowContinuedAsNew):
            if closing.new_run_id != next_id or started.continued_from_run_id != run_id:
                problems.append(
                    f"{workflow_id}: run {run_id} continued as {closing.new_run_id}, but the next run "
                    f"is {next_id}, continued from {started.continued_from_run_id}"
                )
            elif closing.input != started.input:
                problems.append(f"{workflow_id}: run {next_id} did not start with its continue-as-new input")
        elif started.continued_from_run_id is not None:
            problems.append(
                f"{workflow_id}: run {next_id} says it continued from {started.continued_from_run_id}, "
                f"but run {run_id} did not continue as new"
            )
    return problems


def _child_links(label: str, run_id: str, seq: int, fold: Fold, child: _Chain) -> list[str]:
    """The child's first run names its parent; the parent's recorded outcome is the child's."""
    outcome = fold.child_outcomes.get(seq)
    if isinstance(outcome, ev.ChildWorkflowFailed) and outcome.failure.type == "WorkflowAlreadyStarted":
        return []  # the id belonged to another run; this parent started nothing
    first = child.runs[0][1][0] if child.runs and child.runs[0][1] else None
    ours = [
        history[0]
        for _, history in child.runs
        if history
        and isinstance(history[0], ev.WorkflowStarted)
        and (history[0].parent_run_id, history[0].parent_seq) == (run_id, seq)
    ]
    if not ours:
        parent = (first.parent_run_id, first.parent_seq) if isinstance(first, ev.WorkflowStarted) else None
        return [f"{label}: child #{seq} has no run started by it (its first run names parent {parent})"]
    last = child.last
    if isinstance(outcome, ev.ChildWorkflowCompleted):
        if not isinstance(last, ev.WorkflowCompleted):
            ended = type(last).__name__ if last is not None else "nowhere"
            return [f"{label}: child #{seq} recorded as completed, but the child ended with {ended}"]
        if last.result != outcome.result:
            return [
                f"{label}: child #{seq} recorded as completed with {outcome.result!r}, "
                f"the child completed with {last.result!r}"
            ]
    elif isinstance(outcome, ev.ChildWorkflowFailed) and isinstance(last, ev.WorkflowCompleted):
        return [f"{label}: child #{seq} recorded as failed, but the child completed"]
    return []


def _short(values: list[int]) -> str:
    return repr(values) if len(values) <= 20 else f"{values[:10]} ... {values[-10:]}"
