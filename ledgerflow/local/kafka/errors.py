"""Errors of the local Kafka launcher; each message is one line that says what to do."""

from __future__ import annotations

from ledgerflow.errors import LedgerflowError


class LocalKafkaError(LedgerflowError):
    """Root of the launcher's errors; the CLI prints the message and exits 1."""


class ToolMissingError(LocalKafkaError):
    """``java`` or ``mvn`` is not installed (or too old); the message names what to install."""


class KafkaStartError(LocalKafkaError):
    """A broker exited during start, or did not become ready in time; see ``log_path``.

    ``report`` has one line per node (alive or gone, last log line, last error, where its
    main thread was), for a start that fails where nobody can look at the folder (CI)."""

    def __init__(self, message: str, log_path: str | None = None, report: str = "") -> None:
        super().__init__(message)
        self.log_path = log_path
        self.report = report


class DataDirConflictError(LocalKafkaError):
    """The data directory holds a cluster of another shape than the one asked for."""
