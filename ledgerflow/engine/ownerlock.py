"""The owner loop's hold on its partitions' cached workflow instances, shared fairly with reads.

The owner loop holds it while it changes instances (a batch, giving partitions up); a
query that copies a cached instance holds it for the copy. A plain lock would starve
the query under load: the loop takes it again the moment it lets go, before the waiting
thread wakes. Here readers waiting when the loop lets go get their turn first, and the
loop waits for them at most ``READERS_TURN``, so no stream of queries can hold up a
partition either.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

READERS_TURN = 0.05
"""Longest the owner loop waits, between two batches, for readers already waiting."""


class OwnerLock:
    def __init__(self) -> None:
        self._state = threading.Condition()
        self._held = False
        self._owner_waiting = False
        self._readers_waiting = 0

    @contextmanager
    def owner(self) -> Iterator[None]:
        """Held by the owner loop; waiting readers go first, for up to ``READERS_TURN``."""
        with self._state:
            self._state.wait_for(lambda: self._readers_waiting == 0 and not self._held, READERS_TURN)
            self._owner_waiting = True  # readers' turn is over: none starts now
            self._state.wait_for(lambda: not self._held)
            self._owner_waiting = False
            self._held = True
        try:
            yield
        finally:
            self._release()

    @contextmanager
    def reader(self, timeout: float) -> Iterator[bool]:
        """Held by a reader (True), or not within ``timeout`` seconds (False)."""
        with self._state:
            self._readers_waiting += 1
            try:
                held = self._state.wait_for(lambda: not (self._held or self._owner_waiting), timeout)
                if held:
                    self._held = True
            finally:
                self._readers_waiting -= 1
                self._state.notify_all()  # the owner may be waiting for the last reader
        try:
            yield held
        finally:
            if held:
                self._release()

    def _release(self) -> None:
        with self._state:
            self._held = False
            self._state.notify_all()
