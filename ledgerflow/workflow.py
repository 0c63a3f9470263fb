"""Code workflows: deterministic ``async`` Python whose every step is durable.

    from ledgerflow import workflow

    @workflow.defn
    class Checkout:
        @workflow.run
        async def run(self, order: Order) -> str:
            receipt = await workflow.execute_activity(charge, order, start_to_close_timeout=30)
            await workflow.sleep(60)
            return receipt.id

Workflow code may import what it likes. It must be deterministic: use
:func:`now`, :func:`uuid4` and :func:`random` instead of the clock and
``uuid``/``random``; the engine replays history to check it.
"""

from __future__ import annotations

import dataclasses as _dataclasses
import random as _random
import uuid as _uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, NoReturn, Protocol, TypeVar, cast, overload

from ledgerflow import activity as _activity
from ledgerflow import namespaces as _namespaces
from ledgerflow.converter import from_json, to_json
from ledgerflow.errors import check_bare_id as _check_bare_id
from ledgerflow.schemas.common import ActivityOptions, RetryPolicy
from ledgerflow.sdk.context import ContinueAsNewRequest, NotInWorkflowError, WorkflowInfo, current_runtime
from ledgerflow.sdk.definition import (
    DEFINITION_ATTR,
    QUERY_ATTR,
    RUN_ATTR,
    SIGNAL_ATTR,
    UPDATE_ATTR,
    VALIDATOR_ATTR,
    build_definition,
    definition_of,
)
from ledgerflow.search_attributes import SearchAttributeUpdate, updates_wire

T = TypeVar("T")
C = TypeVar("C")
F = TypeVar("F", bound=Callable[..., Any])

DEFAULT_START_TO_CLOSE = 300.0
"""Seconds an activity attempt may run when the call sets no timeout."""


@overload
def defn(target: C) -> C: ...
@overload
def defn(*, name: str | None = None) -> Callable[[C], C]: ...
def defn(target: C | None = None, *, name: str | None = None) -> C | Callable[[C], C]:
    """Make a class (with one ``@workflow.run`` method) or an async function a workflow."""

    def decorate(t: C) -> C:
        definition = build_definition(t, name)
        setattr(t, DEFINITION_ATTR, definition)
        if definition.run_method is not None:  # so ``start_workflow(MyWorkflow.run, ...)`` names it too
            setattr(getattr(t, definition.run_method), DEFINITION_ATTR, definition)
        return t

    return decorate(target) if target is not None else decorate


def run(fn: F) -> F:
    """Mark the ``async`` method that runs the workflow."""
    setattr(fn, RUN_ATTR, True)
    return fn


@overload
def query(fn: F) -> F: ...
@overload
def query(*, name: str | None = None) -> Callable[[F], F]: ...
def query(fn: F | None = None, *, name: str | None = None) -> F | Callable[[F], F]:
    """Mark a method that answers a query about the workflow's state; it must not block or change it."""

    def decorate(f: F) -> F:
        setattr(f, QUERY_ATTR, name or f.__name__)
        return f

    return decorate(fn) if fn is not None else decorate


@overload
def signal(fn: F) -> F: ...
@overload
def signal(*, name: str | None = None) -> Callable[[F], F]: ...
def signal(fn: F | None = None, *, name: str | None = None) -> F | Callable[[F], F]:
    """Mark a method (``def`` or ``async def``) that handles a signal, by default the one named as
    the method. It runs when the signal is applied, in the order signals arrive, before the run
    method goes on; it may change the workflow's state, and an ``async def`` handler may await what
    workflow code may. The signal's payload is its argument (a list: its arguments)."""

    def decorate(f: F) -> F:
        setattr(f, SIGNAL_ATTR, name or f.__name__)
        return f

    return decorate(fn) if fn is not None else decorate


V = TypeVar("V", bound=Callable[..., None])


class UpdateMethod(Protocol):
    """A ``@workflow.update`` method: called as the method it is, and ``@<method>.validator``
    marks the method that validates its arguments."""

    __name__: str

    def __call__(self, *args: Any, **kwargs: Any) -> Any: ...

    def validator(self, fn: V) -> V: ...


