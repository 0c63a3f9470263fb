"""Every error Ledgerflow raises has one root, :class:`LedgerflowError`.

Errors carry fields (workflow id, partition, retry-after) rather than only a
message, so callers can act on them.
"""

from __future__ import annotations

import traceback
from functools import cached_property
from typing import Any

from pydantic import ValidationError

from ledgerflow.schemas.common import (
    BARE_ID_RULE,
    ID_RULE,
    MAX_CAUSE_DEPTH,
    Failure,
    bare_id_adapter,
    id_adapter,
)


class LedgerflowError(Exception):
    """Root of Ledgerflow's errors."""


class InvalidIdError(LedgerflowError, ValueError):
    """An id breaks the id rule (``ledgerflow.schemas.common.ID_RULE``); nothing was sent."""

    def __init__(self, field: str, value: object, rule: str = ID_RULE) -> None:
        super().__init__(f"{field} {value!r:.80}: an id is {rule}")
        self.field = field
        self.value = value


def check_bare_id(field: str, value: str) -> str:
    """``value`` if it is a valid id within a namespace (no ``<namespace>/``), else
    ``InvalidIdError`` naming ``field``."""
    try:
        return bare_id_adapter.validate_python(value)
    except ValidationError:
        raise InvalidIdError(field, value, BARE_ID_RULE) from None


def check_id(field: str, value: str) -> str:
    """``value`` if it is a valid id, else ``InvalidIdError`` naming ``field`` (e.g. "workflow id")."""
    try:
        return id_adapter.validate_python(value)
    except ValidationError:
        raise InvalidIdError(field, value) from None


