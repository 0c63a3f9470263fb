"""Commit notices: reads that wait for a run to change (a caller waiting for its result, or for
the engine's decision on its start) wake when the owner loop commits a batch that changed that
workflow, instead of asking again and again.

The owner loop runs in its own thread; a waiting read runs on the HTTP server's event loop. A
read registers for its workflow id before it looks at the committed store (``listening``), so a
commit between its look and its wait still wakes it; each woken read looks again and waits again
if what it waits for did not happen, so an answer reaches its caller one commit after it is
recorded. A commit wakes only the reads of the workflows it changed: with hundreds of callers
waiting, each commit costs what it touched, not what is waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterable, Iterator


class CommitListener:
    """One read's registration: set by the next commit that changed one of its workflows."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.event = asyncio.Event()
        self.woken: set[str] = set()
        """The workflows changed by commits since ``take_woken`` was last called."""
        self.everything = False
        """Whether a partition moved since then (every workflow may have changed)."""

    async def wait(self, timeout: float) -> None:
        """Until a commit made since the registration (or the last ``take_woken``) changed one of
        its workflows, or ``timeout`` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.event.wait(), max(0.0, timeout))

    def take_woken(self) -> tuple[set[str], bool]:
        """The workflows changed since the last call, and whether every one may have (a
        partition moved); the listener waits for the next change after this."""
        woken, everything = self.woken, self.everything
        self.woken, self.everything = set(), False
        self.event.clear()
        return woken, everything

    def wake(self, workflow_ids: set[str] | None) -> None:
        """From any thread: these workflows changed (None: any may have)."""
        with contextlib.suppress(RuntimeError):  # its loop closed meanwhile
            self.loop.call_soon_threadsafe(self._woke, workflow_ids)

    def _woke(self, workflow_ids: set[str] | None) -> None:
        if workflow_ids is None:
            self.everything = True
        else:
            self.woken |= workflow_ids
        self.event.set()


class CommitNotices:
    """Wakes the reads listening on any event loop when a batch that changed their workflow
    commits (a long poll for one workflow, or a client's watch session holding many)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listening: dict[str, set[CommitListener]] = {}

    def committed(self, changed: Iterable[str]) -> None:
        """Called by the owner loop after each commit, with the workflow ids whose run state or
        request records the batch wrote."""
        woken: dict[CommitListener, set[str]] = {}
        with self._lock:
            for wid in changed:
                for listener in self._listening.get(wid, ()):
                    woken.setdefault(listener, set()).add(wid)
        for listener, wids in woken.items():  # one call into each listener's loop
            listener.wake(wids)

    def moved(self) -> None:
        """Called when partitions are assigned or revoked: every read looks again (its partition
        may have left this node, which it answers as moving)."""
        with self._lock:
            woken = {listener for listeners in self._listening.values() for listener in listeners}
        for listener in woken:
            listener.wake(None)

    def listen(self, listener: CommitListener, workflow_ids: Iterable[str]) -> None:
        """Wake ``listener`` at the commits that change any of ``workflow_ids`` from now on (a
        caller registers before it looks at the store, so no commit between is missed)."""
        with self._lock:
            for wid in workflow_ids:
                self._listening.setdefault(wid, set()).add(listener)

    def unlisten(self, listener: CommitListener, workflow_ids: Iterable[str]) -> None:
        """Undo ``listen`` for ``workflow_ids``."""
        with self._lock:
            for wid in workflow_ids:
                listeners = self._listening.get(wid)
                if listeners is not None:
                    listeners.discard(listener)
                    if not listeners:
                        del self._listening[wid]

    @contextlib.contextmanager
    def listening(self, *workflow_ids: str) -> Iterator[CommitListener]:
        """Register for the next commit that changes one of ``workflow_ids``; look at the store,
        then ``wait`` inside the block."""
        listener = CommitListener()
        self.listen(listener, workflow_ids)
        try:
            yield listener
        finally:
            self.unlisten(listener, workflow_ids)
