"""Polling with a deadline that fails loudly: a wait that times out names what it waited for."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from ledgerflow import WorkflowNotFoundError

T = TypeVar("T")


def wait_until(
    probe: Callable[[], T | None],
    what: str,
    timeout: float = 30.0,
    interval: float = 0.1,
) -> T:
    """Call ``probe`` until it returns something truthy and return that; fail after ``timeout`` s.

    A run that does not exist yet (``WorkflowNotFoundError``) counts as not yet; any other
    error propagates. On timeout the assertion names ``what`` and the last value seen.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = probe()
        except WorkflowNotFoundError as exc:
            value, last = None, exc
        else:
            last = value
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what} (last: {last!r})"
        time.sleep(interval)
