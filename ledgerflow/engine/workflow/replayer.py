"""Replay a history through workflow code, checking the code asks for what history records.

Used to rebuild an instance after a cache miss or a failover, and by
``ledgerflow replay`` to check today's code against a recorded run.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

from ledgerflow.codec.base import PayloadCodec
from ledgerflow.codec.envelope import decode_tree
from ledgerflow.engine.workflow import commands as cmd
from ledgerflow.engine.workflow.dag import definition_for
from ledgerflow.engine.workflow.instance import WorkflowInstance, info_for
from ledgerflow.errors import NonDeterminismError
from ledgerflow.failures import same_or_cut
from ledgerflow.schemas import events as ev
from ledgerflow.sdk.definition import WorkflowRegistry


def describe_command(command: cmd.Command) -> str:
    match command:
        case cmd.ScheduleActivity(seq=seq, activity_type=name):
            return f"schedule activity {name!r} (#{seq})"
        case cmd.RequestCancelActivity(seq=seq):
            return f"cancel activity #{seq}"
        case cmd.StartTimer(seq=seq, seconds=seconds):
            return f"start timer #{seq} ({seconds} s)"
        case cmd.CancelTimer(seq=seq):
            return f"cancel timer #{seq}"
        case cmd.StartChildWorkflow(seq=seq, workflow_type=name, workflow_id=wid):
            return f"start child workflow {name!r} id {wid!r} (#{seq})"
        case cmd.CompleteUpdate(update_id=update_id):
            return f"complete update {update_id!r}"
        case cmd.RecordPatch(patch_id=patch_id):
            return f"record patch {patch_id!r}"
        case cmd.UpsertSearchAttributes(attributes=attributes):
            return f"upsert search attributes {', '.join(sorted(attributes))}"
        case cmd.CompleteWorkflow():
            return "complete the workflow"
        case cmd.FailWorkflow(failure=failure):
            return f"fail the workflow ({failure.type}: {failure.message})"
        case cmd.CancelWorkflowDone():
            return "end the workflow as canceled"
        case cmd.ContinueAsNew():
            return "continue as new"
    return repr(command)


def describe_event(event: ev.HistoryEvent) -> str:
    match event:
        case ev.ActivityScheduled(seq=seq, activity_type=name):
            return f"ActivityScheduled {name!r} (#{seq})"
        case ev.TimerStarted(seq=seq):
            return f"TimerStarted #{seq}"
        case ev.ChildWorkflowStarted(seq=seq, workflow_type=name):
            return f"ChildWorkflowStarted {name!r} (#{seq})"
        case ev.UpdateCompleted(update_id=update_id):
            return f"UpdateCompleted {update_id!r}"
    name = type(event).__name__
    seq_value = getattr(event, "seq", None)
    return f"{name} (#{seq_value})" if seq_value is not None else name


def _matches(command: cmd.Command, event: ev.HistoryEvent) -> bool:
    match command, event:
        case cmd.ScheduleActivity(), ev.ActivityScheduled():
            return command.seq == event.seq and command.activity_type == event.activity_type
        case cmd.RequestCancelActivity(), ev.ActivityCancelRequested():
            return command.seq == event.seq
        case cmd.StartTimer(), ev.TimerStarted():
            return command.seq == event.seq
        case cmd.CancelTimer(), ev.TimerCanceled():
            return command.seq == event.seq
        case cmd.StartChildWorkflow(), ev.ChildWorkflowStarted():
            return command.seq == event.seq and command.workflow_type == event.workflow_type
        case cmd.CompleteUpdate(), ev.UpdateCompleted():
            return command.update_id == event.update_id
        case cmd.UpsertSearchAttributes(), ev.SearchAttributesUpserted():
            return command.attributes.keys() == event.attributes.keys()
        case cmd.CompleteWorkflow(), ev.WorkflowCompleted():
            return True
        case cmd.FailWorkflow(), ev.WorkflowFailed():
            return True
        case cmd.CancelWorkflowDone(), ev.WorkflowCanceled():
            return True
        case cmd.ContinueAsNew(), ev.WorkflowContinuedAsNew():
            return True
    return False


def payload_difference(
    command: cmd.Command, event: ev.HistoryEvent, codec: PayloadCodec | None = None
) -> str | None:
    """How a command's payload differs from the event that recorded it, or None when equal.

    ``_matches`` pairs a command with its event by kind and sequence number, which is all
    the engine needs to rebuild an instance. A strict replay (``ledgerflow replay``, the
    invariants checker) also asks the code to reproduce what history recorded: the same
    activity arguments, timer, child input and ending. A command holds what the code produced
    (clear JSON); history holds it as it was recorded, decoded here with ``codec``.
    """

    def clear(value: object) -> object:
        return decode_tree(codec, value)

    match command, event:
        case cmd.ScheduleActivity(), ev.ActivityScheduled():
            args = clear(event.args)
            if command.args != args:
                return f"arguments {command.args!r} where history has {args!r}"
            if command.options != event.options:
                return f"options {command.options!r} where history has {event.options!r}"
        case cmd.StartTimer(), ev.TimerStarted():
            if abs(event.time + command.seconds - event.fire_at) > TIMER_TOLERANCE:
                return f"a {command.seconds} s timer where history has {event.fire_at - event.time} s"
        case cmd.StartChildWorkflow(), ev.ChildWorkflowStarted():
            if command.workflow_id != event.workflow_id:
                return f"child id {command.workflow_id!r} where history has {event.workflow_id!r}"
            child_input = clear(event.input)
            if command.input != child_input:
                return f"child input {command.input!r} where history has {child_input!r}"
        case cmd.CompleteWorkflow(), ev.WorkflowCompleted():
            result = clear(event.result)
            if command.result != result:
                return f"result {command.result!r} where history has {result!r}"
        case cmd.FailWorkflow(), ev.WorkflowFailed():
            asked, recorded = command.failure, event.failure
            # The recorded message may be cut to fit its event (ledgerflow/failures.py).
            if asked.type != recorded.type or not same_or_cut(asked.message, recorded.message):
                return (
                    f"failure {asked.type}: {asked.message} where history has "
                    f"{recorded.type}: {recorded.message}"
                )
        case cmd.CompleteUpdate(), ev.UpdateCompleted():
            result = clear(event.result)
            if command.result != result:
                return f"update result {command.result!r} where history has {result!r}"
        case cmd.UpsertSearchAttributes(), ev.SearchAttributesUpserted():
            if command.attributes != event.attributes:
                return f"search attributes {command.attributes!r} where history has {event.attributes!r}"
        case cmd.ContinueAsNew(), ev.WorkflowContinuedAsNew():
            new_input = clear(event.input)
            if command.input != new_input:
                return f"continue-as-new input {command.input!r} where history has {new_input!r}"
    return None


TIMER_TOLERANCE = 1e-6
"""Seconds a recorded timer's fire time may differ from its start time plus its duration (float sums)."""


