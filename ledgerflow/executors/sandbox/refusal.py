"""The failure of a built-in the sandbox did not let run."""

from __future__ import annotations

from ledgerflow.errors import ApplicationError

REFUSED = "BuiltinRefused"
"""Failure type of a built-in call the sandbox refused (a path, URL, topic or size)."""
DISABLED = "BuiltinDisabled"
"""Failure type of a task for a built-in its worker does not enable."""


class Refused(ApplicationError):
    """A built-in call outside what the worker's settings allow; nothing was done.

    Non-retryable: the same input would be refused again on every attempt.
    """

    def __init__(self, builtin: str, reason: str, *, type: str = REFUSED) -> None:
        super().__init__(f"{builtin} refused: {reason}", type=type, non_retryable=True)
        self.builtin = builtin
        self.reason = reason
