"""A deterministic asyncio event loop that only runs ready callbacks.

Workflow code is ordinary ``async`` Python, so ``asyncio.gather``, tasks and
futures work in it. Nothing here waits on I/O or the clock: the owner feeds an
event, the loop runs every ready callback until none is left, and whatever the
code asked for in between is the activation's output. Same events in, same
commands out.
"""

from __future__ import annotations

import asyncio
import contextvars
import weakref
import zlib
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

SEED_SHIFT = 29
"""A loop's seed sits above this bit of each of its futures' hashes (see ``_OrderedFuture``)."""


class _OrderedFuture(asyncio.Future[Any]):
    """A future whose hash is its creation number in its loop, so sets of them iterate the
    same way on every replay (``asyncio.wait`` returns sets; the default hash is the object's
    address).

    The number is offset by a seed taken from the run's id (the same on every replay, in
    every process), so futures of different workflows do not share hashes: every task also
    enters asyncio's process-wide set of tasks, where thousands of equal hashes (every
    workflow's main task was number 1) made each insertion walk them all.
    """

    def __init__(self, *, loop: asyncio.AbstractEventLoop, number: int) -> None:
        self._number = number
        super().__init__(loop=loop)

    def __hash__(self) -> int:
        return self._number


class _OrderedTask(asyncio.Task[Any]):
    """A task hashed by its creation number (see ``_OrderedFuture``)."""

    def __init__(
        self,
        coro: Coroutine[Any, Any, Any],
        *,
        loop: asyncio.AbstractEventLoop,
        number: int,
        name: str | None,
        context: contextvars.Context | None,
    ) -> None:
        self._number = number  # before __init__: it registers the task in a set
        super().__init__(coro, loop=loop, name=name, context=context)

    def __hash__(self) -> int:
        return self._number


def loop_seed(run_key: str) -> int:
    """A loop's seed for a run: stable across processes (``hash(str)`` is salted per process)."""
    return zlib.crc32(run_key.encode())


class DeterministicLoop(asyncio.AbstractEventLoop):
    """Runs callbacks in FIFO order; time is whatever the current activation says."""

    def __init__(self, seed: int = 0) -> None:
        self._ready: deque[
            tuple[asyncio.Handle, Callable[..., Any], tuple[Any, ...], contextvars.Context]
        ] = deque()
        self._now = 0.0
        self._closed = False
        self.unhandled: list[BaseException] = []
        self._created = seed << SEED_SHIFT
        self._tasks: weakref.WeakSet[asyncio.Task[Any]] = weakref.WeakSet()
        self.durable_timer: Callable[[float, Callable[[], None]], asyncio.Future[None]] | None = None
        """Starts a durable timer that calls back when it fires; its future, cancelled, cancels
        the timer. Set by the workflow instance: ``asyncio.sleep``, ``asyncio.wait_for`` and
        ``asyncio.timeout`` then wait on the engine's timers, as ``workflow.sleep`` does."""

    # The parts of the loop API that futures and tasks use.
    def call_soon(  # type: ignore[override]
        self, callback: Callable[..., Any], *args: Any, context: contextvars.Context | None = None
    ) -> asyncio.Handle:
        ctx = context if context is not None else contextvars.copy_context()
        handle = asyncio.Handle(callback, args, self, ctx)
        self._ready.append((handle, callback, args, ctx))
        return handle

    def create_future(self) -> asyncio.Future[Any]:
        self._created += 1
        return _OrderedFuture(loop=self, number=self._created)

    def create_task(  # type: ignore[override]
        self,
        coro: Coroutine[Any, Any, T],
        *,
        name: str | None = None,
        context: contextvars.Context | None = None,
    ) -> asyncio.Task[T]:
        self._created += 1
        task = _OrderedTask(coro, loop=self, number=self._created, name=name, context=context)
        self._tasks.add(task)
        return task

    def call_later(  # type: ignore[override]
        self, delay: float, callback: Callable[..., Any], *args: Any, context: Any = None
    ) -> Any:
        if self.durable_timer is None:
            raise RuntimeError("no durable timers outside a workflow run")
        ctx = context if context is not None else contextvars.copy_context()

        def fire() -> None:
            self.call_soon(callback, *args, context=ctx)

        return self.durable_timer(delay, fire)

    def call_at(  # type: ignore[override]
        self, when: float, callback: Callable[..., Any], *args: Any, context: Any = None
    ) -> Any:
        return self.call_later(when - self._now, callback, *args, context=context)

    def time(self) -> float:
        return self._now

    def get_debug(self) -> bool:
        return False

    def is_running(self) -> bool:
        return True

    def is_closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop for good: pending tasks are cancelled and the wake-ups that queues are dropped,
        so no workflow code runs, and nothing awaited still points back at a task (which
        lets reference counting free the lot)."""
        self._closed = True
        for task in list(self._tasks):
            task.cancel()
        self._ready.clear()

    def call_exception_handler(self, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        if isinstance(exc, BaseException):
            self.unhandled.append(exc)

    def default_exception_handler(self, context: dict[str, Any]) -> None:
        self.call_exception_handler(context)

    # Driving.
    def run_until_idle(self, now: float) -> None:
        """Run every ready callback, and those they schedule, until none is left."""
        self._now = now
        # Futures and tasks find their loop through the running-loop slot, as in
        # any asyncio program; the owner's thread has no loop of its own.
        previous = asyncio._get_running_loop()  # noqa: SLF001
        asyncio._set_running_loop(self)  # noqa: SLF001
        try:
            while self._ready:
                handle, callback, args, ctx = self._ready.popleft()
                if not handle.cancelled():
                    ctx.run(callback, *args)
        finally:
            asyncio._set_running_loop(previous)  # noqa: SLF001