@overload
def update(fn: Callable[..., Any]) -> UpdateMethod: ...
@overload
def update(*, name: str | None = None) -> Callable[[Callable[..., Any]], UpdateMethod]: ...
def update(
    fn: Callable[..., Any] | None = None, *, name: str | None = None
) -> UpdateMethod | Callable[[Callable[..., Any]], UpdateMethod]:
    """Mark a method (``def`` or ``async def``) that handles an update: a caller's request that
    may change the workflow's state and gets the method's result (or the error it raised) back.

    Its validator (``@<method>.validator``, a plain ``def`` taking the same arguments) runs first,
    against the current state, and must not change it: if it raises, the update is rejected, is
    not run, and the caller gets the error. An update of a name the workflow has no handler for is
    rejected too.
    """

    def decorate(f: Callable[..., Any]) -> UpdateMethod:
        setattr(f, UPDATE_ATTR, name or f.__name__)

        def validator(check: V) -> V:
            setattr(f, VALIDATOR_ATTR, check.__name__)
            return check

        setattr(f, "validator", validator)  # noqa: B010 - a function attribute the Protocol declares
        return cast(UpdateMethod, f)

    return decorate(fn) if fn is not None else decorate


async def wait_condition(fn: Callable[[], bool], *, timeout: float | timedelta | None = None) -> None:
    """Wait until ``fn()`` is true: it is checked each time the workflow's code has run after an
    event (a signal handled, an activity done, a timer fired). ``fn`` must only read the workflow's
    state. Raises ``TimeoutError`` when ``timeout`` passes first (a durable timer)."""
    await current_runtime().wait_condition(fn, _seconds(timeout))


def _seconds(value: float | timedelta | None) -> float | None:
    return RetryPolicy.seconds(value)


async def execute_activity(
    activity: Callable[..., Any] | str,
    *arguments: Any,
    args: Sequence[Any] | None = None,
    queue: str = "default",
    task_queue: str | None = None,
    start_to_close_timeout: float | timedelta | None = None,
    schedule_to_close_timeout: float | timedelta | None = None,
    heartbeat_timeout: float | timedelta | None = None,
    retry_policy: RetryPolicy | None = None,
    result_type: type[T] | None = None,
) -> Any:
    """Run an activity on a worker of ``queue`` and return its result.

    ``activity`` is an ``@activity.defn`` function (its return annotation types
    the result) or an activity name. Its arguments are given positionally, or as
    ``args=[...]`` (temporalio's spelling; ``task_queue`` is ``queue``'s). Timeouts are
    seconds or timedeltas; with none given, an attempt may run ``DEFAULT_START_TO_CLOSE`` seconds.
    Raises :class:`ledgerflow.errors.ActivityError` once retries are spent.
    """
    if isinstance(activity, str):
        name, declared = activity, None
    else:
        definition = _activity.definition_of(activity)
        name, declared = definition.name, definition.result_type
    start_to_close = _seconds(start_to_close_timeout)
    schedule_to_close = _seconds(schedule_to_close_timeout)
    if start_to_close is None and schedule_to_close is None:
        start_to_close = DEFAULT_START_TO_CLOSE
    if args is not None and arguments:
        raise TypeError("execute_activity takes its arguments positionally or as args=[...], not both")
    options = ActivityOptions(
        queue=task_queue or queue,
        start_to_close_timeout=start_to_close,
        schedule_to_close_timeout=schedule_to_close,
        heartbeat_timeout=_seconds(heartbeat_timeout),
        retry=retry_policy or RetryPolicy(),
    )
    given = list(args) if args is not None else list(arguments)
    result = await current_runtime().execute_activity(name, [to_json(a) for a in given], options)
    return from_json(result, result_type or declared)


async def sleep(duration: float | timedelta) -> None:
    """Sleep durably: a timer in the engine that survives restarts and failover."""
    seconds = _seconds(duration)
    assert seconds is not None
    await current_runtime().sleep(seconds)


async def wait_signal(
    name: str, *, timeout: float | timedelta | None = None, result_type: type[T] | None = None
) -> Any:
    """Wait for the next signal called ``name`` and return its payload.

    Signals that arrived before the call are buffered and returned in order.
    Raises ``TimeoutError`` when ``timeout`` passes first.
    """
    payload = await current_runtime().wait_signal(name, _seconds(timeout))
    return from_json(payload, result_type)


async def execute_local_activity(
    activity: Callable[..., Any] | str,
    *arguments: Any,
    args: Sequence[Any] | None = None,
    start_to_close_timeout: float | timedelta | None = None,
    schedule_to_close_timeout: float | timedelta | None = None,
    retry_policy: RetryPolicy | None = None,
    result_type: type[T] | None = None,
    queue: str = "default",
) -> Any:
    """Temporal's local activity, run as an ordinary activity by a worker of ``queue``.

    In Temporal a local activity runs inside the worker process that runs the workflow, to save
    a round trip through the server. Ledgerflow runs workflow code in the engine, which never
    runs activity code (docs/decisions/0007-local-activities.md), so this schedules the
    activity as :func:`execute_activity` does: durable, at least once, retried by
    ``retry_policy``, with a local activity's options (no heartbeat timeout). It runs on the
    workers of ``queue`` (``default`` unless given): a worker listening on another queue must be
    named here. A sample ports unchanged; the step costs what any activity costs.
    """
    return await execute_activity(
        activity,
        *arguments,
        args=args,
        queue=queue,
        start_to_close_timeout=start_to_close_timeout,
        schedule_to_close_timeout=schedule_to_close_timeout,
        retry_policy=retry_policy,
        result_type=result_type,
    )


