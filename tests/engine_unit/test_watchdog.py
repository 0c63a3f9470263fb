"""The call guard gives up on a call that does not return in time, and keeps serving the next."""

from __future__ import annotations

import threading
import time

import pytest

from ledgerflow.engine.errors import StuckCallError
from ledgerflow.engine.kafka.watchdog import CallGuard


def test_results_and_errors_come_back_from_the_guards_thread() -> None:
    guard = CallGuard(1.0)
    try:
        assert guard.call("commit_transaction", lambda: threading.current_thread().name) == "kafka-calls"
        with pytest.raises(ZeroDivisionError):
            guard.call("commit_transaction", lambda: 1 // 0)
        assert [guard.call("flush", lambda n=n: n * 2) for n in range(100)] == [n * 2 for n in range(100)]
    finally:
        guard.close()


def test_a_stuck_call_raises_in_time_and_the_next_call_runs_on_a_fresh_thread() -> None:
    guard = CallGuard(0.3)
    release = threading.Event()
    try:
        began = time.monotonic()
        with pytest.raises(StuckCallError, match="send_offsets_to_transaction did not return"):
            guard.call("send_offsets_to_transaction", lambda: release.wait(30))
        assert 0.3 <= time.monotonic() - began < 1.0
        # the old thread is still blocked in the stuck call; the next call must not wait behind it
        assert guard.call("commit_transaction", lambda: "done") == "done"
    finally:
        release.set()
        guard.close()
