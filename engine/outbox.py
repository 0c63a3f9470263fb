"""Records a batch produces besides state: tasks, public events, inbox messages, dead letters.

Everything in an ``Outbox`` is produced inside the batch's Kafka transaction,
so it is published exactly when the state change that caused it commits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel

from ledgerflow.config import Settings


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

    def task(self, queue: str, workflow_id: str, message: BaseModel | bytes) -> None:
        """A task message (a model, or its JSON already serialised)."""
        self.records.append(OutRecord(self.settings.task_topic(queue), workflow_id.encode(), _json(message)))

    def event(self, workflow_id: str, event: BaseModel | bytes) -> None:
        """A public lifecycle event (a model, or its JSON already serialised)."""
        self.records.append(OutRecord(self.settings.topic("events"), workflow_id.encode(), _json(event)))

    def inbox(self, workflow_id: str, command: BaseModel) -> None:
        self.records.append(
            OutRecord(
                self.settings.topic("inbox"),
                workflow_id.encode(),
                command.model_dump_json().encode(),
                partition=self.settings.partition_of(workflow_id),
            )
        )

    def definition(self, definition_id: str, value: bytes) -> None:
        self.records.append(OutRecord(self.settings.topic("definitions"), definition_id.encode(), value))

    def dead_letter(
        self, key: bytes | None, value: bytes | None, reason: str, source: str, partition: int, offset: int
    ) -> None:
        headers: list[tuple[str, str | bytes | None]] = [
            ("ledgerflow.dlq.reason", reason.encode()[:4000]),
            ("ledgerflow.dlq.source", f"{source}/{partition}/{offset}".encode()),
        ]
        self.records.append(OutRecord(self.settings.topic("inbox.dlq"), key, value, headers))

    def clear(self) -> None:
        self.records.clear()


def _json(message: BaseModel | bytes) -> bytes:
    return message if isinstance(message, bytes) else message.model_dump_json().encode()
