"""The state machine of one partition: inbox commands and due timers in, history out.

A ``PartitionProcessor`` owns one partition's store, timers and instance
cache. Within a batch it applies commands to run states, appends history,
drives workflow instances, and fills the batch's ``Outbox``. It performs no
I/O of its own: the owner loop commits what it produced in one transaction.
"""

from __future__ import annotations

import dataclasses
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydantic_core import to_json

from ledgerflow.codec.base import CodecError
from ledgerflow.codec.envelope import encode, encode_failure
from ledgerflow.dag.registration import definition_problems
from ledgerflow.engine import metrics
from ledgerflow.engine.attempts import ActivityAttempts
from ledgerflow.engine.context import EngineContext
from ledgerflow.engine.errors import HistoryGapError, RunBlocked, WorkflowTypeNotLoaded
from ledgerflow.engine.outbox import Outbox
from ledgerflow.engine.resets import Resets
from ledgerflow.engine.run_writer import check_room
from ledgerflow.engine.schedules import Schedules, scheduled_by, scheduled_time
from ledgerflow.engine.starts import Starts, named_definition
from ledgerflow.engine.state import keys, requests, visibility
from ledgerflow.engine.state.committed import open_run_count
from ledgerflow.engine.state.models import CLOSING_STATUS, RunState, TimerEntry, UpdateOutcome
from ledgerflow.engine.state.requests import StartRefusal
from ledgerflow.engine.state.store import PartitionStore, StoreTransaction
from ledgerflow.engine.timers import TimerIndex
from ledgerflow.engine.workflow import commands as cmd
from ledgerflow.engine.workflow.cache import InstanceCache
from ledgerflow.engine.workflow.dag import definition_for
from ledgerflow.engine.workflow.instance import WorkflowInstance, info_for
from ledgerflow.engine.workflow.replayer import replay
from ledgerflow.errors import (
    HistoryTooLarge,
    NonDeterminismError,
    PayloadTooLarge,
    RunLimitError,
    TooManyPending,
    readable_size,
)
from ledgerflow.failures import fit_failure
from ledgerflow.schemas import commands as c
from ledgerflow.schemas import events as ev
from ledgerflow.schemas.common import Failure
from ledgerflow.schemas.lifecycle import LifecycleEvent, LifecycleType, lifecycle_event_json
from ledgerflow.schemas.search import upserted

log = logging.getLogger("ledgerflow.engine")
TYPE_NOT_LOADED_RETRY = 5.0
"""Seconds before a timer whose payload this engine cannot decode (a codec key) fires again."""
UNBLOCK_RETRY = 5.0
"""Seconds before a blocked run's code is first tried again (doubling up to ``MAX_UNBLOCK_RETRY``)."""
MAX_UNBLOCK_RETRY = 60.0
NEEDS_CODE = (
    c.SignalWorkflow,
    c.UpdateWorkflow,
    c.CancelWorkflow,
    c.TaskCompleted,
    c.TaskFailed,
    c.ChildWorkflowClosed,
)
"""Inbox commands the run's code must react to: a blocked run holds them, in order."""
HELD_BYTES_SHARE = 0.5
"""Share of ``max_record_bytes`` a blocked run's held commands may take (they are kept in its
state record, which must still fit)."""
BLOCKED_TIMER_RETRY = 30.0
SCHEDULE_RETRY = 60.0
"""Seconds before a schedule whose fire raised (an engine fault) tries again."""
"""Seconds a blocked run's due timers (but its execution timeout) wait before they look again."""


