"""A way out of a transactional producer call that never returns.

librdkafka 2.16 can block in ``send_offsets_to_transaction`` far past its timeout when the
broker coordinating the consumer group dies with the request in flight (librdkafka issues
5456 and 5511: the coordinator request's timeout is never checked, and a decommissioned
coordinator is never looked up again). An engine blocked there applies nothing and holds its
partitions in the group: in a chaos run, 3 minutes with the whole group stalled. Fencing the
producer's transactional id does not free the call either (tests/localkafka/test_cluster.py).

So the calls that talk to a coordinator run on a thread of their own, and the owner loop waits
for each at most ``limit`` seconds. A call past it raises ``StuckCallError``; the owner loop
then drops that producer (and the thread still blocked in it), starts a new one with the same
transactional id, whose ``init_transactions`` aborts the old one's open transaction, and goes
back to its last commit.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, TypeVar

from ledgerflow.engine import metrics
from ledgerflow.engine.errors import StuckCallError

log = logging.getLogger("ledgerflow.engine.kafka")
T = TypeVar("T")


class CallGuard:
    """Runs calls on one daemon thread and gives up waiting for one after ``limit`` seconds.

    A daemon thread (not a ``ThreadPoolExecutor``, whose threads are joined at exit) so that a
    thread left blocked in librdkafka never keeps the process from exiting.
    """

    def __init__(self, limit: float) -> None:
        self.limit = limit
        self._calls: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]] | None] = queue.SimpleQueue()
        self._start_thread()

    def call(self, what: str, function: Callable[[], T]) -> T:
        """``function()``'s result or exception; ``StuckCallError`` when it has not returned in time."""
        future: Future[T] = Future()
        self._calls.put((function, future))
        try:
            return future.result(self.limit)
        except FutureTimeout:
            metrics.STUCK_CALLS.labels(call=what).inc()
            log.error(
                "%s has not returned after %.0f s: the producer is dropped, the batch retried",
                what,
                self.limit,
            )
            self._calls.put(None)  # the blocked thread ends if the call ever returns
            self._calls = queue.SimpleQueue()
            self._start_thread()
            raise StuckCallError(f"{what} did not return in {self.limit:.0f} s") from None

    def close(self) -> None:
        self._calls.put(None)

    def _start_thread(self) -> None:
        calls = self._calls
        threading.Thread(target=_serve, args=(calls,), name="kafka-calls", daemon=True).start()


def _serve(calls: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]] | None]) -> None:
    while (item := calls.get()) is not None:
        function, future = item
        if not future.set_running_or_notify_cancel():
            continue
        try:
            future.set_result(function())
        except BaseException as exc:  # handed to the waiting caller
            future.set_exception(exc)
