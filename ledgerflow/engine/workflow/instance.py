"""One workflow run in memory: feed it history events, get back commands.

``activate(event)`` is the whole interface. It applies one input event
(resolving the future the code awaits), runs the code until it is blocked
again, and returns what the code asked for. It never raises: a failure of the
code becomes a ``FailWorkflow`` command.
"""

from __future__ import annotations

import asyncio
import copy
import dataclasses
import hashlib
import logging
import random
import uuid
from collections import defaultdict, deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from ledgerflow import namespaces
from ledgerflow.codec.base import CodecError, PayloadCodec
from ledgerflow.codec.envelope import decode, decode_failure, encode
from ledgerflow.converter import args_from_json, from_json, to_json
from ledgerflow.engine.errors import UnknownQueryError
from ledgerflow.engine.workflow import commands as cmd
from ledgerflow.engine.workflow.eventloop import DeterministicLoop, loop_seed
from ledgerflow.errors import ActivityError, ChildWorkflowError, NonDeterminismError, failure_from_exception
from ledgerflow.schemas import events as ev
from ledgerflow.schemas.common import JSON, ActivityOptions, Failure
from ledgerflow.schemas.search import SearchAttributeValue, upserted
from ledgerflow.sdk.context import (
    ContinueAsNewRequest,
    WorkflowInfo,
    WorkflowRuntime,
    reset_runtime,
    set_runtime,
)
from ledgerflow.sdk.definition import SignalHandler, WorkflowDefinition

log = logging.getLogger("ledgerflow.workflow")


def info_for(workflow_id: str, run_id: str, partition: int, started: ev.WorkflowStarted) -> WorkflowInfo:
    """What ``workflow.info()`` says in a run that began with ``started``."""
    return WorkflowInfo(
        workflow_id,
        run_id,
        started.workflow_type,
        partition,
        started.dag,
        search_attributes=started.search_attributes,
        memo=started.memo,
    )


