"""What a partition's store holds as committed: runs and histories, for reads outside a batch
(the owner's HTTP reads, recovery checks, tools) and for a processor starting on it."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

from pydantic import BaseModel, ConfigDict

from ledgerflow.engine.state import keys
from ledgerflow.engine.state.models import RunState
from ledgerflow.engine.state.store import PartitionStore
from ledgerflow.schemas import events as ev


def open_run_count(store: PartitionStore) -> int:
    """Open runs of the partition, as its last batch committed them."""
    raw = store.get(keys.OPEN_RUNS)
    return int(raw) if raw is not None else 0


class RunHead(BaseModel):
    """The fields of a stored run state that listings filter on and long polls wait on.

    Validating only these from the stored JSON skips building the pending activities,
    payloads and failure of runs (about a third of a full parse).
    """

    model_config = ConfigDict(extra="ignore")

    run_id: str
    workflow_type: str
    status: str


def read_run_head(store: PartitionStore, workflow_id: str) -> RunHead | None:
    """The committed ``RunHead`` of a workflow's latest run."""
    raw = store.get(keys.run_key(workflow_id))
    return RunHead.model_validate_json(raw) if raw is not None else None


def read_run(store: PartitionStore, workflow_id: str) -> RunState | None:
    """The committed state of a workflow's latest run (for reads outside a batch)."""
    raw = store.get(keys.run_key(workflow_id))
    return RunState.model_validate_json(raw) if raw is not None else None


def scan_runs(store: PartitionStore) -> Iterator[RunState]:
    """Latest run of every workflow in the store, by workflow id."""
    for _, value in store.scan(keys.RUN):
        yield RunState.model_validate_json(value)


def read_history(store: PartitionStore, workflow_id: str, run_id: str) -> list[ev.HistoryEvent]:
    """The committed history of one run, in order."""
    return [
        ev.history_event_adapter.validate_json(v)
        for _, v in store.scan(keys.history_prefix(workflow_id, run_id))
    ]


def read_history_page(
    store: PartitionStore, workflow_id: str, run_id: str, offset: int, limit: int
) -> tuple[list[ev.HistoryEvent], int]:
    """Events ``offset`` .. ``offset + limit`` of one run's committed history, and its length.

    Reads only those events (from the key of the first) and the last key (the history is
    gap-free, so its index is the length).
    """
    prefix = keys.history_prefix(workflow_id, run_id)
    last = store.last(prefix)
    if last is None:
        return [], 0
    rows = store.scan_range(keys.history_key(workflow_id, run_id, offset + 1), prefix + b"\xff")
    page = [ev.history_event_adapter.validate_json(v) for _, v in itertools.islice(rows, limit)]
    return page, int(last[len(prefix) :])
