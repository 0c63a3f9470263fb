"""The commit watchdog fences the engine's producer once per stuck call, and never a quick one."""

from __future__ import annotations

import threading
import time

from ledgerflow.engine.kafka.watchdog import CallWatchdog


def test_a_call_past_its_limit_is_fenced_once_and_a_quick_one_never() -> None:
    fenced: list[float] = []
    watchdog = CallWatchdog(0.3, lambda: fenced.append(time.monotonic()) is None, check_every=0.02)
    watchdog.start()
    try:
        for _ in range(20):
            with watchdog.watch("commit_transaction"):
                time.sleep(0.01)
        time.sleep(0.4)
        assert fenced == [], "a quick call, or the time between calls, was taken for a stuck one"

        began = time.monotonic()
        with watchdog.watch("send_offsets_to_transaction"):
            time.sleep(1.0)  # stuck: fenced once, not every check
        assert len(fenced) == 1
        assert 0.3 <= fenced[0] - began < 0.6

        with watchdog.watch("send_offsets_to_transaction"):  # the next stuck call is fenced too
            time.sleep(0.5)
        assert len(fenced) == 2
    finally:
        watchdog.stop()


def test_a_fence_that_could_not_reach_the_coordinator_is_tried_again() -> None:
    tries: list[bool] = []
    done = threading.Event()

    def fence() -> bool:
        tries.append(len(tries) >= 2)  # the coordinator answers the third time
        if tries[-1]:
            done.set()
        return tries[-1]

    watchdog = CallWatchdog(0.1, fence, check_every=0.02)
    watchdog.start()
    try:
        with watchdog.watch("flush"):
            assert done.wait(2), f"tries: {tries}"
            time.sleep(0.2)
        assert tries == [False, False, True]
    finally:
        watchdog.stop()
