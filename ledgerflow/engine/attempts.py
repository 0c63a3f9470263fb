"""Activity attempts: scheduling, dispatch to a task queue, results, retries with backoff, and
the three timeouts (schedule-to-close, start-to-close, heartbeat).

An activity is pending in its run (``RunState.activities``) from its ``ActivityScheduled`` event
until its result or final failure is delivered to the workflow code. Each attempt is one task
record; a result is taken only from the attempt that is running (an older attempt's late result
is stale), so each attempt's outcome is recorded once.
"""

from __future__ import annotations

from ledgerflow.codec.envelope import encode
from ledgerflow.engine import metrics
from ledgerflow.engine.run_writer import RunWriter, check_room
from ledgerflow.engine.state.models import PendingActivity, RunState, TimerEntry
from ledgerflow.engine.workflow import commands as cmd
from ledgerflow.errors import QueueUnavailable
from ledgerflow.schemas import commands as c
from ledgerflow.schemas import events as ev
from ledgerflow.schemas.common import Failure
from ledgerflow.schemas.tasks import CancelActivity, activity_task_json

MAX_RETRY_DELAY = 24 * 3600.0
"""Longest wait between attempts, whatever a retry policy without a cap computes."""


class ActivityAttempts:
    """The activity attempts of one partition's runs."""

    def __init__(self, writer: RunWriter) -> None:
        self.w = writer

    def schedule(self, run: RunState, command: cmd.ScheduleActivity) -> None:
        """Record the activity the code asked for and dispatch its first attempt."""
        w = self.w
        check_room(w, run, len(run.activities), "activities pending", "max_pending_activities")
        self.check_queue(command.options.queue)
        codec = w.ctx.codec
        args = command.args if codec is None else [encode(codec, arg) for arg in command.args]
        w.append(
            run,
            ev.ActivityScheduled,
            seq=command.seq,
            activity_type=command.activity_type,
            args=args,
            options=command.options,
        )
        pending = PendingActivity(
            activity_type=command.activity_type,
            args=args,
            options=command.options,
            scheduled_at=w.now,
            attempt_started_at=w.now,
        )
        run.activities[command.seq] = pending
        if command.options.schedule_to_close_timeout:
            deadline = w.now + command.options.schedule_to_close_timeout
            w.add_timer(run, "schedule_timeout", deadline, command.seq)
        self._dispatch(run, command.seq, pending)

    def reopen(self, run: RunState, seq: int, pending: PendingActivity, retry_at: float | None) -> None:
        """An activity that was open at a reset's point, open again in the new run: its attempt
        is dispatched again (or its backoff, ending at ``retry_at``, waited out first), and its
        schedule-to-close timeout starts over."""
        w = self.w
        run.activities[seq] = pending
        if pending.options.schedule_to_close_timeout:
            w.add_timer(run, "schedule_timeout", w.now + pending.options.schedule_to_close_timeout, seq)
        if pending.state == "backoff":
            w.add_timer(run, "retry", max(w.now, retry_at or w.now), seq, pending.attempt)
        else:
            self._dispatch(run, seq, pending)

    def request_cancel(self, run: RunState, seq: int) -> None:
        """The code gave up on an activity: record it and tell the worker running it."""
        self.w.append(run, ev.ActivityCancelRequested, seq=seq)
        cancelled = run.activities.pop(seq, None)
        if cancelled is not None:
            self.cancel(run, seq, cancelled)

    def result(self, command: c.TaskCompleted | c.TaskFailed | c.TaskHeartbeat) -> None:
        """Take a worker's report on the running attempt; anything else is stale and dropped."""
        w = self.w
        found = self._running(command)
        if found is None:
            metrics.STALE_RESULTS.inc()
            return
        run, pending = found
        if isinstance(command, c.TaskHeartbeat):
            pending.last_heartbeat_at = w.now
            pending.heartbeat_details = command.details
            return
        if pending.options.start_to_close_timeout:
            # The attempt is over: drop its timeout now rather than let it fire as a no-op
            # later, which would cost a read of the (by then closed) run per attempt.
            fire_at = pending.attempt_started_at + pending.options.start_to_close_timeout
            tag = TimerEntry.tag_of("attempt_timeout", run.run_id, command.seq, command.attempt)
            w.timers.cancel(w.txn, fire_at, run.workflow_id, tag)
        if isinstance(command, c.TaskCompleted):
            del run.activities[command.seq]
            metrics.ACTIVITY_LATENCY.observe(max(0.0, w.now - pending.attempt_started_at))
            w.lifecycle(
                run,
                "TASK_COMPLETED",
                run.history_length + 1,
                {"seq": command.seq, "activity": pending.activity_type},
            )
            w.deliver(
                run, ev.ActivityCompleted, seq=command.seq, attempt=command.attempt, result=command.result
            )
            return
        self._attempt_failed(run, command.seq, pending, command.failure)

    def fire(self, run: RunState, entry: TimerEntry) -> None:
        """One of this module's timers (schedule, attempt or heartbeat timeout, retry) came due."""
        w = self.w
        pending = run.activities.get(entry.seq)
        if pending is None:
            return
        if entry.kind == "schedule_timeout":
            del run.activities[entry.seq]
            self.cancel(run, entry.seq, pending)
            failure = Failure(
                type="ScheduleToCloseTimeout",
                message="activity exceeded its schedule-to-close timeout",
                non_retryable=True,
            )
            w.deliver(run, ev.ActivityFailed, seq=entry.seq, attempt=pending.attempt, failure=failure)
            return
        if pending.attempt != entry.attempt:
            return
        if entry.kind == "retry" and pending.state == "backoff":
            pending.attempt += 1
            pending.state = "running"
            pending.attempt_started_at = w.now
            pending.last_heartbeat_at = None
            w.append(run, ev.ActivityAttemptRetried, seq=entry.seq, attempt=pending.attempt)
            self._dispatch(run, entry.seq, pending)
        elif entry.kind == "attempt_timeout" and pending.state == "running":
            self.cancel(run, entry.seq, pending)
            failure = Failure(
                type="StartToCloseTimeout",
                message=f"attempt {pending.attempt} exceeded its start-to-close timeout",
            )
            self._attempt_failed(run, entry.seq, pending, failure)
        elif entry.kind == "heartbeat_timeout" and pending.state == "running":
            timeout = pending.options.heartbeat_timeout or 0.0
            last = pending.last_heartbeat_at or pending.attempt_started_at
            if w.now < last + timeout:
                w.add_timer(run, "heartbeat_timeout", last + timeout, entry.seq, pending.attempt)
                return
            self.cancel(run, entry.seq, pending)
            failure = Failure(
                type="HeartbeatTimeout",
                message=f"no heartbeat from attempt {pending.attempt} for {timeout} s",
            )
            self._attempt_failed(run, entry.seq, pending, failure)

    def cancel(self, run: RunState, seq: int, pending: PendingActivity) -> None:
        """Tell the worker running this attempt to stop (it may have finished already)."""
        if pending.options.queue in self.w.ctx.unusable_queues:
            return  # no task ever reached it, and writing there would fail the batch again
        message = CancelActivity(
            workflow_id=run.workflow_id, run_id=run.run_id, seq=seq, attempt=pending.attempt
        )
        self.w.out.task(pending.options.queue, run.workflow_id, message)

    def check_queue(self, queue: str) -> None:
        """Refuse a task queue whose topic could not be created (the reason says why)."""
        unusable = self.w.ctx.unusable_queues.get(queue)
        if unusable is not None:
            raise QueueUnavailable(queue, unusable)

    def _running(
        self, command: c.TaskCompleted | c.TaskFailed | c.TaskHeartbeat
    ) -> tuple[RunState, PendingActivity] | None:
        """The run and activity of the attempt ``command`` reports on, if that attempt is running."""
        run = self.w.run(command.workflow_id)
        if run is None or not run.is_open or run.run_id != command.run_id:
            return None
        pending = run.activities.get(command.seq)
        if pending is None or pending.attempt != command.attempt or pending.state != "running":
            return None
        return run, pending

    def _attempt_failed(self, run: RunState, seq: int, pending: PendingActivity, failure: Failure) -> None:
        """Retry after the policy's backoff, or deliver the failure when no retry is left."""
        w = self.w
        retry = pending.options.retry
        delay = None
        if not failure.non_retryable and failure.type not in retry.non_retryable_error_types:
            delay = retry.delay_after(pending.attempt - pending.attempts_before)
        if delay is not None:
            delay = min(delay, MAX_RETRY_DELAY)
        deadline = pending.options.schedule_to_close_timeout
        if delay is not None and deadline is not None and w.now + delay > pending.scheduled_at + deadline:
            delay = None
        data = {
            "seq": seq,
            "activity": pending.activity_type,
            "attempt": pending.attempt,
            "error": failure.type,
        }
        w.lifecycle(run, "TASK_FAILED", run.history_length + 1, data)
        if delay is None:
            del run.activities[seq]
            w.deliver(run, ev.ActivityFailed, seq=seq, attempt=pending.attempt, failure=failure)
            return
        metrics.RETRIES.inc()
        w.append(
            run, ev.ActivityAttemptFailed, seq=seq, attempt=pending.attempt, failure=failure, retry_in=delay
        )
        pending.state = "backoff"
        pending.last_failure = failure
        w.add_timer(run, "retry", w.now + delay, seq, pending.attempt)

    def _dispatch(self, run: RunState, seq: int, pending: PendingActivity) -> None:
        """Send the current attempt's task and set its timeouts."""
        w = self.w
        options = pending.options
        self.check_queue(options.queue)  # a retry after the queue's topic was found impossible
        task = attempt_task(run, seq, pending, w.now, w.partition)
        w.out.task(options.queue, run.workflow_id, task)
        if options.start_to_close_timeout:
            w.add_timer(run, "attempt_timeout", w.now + options.start_to_close_timeout, seq, pending.attempt)
        if options.heartbeat_timeout:
            w.add_timer(run, "heartbeat_timeout", w.now + options.heartbeat_timeout, seq, pending.attempt)
        w.lifecycle(
            run,
            "TASK_SCHEDULED",
            None,
            {
                "seq": seq,
                "activity": pending.activity_type,
                "attempt": pending.attempt,
                "queue": options.queue,
            },
        )


def attempt_task(run: RunState, seq: int, pending: PendingActivity, now: float, partition: int) -> bytes:
    """The task message (JSON) of an activity's current attempt, dispatched at ``now``."""
    return activity_task_json(
        run.workflow_id,
        run.run_id,
        seq,
        pending.attempt,
        pending.activity_type,
        pending.args,
        pending.options.start_to_close_timeout,
        pending.options.heartbeat_timeout,
        now,
        partition,
        pending.heartbeat_details,
    )