execute_activity_method = execute_activity
"""``execute_activity`` for an ``@activity.defn`` method named through its class
(``MyActivities.do_thing``), as temporalio spells it; the worker runs it bound to the object its
activities module holds."""

execute_local_activity_method = execute_local_activity
"""``execute_local_activity`` for an ``@activity.defn`` method named through its class."""


async def execute_child_workflow(
    workflow: Any, input: Any = None, *, id: str, result_type: type[T] | None = None
) -> Any:
    """Start a child workflow with workflow id ``id`` and return its result.

    Raises ``InvalidIdError`` (nothing is started) when ``id`` breaks the id rule.
    """
    _check_bare_id("child workflow id", id)  # children start in the parent's namespace
    if isinstance(workflow, str):
        name, declared = workflow, None
    else:
        definition = definition_of(workflow)
        name, declared = definition.name, definition.result_type
    result = await current_runtime().execute_child_workflow(name, id, to_json(input))
    return from_json(result, result_type or declared)


def continue_as_new(input: Any = None) -> NoReturn:
    """End this run and start a fresh one of the same workflow with ``input`` (for long loops)."""
    current_runtime()
    raise ContinueAsNewRequest(to_json(input))


def info() -> WorkflowInfo:
    """Facts about the running workflow (ids, type, partition, namespace). ``workflow_id`` is the
    id its callers name, within ``namespace``: a child named after it starts in the same one."""
    engine_info = current_runtime().info()
    namespace, bare = _namespaces.split(engine_info.workflow_id)
    return _dataclasses.replace(engine_info, workflow_id=bare, namespace=namespace)


def now() -> datetime:
    """The workflow's deterministic clock: the time of the event being processed (UTC)."""
    return current_runtime().now()


def uuid4() -> _uuid.UUID:
    """A UUID that is the same on every replay of this run."""
    return current_runtime().uuid4()


def random() -> _random.Random:
    """A random generator seeded by the run id: the same on every replay."""
    return current_runtime().random()


def patched(patch_id: str) -> bool:
    """Whether this run takes the new path of a code change named ``patch_id``.

    True for runs that reach this call on code that has it (the choice is recorded in history);
    False when replaying a run recorded before the change, which keeps its old path. So a deploy
    may change what a workflow does without breaking runs in flight::

        if workflow.patched("send-receipt"):
            await workflow.execute_activity(send_receipt, order)

    Once no run from before the change is open, replace the call with ``deprecate_patch``.
    """
    return current_runtime().patched(patch_id)


def deprecate_patch(patch_id: str) -> None:
    """Keep a patch's marker for runs recorded with ``patched(patch_id)`` while the old path is
    gone from the code. Once no run recorded before it is open, the call may go too."""
    current_runtime().patched(patch_id)


def upsert_search_attributes(updates: Iterable[SearchAttributeUpdate]) -> None:
    """Set or remove (``key.value_unset()``) search attributes of this run; visibility queries
    see them once the change is committed, and ``info().typed_search_attributes`` at once."""
    current_runtime().upsert_search_attributes(updates_wire(updates))


def memo() -> dict[str, Any]:
    """The memo the run was started with (each value decoded)."""
    return current_runtime().memo()


def memo_value(key: str, default: Any = None) -> Any:
    """One field of the run's memo, or ``default``."""
    return memo().get(key, default)


def is_replaying() -> bool:
    """True while history is being replayed (e.g. to skip logging twice)."""
    return current_runtime().is_replaying()


__all__ = [
    "NotInWorkflowError",
    "RetryPolicy",
    "UpdateMethod",
    "WorkflowInfo",
    "continue_as_new",
    "defn",
    "deprecate_patch",
    "execute_activity",
    "execute_activity_method",
    "execute_child_workflow",
    "execute_local_activity",
    "execute_local_activity_method",
    "info",
    "is_replaying",
    "memo",
    "memo_value",
    "now",
    "patched",
    "query",
    "random",
    "run",
    "signal",
    "sleep",
    "update",
    "upsert_search_attributes",
    "uuid4",
    "wait_condition",
    "wait_signal",
]
