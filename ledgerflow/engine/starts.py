"""Whether and when a start command opens a run: a duplicate of the open or a past run is
ignored, capacity limits refuse, a start whose workflow type is not known yet waits a few
seconds for it (a DAG registered a moment before), and a child that cannot start is reported
to its parent rather than left waited for.
"""

from __future__ import annotations

import logging

from pydantic import ValidationError
from pydantic_core import to_json

from ledgerflow import namespaces
from ledgerflow.engine import metrics
from ledgerflow.engine.context import EngineContext
from ledgerflow.engine.run_writer import RunWriter
from ledgerflow.engine.state.models import RunState, TimerEntry
from ledgerflow.engine.state.requests import StartRefusal
from ledgerflow.errors import RunLimitError
from ledgerflow.schemas import commands as c
from ledgerflow.schemas.common import Failure
from ledgerflow.schemas.dag import DagDefinition

log = logging.getLogger("ledgerflow.engine")
UNKNOWN_TYPE_GRACE = 5.0
"""Seconds a start whose workflow type is unknown waits for it (a DAG registered a moment
before, whose definition this engine has not read yet) before the run fails."""
DEFERRED_START_RETRY = 0.2
"""Seconds between two looks for the workflow type of a waiting start."""


class Starts:
    """The start commands of one partition."""

    def __init__(self, writer: RunWriter) -> None:
        self.w = writer

    def start(self, command: c.StartWorkflow, give_up_at: float | None = None) -> str | None:
        """Open the run ``command`` asks for, wait for its type, or say why not (a dead letter).

        ``give_up_at`` is set when a waiting start looks again: it was admitted at first sight.
        """
        w = self.w
        existing = w.run(command.workflow_id)
        refusal = _policy_refusal(command, existing)
        if refusal is not None:
            assert existing is not None  # only a taken id refuses
            log.info(
                "start refused: %s",
                refusal,
                extra={"workflowId": command.workflow_id, "partition": w.partition},
            )
            w.refuse_start(
                command, StartRefusal("already_started", refusal, existing.run_id, existing.status)
            )
            if existing.is_open:
                self.refuse_child(command, Failure(type="WorkflowAlreadyStarted", message=refusal))
            return refusal
        if (
            existing is not None
            and existing.is_open
            and command.id_conflict_policy == "terminate_existing"
            and command.run_id != existing.run_id
        ):
            w.terminate(existing, f"terminated by a start of run {command.run_id} (id_conflict_policy)")
        if existing is not None and (
            existing.is_open or command.run_id in (existing.run_id, *existing.previous_runs)
        ):
            if existing.is_open and command.start_signal is not None and command.run_id != existing.run_id:
                # Signal-with-start of a running workflow: the signal goes to it (unless this is
                # the start of that very run, applied again).
                w.signal(existing, command.start_signal.name, command.start_signal.payload)
                return None
            log.info(
                "start ignored: run %s already %s",
                existing.run_id,
                existing.status,
                extra={"workflowId": command.workflow_id, "partition": w.partition},
            )
            if not existing.is_open:  # a schedule's start of a run that closed already
                w.tell_schedule(
                    command.workflow_id, command.search_attributes, existing.status, "started before"
                )
            if existing.is_open:
                # A child whose id is taken: tell the parent instead of leaving it waiting.
                failure = Failure(
                    type="WorkflowAlreadyStarted",
                    message=f"workflow id {command.workflow_id!r} is already running (run {existing.run_id})",
                )
                self.refuse_child(command, failure)
            return None
        first_sight = give_up_at is None
        if give_up_at is None:
            if command.parent_workflow_id is None:
                refusal = w.ctx.limits.refusal(w.partition, w.open_runs)
                if refusal is not None:
                    metrics.REFUSED.inc()
                    w.refuse_start(command, StartRefusal("capacity", refusal))
                    return refusal
            give_up_at = w.now + UNKNOWN_TYPE_GRACE
        if w.now < give_up_at and not self._type_known(command):
            if first_sight:
                self._refuse_oversized_input(command)
            self._defer(command, give_up_at)
            return None
        w.open_run(command, existing, continued_from=None)
        run = w.run(command.workflow_id)  # the run open now (its first activation may have continued as new)
        if command.start_signal is not None and run is not None and run.is_open:
            w.signal(run, command.start_signal.name, command.start_signal.payload)
        return None

    def retry(self, command: c.StartWorkflow, give_up_at: float) -> None:
        """A waiting start's next look for its type; refused as a first sight would be."""
        w = self.w
        try:
            with w.savepoint(command.workflow_id):
                if self.start(command, give_up_at) is None:
                    w.record_start(command)
        except RunLimitError as exc:
            log.warning("%s", exc, extra={"workflowId": command.workflow_id, "partition": w.partition})
            metrics.RUN_LIMIT_FAILURES.labels(type=type(exc).__name__).inc()
            metrics.DEAD_LETTERS.inc()
            w.refuse_start(command, StartRefusal("limit", str(exc), error=type(exc).__name__))
            self.refuse_child(command, Failure(type=type(exc).__name__, message=str(exc)))
            raw = command.model_dump_json().encode()
            w.out.dead_letter(command.workflow_id.encode(), raw, str(exc), "deferred-start", w.partition, -1)

    def refuse_child(self, command: c.StartWorkflow, failure: Failure) -> None:
        """Tell the parent (if any) that its child did not start, rather than leave it waiting."""
        if not (command.parent_workflow_id and command.parent_run_id):
            return
        self.w.out.inbox(
            command.parent_workflow_id,
            c.ChildWorkflowClosed(
                workflow_id=command.parent_workflow_id,
                run_id=command.parent_run_id,
                seq=command.parent_seq or 0,
                child_workflow_id=command.workflow_id,
                status="FAILED",
                failure=failure.model_copy(update={"non_retryable": True}),
            ),
        )

    def _type_known(self, command: c.StartWorkflow) -> bool:
        ctx = self.w.ctx
        return (
            command.dag is not None
            or ctx.registry.get(command.workflow_type) is not None
            or named_definition(ctx, command) is not None
        )

    def _refuse_oversized_input(self, command: c.StartWorkflow) -> None:
        """Refuse a start whose input alone is over ``max_payload_bytes`` now, so its dead letter
        is the record itself (source offset, original bytes), rather than keep it in a deferred
        start and dead-letter a copy without a source when the grace ends."""
        settings = self.w.ctx.settings
        size = len(to_json(command.input))
        if size > settings.max_payload_bytes:
            what = f"the input of the start of {command.workflow_id!r}"
            raise settings.too_large("max_payload_bytes", size, what)

    def _defer(self, command: c.StartWorkflow, give_up_at: float) -> None:
        """Try the start again shortly, without holding up the batch (see ``UNKNOWN_TYPE_GRACE``).

        Two starts of one id waiting at once (same fire time and run id) would share a timer;
        the first keeps it, as the first of two starts of one id wins once its type is known.
        """
        w = self.w
        entry = TimerEntry(
            workflow_id=command.workflow_id,
            run_id=command.run_id or "",
            kind="deferred_start",
            fire_at=min(w.now + DEFERRED_START_RETRY, give_up_at),
            start=command,
            give_up_at=give_up_at,
        )
        if w.timers.holds(w.txn, entry):
            log.info(
                "start ignored: an earlier start of this id waits for its workflow type",
                extra={"workflowId": command.workflow_id, "partition": w.partition},
            )
            return
        log.info(
            "start waits for workflow type %r (until it is read, at most %.1f s more)",
            command.workflow_type,
            give_up_at - w.now,
            extra={"workflowId": command.workflow_id, "partition": w.partition},
        )
        _check_readable(entry)
        w.timers.add(w.txn, entry)


