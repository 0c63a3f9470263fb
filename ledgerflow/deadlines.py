"""Awaiting a future with a deadline, at the cost of one timer.

``asyncio.wait_for(asyncio.shield(future), seconds)`` wraps the future twice (a shield future
and, in Python 3.11, a waiter future with its own callbacks) and was a fifth of the AsyncClient's
CPU when it waited for a thousand starts at once. The futures awaited here are each owned by the
one caller waiting on them, so nothing needs shielding: a timer that settles the future with
``TimeoutError`` does the same job.
"""

from __future__ import annotations

import asyncio
from typing import Any, TypeVar

T = TypeVar("T")


async def settled_within(future: asyncio.Future[T], seconds: float) -> T:
    """``await future``; if it is not settled within ``seconds``, it is failed with (and this
    raises) ``TimeoutError``. Whoever settles it later must check ``future.done()`` first."""
    handle = asyncio.get_running_loop().call_later(max(0.0, seconds), _expire, future)
    try:
        return await future
    finally:
        handle.cancel()


def _expire(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())
