"""A run's whole history as one document: what ``ledgerflow history ID --export FILE`` writes,
``Client.fetch_history`` returns, and ``ledgerflow replay --file`` and ``Replayer`` read."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ledgerflow.schemas.events import HistoryEvent, history_event_adapter


@dataclass(frozen=True)
class WorkflowHistory:
    """The events of one run of ``workflow_id``, oldest first."""

    workflow_id: str
    run_id: str
    events: list[HistoryEvent] = field(default_factory=list)

    @classmethod
    def from_json(cls, document: str | bytes | Mapping[str, Any]) -> WorkflowHistory:
        """A history from its JSON (text, or already parsed); ``ValueError`` naming what is
        missing or malformed."""
        data = json.loads(document) if isinstance(document, str | bytes) else document
        if not isinstance(data, Mapping):
            raise ValueError("a history document is a JSON object")
        missing = [name for name in ("workflow_id", "run_id", "events") if name not in data]
        if missing:
            raise ValueError(f"a history document needs {', '.join(missing)}")
        if not isinstance(data["events"], list):
            raise ValueError("a history document's events are a list")
        events = [history_event_adapter.validate_python(event) for event in data["events"]]
        return cls(str(data["workflow_id"]), str(data["run_id"]), events)

    def to_json(self) -> str:
        document = {
            "workflow_id": self.workflow_id,
            "run_id": self.run_id,
            "events": [event.model_dump(mode="json") for event in self.events],
        }
        return json.dumps(document, indent=2) + "\n"