class ApplicationError(LedgerflowError):
    """Raise from an activity or workflow to fail it with a chosen type and retry behaviour.

    ``non_retryable=True`` fails the activity at once, whatever its retry policy.
    """

    def __init__(
        self,
        message: str,
        *,
        type: str | None = None,
        non_retryable: bool = False,
        details: Any = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.type = type or "ApplicationError"
        self.non_retryable = non_retryable
        self.details = details

    @property
    def cause(self) -> BaseException | None:
        """The exception this one was raised from (``raise ... from cause``), if any."""
        return self.__cause__


class FailureError(LedgerflowError):
    """A failure that came back over the wire; ``failure`` holds what was recorded."""

    def __init__(self, failure: Failure, prefix: str = "") -> None:
        super().__init__(prefix + "; caused by ".join(f"{f.type}: {f.message}" for f in _chain(failure)))
        self.failure = failure

    @cached_property
    def cause(self) -> LedgerflowError:
        """``failure`` as an exception, to follow the chain as in Temporal: under a
        ``WorkflowFailedError`` the workflow's error (an ``ActivityError`` when an activity's
        failure went unhandled), under an ``ActivityError`` the activity's own error (an
        ``ApplicationError`` carrying its type, message and details), and so on down."""
        return exception_from_failure(self.failure)


class ActivityError(FailureError):
    """Raised in a workflow when an activity failed for good (attempts spent, non-retryable,
    timed out); ``failure`` (and ``cause``) is the activity's own failure."""

    def __init__(self, failure: Failure, activity_type: str, seq: int) -> None:
        super().__init__(failure, prefix=f"activity {activity_type!r} (#{seq}) failed: ")
        self.activity_type = activity_type
        self.seq = seq


class ChildWorkflowError(FailureError):
    """Raised in a workflow when a child workflow did not complete; ``failure`` (and ``cause``)
    is how the child ended."""

    def __init__(self, failure: Failure, seq: int) -> None:
        super().__init__(failure, prefix=f"child workflow (#{seq}) failed: ")
        self.seq = seq


class WorkflowFailedError(FailureError):
    """Raised by ``Client`` when the run it waited on failed, was canceled or terminated."""

    def __init__(self, workflow_id: str, status: str, failure: Failure) -> None:
        super().__init__(failure, prefix=f"workflow {workflow_id!r} ended {status}: ")
        self.workflow_id = workflow_id
        self.status = status


class WorkflowUpdateFailedError(FailureError):
    """Raised by ``Client`` when an update was rejected by its validator, its handler raised, or
    the run closed before the update finished; ``failure`` says which and why."""

    def __init__(self, workflow_id: str, update_id: str, failure: Failure) -> None:
        super().__init__(failure, prefix=f"update {update_id!r} of workflow {workflow_id!r}: ")
        self.workflow_id = workflow_id
        self.update_id = update_id


class NonDeterminismError(LedgerflowError):
    """The workflow code asked for something other than what its history records.

    Usually a deploy changed the order or kind of calls of a running workflow.
    Replay the history with ``ledgerflow replay`` to see the divergence; keep the
    old code path for runs started before the change.
    """

    def __init__(self, workflow_id: str, detail: str) -> None:
        super().__init__(f"workflow {workflow_id!r}: {detail}")
        self.workflow_id = workflow_id
        self.detail = detail


class WorkflowAlreadyStartedError(LedgerflowError):
    """A start's id policy refused it: the id has an open run (``id_conflict_policy="fail"``), or
    its latest run may not be followed by another (``id_reuse_policy``)."""

    def __init__(self, workflow_id: str, run_id: str, status: str) -> None:
        super().__init__(
            f"workflow id {workflow_id!r} is taken by run {run_id} ({status}); nothing was started"
        )
        self.workflow_id = workflow_id
        self.run_id = run_id
        self.status = status


class WorkflowNotFoundError(LedgerflowError):
    """No run of this workflow id exists on its owner."""

    def __init__(self, workflow_id: str) -> None:
        super().__init__(f"workflow {workflow_id!r} not found")
        self.workflow_id = workflow_id


class ScheduleNotFoundError(LedgerflowError):
    """No schedule of this id exists on its owner."""

    def __init__(self, schedule_id: str) -> None:
        super().__init__(f"schedule {schedule_id!r} not found")
        self.schedule_id = schedule_id


class ScheduleAlreadyRunningError(LedgerflowError):
    """A schedule of this id exists already (temporalio's name for it)."""

    def __init__(self, schedule_id: str) -> None:
        super().__init__(f"schedule {schedule_id!r} exists already")
        self.schedule_id = schedule_id


class OwnerResponseError(LedgerflowError):
    """A workflow's owning engine answered a read with an error it should not give."""

    def __init__(self, workflow_id: str | None, status: int, detail: str) -> None:
        super().__init__(f"the owning engine answered {status}: {detail[:500]}")
        self.workflow_id = workflow_id
        self.status = status


class EngineAuthError(OwnerResponseError):
    """An engine refused a read: no engine token, or the wrong one."""

    def __init__(self, url: str) -> None:
        LedgerflowError.__init__(
            self,
            f"engine {url} answered 401: give the Client the engines' token "
            "(engine_token=..., or LEDGERFLOW_ENGINE_TOKEN_FILE)",
        )
        self.workflow_id = None
        self.status = 401


class QueryFailedError(LedgerflowError):
    """A query could not be answered: no such handler, the handler raised, or the code is missing."""

    def __init__(self, workflow_id: str, detail: str) -> None:
        super().__init__(f"query on workflow {workflow_id!r} failed: {detail}")
        self.workflow_id = workflow_id
        self.detail = detail


class OwnerUnavailableError(LedgerflowError):
    """The partition owning the workflow has no reachable owner right now; retry after a moment."""

    def __init__(self, workflow_id: str, partition: int, retry_after: float, reason: str) -> None:
        super().__init__(f"owner of workflow {workflow_id!r} (partition {partition}) unavailable: {reason}")
        self.workflow_id = workflow_id
        self.partition = partition
        self.retry_after = retry_after
        self.reason = reason


class StartRejectedError(LedgerflowError):
    """The engine could not apply a start (it lacks the payload codec's key, say): the start went
    to the dead-letter topic with ``reason``, and no run was opened."""

    def __init__(self, workflow_id: str, reason: str) -> None:
        super().__init__(f"start of {workflow_id!r} rejected by the engine: {reason}")
        self.workflow_id = workflow_id
        self.reason = reason


class KafkaWriteError(LedgerflowError):
    """A write to Kafka was not acknowledged (the brokers are away, or refused the record:
    ``too_large`` when for its size)."""

    def __init__(self, topic: str, reason: str, too_large: bool = False) -> None:
        super().__init__(f"write to {topic} not acknowledged: {reason}")
        self.topic = topic
        self.reason = reason
        self.too_large = too_large


class CapacityError(LedgerflowError):
    """A start was refused: the owning engine is at its open-workflow limit. Retry later."""

    def __init__(self, workflow_id: str, partition: int, reason: str, retry_after: float = 1.0) -> None:
        super().__init__(f"start of {workflow_id!r} refused: {reason}")
        self.workflow_id = workflow_id
        self.partition = partition
        self.reason = reason
        self.retry_after = retry_after


class RunLimitError(LedgerflowError):
    """What one run asked for cannot be done; the engine fails that run (its failure type is the
    error's class name) or refuses that record, never the batch around it."""


class PayloadTooLarge(RunLimitError):
    """A payload or record is over its limit (``Settings.max_payload_bytes`` / ``max_record_bytes``)."""

    def __init__(self, what: str, size: int, limit: int, setting: str) -> None:
        super().__init__(
            f"PayloadTooLarge: {what} is {readable_size(size)}, limit {readable_size(limit)} ({setting})"
        )
        self.what = what
        self.size = size
        self.limit = limit


def readable_size(n: int) -> str:
    """Bytes as a person reads them: 912 B, 255.9 KiB, 2.0 MiB."""
    if n < 1024:
        return f"{n} B"
    if n < 1024 * 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n / (1024 * 1024):.1f} MiB"


class HistoryTooLarge(RunLimitError):
    """A run's history reached ``Settings.max_history_events`` or ``max_history_bytes``.

    The run fails: a history that long makes every replay slow and every read large. A
    workflow that loops forever continues-as-new before it gets there.
    """

    def __init__(self, run_id: str, what: str, limit: str, setting: str) -> None:
        super().__init__(
            f"HistoryTooLarge: the history of run {run_id} would pass {limit} {what} (limit {setting}); "
            f"a long-running workflow should continue-as-new to start a fresh history"
        )
        self.run_id = run_id


