"""What every partition processor of an engine shares: settings, workflow code, definitions,
limits, the payload codec."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from ledgerflow.codec.base import PayloadCodec
from ledgerflow.config import Settings
from ledgerflow.schemas.dag import DagDefinition
from ledgerflow.sdk.definition import WorkflowRegistry


@dataclass(frozen=True)
class EngineContext:
    """What every partition processor of an engine shares."""

    settings: Settings
    registry: WorkflowRegistry
    find_definition: Callable[[str], DagDefinition | None]
    cache_size: int = 2_000
    limits: Admission = field(default_factory=lambda: Admission())
    transactional_id: str = ""
    """This node's transactional id, recorded in each partition it writes (see recovery)."""
    retention: float | None = None
    """Seconds a closed run's state and history are kept (None: forever)."""
    unusable_queues: dict[str, str] = field(default_factory=dict)
    """Task queues whose topic could not be created, with the reason (set by the owner loop)."""
    code_token: str = field(default_factory=lambda: uuid.uuid4().hex)
    """Names the workflow code this engine process loaded: a run blocked by it is tried again
    only by another process (processor ``_unblock``), the code of one process never changing."""
    codec: PayloadCodec | None = None
    """The payload codec (``codec_keys_file``): workflow instances decode what history holds,
    and what workflow code produces is encoded as it is recorded
    (``PartitionProcessor._apply_command``, ``ActivityAttempts.schedule``)."""


@dataclass
class Admission:
    """Capacity limits on open workflows; a start beyond them is refused with the reason."""

    max_per_partition: int | None = None
    max_per_engine: int | None = None
    engine_open: Callable[[], int] = lambda: 0
    """Open workflows on the whole node (set by the engine)."""

    def refusal(self, partition: int, partition_open: int) -> str | None:
        """Why a new run cannot start now, or None when it can."""
        if self.max_per_partition is not None and partition_open >= self.max_per_partition:
            return (
                f"capacity: partition {partition} has {partition_open} open workflows "
                f"(limit {self.max_per_partition} per partition)"
            )
        engine_open = self.engine_open()
        if self.max_per_engine is not None and engine_open >= self.max_per_engine:
            return f"capacity: this engine has {engine_open} open workflows (limit {self.max_per_engine})"
        return None