class WorkflowInstance(WorkflowRuntime):
    """The live state of one run: its object, its loop, and what it waits on.

    With a ``codec``, the payloads history holds are encoded (ledgerflow.codec): the instance
    decodes each one where it enters the code (input, activity and child results, signals,
    failures' details, query arguments) and encodes a query's result. What the code produces
    leaves in its commands as clear JSON: the engine encodes it once, when it records it
    (``PartitionProcessor``), so a replay never encodes anything again.
    """

    def __init__(
        self, definition: WorkflowDefinition, info: WorkflowInfo, codec: PayloadCodec | None = None
    ) -> None:
        self.definition = definition
        self._info = info
        self.codec = codec
        # mypy sees AbstractEventLoop's I/O methods as abstract; a workflow never calls them.
        seed = loop_seed(f"{info.workflow_id}/{info.run_id}")
        self._loop = DeterministicLoop(seed)  # type: ignore[abstract]
        self._loop.durable_timer = self._durable_timer
        self._commands: list[cmd.Command] = []
        self._seq = 0
        self._activities: dict[int, tuple[str, asyncio.Future[JSON]]] = {}
        self._timers: dict[int, asyncio.Future[None]] = {}
        self._children: dict[int, asyncio.Future[JSON]] = {}
        self._signals: dict[str, deque[JSON]] = defaultdict(deque)
        self._signal_waiters: dict[str, deque[asyncio.Future[JSON]]] = defaultdict(deque)
        self._conditions: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []
        self._handlers: set[asyncio.Task[Any]] = set()
        self._handler_error: BaseException | None = None
        """What an ``async def`` signal handler raised: the run fails with it."""
        self._main: asyncio.Task[Any] | None = None
        self._object: object | None = None
        self._now = 0.0
        self._random: random.Random | None = None
        self._uuids = 0
        self._patches: dict[str, bool] = {}
        """Patch id -> the path this run takes (asked once, then memoised for the run)."""
        self.history_patches: frozenset[str] = frozenset()
        """Patch ids the history being replayed recorded (set by the replayer)."""
        self.closed = False
        self.replaying = False
        self.applied = 0
        """Number of history events applied so far."""

    # ----------------------------------------------------------------- driving
    def activate(self, event: ev.HistoryEvent) -> list[cmd.Command]:
        """Apply one history event and run the code until it blocks.

        Raises only ``CodecError``, for a payload in ``event`` it cannot decode (no codec key, an
        unknown key, tampered with): a fault of the deployment, not of the run, so the run is
        not failed for it. The instance must then be dropped.
        """
        self.applied = event.index
        if self.closed:
            return []
        self._now = event.time
        token = set_runtime(self)
        try:
            self._apply(event)
            self._loop.run_until_idle(self._now)
            while self._satisfy_conditions():
                self._loop.run_until_idle(self._now)
            self._check_main()
        except CodecError:
            raise
        except BaseException as exc:
            self.closed = True
            self._loop.close()
            self._commands.append(cmd.FailWorkflow(failure_from_exception(exc)))
        finally:
            reset_runtime(token)
        out, self._commands = self._commands, []
        return out

    def dispose(self) -> None:
        """Let go of the run's code once the owner drops this instance (run closed, or evicted).

        A live instance is a web of reference cycles (its tasks' contexts hold the instance,
        the futures it waits on hold its tasks' wake-ups) that only Python's cycle collector
        could free; under load its full collections cost a third of the owner loop. Cutting
        the cycles here frees the instance at once, by reference counting. No workflow code
        runs now: pending futures and tasks are cancelled and the wake-ups that queues are
        dropped with the loop's queue. (A suspended coroutine is closed when freed, as it
        would be by the collector: its ``finally`` blocks run without a workflow runtime.)
        """
        waiting = [future for _, future in self._activities.values()]
        waiting += [*self._timers.values(), *self._children.values()]
        waiting += [waiter for waiters in self._signal_waiters.values() for waiter in waiters]
        waiting += [future for _, future in self._conditions]
        waiting += list(self._handlers)
        for future in waiting:
            future.cancel()
        self._conditions.clear()
        self._handlers.clear()
        self._activities.clear()
        self._timers.clear()
        self._children.clear()
        self._signal_waiters.clear()
        self._signals.clear()
        self._main = None
        self._object = None
        self._loop.durable_timer = None  # the loop's reference back to this instance
        self.closed = True
        self._loop.close()

    def _apply(self, event: ev.HistoryEvent) -> None:
        codec = self.codec
        if isinstance(event, ev.WorkflowStarted):
            input = decode(codec, event.input)
            self._object, run = self.definition.create()
            self._main = self._loop.create_task(self._run_main(run, input))
        elif isinstance(event, ev.ActivityCompleted):
            pending = self._activities.pop(event.seq, None)
            if pending and not pending[1].done():
                pending[1].set_result(decode(codec, event.result))
        elif isinstance(event, ev.ActivityFailed):
            pending = self._activities.pop(event.seq, None)
            if pending and not pending[1].done():
                failure = decode_failure(codec, event.failure)
                pending[1].set_exception(ActivityError(failure, pending[0], event.seq))
        elif isinstance(event, ev.TimerFired):
            timer = self._timers.pop(event.seq, None)
            if timer and not timer.done():
                timer.set_result(None)
        elif isinstance(event, ev.SignalReceived):
            self._deliver_signal(event.name, decode(codec, event.payload))
        elif isinstance(event, ev.UpdateAccepted):
            self._run_update(event.update_id, event.name, decode(codec, event.payload))
        elif isinstance(event, ev.CancelRequested):
            if self._main is not None and not self._main.done():
                self._main.cancel(event.reason or "workflow cancel requested")
        elif isinstance(event, ev.ChildWorkflowCompleted):
            child = self._children.pop(event.seq, None)
            if child and not child.done():
                child.set_result(decode(codec, event.result))
        elif isinstance(event, ev.ChildWorkflowFailed):
            child = self._children.pop(event.seq, None)
            if child and not child.done():
                failure = decode_failure(codec, event.failure)
                child.set_exception(ChildWorkflowError(failure, event.seq))

    def _deliver_signal(self, name: str, payload: JSON) -> None:
        handler = self.definition.signals.get(name)
        if handler is not None and self._object is not None:
            self._handle_signal(name, handler, payload)
            return
        waiters = self._signal_waiters[name]
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(payload)
                return
        self._signals[name].append(payload)

    def _handle_signal(self, name: str, handler: SignalHandler, payload: JSON) -> None:
        """Run a ``@workflow.signal`` method: a ``def`` one now (what it raises fails the run, as
        the code's own errors do), an ``async def`` one as a task the loop runs next, before the
        code that waits on other events goes on."""
        method = getattr(self._object, handler.method)
        try:
            args = _call_args(handler.input_types, payload)
        except (ValueError, TypeError) as exc:  # pydantic's ValidationError is a ValueError
            # A sender's bad payload must not end the run (anyone who may signal could): the
            # signal is dropped, the same way on every replay, as temporalio drops it.
            log.warning(
                "signal %r dropped: its payload does not fit the handler %s: %s",
                name,
                handler.method,
                exc,
                extra={"workflowId": self._info.workflow_id, "partition": self._info.partition},
            )
            return
        if not handler.is_async:
            method(*args)
            return
        task = self._loop.create_task(method(*args))
        self._handlers.add(task)
        task.add_done_callback(self._on_handler_done)

    # ------------------------------------------------------------------ updates
    def validate_update(self, name: str, payload: JSON) -> Failure | None:
        """Why the update ``name`` with ``payload`` is rejected (no such handler, its arguments do
        not convert, its validator raised), or None when it is accepted.

        The validator runs outside the workflow runtime: a ``ledgerflow.workflow`` call in it (a
        command the history would not record) rejects the update instead of reaching the code.
        """
        handler = self.definition.updates.get(name)
        if handler is None or self._object is None:
            known = ", ".join(sorted(self.definition.updates)) or "none"
            return Failure(
                type="UnknownUpdate",
                message=f"workflow {self.definition.name!r} has no update {name!r} (known: {known})",
                non_retryable=True,
            )
        token = set_runtime(None)
        try:
            args = _call_args(handler.input_types, decode(self.codec, payload))
            if handler.validator is not None:
                getattr(self._object, handler.validator)(*args)
        except Exception as exc:
            return failure_from_exception(exc)
        finally:
            reset_runtime(token)
        return None

    def _run_update(self, update_id: str, name: str, payload: JSON) -> None:
        """Run an accepted update's handler: a ``def`` one now, an ``async def`` one as a task;
        either way its end is a ``CompleteUpdate`` command (what it raised fails the update, not
        the run)."""
        handler = self.definition.updates.get(name)
        if handler is None:  # accepted by code that had it: today's code cannot run it
            raise NonDeterminismError(
                self._info.workflow_id, f"update {name!r} was accepted but the code has no handler"
            )
        method = getattr(self._object, handler.method)
        args = _call_args(handler.input_types, payload)
        if not handler.is_async:
            try:
                self._commands.append(cmd.CompleteUpdate(update_id, to_json(method(*args))))
            except Exception as exc:
                self._commands.append(cmd.CompleteUpdate(update_id, failure=failure_from_exception(exc)))
            return
        task = self._loop.create_task(method(*args))
        self._handlers.add(task)
        task.add_done_callback(lambda done: self._on_update_done(update_id, done))

    def _on_update_done(self, update_id: str, task: asyncio.Task[Any]) -> None:
        self._handlers.discard(task)
        if task.cancelled():
            failure = Failure(type="CancelledError", message="the update's handler was cancelled")
            self._commands.append(cmd.CompleteUpdate(update_id, failure=failure))
            return
        exc = task.exception()
        if exc is None:
            try:
                self._commands.append(cmd.CompleteUpdate(update_id, to_json(task.result())))
                return
            except Exception as conversion_error:
                exc = conversion_error
        self._commands.append(cmd.CompleteUpdate(update_id, failure=failure_from_exception(exc)))

    def _on_handler_done(self, task: asyncio.Task[Any]) -> None:
        self._handlers.discard(task)
        if not task.cancelled() and task.exception() is not None and self._handler_error is None:
            self._handler_error = task.exception()

    def _satisfy_conditions(self) -> bool:
        """Wake each ``wait_condition`` whose condition holds now; True if any woke (the loop
        then runs the code it woke, which may make more conditions hold)."""
        woke = False
        waiting = []
        for fn, future in self._conditions:
            if future.done():
                continue
            try:
                holds = fn()
            except Exception as exc:  # raised in the code that waits on it
                future.set_exception(exc)
                woke = True
                continue
            if holds:
                future.set_result(None)
                woke = True
            else:
                waiting.append((fn, future))
        self._conditions = waiting
        return woke

    def buffered_signals(self) -> int:
        """Signals delivered that no code has taken yet, and ``async def`` handlers (of signals
        and updates) still running."""
        return sum(len(payloads) for payloads in self._signals.values()) + len(self._handlers)

    def waits_for_signal(self, name: str) -> bool:
        """True when code waits for a signal named ``name`` now with ``workflow.wait_signal`` (it
        would be taken at once, not buffered)."""
        if name in self.definition.signals:
            return False  # its handler takes it; an async one may hold it (``buffered_signals``)
        return any(not waiter.done() for waiter in self._signal_waiters.get(name, ()))

    async def _run_main(self, run: Any, input: JSON) -> Any:
        return await run(*_call_args(self.definition.input_types, input))

    def _check_main(self) -> None:
        if self._handler_error is not None and not self.closed:
            self.closed = True
            self._commands.append(cmd.FailWorkflow(failure_from_exception(self._handler_error)))
            return
        main = self._main
        if main is None or not main.done() or self.closed:
            return
        self.closed = True
        if main.cancelled():
            self._commands.append(cmd.CancelWorkflowDone())
            return
        exc = main.exception()
        if exc is None:
            try:
                self._commands.append(cmd.CompleteWorkflow(to_json(main.result())))
            except Exception as conversion_error:
                self._commands.append(cmd.FailWorkflow(failure_from_exception(conversion_error)))
        elif isinstance(exc, ContinueAsNewRequest):
            self._commands.append(cmd.ContinueAsNew(exc.input))
        else:
            self._commands.append(cmd.FailWorkflow(failure_from_exception(exc)))

    def awaiting(self) -> dict[str, set[int]]:
        """Sequence numbers of the activities, timers and child workflows the code still awaits."""
        return {
            "activities": set(self._activities),
            "timers": set(self._timers),
            "children": set(self._children),
        }

    # ------------------------------------------------------------------ queries
    def copy_for_query(self) -> WorkflowInstance:
        """A detached copy of the workflow's object as of now, to answer queries on another thread.

        The copy runs no workflow code of its own (no task, no loop to drive): queries only
        read the object. ``copy.deepcopy`` raises for an object that holds what cannot be
        copied (a future, a task); a caller then replays the run instead.
        """
        twin = WorkflowInstance(self.definition, self._info, self.codec)
        twin._object = copy.deepcopy(self._object)
        twin._now = self._now
        twin.applied = self.applied
        twin.closed = True
        return twin

    def query(self, name: str, args: list[JSON]) -> JSON:
        """Run a ``@workflow.query`` method against the current state (arguments and result
        as they travel: encoded with a codec)."""
        method_name = self.definition.queries.get(name)
        if method_name is None or self._object is None:
            known = ", ".join(sorted(self.definition.queries)) or "none"
            raise UnknownQueryError(
                f"workflow {self.definition.name!r} has no query {name!r} (known: {known})"
            )
        token = set_runtime(self)
        try:
            clear = [decode(self.codec, arg) for arg in args]
            return encode(self.codec, to_json(getattr(self._object, method_name)(*clear)))
        finally:
            reset_runtime(token)

    # ------------------------------------------------------- the runtime API
    def info(self) -> WorkflowInfo:
        return self._info

    def now(self) -> datetime:
        return datetime.fromtimestamp(self._now, tz=UTC)

    def random(self) -> random.Random:
        if self._random is None:
            seed = int.from_bytes(hashlib.sha256(self._info.run_id.encode()).digest()[:8], "big")
            self._random = random.Random(seed)  # noqa: S311 - determinism, not secrecy
        return self._random

    def uuid4(self) -> uuid.UUID:
        self._uuids += 1
        digest = hashlib.sha256(f"{self._info.run_id}/{self._uuids}".encode()).digest()
        return uuid.UUID(bytes=digest[:16], version=4)

    def is_replaying(self) -> bool:
        return self.replaying

    def patched(self, patch_id: str) -> bool:
        known = self._patches.get(patch_id)
        if known is not None:
            return known
        if self.replaying:
            taken = patch_id in self.history_patches
        else:
            taken = True
            self._commands.append(cmd.RecordPatch(patch_id))
        self._patches[patch_id] = taken
        return taken

    def upsert_search_attributes(self, changes: dict[str, SearchAttributeValue | None]) -> None:
        if not changes:
            return
        merged = upserted(dict(self._info.search_attributes), changes)  # ValueError past the limit
        self._info = dataclasses.replace(self._info, search_attributes=merged)
        self._commands.append(cmd.UpsertSearchAttributes(changes))

    def memo(self) -> dict[str, JSON]:
        return {name: decode(self.codec, value) for name, value in self._info.memo.items()}

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    async def execute_activity(self, activity_type: str, args: list[JSON], options: ActivityOptions) -> JSON:
        seq = self._next_seq()
        future: asyncio.Future[JSON] = self._loop.create_future()
        self._activities[seq] = (activity_type, future)
        self._commands.append(cmd.ScheduleActivity(seq, activity_type, args, options))
        future.add_done_callback(lambda f: self._on_activity_done(seq, f))
        return await future

    def _on_activity_done(self, seq: int, future: asyncio.Future[JSON]) -> None:
        if future.cancelled() and self._activities.pop(seq, None) is not None:
            self._commands.append(cmd.RequestCancelActivity(seq))

    def _start_timer(self, seconds: float) -> asyncio.Future[None]:
        seq = self._next_seq()
        future: asyncio.Future[None] = self._loop.create_future()
        self._timers[seq] = future
        self._commands.append(cmd.StartTimer(seq, max(0.0, seconds)))

        def on_done(f: asyncio.Future[None]) -> None:
            if f.cancelled() and self._timers.pop(seq, None) is not None:
                self._commands.append(cmd.CancelTimer(seq))

        future.add_done_callback(on_done)
        return future

    def _durable_timer(self, seconds: float, fire: Callable[[], None]) -> asyncio.Future[None]:
        """A loop timer (``asyncio.sleep``, timeouts) as a durable timer."""
        future = self._start_timer(seconds)
        future.add_done_callback(lambda f: None if f.cancelled() else fire())
        return future

    async def sleep(self, seconds: float) -> None:
        await self._start_timer(seconds)

    async def wait_signal(self, name: str, timeout: float | None) -> JSON:
        buffered = self._signals.get(name)
        if buffered:
            return buffered.popleft()
        waiter: asyncio.Future[JSON] = self._loop.create_future()
        self._signal_waiters[name].append(waiter)
        if timeout is None:
            return await waiter
        if await self._before_timeout(waiter, timeout):
            return waiter.result()
        raise TimeoutError(f"no signal {name!r} within {timeout} s")

    async def wait_condition(self, fn: Callable[[], bool], timeout: float | None) -> None:
        if fn():
            return
        future: asyncio.Future[None] = self._loop.create_future()
        self._conditions.append((fn, future))
        if timeout is None:
            await future
            return
        if not await self._before_timeout(future, timeout):
            raise TimeoutError(f"condition not met within {timeout} s")
        future.result()  # what the condition raised, if it did

    async def _before_timeout(self, future: asyncio.Future[Any], timeout: float) -> bool:
        """Wait for ``future`` or a durable timer of ``timeout`` s, whichever comes first; the
        other is cancelled. False when the timer came first (``future`` is then cancelled)."""
        timer = self._start_timer(timeout)
        try:
            await asyncio.wait({future, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            if not timer.done():
                timer.cancel()
            if not future.done():
                future.cancel()
        return not future.cancelled()

    async def execute_child_workflow(self, workflow_type: str, workflow_id: str, input: JSON) -> JSON:
        seq = self._next_seq()
        future: asyncio.Future[JSON] = self._loop.create_future()
        self._children[seq] = future
        if namespaces.SEPARATOR not in workflow_id:  # children start in the parent's namespace
            workflow_id = namespaces.qualify(namespaces.namespace_of(self.info().workflow_id), workflow_id)
        self._commands.append(cmd.StartChildWorkflow(seq, workflow_id, workflow_type, input))
        return await future


def _call_args(types: tuple[Any, ...], payload: JSON) -> list[Any]:
    """The arguments of a run method or signal handler taking ``types``, from one payload: none,
    the payload itself, or (two parameters or more) its items."""
    if not types:
        return []
    if len(types) == 1:
        return [from_json(payload, types[0])]
    values = payload if isinstance(payload, list) else [payload]
    return args_from_json(values, list(types))
