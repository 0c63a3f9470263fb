"""One activity run as a worker would run it, with no engine at all (Temporal's
``ActivityEnvironment``): for unit tests of activity code that heartbeats, reads its attempt's
info or stops when cancelled.

    env = ActivityEnvironment()
    assert env.run(count_to, 5) == [0, 5, 1]
    assert env.heartbeats == [1, 2, 3, 4, 5]
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import threading
from collections.abc import Callable
from typing import Any

from ledgerflow import activity


class ActivityEnvironment:
    """Runs activity functions with an attempt context: ``info`` (its ``activity_type`` set to
    the function's activity name on each run), heartbeats kept in ``heartbeats`` (and passed to
    ``on_heartbeat`` if set), and ``cancel()`` to cancel the attempt as a workflow would."""

    def __init__(self, info: activity.Info | None = None) -> None:
        self.info = info or activity.Info(
            workflow_id="test-workflow",
            run_id="test-run",
            activity_type="test-activity",
            seq=1,
            attempt=1,
            heartbeat_timeout=None,
        )
        self.heartbeats: list[Any] = []
        self.on_heartbeat: Callable[[Any], None] | None = None
        self._cancelled = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[Any] | None = None

    def cancel(self) -> None:
        """Cancel the attempt: its next ``activity.heartbeat()`` raises ``ActivityCancelledError``
        (and an ``async`` activity run by ``run`` is cancelled at its next await)."""
        self._cancelled.set()
        if self._task is not None and self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._task.cancel)

    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Call ``fn(*args)`` as the running attempt (an ``async`` one on an event loop of its
        own) and return its result, or raise what it raised."""
        definition = getattr(fn, activity.DEFINITION_ATTR, None)
        name = definition.name if isinstance(definition, activity.ActivityDefinition) else fn.__name__
        info = dataclasses.replace(self.info, activity_type=name)
        ctx = activity.AttemptContext(info=info, heartbeat=self._heartbeat, cancelled=self._cancelled)
        token = activity.bind_context(ctx)
        try:
            if not inspect.iscoroutinefunction(fn):
                return fn(*args)
            return asyncio.run(self._run_async(fn, args))
        finally:
            activity.bind_context_reset(token)

    async def _run_async(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> Any:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.current_task()
        if self._cancelled.is_set():
            raise asyncio.CancelledError("the activity was cancelled before it started")
        return await fn(*args)

    def _heartbeat(self, details: Any) -> None:
        self.heartbeats.append(details)
        if self.on_heartbeat is not None:
            self.on_heartbeat(details)
