"""A way out of a transactional producer call that never returns.

librdkafka 2.16 can block in ``send_offsets_to_transaction`` far past its timeout when the
broker coordinating the consumer group dies with the request in flight (librdkafka issues
5456 and 5511: the coordinator request's timeout is never checked, and a decommissioned
coordinator is never looked up again). An engine blocked there applies nothing, and holds its
partitions in the group while it does: in a chaos run, 3 minutes and the whole group stalled.

The watchdog times each call of a transaction's commit from another thread; one that passes
its limit has the producer's transactional id fenced (a fresh producer with the same id runs
``init_transactions``). The coordinator then aborts the open transaction, and the blocked call
fails with the fatal fenced error, which the owner loop handles as any failed commit: a new
producer, state reloaded from the last commit, inbox read again from it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from ledgerflow.engine import metrics

log = logging.getLogger("ledgerflow.engine.kafka")


class CallWatchdog:
    """Calls ``fence`` once when a call inside ``watch()`` lasts more than ``limit`` seconds
    (again while it returns False: the broker it needs may be away too)."""

    def __init__(self, limit: float, fence: Callable[[], bool], check_every: float = 0.5) -> None:
        self.limit = limit
        self._fence = fence
        self._check_every = check_every
        self._call: tuple[str, float] | None = None
        """The call being watched and when it must have returned; None between calls."""
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="commit-watchdog", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(5)

    @contextmanager
    def watch(self, what: str) -> Iterator[None]:
        """Time the call made inside the block (two attribute writes: cheap per batch)."""
        self._call = (what, time.monotonic() + self.limit)
        try:
            yield
        finally:
            self._call = None

    def _run(self) -> None:
        fenced: tuple[str, float] | None = None
        while not self._stopped.wait(self._check_every):
            call = self._call
            if call is None or call is fenced or time.monotonic() < call[1]:
                continue
            fenced = call  # once per stuck call
            metrics.STUCK_CALLS.labels(call=call[0]).inc()
            log.error(
                "%s has not returned after %.0f s: fencing this engine's transactional producer "
                "so that the call fails and the batch is retried from the last commit",
                call[0],
                self.limit,
            )
            if not self._fence():
                fenced = None
