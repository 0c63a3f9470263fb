"""Commit notices: reads that wait for a run to change (a caller waiting for its result) wake
when the owner loop commits a batch, instead of asking again and again.

The owner loop runs in its own thread; a waiting read runs on the HTTP server's event loop. A
commit wakes every read waiting then (each checks its run in the committed store, and waits
again if it did not change), so a result reaches its caller one commit after it is recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading


class CommitNotices:
    """Wakes the reads waiting on any event loop when a batch commits."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    def committed(self) -> None:
        """Called by the owner loop after each commit."""
        with self._lock:
            waiting = list(self._waiting)
        for loop, event in waiting:
            with contextlib.suppress(RuntimeError):  # its loop closed meanwhile
                loop.call_soon_threadsafe(event.set)

    async def wait(self, timeout: float) -> None:
        """Until the next commit, or ``timeout`` seconds."""
        event = asyncio.Event()
        waiter = (asyncio.get_running_loop(), event)
        with self._lock:
            self._waiting.add(waiter)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), max(0.0, timeout))
        finally:
            with self._lock:
                self._waiting.discard(waiter)