def is_code_event(event: ev.HistoryEvent) -> bool:
    """True for events the workflow code caused (checked on replay)."""
    if isinstance(event, ev.WorkflowFailed):
        return event.origin == "code"
    return isinstance(
        event, (*ev.COMMAND_EVENTS, ev.WorkflowCompleted, ev.WorkflowCanceled, ev.WorkflowContinuedAsNew)
    )


def replay(instance: WorkflowInstance, history: Sequence[ev.HistoryEvent], strict: bool = False) -> None:
    """Feed ``history`` to a fresh ``instance``; raise NonDeterminismError at the first divergence.

    ``strict`` also compares each command's payload with its event (``payload_difference``).
    """
    workflow_id = instance.info().workflow_id
    expected: deque[cmd.Command] = deque()
    instance.replaying = True
    instance.history_patches = frozenset(e.patch_id for e in history if isinstance(e, ev.PatchRecorded))
    try:
        for event in history:
            if isinstance(event, ev.PatchRecorded):
                continue  # answered ``patched`` ahead (history_patches); not asked for again
            if is_code_event(event):
                if not expected:
                    raise NonDeterminismError(
                        workflow_id,
                        f"history event #{event.index} {describe_event(event)} was not asked for "
                        "by the code at this point",
                    )
                command = expected.popleft()
                if not _matches(command, event):
                    raise NonDeterminismError(
                        workflow_id,
                        f"history event #{event.index} is {describe_event(event)} but the code "
                        f"asked to {describe_command(command)}",
                    )
                difference = payload_difference(command, event, instance.codec) if strict else None
                if difference is not None:
                    raise NonDeterminismError(
                        workflow_id,
                        f"history event #{event.index} {describe_event(event)}: the code asked for "
                        f"{difference}",
                    )
                continue
            if expected and isinstance(event, ev.CLOSING_EVENTS):
                expected.clear()  # the engine closed the run instead (terminated, timed out, too large)
            if expected:
                raise NonDeterminismError(
                    workflow_id,
                    f"the code asked to {describe_command(expected[0])}, which history does not "
                    f"record (next event #{event.index} is {describe_event(event)})",
                )
            if not isinstance(event, ev.DELIVERED_EVENTS):
                instance.applied = event.index  # recorded only, as the engine did live
                continue
            expected.extend(instance.activate(event))
        for event in history[-1:]:
            instance.applied = event.index
        if expected:
            raise NonDeterminismError(
                workflow_id,
                f"the code asked to {describe_command(expected[0])} after the last history event",
            )
    finally:
        instance.replaying = False


@dataclass(frozen=True)
class ReplayResult:
    """The outcome of replaying one recorded run against today's code."""

    workflow_id: str
    run_id: str
    events: int
    divergence: str | None
    """None when the code reproduced the history; otherwise the first divergence."""

    @property
    def deterministic(self) -> bool:
        return self.divergence is None


def replay_run(
    registry: WorkflowRegistry,
    workflow_id: str,
    run_id: str,
    history: list[ev.HistoryEvent],
    codec: PayloadCodec | None = None,
) -> ReplayResult:
    """Replay a recorded run with the workflows in ``registry``; never raises for a divergence.

    A history of encoded payloads needs their ``codec`` (``CodecError`` otherwise)."""
    started = history[0] if history else None
    if not isinstance(started, ev.WorkflowStarted):
        raise ValueError("a history must begin with workflow_started")
    definition = definition_for(started.workflow_type, started.dag, registry)
    if definition is None:
        known = ", ".join(registry.names()) or "none"
        raise LookupError(
            f"workflow type {started.workflow_type!r} is not in the given modules (found: {known})"
        )
    instance = WorkflowInstance(definition, info_for(workflow_id, run_id, 0, started), codec)
    try:
        replay(instance, history, strict=True)
    except NonDeterminismError as exc:
        return ReplayResult(workflow_id, run_id, len(history), exc.detail)
    return ReplayResult(workflow_id, run_id, len(history), None)