class TooManyPending(RunLimitError):
    """A run holds as many open activities, children, timers or buffered signals as it may."""

    def __init__(self, run_id: str, what: str, limit: int, setting: str) -> None:
        super().__init__(f"TooManyPending: run {run_id} already has {limit:,} {what} (limit {setting})")
        self.run_id = run_id
        self.limit = limit


class QueueUnavailable(RunLimitError):
    """The topic of a task queue cannot be created (a name that collides with another topic's,
    creation refused by the broker): activities routed there fail instead of waiting forever."""

    def __init__(self, queue: str, reason: str) -> None:
        super().__init__(
            f"QueueUnavailable: task queue {queue!r} has no topic and none can be made: {reason}"
        )
        self.queue = queue


class TopicLayoutError(LedgerflowError):
    """Existing topics do not match the configured layout (e.g. another partition count).

    Changing the shard count of a live system re-routes workflows; never do it by
    editing configuration alone.
    """


class ReshardError(LedgerflowError):
    """``ledgerflow reshard`` cannot move the deployment as asked (nothing was moved)."""


class DeploymentMovedError(LedgerflowError):
    """This deployment's workflows were moved to another prefix by ``ledgerflow reshard``.

    Starting its engines again would run the moved workflows twice.
    """

    def __init__(self, prefix: str, moved_to: str) -> None:
        super().__init__(
            f"the deployment under prefix {prefix!r} was moved to prefix {moved_to!r} by "
            f"`ledgerflow reshard`; run engines, workers and gateways with --prefix {moved_to}"
        )
        self.prefix = prefix
        self.moved_to = moved_to


def failure_from_exception(exc: BaseException) -> Failure:
    """The wire form of an exception raised by an activity or a workflow, with its causes.

    An ``ActivityError`` or ``ChildWorkflowError`` becomes a failure of that type whose cause is
    the activity's or child's failure; an exception raised ``from`` another carries that one as
    its cause. The chain is cut at ``MAX_CAUSE_DEPTH``.
    """
    return _failure(exc, MAX_CAUSE_DEPTH)


def _failure(exc: BaseException, depth: int) -> Failure:
    # The stack leaves out a cause raised ``from``: that one is the failure's own ``cause``.
    chain = exc.__cause__ is None
    stack = "".join(traceback.format_exception(exc, chain=chain)) if exc.__traceback__ else None
    if isinstance(exc, ActivityError | ChildWorkflowError):
        # The message names the step; what went wrong is the cause's (not repeated here).
        step = f"activity {exc.activity_type!r}" if isinstance(exc, ActivityError) else "child workflow"
        return Failure(
            type=type(exc).__name__,
            message=f"{step} (#{exc.seq}) failed",
            stack=stack,
            cause=_cut_chain(exc.failure, depth - 1),
            activity_type=exc.activity_type if isinstance(exc, ActivityError) else None,
            seq=exc.seq,
        )
    if isinstance(exc, FailureError):  # e.g. a WorkflowFailedError met by an activity's Client
        return _cut_chain(exc.failure, depth) or exc.failure
    raised_from = exc.__cause__
    cause = _failure(raised_from, depth - 1) if raised_from is not None and depth > 1 else None
    if isinstance(exc, ApplicationError):
        return Failure(
            type=exc.type,
            message=exc.message,
            non_retryable=exc.non_retryable,
            details=exc.details,
            stack=stack,
            cause=cause,
        )
    return Failure(type=type(exc).__name__, message=str(exc), stack=stack, cause=cause)


def _chain(failure: Failure) -> list[Failure]:
    """``failure`` and its causes, outermost first."""
    links = [failure]
    while links[-1].cause is not None:
        links.append(links[-1].cause)
    return links


def _cut_chain(failure: Failure, depth: int) -> Failure | None:
    """``failure`` with at most ``depth`` links (itself included); None for a depth under 1."""
    if depth < 1:
        return None
    if failure.cause is None:
        return failure
    return failure.model_copy(update={"cause": _cut_chain(failure.cause, depth - 1)})


def exception_from_failure(failure: Failure) -> LedgerflowError:
    """The exception a recorded failure stands for: an ``ActivityError`` or
    ``ChildWorkflowError`` for those types, else an ``ApplicationError`` with the failure's type,
    message and details, raised from its cause."""
    if failure.cause is not None and failure.type == "ActivityError":
        return ActivityError(failure.cause, failure.activity_type or "?", failure.seq or 0)
    if failure.cause is not None and failure.type == "ChildWorkflowError":
        return ChildWorkflowError(failure.cause, failure.seq or 0)
    error = ApplicationError(
        failure.message, type=failure.type, non_retryable=failure.non_retryable, details=failure.details
    )
    if failure.cause is not None:
        error.__cause__ = exception_from_failure(failure.cause)
    return error


class VisibilityQueryError(LedgerflowError, ValueError):
    """A visibility query that cannot be run; the message names the token and where it is."""