class PartitionProcessor:
    """Applies commands and timers to the workflows of one partition."""

    def __init__(self, partition: int, store: PartitionStore, ctx: EngineContext) -> None:
        self.partition = partition
        self.store = store
        self.ctx = ctx
        self.timers = TimerIndex(store)
        self.cache = InstanceCache(ctx.cache_size)
        self.txn = StoreTransaction(store)
        self.open_runs = open_run_count(store)
        """Open workflows on this partition (kept in the store with the runs)."""
        self._owner_recorded = store.get(keys.OWNER_KEY) == ctx.transactional_id.encode()
        self._runs: dict[str, RunState] = {}
        """Runs read or changed in the current batch (all written back by ``finish``)."""
        self._recent_runs: OrderedDict[str, RunState] = OrderedDict()
        """Runs of earlier batches, as committed (a bounded LRU)."""
        self._indexed: dict[str, visibility.Visible] = {}
        """What the visibility index holds of each workflow read in the current batch."""
        self._backfill: bytes | None = None if store.get(keys.VISIBILITY_BUILT) else keys.RUN
        """Where filling in the index of a store from before it stands (None: it is complete)."""
        self.now = time.time()
        self.out: Outbox = Outbox(ctx.settings)
        settings = ctx.settings
        # Read once (every event and state is measured): the size limits, and the history sizes
        # below which ``_check_history`` has nothing to warn about or refuse.
        self._max_payload_bytes = settings.max_payload_bytes
        self._max_record_bytes = settings.max_record_bytes
        self._watch_events = min(settings.history_warn_events, settings.max_history_events)
        self._watch_bytes = min(settings.history_warn_bytes, settings.max_history_bytes)
        self._codec = ctx.codec
        self.attempts = ActivityAttempts(self)
        self.starts = Starts(self)
        self.resets = Resets(self, self.attempts)
        self.schedules = Schedules(self)

    # ------------------------------------------------------------ batch frame
    def begin(self, now: float, out: Outbox) -> None:
        self.now = now
        self.out = out
        self.txn = StoreTransaction(self.store)
        self._runs = {}
        self._indexed = {}

    def finish(self) -> dict[bytes, bytes | None]:
        """Write the batch's run states into the transaction and return all changes."""
        for run in self._runs.values():
            key = keys.run_key(run.workflow_id)
            self.txn.put(key, self._state_record(run, key))
            visibility.write(self.txn, self._indexed.get(run.workflow_id), visibility.visible(run))
            # Kept parsed for the next batches. Safe because after a failed commit the owner
            # loop builds new processors from the store (PartitionManager.reload).
            self._recent_runs[run.workflow_id] = run
            self._recent_runs.move_to_end(run.workflow_id)
        while len(self._recent_runs) > self.ctx.cache_size:
            self._recent_runs.popitem(last=False)
        if self._runs:
            self.txn.put(keys.OPEN_RUNS, str(self.open_runs).encode())
        if self._backfill is not None:
            after = None if self._backfill == keys.RUN else self._backfill
            self._backfill = visibility.backfill(self.store, self.txn, after)
        if self.txn.changes and not self._owner_recorded:
            # Whoever restores this partition after a crash of ours can fence us by this id.
            self.txn.put(keys.OWNER_KEY, self.ctx.transactional_id.encode())
            self._owner_recorded = True
        self._runs = {}
        return self.txn.changes

    def _state_record(self, run: RunState, key: bytes) -> bytes:
        """The run's state as stored under ``key``; a run whose state outgrew a record is failed."""
        raw = run.model_dump_json().encode()
        size = len(key) + len(raw)
        if size > self._max_record_bytes:
            what = f"the state of run {run.run_id} (its input and what it waits on)"
            return self._fail_oversized(run, self.ctx.settings.too_large("max_record_bytes", size, what))
        return raw

    def _fail_oversized(self, run: RunState, too_large: PayloadTooLarge) -> bytes:
        """Fail an open run whose state no longer fits in a record; its closed state does.

        Each payload it holds is under ``max_payload_bytes`` (a third of a record at most),
        but an open run holds many at once: its input and every pending activity's arguments.
        """
        log.error("%s", too_large, extra={"workflowId": run.workflow_id, "partition": self.partition})
        if run.is_open:
            failure = Failure(type="PayloadTooLarge", message=str(too_large), non_retryable=True)
            self._close(run, ev.WorkflowFailed, failure=failure, origin="engine")
        return run.model_dump_json().encode()

    @property
    def indexing(self) -> bool:
        """Whether the store's visibility index is still being filled in (a store from before it)."""
        return self._backfill is not None

    # ----------------------------------------------------------------- reads
    def run(self, workflow_id: str) -> RunState | None:
        run = self._runs.get(workflow_id)
        if run is not None:
            return run
        run = self._recent_runs.pop(workflow_id, None)
        if run is None:
            raw = self.txn.get(keys.run_key(workflow_id))
            if raw is None:
                return None
            run = RunState.model_validate_json(raw)
        self._runs[workflow_id] = run
        self._indexed.setdefault(workflow_id, visibility.visible(run))
        return run

    def history(self, workflow_id: str, run_id: str, length: int) -> list[ev.HistoryEvent]:
        out = []
        for index in range(1, length + 1):
            raw = self.txn.get(keys.history_key(workflow_id, run_id, index))
            if raw is None:
                raise HistoryGapError(f"history of {workflow_id}/{run_id} has a gap at {index}")
            out.append(ev.history_event_adapter.validate_json(raw))
        return out

    # ------------------------------------------------------------- commands
    def handle(self, command: c.InboxCommand, deduplicate: bool = True) -> str | None:
        """Apply one inbox command. Returns a reason when it must go to the dead-letter topic.

        Never leaves a half-applied command behind: if applying it raises, its writes,
        outbox records and in-memory effects are rolled back, the workflow's run is failed
        with the error (so it cannot block the partition), and the reason is returned. A start
        refused for any reason leaves the refusal for its caller (``refuse_start``).
        """
        reason = self._handle_safely(command, deduplicate)
        if reason is not None and deduplicate and isinstance(command, c.StartWorkflow) and command.request_id:
            raw = self.txn.get(keys.request_key(command.workflow_id, command.request_id))
            told = requests.refusal(raw)
            if raw is None or (told is not None and told.start_run_id != command.run_id):
                self.refuse_start(command, StartRefusal("rejected", reason[:2000]))
        return reason

    def _handle_safely(self, command: c.InboxCommand, deduplicate: bool) -> str | None:
        workflow_id = getattr(command, "workflow_id", None)
        try:
            with self.savepoint(workflow_id):
                return self._handle(command) if deduplicate else self._dispatch_command(command)
        except RunBlocked as exc:
            reason = self._hold(command, exc.reason)
            if reason is None and deduplicate and workflow_id and command.request_id:
                key = keys.request_key(workflow_id, command.request_id)
                self.txn.put(key, self._resolved_run(command))  # held: taken, once
            return reason
        except CodecError as exc:
            # A deployment fault (this engine lacks a key), not the run's: the record is refused
            # with the reason and the run stays as it was.
            log.error("%s", exc, extra={"workflowId": workflow_id, "partition": self.partition})
            return f"{type(exc).__name__}: {exc}"
        except RunLimitError as exc:
            log.warning("%s", exc, extra={"workflowId": workflow_id, "partition": self.partition})
            metrics.RUN_LIMIT_FAILURES.labels(type=type(exc).__name__).inc()
            if isinstance(command, c.StartWorkflow):
                self.refuse_start(command, StartRefusal("limit", str(exc), error=type(exc).__name__))
                self.starts.refuse_child(command, Failure(type=type(exc).__name__, message=str(exc)))
                if command.start_signal is not None and isinstance(exc, HistoryTooLarge):
                    # a signal-with-start that found the run's history full fails it, as a signal would
                    self._fail_after_error(command.workflow_id, str(exc), type(exc).__name__)
            elif (
                workflow_id
                and not isinstance(command, c.ResetWorkflow)  # a reset that cannot be made changes nothing
                and (
                    # A full history fails its run whatever the record: nothing more can be added.
                    isinstance(exc, HistoryTooLarge)
                    or not isinstance(command, (c.SignalWorkflow, c.RegisterDefinition))
                )
            ):
                self._fail_after_error(workflow_id, str(exc), type(exc).__name__)
            return str(exc)  # a refused start or signal leaves the run as it was
        except Exception as exc:
            log.exception("command failed", extra={"workflowId": workflow_id, "partition": self.partition})
            reason = f"engine error: {type(exc).__name__}: {exc}"
            if workflow_id and not isinstance(command, c.ResetWorkflow):
                self._fail_after_error(workflow_id, reason)
            return reason

    @contextmanager
    def savepoint(self, workflow_id: str | None) -> Iterator[None]:
        mark, records, open_runs = self.txn.savepoint(), len(self.out.records), self.open_runs
        touched = self._runs.get(workflow_id) if workflow_id else None
        before = touched.model_dump_json() if touched is not None else None
        try:
            yield
        except Exception:
            self.txn.rollback(mark)
            del self.out.records[records:]
            self.open_runs = open_runs
            if workflow_id:
                self._recent_runs.pop(workflow_id, None)
                self._runs.pop(workflow_id, None)
                if before is not None:
                    self._runs[workflow_id] = RunState.model_validate_json(before)
                self.cache.evict_workflow(workflow_id)
            raise

    def _fail_after_error(self, workflow_id: str, reason: str, failure_type: str = "EngineError") -> None:
        try:
            with self.savepoint(workflow_id):
                run = self.run(workflow_id)
                if run is not None and run.is_open:
                    failure = Failure(type=failure_type, message=reason[:2000], non_retryable=True)
                    self._close(run, ev.WorkflowFailed, failure=failure, origin="engine")
        except Exception:
            log.exception(
                "could not fail the run", extra={"workflowId": workflow_id, "partition": self.partition}
            )

    def _handle(self, command: c.InboxCommand) -> str | None:
        workflow_id = c.key_of(command)
        seen = (
            keys.request_key(workflow_id, command.request_id) if command.request_id and workflow_id else None
        )
        if seen is not None and requests.taken(self.txn.get(seen)):
            metrics.DUPLICATES.inc()
            if isinstance(command, c.StartWorkflow):
                self._duplicate_start(command)
            return None
        if workflow_id and isinstance(command, NEEDS_CODE) and self._blocked(workflow_id):
            reason = self._hold(command, "")  # after what it already holds, in order
        else:
            reason = self._dispatch_command(command)
        if seen is not None and reason is None:
            # Only once applied: a refused start may be retried with its key. A start's key names
            # the run it resolved to, so a caller repeating it learns which run that was.
            self.txn.put(seen, self._resolved_run(command))
            if isinstance(command, c.SCHEDULE_COMMANDS) and workflow_id and command.request_id:
                # a schedule outlives any retention: its callers' keys go after a while
                expiry = TimerEntry(
                    workflow_id=workflow_id,
                    run_id=command.request_id,
                    kind="request_expiry",
                    fire_at=self.now + requests.REFUSAL_KEPT,
                )
                self.timers.add(self.txn, expiry)
        return reason

    def _duplicate_start(self, command: c.StartWorkflow) -> None:
        """A start applied before, sent again: a schedule that sent it waits for its run's close,
        which came already when the run is closed (an open run will still tell it)."""
        run = self.run(command.workflow_id)
        if run is None or not run.is_open:
            status = run.status if run is not None else "EXPIRED"
            self.tell_schedule(command.workflow_id, command.search_attributes, status, "started before")

    def _resolved_run(self, command: c.InboxCommand) -> bytes:
        """The record of an applied command (``engine/state/requests.py``): the run a start led
        to (the one it opened, even if that run continued as new at once, or the one it found
        open), or pending while it waits for its workflow type."""
        if not isinstance(command, c.StartWorkflow):
            return requests.APPLIED
        run = self.run(command.workflow_id)
        if run is not None and command.run_id in (run.run_id, *run.previous_runs):
            return str(command.run_id).encode()
        if run is not None and run.is_open:
            return run.run_id.encode()
        return requests.PENDING

    def record_start(self, command: c.StartWorkflow) -> None:
        """Record what a start waiting for its workflow type led to, once it was looked at again."""
        if command.request_id:
            self.txn.put(
                keys.request_key(command.workflow_id, command.request_id), self._resolved_run(command)
            )

    def refuse_start(self, command: c.StartWorkflow, refusal: StartRefusal) -> None:
        """Record why a start was refused under its request id, for the caller waiting for it,
        until ``requests.REFUSAL_KEPT`` has passed."""
        if not command.request_id:
            return
        refusal = dataclasses.replace(refusal, start_run_id=command.run_id, refused_at=self.now)
        self.txn.put(keys.request_key(command.workflow_id, command.request_id), refusal.encode())
        self.tell_schedule(
            command.workflow_id, command.search_attributes, "REFUSED", f"{refusal.kind}: {refusal.message}"
        )
        expiry = TimerEntry(
            workflow_id=command.workflow_id,
            run_id=command.request_id,
            kind="refusal_expiry",
            fire_at=self.now + requests.REFUSAL_KEPT,
        )
        self.timers.add(self.txn, expiry)

    def _forget_refusal(self, workflow_id: str, request_id: str) -> None:
        key = keys.request_key(workflow_id, request_id)
        refusal = requests.refusal(self.txn.get(key))
        # not applied since, and not refused again later (that refusal has a timer of its own)
        if refusal is not None and (refusal.refused_at or 0.0) + requests.REFUSAL_KEPT <= self.now:
            self.txn.delete(key)

    def _dispatch_command(self, command: c.InboxCommand) -> str | None:
        match command:
            case c.StartWorkflow():
                return self.starts.start(command)
            case c.SignalWorkflow():
                return self._signal(command)
            case c.UpdateWorkflow():
                return self._update(command)
            case c.CancelWorkflow():
                return self._cancel(command)
            case c.TerminateWorkflow():
                return self._terminate(command)
            case c.ResetWorkflow():
                return self.resets.reset(command)
            case c.RegisterDefinition():
                return self._register(command)
            case c.TaskCompleted() | c.TaskFailed() | c.TaskHeartbeat():
                self.attempts.result(command)
                return None
            case c.ChildWorkflowClosed():
                self._child_closed(command)
                return None
            case (
                c.CreateSchedule()
                | c.UpdateSchedule()
                | c.PauseSchedule()
                | c.TriggerSchedule()
                | c.BackfillSchedule()
                | c.DeleteSchedule()
                | c.ScheduledRunClosed()
            ):
                return self.schedules.handle(command)
        return f"unhandled command kind {command.kind!r}"

    def open_run(
        self, command: c.StartWorkflow, previous: RunState | None, continued_from: str | None
    ) -> RunState:
        dag = command.dag
        if dag is None and self.ctx.registry.get(command.workflow_type) is None:
            dag = named_definition(self.ctx, command)
        run = RunState(
            workflow_id=command.workflow_id,
            run_id=command.run_id or str(uuid.uuid4()),
            workflow_type=command.workflow_type,
            is_dag=dag is not None,
            input=command.input,
            started_at=self.now,
            parent_workflow_id=command.parent_workflow_id,
            parent_run_id=command.parent_run_id,
            parent_seq=command.parent_seq,
            previous_runs=[*previous.previous_runs, previous.run_id][-self.ctx.settings.max_previous_runs :]
            if previous
            else [],
            search_attributes=command.search_attributes,
            memo=command.memo,
        )
        self.begin_run(run)
        fired_at = scheduled_time(command.search_attributes) if continued_from is None else None
        if fired_at is not None:  # a schedule's start (not the runs it continues as)
            metrics.SCHEDULE_LAG.observe(max(0.0, self.now - fired_at))
        self.lifecycle(run, "WORKFLOW_STARTED", run.history_length + 1, {"input": command.input})
        started = self.append_event(
            run,
            ev.WorkflowStarted,
            workflow_type=command.workflow_type,
            input=command.input,
            dag=dag,
            execution_timeout=command.execution_timeout,
            parent_workflow_id=command.parent_workflow_id,
            parent_run_id=command.parent_run_id,
            parent_seq=command.parent_seq,
            continued_from_run_id=continued_from,
            search_attributes=command.search_attributes,
            memo=command.memo,
        )
        assert isinstance(started, ev.WorkflowStarted)
        definition = definition_for(command.workflow_type, dag, self.ctx.registry)
        instance = (
            WorkflowInstance(
                definition, info_for(run.workflow_id, run.run_id, self.partition, started), self._codec
            )
            if definition
            else None
        )
        if command.execution_timeout:
            self.add_timer(run, "run_timeout", self.now + command.execution_timeout)
        if instance is None:
            self._close(
                run,
                ev.WorkflowFailed,
                failure=Failure(
                    type="UnknownWorkflowType",
                    message=f"no code workflow or DAG definition named {command.workflow_type!r} "
                    f"(code workflows here: {', '.join(self.ctx.registry.names()) or 'none'})",
                    non_retryable=True,
                ),
                origin="engine",
            )
            return run
        self.cache.put(run.workflow_id, run.run_id, instance)
        self._apply_commands(run, instance, instance.activate(started))
        return run

    def begin_run(self, run: RunState) -> None:
        self._runs[run.workflow_id] = run
        self.open_runs += 1
        metrics.STARTED.inc()

    def _signal(self, command: c.SignalWorkflow) -> str | None:
        run = self.run(command.workflow_id)
        if run is None or not run.is_open:
            return f"signal {command.name!r}: workflow {command.workflow_id!r} has no open run"
        self.signal(run, command.name, command.payload)
        return None

    def signal(self, run: RunState, name: str, payload: Any) -> None:
        """Deliver a signal to an open run (refused when its code has too many untaken)."""
        instance = self._instance(run)
        if (
            not instance.waits_for_signal(name)
            and instance.buffered_signals() >= self.ctx.settings.max_buffered_signals
        ):
            raise TooManyPending(
                run.run_id,
                "signals its code has not taken",
                self.ctx.settings.max_buffered_signals,
                "max_buffered_signals",
            )
        self.lifecycle(run, "SIGNAL_RECEIVED", run.history_length + 1, {"name": name})
        self.deliver(run, ev.SignalReceived, name=name, payload=payload)

    def _update(self, command: c.UpdateWorkflow) -> str | None:
        """Validate an update against the run's current state; run it if accepted. Either way
        its outcome is recorded in history and kept under its id in the run's state."""
        run = self.run(command.workflow_id)
        if run is None or not run.is_open:
            return f"update {command.name!r}: workflow {command.workflow_id!r} has no open run"
        if command.update_id in run.updates:
            return None  # applied already (sent twice)
        instance = self._instance(run)
        failure = instance.validate_update(command.name, command.payload)
        if failure is not None:
            failure = self._recorded(failure)
            self.append(
                run, ev.UpdateRejected, update_id=command.update_id, name=command.name, failure=failure
            )
            run.updates[command.update_id] = UpdateOutcome(status="rejected", failure=failure)
            return None
        run.updates[command.update_id] = UpdateOutcome(status="accepted")
        self.deliver(
            run, ev.UpdateAccepted, update_id=command.update_id, name=command.name, payload=command.payload
        )
        return None

    def _cancel(self, command: c.CancelWorkflow) -> str | None:
        run = self.run(command.workflow_id)
        if run is None or not run.is_open:
            return f"cancel: workflow {command.workflow_id!r} has no open run"
        if not run.cancel_requested:
            run.cancel_requested = True
            self.deliver(run, ev.CancelRequested, reason=command.reason)
        return None

    def _terminate(self, command: c.TerminateWorkflow) -> str | None:
        run = self.run(command.workflow_id)
        if run is None or not run.is_open:
            return f"terminate: workflow {command.workflow_id!r} has no open run"
        self.terminate(run, command.reason)
        return None

    def terminate(self, run: RunState, reason: str, notify_parent: bool = True) -> None:
        self._close(run, ev.WorkflowTerminated, notify_parent=notify_parent, reason=reason)

    def _register(self, command: c.RegisterDefinition) -> str | None:
        definition = command.definition
        problems = definition_problems(definition, self.ctx.settings)
        if problems:
            return f"definition {definition.id!r} refused: " + "; ".join(p.message for p in problems)
        self.out.definition(definition.id, definition.model_dump_json(by_alias=True).encode())
        self.out.event(
            definition.id,
            LifecycleEvent(
                type="DEFINITION_REGISTERED",
                workflow_id=definition.id,
                time=self.now,
                partition=self.partition,
                data={"name": definition.name, "nodes": len(definition.nodes)},
            ),
        )
        return None

    def _child_closed(self, command: c.ChildWorkflowClosed) -> None:
        run = self.run(command.workflow_id)
        if run is None or not run.is_open or run.run_id != command.run_id:
            return
        if run.children.pop(command.seq, None) is None:
            return
        if command.status == "COMPLETED":
            self.deliver(run, ev.ChildWorkflowCompleted, seq=command.seq, result=command.result)
        else:
            failure = command.failure or Failure(type=command.status, message=f"child ended {command.status}")
            self.deliver(run, ev.ChildWorkflowFailed, seq=command.seq, failure=failure)

    # ------------------------------------------------------------------ timers
    def fire_timers(self, limit: int = 1000) -> int:
        fired = 0
        for entry in self.timers.pop_due(self.txn, self.now, limit):
            fired += 1
            try:
                with self.savepoint(entry.workflow_id):
                    if entry.kind == "retention":
                        self._expire(entry.workflow_id, entry.run_id)
                        continue
                    if entry.kind == "refusal_expiry":
                        self._forget_refusal(entry.workflow_id, entry.run_id)
                        continue
                    if entry.kind == "request_expiry":
                        self.txn.delete(keys.request_key(entry.workflow_id, entry.run_id))
                        continue
                    if entry.kind == "schedule_fire":
                        self.schedules.fire(entry)
                        continue
                    if entry.kind == "deferred_start" and entry.start is not None:
                        self.starts.retry(entry.start, entry.give_up_at or self.now)
                        continue
                    run = self.run(entry.workflow_id)
                    if run is None or not run.is_open or run.run_id != entry.run_id:
                        continue
                    if entry.kind == "unblock":
                        self._unblock(run, entry)
                        continue
                    if run.blocked is not None and entry.kind != "run_timeout":
                        # Its unblock timer tries the code; this waits (the execution timeout,
                        # which needs no code, does not).
                        entry.fire_at = self.now + BLOCKED_TIMER_RETRY
                        self.timers.add(self.txn, entry)
                        continue
                    self._fire(run, entry)
            except (RunBlocked, CodecError) as exc:
                if isinstance(exc, CodecError):
                    log.error("%s", exc, extra={"workflowId": entry.workflow_id, "partition": self.partition})
                else:
                    self._mark_blocked(entry.workflow_id, exc.reason)
                entry.fire_at = self.now + TYPE_NOT_LOADED_RETRY
                self.timers.add(self.txn, entry)
            except Exception as exc:
                log.exception(
                    "timer failed", extra={"workflowId": entry.workflow_id, "partition": self.partition}
                )
                if entry.kind == "schedule_fire":
                    # A schedule, not a run: nothing to fail. It tries again later (its record
                    # is as it was: the savepoint rolled its changes back).
                    entry.fire_at = self.now + SCHEDULE_RETRY
                    self.timers.add(self.txn, entry)
                    continue
                if entry.kind == "deferred_start" and entry.start is not None:
                    # its caller waits for a decision: this is it
                    reason = f"engine error: {type(exc).__name__}: {exc}"
                    self.refuse_start(entry.start, StartRefusal("rejected", reason[:2000]))
                if isinstance(exc, RunLimitError):
                    self._fail_after_error(entry.workflow_id, str(exc), type(exc).__name__)
                else:
                    self._fail_after_error(entry.workflow_id, f"engine error: {type(exc).__name__}: {exc}")
        return fired

    # ------------------------------------------------------------ blocked runs
    def _blocked(self, workflow_id: str) -> bool:
        run = self.run(workflow_id)
        return run is not None and run.is_open and run.blocked is not None

    def _mark_blocked(self, workflow_id: str, reason: str) -> RunState | None:
        """Record that the open run of ``workflow_id`` is blocked; set its retry timer the first
        time. None when there is no open run to block."""
        run = self.run(workflow_id)
        if run is None or not run.is_open:
            return None
        if run.blocked is None:
            log.warning(
                "run %s blocked, kept open until code that replays it is deployed: %s",
                run.run_id,
                reason,
                extra={"workflowId": workflow_id, "partition": self.partition},
            )
            metrics.BLOCKED.inc()
            self.add_timer(run, "unblock", self.now + UNBLOCK_RETRY)
            run.blocked_by = self.ctx.code_token
        run.blocked = reason or run.blocked
        return run

    def _hold(self, command: c.InboxCommand, reason: str) -> str | None:
        """Keep a command for a blocked run until its code can take it (``_unblock``); a
        dead-letter reason when it cannot be kept."""
        if isinstance(command, c.StartWorkflow) and command.start_signal is not None:
            # A signal-with-start that found its run blocked: the run holds the signal.
            start_signal = command.start_signal
            command = c.SignalWorkflow(
                workflow_id=command.workflow_id, name=start_signal.name, payload=start_signal.payload
            )
        workflow_id = getattr(command, "workflow_id", None)
        if not workflow_id or not isinstance(command, NEEDS_CODE):
            return reason or "the run is blocked"
        run = self._mark_blocked(workflow_id, reason)
        if run is None:
            return reason
        settings = self.ctx.settings
        limit = settings.max_buffered_signals
        messages = sum(1 for held in run.held if held.get("kind") in ("signal_workflow", "update_workflow"))
        if isinstance(command, (c.SignalWorkflow, c.UpdateWorkflow)) and messages >= limit:
            return f"{run.blocked}; and it holds {limit} signals and updates already (max_buffered_signals)"
        raw = command.model_dump(mode="json")
        budget = int(settings.max_record_bytes * HELD_BYTES_SHARE)
        if sum(len(to_json(held)) for held in run.held) + len(to_json(raw)) > budget:
            return f"{run.blocked}; and what it holds would outgrow its state record ({budget} bytes)"
        run.held.append(raw)
        return None

    def _unblock(self, run: RunState, entry: TimerEntry) -> None:
        """Try a blocked run's code again; once it replays, apply what the run held, in order."""
        if run.blocked is None:
            return
        try:
            if run.blocked_by == self.ctx.code_token:
                # The code that blocked it is the code loaded here: it fails the same way again.
                raise RunBlocked(run.workflow_id, run.blocked)
            self._instance(run)
        except RunBlocked as exc:
            run.blocked, run.blocked_by = exc.reason, self.ctx.code_token
            entry.attempt += 1
            entry.fire_at = self.now + min(UNBLOCK_RETRY * 2**entry.attempt, MAX_UNBLOCK_RETRY)
            self.timers.add(self.txn, entry)
            return
        log.info(
            "run %s unblocked: its code replays; applying %d held commands",
            run.run_id,
            len(run.held),
            extra={"workflowId": run.workflow_id, "partition": self.partition},
        )
        held, run.blocked, run.blocked_by, run.held = run.held, None, None, []
        for raw in held:
            command = c.inbox_command_adapter.validate_python(raw)
            reason = self.handle(command, deduplicate=False)
            if reason is not None:
                metrics.DEAD_LETTERS.inc()
                value = command.model_dump_json(by_alias=True).encode()
                self.out.dead_letter(run.workflow_id.encode(), value, reason, "held", self.partition, -1)

    def _expire(self, workflow_id: str, run_id: str) -> None:
        """Delete a closed run past its retention: its history, and the workflow's state
        and idempotency keys too when it is still the workflow's latest run."""
        if self.ctx.retention is None:
            return  # retention was turned off since this run closed: keep it
        run = self.run(workflow_id)
        if run is not None and run.run_id == run_id and run.is_open:
            return  # cannot happen (the timer is set at close); keep everything
        self.txn.delete_prefix(keys.history_prefix(workflow_id, run_id))
        if run is None:
            return
        if run.run_id != run_id:  # a later run exists: forget only this one
            if run_id in run.previous_runs:
                run.previous_runs.remove(run_id)
            return
        del self._runs[workflow_id]
        self._recent_runs.pop(workflow_id, None)
        self.txn.delete(keys.run_key(workflow_id))
        visibility.write(self.txn, self._indexed.pop(workflow_id, None), None)
        self.txn.delete_prefix(keys.request_prefix(workflow_id))
        metrics.EXPIRED.inc()

    def _fire(self, run: RunState, entry: TimerEntry) -> None:
        if entry.kind == "timer":
            if run.timers.pop(entry.seq, None) is not None:
                self.lifecycle(run, "TIMER_FIRED", run.history_length + 1, {"seq": entry.seq})
                self.deliver(run, ev.TimerFired, seq=entry.seq)
            return
        if entry.kind == "run_timeout":
            self._close(
                run,
                ev.WorkflowFailed,
                failure=Failure(
                    type="WorkflowExecutionTimeout",
                    message="the run exceeded its execution timeout",
                    non_retryable=True,
                ),
                origin="engine",
            )
            return
        self.attempts.fire(run, entry)

    def add_timer(self, run: RunState, kind: Any, fire_at: float, seq: int = 0, attempt: int = 0) -> None:
        entry = TimerEntry(
            workflow_id=run.workflow_id,
            run_id=run.run_id,
            kind=kind,
            seq=seq,
            attempt=attempt,
            fire_at=fire_at,
        )
        self.timers.add(self.txn, entry)

    # --------------------------------------------------------------- history
    def append(self, run: RunState, event_type: type[Any], **fields: Any) -> None:
        """Record an event the workflow code need not see (a command, a close)."""
        raw = ev.history_event_json(event_type, run.history_length + 1, self.now, fields)
        self.record(run, raw, event_type)

    def append_event(self, run: RunState, event_type: type[Any], **fields: Any) -> ev.HistoryEvent:
        """Record an event and return it, for the workflow code to react to."""
        # model_construct: the engine builds these from validated values; skipping
        # validation here is the largest saving on the hot path (see bench/results/core.md).
        event: ev.HistoryEvent = event_type.model_construct(
            index=run.history_length + 1, time=self.now, **fields
        )
        self.record(run, event.model_dump_json().encode(), event_type)
        return event

    def record(self, run: RunState, raw: bytes, event_type: type[Any]) -> None:
        index = run.history_length + 1
        size = len(raw)
        if size > self._max_payload_bytes:
            what = f"{event_type.__name__} (event #{index} of run {run.run_id})"
            raise self.ctx.settings.too_large("max_payload_bytes", size, what)
        if (index >= self._watch_events or run.history_bytes + size >= self._watch_bytes) and not issubclass(
            event_type, ev.CLOSING_EVENTS
        ):  # the close always fits: the limit ends in it
            self._check_history(run, index, size)
        self.txn.put(keys.history_key(run.workflow_id, run.run_id, index), raw)
        run.history_length = index
        run.history_bytes += size
        # A cached instance stays current through events it need not react to (the
        # commands it just issued, attempt bookkeeping); only a gap means a replay.
        instance = self.cache.peek(run.workflow_id, run.run_id)
        if instance is not None and instance.applied == index - 1:
            instance.applied = index

    def _check_history(self, run: RunState, index: int, size: int) -> None:
        """Refuse an event past the history limits (one is kept for the close); warn once near them."""
        settings = self.ctx.settings
        if index >= settings.max_history_events:
            limit = f"{settings.max_history_events:,}"
            raise HistoryTooLarge(run.run_id, "events", limit, "max_history_events")
        total = run.history_bytes + size
        if total > settings.max_history_bytes:
            limit = readable_size(settings.max_history_bytes)
            raise HistoryTooLarge(run.run_id, "of events", limit, "max_history_bytes")
        warn_bytes = settings.history_warn_bytes
        if index == settings.history_warn_events or run.history_bytes < warn_bytes <= total:
            metrics.HISTORY_WARNINGS.inc()
            log.warning(
                "run %s has %d events (%s) in its history; it fails at %d events or %s "
                "(max_history_events, max_history_bytes): continue-as-new starts a fresh history",
                run.run_id,
                index,
                readable_size(total),
                settings.max_history_events,
                readable_size(settings.max_history_bytes),
                extra={"workflowId": run.workflow_id, "partition": self.partition},
            )

    def _instance(self, run: RunState) -> WorkflowInstance:
        """The run's live instance, rebuilt by replay on a cache miss. Raises ``RunBlocked`` when
        its code is not loaded here or no longer replays its history."""
        instance = self.cache.get(run.workflow_id, run.run_id)
        if instance is not None and instance.applied == run.history_length:
            return instance
        history = self.history(run.workflow_id, run.run_id, run.history_length)
        started = history[0]
        assert isinstance(started, ev.WorkflowStarted)
        definition = definition_for(run.workflow_type, started.dag, self.ctx.registry)
        if definition is None:
            raise RunBlocked(run.workflow_id, str(WorkflowTypeNotLoaded(run.workflow_type)))
        instance = WorkflowInstance(
            definition, info_for(run.workflow_id, run.run_id, self.partition, started), self._codec
        )
        metrics.REPLAYS.inc()
        try:
            replay(instance, history)
        except NonDeterminismError as exc:
            # Temporal's answer to a bad deploy: the run is not failed for the code's fault; it
            # waits, open, for code that replays (see ``_hold`` and ``_unblock``).
            metrics.NONDETERMINISM.inc()
            log.error("%s", exc, extra={"workflowId": run.workflow_id, "partition": self.partition})
            instance.dispose()
            raise RunBlocked(run.workflow_id, f"NonDeterminismError: {exc.detail}") from exc
        self.cache.put(run.workflow_id, run.run_id, instance)
        return instance

    def deliver(self, run: RunState, event_type: type[Any], **fields: Any) -> None:
        """Append an input event and let the workflow code react to it."""
        # Raises RunBlocked before anything is recorded: recording the event without running the
        # code would make the history unreplayable once the code is back (a rolling deploy).
        instance = self._instance(run)
        event = self.append_event(run, event_type, **fields)
        self._apply_commands(run, instance, instance.activate(event))

    # -------------------------------------------------------------- commands
    def _apply_commands(self, run: RunState, instance: WorkflowInstance, commands: list[cmd.Command]) -> None:
        for command in commands:
            if not run.is_open:
                return
            try:
                self._apply_command(run, command)
            except RunLimitError as exc:
                if not run.is_open:
                    raise  # the run closed and the next one did not fit: undo the whole command
                # What the code asked for cannot be recorded or sent (nothing of it was): the
                # run fails by name, as it would for any error the code cannot handle.
                metrics.RUN_LIMIT_FAILURES.labels(type=type(exc).__name__).inc()
                failure = Failure(type=type(exc).__name__, message=str(exc), non_retryable=True)
                self._close(run, ev.WorkflowFailed, failure=failure, origin="engine")
                return

    def _apply_command(self, run: RunState, command: cmd.Command) -> None:
        """Record what the code asked for, and do it. The payloads it produced are encoded here,
        once (with a codec): history, state, tasks and child starts carry the same ciphertext."""
        codec = self._codec
        match command:
            case cmd.ScheduleActivity():
                self.attempts.schedule(run, command)
            case cmd.RequestCancelActivity():
                self.attempts.request_cancel(run, command.seq)
            case cmd.StartTimer():
                check_room(self, run, len(run.timers), "timers open", "max_pending_timers")
                fire_at = self.now + command.seconds
                self.append(run, ev.TimerStarted, seq=command.seq, fire_at=fire_at)
                run.timers[command.seq] = fire_at
                self.add_timer(run, "timer", fire_at, command.seq)
            case cmd.CancelTimer():
                self.append(run, ev.TimerCanceled, seq=command.seq)
                timer_at = run.timers.pop(command.seq, None)
                if timer_at is not None:
                    self.txn.delete(
                        keys.timer_key(
                            timer_at,
                            run.workflow_id,
                            TimerEntry.tag_of("timer", run.run_id, command.seq, 0),
                        )
                    )
            case cmd.StartChildWorkflow():
                check_room(self, run, len(run.children), "child workflows open", "max_pending_children")
                input = encode(codec, command.input)
                self.append(
                    run,
                    ev.ChildWorkflowStarted,
                    seq=command.seq,
                    workflow_id=command.workflow_id,
                    workflow_type=command.workflow_type,
                    input=input,
                )
                run.children[command.seq] = command.workflow_id
                self.out.inbox(
                    command.workflow_id,
                    c.StartWorkflow(
                        workflow_id=command.workflow_id,
                        workflow_type=command.workflow_type,
                        input=input,
                        parent_workflow_id=run.workflow_id,
                        parent_run_id=run.run_id,
                        parent_seq=command.seq,
                    ),
                )
            case cmd.CompleteUpdate():
                result = encode(codec, command.result)
                failure = self._recorded(command.failure) if command.failure else None
                self.append(
                    run, ev.UpdateCompleted, update_id=command.update_id, result=result, failure=failure
                )
                run.updates[command.update_id] = UpdateOutcome(
                    status="failed" if failure else "completed", result=result, failure=failure
                )
            case cmd.CompleteWorkflow():
                self._close(run, ev.WorkflowCompleted, result=encode(codec, command.result))
            case cmd.FailWorkflow():
                self._close(run, ev.WorkflowFailed, failure=self._recorded(command.failure))
            case cmd.CancelWorkflowDone():
                self._close(run, ev.WorkflowCanceled, reason="canceled")
            case cmd.RecordPatch():
                self.append(run, ev.PatchRecorded, patch_id=command.patch_id)
            case cmd.UpsertSearchAttributes():
                self.append(run, ev.SearchAttributesUpserted, attributes=command.attributes)
                # A new dict: the index compares it with the one the batch began with.
                run.search_attributes = upserted(run.search_attributes, command.attributes)
            case cmd.ContinueAsNew():
                self._continue_as_new(run, encode(codec, command.input))

    def _recorded(self, failure: Failure) -> Failure:
        """A failure raised by workflow code (an update's or the run's), as its event records it:
        details encoded, and cut to fit the event under ``max_payload_bytes`` (an unhandled
        activity failure comes with the workflow's own error and stack around it)."""
        room = self._max_payload_bytes - ev.EVENT_ENVELOPE_BYTES
        return fit_failure(encode_failure(self._codec, failure), room)

    def _close(
        self, run: RunState, event_type: type[Any], *, notify_parent: bool = True, **fields: Any
    ) -> None:
        self.append(run, event_type, **fields)
        status = CLOSING_STATUS[event_type]
        run.status = status
        self.open_runs -= 1
        run.closed_at = self.now
        run.result = fields.get("result")
        run.failure = fields.get("failure")
        for raw in run.held:  # a blocked run terminated: what it held never reaches its code
            metrics.DEAD_LETTERS.inc()
            reason = f"the run closed {status} while blocked ({run.blocked}) before its code took this"
            value = to_json(raw)
            self.out.dead_letter(run.workflow_id.encode(), value, reason, "held", self.partition, -1)
        run.blocked, run.held = None, []
        for seq, pending in run.activities.items():
            self.attempts.cancel(run, seq, pending)
        run.activities = {}
        run.timers = {}
        self.cache.evict(run.workflow_id, run.run_id)
        if self.ctx.retention is not None:
            self.add_timer(run, "retention", self.now + self.ctx.retention)
        metrics.CLOSED.labels(status=status).inc()
        metrics.RUN_DURATION.observe(max(0.0, self.now - run.started_at))
        data: dict[str, Any] = {"result": run.result} if status == "COMPLETED" else {}
        if run.failure is not None:
            data["failure"] = run.failure.model_dump()
        lifecycle: dict[str, LifecycleType] = {
            "COMPLETED": "WORKFLOW_COMPLETED",
            "FAILED": "WORKFLOW_FAILED",
            "CANCELED": "WORKFLOW_CANCELED",
            "TERMINATED": "WORKFLOW_TERMINATED",
            "CONTINUED_AS_NEW": "WORKFLOW_CONTINUED_AS_NEW",
        }
        self.lifecycle(run, lifecycle[status], run.history_length, data)
        if status != "CONTINUED_AS_NEW":
            why = run.failure.message if run.failure is not None else fields.get("reason")
            self.tell_schedule(run.workflow_id, run.search_attributes, status, why)
        if (
            notify_parent
            and run.parent_workflow_id
            and run.parent_run_id
            and run.parent_seq is not None
            and status != "CONTINUED_AS_NEW"
        ):
            self.out.inbox(
                run.parent_workflow_id,
                c.ChildWorkflowClosed(
                    workflow_id=run.parent_workflow_id,
                    run_id=run.parent_run_id,
                    seq=run.parent_seq,
                    child_workflow_id=run.workflow_id,
                    status=status,
                    result=run.result,
                    failure=run.failure,
                ),
            )

    def tell_schedule(self, workflow_id: str, attributes: Any, status: str, reason: str | None) -> None:
        """Tell the schedule that started ``workflow_id`` (if one did) that its run closed with
        ``status``, or that its start was refused; overlap policies wait for this."""
        schedule_id = scheduled_by(workflow_id, attributes)
        if schedule_id is None:
            return
        try:
            closed = c.ScheduledRunClosed(
                schedule_id=schedule_id,
                scheduled_workflow_id=workflow_id,
                status=status,
                reason=reason[:2000] if reason else None,
            )
        except ValueError:  # an attribute set by the run's own code, naming no valid schedule id
            return
        self.out.inbox(schedule_id, closed)

    def _continue_as_new(self, run: RunState, input: Any) -> None:
        new_run_id = str(uuid.uuid4())
        started = self.history(run.workflow_id, run.run_id, 1)[0]
        assert isinstance(started, ev.WorkflowStarted)
        self._close(run, ev.WorkflowContinuedAsNew, new_run_id=new_run_id, input=input)
        self.open_run(
            c.StartWorkflow(
                workflow_id=run.workflow_id,
                workflow_type=run.workflow_type,
                input=input,
                run_id=new_run_id,
                dag=started.dag,
                execution_timeout=started.execution_timeout,
                parent_workflow_id=run.parent_workflow_id,
                parent_run_id=run.parent_run_id,
                parent_seq=run.parent_seq,
                search_attributes=run.search_attributes,
                memo=run.memo,
            ),
            run,
            continued_from=run.run_id,
        )

    def lifecycle(self, run: RunState, kind: LifecycleType, index: int | None, data: Any) -> None:
        self.out.event(
            run.workflow_id,
            lifecycle_event_json(
                kind, run.workflow_id, run.run_id, run.workflow_type, self.now, self.partition, index, data
            ),
        )
