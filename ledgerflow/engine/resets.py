"""Resets (Temporal's ``workflow reset``): a workflow's run made again from a point in its history.

A run failed by a bug, or gone wrong from some step on, is taken back once a fix is deployed: a
new run of the same workflow id begins with the latest run's history before a chosen event,
copied as recorded, and goes on from there with the code deployed now. What was open at that
point is opened again: activities are dispatched again (at least once, as always, with their
retry policy's attempts counted afresh), timers keep their recorded fire times, and the signals,
accepted updates and cancel request that arrived from that point on are sent again, as are the
commands a blocked run held. The run it replaces is terminated if it is still open (its parent,
if any, hears from the new run instead); a run with child workflows open is not reset.

Which points are allowed is ``ledgerflow.reset_points``: the copied history ends where the code
was waiting, and the new run's code replays it as any run's.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field

from ledgerflow.engine.attempts import ActivityAttempts
from ledgerflow.engine.run_writer import RunWriter
from ledgerflow.engine.state import keys
from ledgerflow.engine.state.models import PendingActivity, RunState, UpdateOutcome
from ledgerflow.engine.state.visibility import attributes_after
from ledgerflow.reset_points import children_refusal, reset_refusal
from ledgerflow.schemas import commands as c
from ledgerflow.schemas import events as ev


@dataclass
class OpenAtPoint:
    """What a history prefix leaves open: the state a reset run starts from."""

    activities: dict[int, PendingActivity] = field(default_factory=dict)
    retry_at: dict[int, float] = field(default_factory=dict)
    """Activities in backoff: seq -> when their next attempt is due."""
    timers: dict[int, float] = field(default_factory=dict)
    updates: dict[str, UpdateOutcome] = field(default_factory=dict)
    cancel_requested: bool = False


def open_at(prefix: list[ev.HistoryEvent], now: float) -> OpenAtPoint:
    """Fold a history prefix into what it leaves open (activities as of ``now``, their new
    dispatch time)."""
    point = OpenAtPoint()
    for event in prefix:
        match event:
            case ev.ActivityScheduled():
                point.activities[event.seq] = PendingActivity(
                    activity_type=event.activity_type,
                    args=event.args,
                    options=event.options,
                    scheduled_at=now,
                    attempt_started_at=now,
                )
            case ev.ActivityAttemptFailed() if event.seq in point.activities:
                pending = point.activities[event.seq]
                pending.state, pending.last_failure = "backoff", event.failure
                pending.attempts_before = event.attempt  # the reset's retries count after these
                point.retry_at[event.seq] = event.time + (event.retry_in or 0.0)
            case ev.ActivityAttemptRetried() if event.seq in point.activities:
                pending = point.activities[event.seq]
                pending.attempt, pending.state = event.attempt, "running"
                point.retry_at.pop(event.seq, None)
            case ev.ActivityCompleted() | ev.ActivityFailed() | ev.ActivityCancelRequested():
                point.activities.pop(event.seq, None)
                point.retry_at.pop(event.seq, None)
            case ev.TimerStarted():
                point.timers[event.seq] = event.fire_at
            case ev.TimerFired() | ev.TimerCanceled():
                point.timers.pop(event.seq, None)
            case ev.UpdateAccepted():
                point.updates[event.update_id] = UpdateOutcome(status="accepted")
            case ev.UpdateRejected():
                point.updates[event.update_id] = UpdateOutcome(status="rejected", failure=event.failure)
            case ev.UpdateCompleted():
                point.updates[event.update_id] = UpdateOutcome(
                    status="failed" if event.failure else "completed",
                    result=event.result,
                    failure=event.failure,
                )
            case ev.CancelRequested():
                point.cancel_requested = True
    return point


class Resets:
    """The reset command of one partition's workflows."""

    def __init__(self, writer: RunWriter, attempts: ActivityAttempts) -> None:
        self.w = writer
        self.attempts = attempts

    def reset(self, command: c.ResetWorkflow) -> str | None:
        """Make the new run, or say why not (the reason goes to the dead-letter topic)."""
        w = self.w
        old = w.run(command.workflow_id)
        if old is None:
            return f"reset: workflow {command.workflow_id!r} has no run"
        if command.run_id is not None and command.run_id != old.run_id:
            latest = f"the latest run of {command.workflow_id!r} is {old.run_id}"
            return f"reset: run {command.run_id} is not the latest run ({latest})"
        point = command.to_event
        history = w.history(old.workflow_id, old.run_id, old.history_length)
        refusal = reset_refusal(history, point)
        if refusal is not None:
            return f"reset of run {old.run_id}: {refusal}"
        refusal = children_refusal(old.model_dump(mode="json", include={"status", "children"}))
        if refusal is not None:
            return f"reset of run {old.run_id}: {refusal}"
        opened = open_at(history[: point - 1], w.now)
        new_run_id = str(uuid.uuid4())
        held, old.held = old.held, []  # a blocked run's held commands go to the new run
        if old.is_open:
            # The new run reports to the parent instead: the terminated one must not.
            why = f"reset to event #{point} as run {new_run_id}"
            w.terminate(old, f"{why}: {command.reason}" if command.reason else why, notify_parent=False)
        self._begin(old, new_run_id, command, history, opened)
        for raw in held:
            w.out.inbox(old.workflow_id, c.inbox_command_adapter.validate_python(raw))
        return None

    def _begin(
        self,
        old: RunState,
        new_run_id: str,
        command: c.ResetWorkflow,
        history: list[ev.HistoryEvent],
        opened: OpenAtPoint,
    ) -> None:
        w = self.w
        prefix, after = history[: command.to_event - 1], history[command.to_event - 1 :]
        started = prefix[0]
        assert isinstance(started, ev.WorkflowStarted)
        limit = w.ctx.settings.max_previous_runs
        run = RunState(
            workflow_id=old.workflow_id,
            run_id=new_run_id,
            workflow_type=old.workflow_type,
            is_dag=old.is_dag,
            input=old.input,
            started_at=started.time,
            parent_workflow_id=old.parent_workflow_id,
            parent_run_id=old.parent_run_id,
            parent_seq=old.parent_seq,
            previous_runs=[*old.previous_runs, old.run_id][-limit:],
            cancel_requested=opened.cancel_requested,
            updates=opened.updates,
            search_attributes=attributes_after(prefix),
            memo=started.memo,
        )
        w.begin_run(run)
        for event in prefix:
            raw = w.txn.get(keys.history_key(old.workflow_id, old.run_id, event.index))
            assert raw is not None  # read just before, in this batch
            w.record(run, raw, type(event))
        w.append(
            run, ev.WorkflowReset, reset_run_id=old.run_id, to_event=command.to_event, reason=command.reason
        )
        data = {"reset_run_id": old.run_id, "to_event": command.to_event, "reason": command.reason}
        w.lifecycle(run, "WORKFLOW_STARTED", run.history_length, data)
        if started.execution_timeout:
            w.add_timer(run, "run_timeout", w.now + started.execution_timeout)
        for seq, fire_at in opened.timers.items():
            run.timers[seq] = fire_at
            w.add_timer(run, "timer", fire_at, seq)
        for seq, pending in opened.activities.items():
            self.attempts.reopen(run, seq, pending, opened.retry_at.get(seq))
        # What callers sent from the point on is sent again, in order, and applied as when it
        # first came (its code runs): signals, accepted updates (under their ids), a cancel.
        wid = run.workflow_id
        for event in after:
            match event:
                case ev.SignalReceived():
                    w.out.inbox(
                        wid, c.SignalWorkflow(workflow_id=wid, name=event.name, payload=event.payload)
                    )
                case ev.UpdateAccepted():
                    update = c.UpdateWorkflow(
                        workflow_id=wid, update_id=event.update_id, name=event.name, payload=event.payload
                    )
                    w.out.inbox(wid, update)
                case ev.CancelRequested():
                    w.out.inbox(wid, c.CancelWorkflow(workflow_id=wid, reason=event.reason))
