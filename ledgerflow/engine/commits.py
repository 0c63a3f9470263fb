"""Commit notices: reads that wait for a run to change (a caller waiting for its result) wake
when the owner loop commits a batch, instead of asking again and again.

The owner loop runs in its own thread; a waiting read runs on the HTTP server's event loop. A
read registers before it looks at the committed store (``listening``), so a commit between its
look and its wait still wakes it; each woken read looks again and waits again if its run did
not change, so a result reaches its caller one commit after it is recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator


class CommitListener:
    """One read's registration: set by the next commit after it was made."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.event = asyncio.Event()

    async def wait(self, timeout: float) -> None:
        """Until a commit made since the registration, or ``timeout`` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.event.wait(), max(0.0, timeout))


class CommitNotices:
    """Wakes the reads listening on any event loop when a batch commits."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listening: set[CommitListener] = set()

    def committed(self) -> None:
        """Called by the owner loop after each commit (and when partitions move)."""
        with self._lock:
            listening = list(self._listening)
        for listener in listening:
            with contextlib.suppress(RuntimeError):  # its loop closed meanwhile
                listener.loop.call_soon_threadsafe(listener.event.set)

    @contextlib.contextmanager
    def listening(self) -> Iterator[CommitListener]:
        """Register for the next commit; look at the store, then ``wait`` inside the block."""
        listener = CommitListener()
        with self._lock:
            self._listening.add(listener)
        try:
            yield listener
        finally:
            with self._lock:
                self._listening.discard(listener)