def _policy_refusal(command: c.StartWorkflow, existing: RunState | None) -> str | None:
    """Why the start's id policies refuse it given the id's latest run, or None."""
    if existing is None or command.run_id in (existing.run_id, *existing.previous_runs):
        return None  # a new id, or this very start applied again
    if existing.is_open:
        if command.id_conflict_policy == "fail" and command.start_signal is None:
            running = f"run {existing.run_id}; id_conflict_policy fail"
            return f"workflow id {command.workflow_id!r} is already running ({running})"
        return None
    policy = command.id_reuse_policy
    if policy == "reject_duplicate" or (
        policy == "allow_duplicate_failed_only" and existing.status == "COMPLETED"
    ):
        return (
            f"workflow id {command.workflow_id!r} was used by run {existing.run_id}, {existing.status} "
            f"(id_reuse_policy {policy})"
        )
    return None


def named_definition(ctx: EngineContext, command: c.StartWorkflow) -> DagDefinition | None:
    """The DAG definition a start names: code workflow types are the deployment's, DAG
    definitions the namespace's (ledgerflow/namespaces.py)."""
    namespace = namespaces.namespace_of(command.workflow_id)
    return ctx.find_definition(namespaces.qualify(namespace, command.workflow_type))


def _check_readable(entry: TimerEntry) -> None:
    """Refuse a deferred start that would not read back from the timer index: its input may be
    nested up to the JSON parser's depth limit (200) in the inbox record, one level too deep once
    wrapped in a timer, which then failed every batch of the partition when it came due."""
    try:
        TimerEntry.model_validate_json(entry.model_dump_json())
    except ValidationError as exc:
        problem = exc.errors()[0]["msg"] if exc.errors() else str(exc)
        raise ValueError(
            f"the start of {entry.workflow_id!r} cannot wait for its workflow type: kept as a timer "
            f"it would not read back ({problem})"
        ) from exc
