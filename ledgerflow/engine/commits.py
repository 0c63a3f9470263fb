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
import uuid
from collections import OrderedDict
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


REMEMBERED_CHANGES = 200_000
"""Workflows whose last commit sequence is kept (``changed_since``); older ones count as changed
at the last sequence forgotten."""


class CommitNotices:
    """Wakes the reads listening on any event loop when a batch that changed their workflow commits,
    and numbers the commits: a read that looked at a workflow after commit ``n`` need not look
    again until ``changed_since(workflow, n)`` (a client's batched waits carry that number from one
    request to the next: ``/internal/watch``'s ``since``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._listening: dict[str, set[CommitListener]] = {}
        self.epoch = uuid.uuid4().hex[:12]
        """Names this process's numbering: a number from another process means nothing here."""
        self._sequence = 0
        self._changed_at: OrderedDict[str, int] = OrderedDict()
        self._forgotten = 0
        """The newest sequence of a change no longer in ``_changed_at``."""
        self._moved_at = 0

    @property
    def sequence(self) -> int:
        """The number of the last commit (or move) told to ``committed`` or ``moved``. A look at the
        store made after reading it sees every commit up to it (the owner loop tells of a commit
        once it is in the store)."""
        with self._lock:
            return self._sequence

    def changed_since(self, workflow_id: str, sequence: int) -> bool:
        """Whether a commit (or a partition move) after ``sequence`` may have changed ``workflow_id``."""
        with self._lock:
            if self._moved_at > sequence:
                return True
            return self._changed_at.get(workflow_id, self._forgotten) > sequence

    def committed(self, changed: Iterable[str]) -> None:
        """Called by the owner loop after each commit, with the workflow ids whose run state or
        request records the batch wrote."""
        woken: dict[CommitListener, set[str]] = {}
        with self._lock:
            self._sequence += 1
            for wid in changed:
                self._changed_at[wid] = self._sequence
                self._changed_at.move_to_end(wid)
                for listener in self._listening.get(wid, ()):
                    woken.setdefault(listener, set()).add(wid)
            while len(self._changed_at) > REMEMBERED_CHANGES:
                _, self._forgotten = self._changed_at.popitem(last=False)
        for listener, wids in woken.items():  # one call into each listener's loop
            listener.wake(wids)

    def moved(self) -> None:
        """Called when partitions are assigned or revoked: every read looks again (its partition
        may have left this node, which it answers as moving)."""
        with self._lock:
            self._sequence += 1
            self._moved_at = self._sequence
            woken = {listener for listeners in self._listening.values() for listener in listeners}
        for listener in woken:
            listener.wake(None)

    @contextlib.contextmanager
    def listening(self, *workflow_ids: str) -> Iterator[CommitListener]:
        """Register for the next commit that changes one of ``workflow_ids``; look at the store,
        then ``wait`` inside the block."""
        listener = CommitListener()
        with self._lock:
            for wid in workflow_ids:
                self._listening.setdefault(wid, set()).add(listener)
        try:
            yield listener
        finally:
            with self._lock:
                for wid in workflow_ids:
                    listeners = self._listening.get(wid)
                    if listeners is not None:
                        listeners.discard(listener)
                        if not listeners:
                            del self._listening[wid]
