"""Records a batch produces besides state: tasks, public events, inbox messages, dead letters.

Everything in an ``Outbox`` is produced inside the batch's Kafka transaction,
so it is published exactly when the state change that caused it commits. A
record Kafka would refuse (over ``Settings.max_record_bytes``) raises
``PayloadTooLarge`` here, while the command that made it can still be rolled
back alone; produced later, it would abort the whole batch.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import BaseModel

from ledgerflow.config import Settings

DLQ_HEADROOM = 8192
"""Bytes a dead letter's value leaves for its key and headers under the record limit."""
REASON_BYTES = 4000
"""Longest reason header of a dead letter."""


@dataclass(frozen=True)
class OutRecord:
    topic: str
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, str | bytes | None]] | None = None
    partition: int | None = None
    """Explicit partition (inbox records); None lets the key decide."""


@dataclass
class Outbox:
    settings: Settings
    records: list[OutRecord] = field(default_factory=list)
    queues: set[str] = field(default_factory=set)
    """Task queues this batch writes to (their topics must exist before the commit)."""

    def __post_init__(self) -> None:
        # Read once: every record of every batch is measured against it (a hot path).
        self._max_record_bytes = self.settings.max_record_bytes
        self._events_topic = self.settings.topic("events")

    def _add(self, record: OutRecord, what: Callable[[], str]) -> None:
        size = len(record.key or b"") + len(record.value or b"")
        if size > self._max_record_bytes:
            raise self.settings.too_large("max_record_bytes", size, what())
        self.records.append(record)

    def task(self, queue: str, workflow_id: str, message: BaseModel | bytes) -> None:
        """A task message (a model, or its JSON already serialised)."""
        record = OutRecord(self.settings.task_topic(queue), workflow_id.encode(), _json(message))
        self._add(record, lambda: f"the task for queue {queue!r}")
        self.queues.add(queue)

    def event(self, workflow_id: str, event: BaseModel | bytes) -> None:
        """A public lifecycle event (a model, or its JSON already serialised)."""
        self._add(OutRecord(self._events_topic, workflow_id.encode(), _json(event)), _lifecycle_event)

    def inbox(self, workflow_id: str, command: BaseModel) -> None:
        record = OutRecord(
            self.settings.topic("inbox"),
            workflow_id.encode(),
            command.model_dump_json().encode(),
            partition=self.settings.partition_of(workflow_id),
        )
        self._add(record, lambda: f"the {type(command).__name__} for {workflow_id!r}")

    def definition(self, definition_id: str, value: bytes) -> None:
        record = OutRecord(self.settings.topic("definitions"), definition_id.encode(), value)
        self._add(record, lambda: f"definition {definition_id!r}")

    def dead_letter(
        self, key: bytes | None, value: bytes | None, reason: str, source: str, partition: int, offset: int
    ) -> None:
        """The record as it came (cut to fit, with its size and hash), and why it was refused."""
        headers: list[tuple[str, str | bytes | None]] = [
            ("ledgerflow.dlq.reason", _clip_middle(reason, REASON_BYTES)),
            ("ledgerflow.dlq.source", f"{source}/{partition}/{offset}".encode()),
        ]
        room = self.settings.max_record_bytes - DLQ_HEADROOM
        key = key if key is None or len(key) <= 1024 else key[:1024]
        if value is not None and len(value) > room:
            headers += [
                ("ledgerflow.dlq.original-size", str(len(value)).encode()),
                ("ledgerflow.dlq.original-sha256", hashlib.sha256(value).hexdigest().encode()),
            ]
            value = value[:room]
        self.records.append(OutRecord(self.settings.topic("inbox.dlq"), key, value, headers))


def _lifecycle_event() -> str:
    return "the lifecycle event"


def _clip_middle(text: str, limit: int) -> bytes:
    """``text`` as UTF-8, its middle cut out when over ``limit`` bytes: a reason begins with what
    was wrong and often ends with why (``... has no open run``), with a huge id quoted between."""
    raw = text.encode()
    if len(raw) <= limit:
        return raw
    half = (limit - 5) // 2
    return f"{raw[:half].decode(errors='ignore')} ... {raw[-half:].decode(errors='ignore')}".encode()


def _json(message: BaseModel | bytes) -> bytes:
    return message if isinstance(message, bytes) else message.model_dump_json().encode()
