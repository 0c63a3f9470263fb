"""The visibility index a partition keeps beside its runs, in the same store and changelog.

Two kinds of keys, both within the run's namespace and ending in its *order* (``<inverted start
millis>\\x00<workflow id>``, so ascending keys give the newest run first: ``ORDER BY StartTime
DESC``, the default):

    v/<namespace>\\x00<order>                          -> the run's visible fields (JSON)
    x/<namespace>\\x00<name>\\x00<value>\\x00<order>     -> b"": an equality posting per indexed term

A query walks its own namespace's keys alone: it never reads, counts or points a page token at
another namespace's runs.

The terms are ``WorkflowType``, ``ExecutionStatus`` and each ``keyword``, ``keyword_list`` item,
``bool`` and word of a ``text`` search attribute: a query with such an equality walks that
posting list instead of every run (ledgerflow/engine/visibility_reads.py). The index holds each
workflow id's latest run, as listings do. The processor rewrites a run's keys only when a
visible field changed (start, close, upsert), in the batch's transaction, so the index is
exactly-once with the run itself.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ledgerflow import namespaces
from ledgerflow.engine.state import keys
from ledgerflow.engine.state.models import RunState
from ledgerflow.engine.state.store import PartitionStore, StoreTransaction
from ledgerflow.schemas import events as ev
from ledgerflow.schemas.search import SearchAttributeValue, text_words, upserted
from ledgerflow.visibility import TEXT_WORD

INVERTED = 10**15 - 1
"""Start times (milliseconds) are stored as ``INVERTED - millis``: newest first in key order."""

POSTED_TYPES = frozenset({"keyword", "keyword_list", "bool"})
"""Search attribute types with equality postings."""

BACKFILL_RUNS = 200
"""Runs a store from before the index adds to it per batch."""


def order_of(started_at: float, workflow_id: str) -> str:
    """Where a run sorts in the index (and a page token points)."""
    return f"{INVERTED - int(started_at * 1000):015d}\x00{workflow_id}"


def visible_prefix(namespace: str) -> bytes:
    return keys.VISIBLE + f"{namespace}\x00".encode()


def visible_key(namespace: str, order: str) -> bytes:
    return visible_prefix(namespace) + order.encode()


def posting_prefix(namespace: str, name: str, value: str) -> bytes:
    return keys.POSTING + f"{namespace}\x00{name}\x00{value}\x00".encode()


def posting_key(namespace: str, name: str, value: str, order: str) -> bytes:
    return posting_prefix(namespace, name, value) + order.encode()


def term_text(kind: str, value: Any) -> str:
    """How a value is spelled in a posting key."""
    if kind == "bool":
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class IndexEntry:
    """What the index holds of one run: compared before and after a batch, written when it changed."""

    namespace: str
    order: str
    run_id: str
    workflow_type: str
    status: str
    started_at: float
    closed_at: float | None
    search_attributes: dict[str, SearchAttributeValue]

    def terms(self) -> set[tuple[str, str]]:
        found = {("WorkflowType", self.workflow_type), ("ExecutionStatus", self.status)}
        for name, typed in self.search_attributes.items():
            if typed.type == "keyword_list":
                found.update((name, item) for item in typed.value)
            elif typed.type == "text":
                found.update((name, TEXT_WORD + word) for word in text_words(typed.value))
            elif typed.type in POSTED_TYPES:
                found.add((name, term_text(typed.type, typed.value)))
        return found

    def record(self) -> bytes:
        return json.dumps(
            {
                "run_id": self.run_id,
                "workflow_type": self.workflow_type,
                "status": self.status,
                "started_at": self.started_at,
                "closed_at": self.closed_at,
                "search_attributes": {
                    name: {"type": typed.type, "value": typed.value}
                    for name, typed in self.search_attributes.items()
                },
            },
            separators=(",", ":"),
            ensure_ascii=False,
        ).encode()


def attributes_after(history: list[ev.HistoryEvent]) -> dict[str, SearchAttributeValue]:
    """A run's search attributes after ``history`` (it begins with ``WorkflowStarted``)."""
    started = history[0]
    assert isinstance(started, ev.WorkflowStarted)
    current = started.search_attributes
    for event in history:
        if isinstance(event, ev.SearchAttributesUpserted):
            current = upserted(current, event.attributes)
    return current


Visible = tuple[str, str, str, str, float, float | None, dict[str, SearchAttributeValue]]
"""What the index holds of a run, as cheap to take and compare as can be (the processor takes it
of every run a batch reads, and again when the batch ends): workflow id, run id, type, status,
start and close times, search attributes."""


def visible(run: RunState) -> Visible:
    return (
        run.workflow_id,
        run.run_id,
        run.workflow_type,
        run.status,
        run.started_at,
        run.closed_at,
        run.search_attributes,
    )


def entry_of(fields: Visible) -> IndexEntry:
    workflow_id, run_id, workflow_type, status, started_at, closed_at, attributes = fields
    namespace, order = namespaces.namespace_of(workflow_id), order_of(started_at, workflow_id)
    return IndexEntry(namespace, order, run_id, workflow_type, status, started_at, closed_at, attributes)


def write(txn: StoreTransaction, before: Visible | None, after: Visible | None) -> None:
    """Change the index from ``before`` (what it holds of the workflow, None: nothing) to ``after``."""
    if before == after:
        return
    old = entry_of(before) if before is not None else None
    new = entry_of(after) if after is not None else None
    old_terms = old.terms() if old is not None else set()
    new_terms = new.terms() if new is not None else set()
    moved = old is None or new is None or old.order != new.order
    if old is not None:
        if new is None or new.order != old.order:
            txn.delete(visible_key(old.namespace, old.order))
        for name, value in old_terms if moved else old_terms - new_terms:
            txn.delete(posting_key(old.namespace, name, value, old.order))
    if new is not None:
        txn.put(visible_key(new.namespace, new.order), new.record())
        for name, value in new_terms if moved else new_terms - old_terms:
            txn.put(posting_key(new.namespace, name, value, new.order), b"")


def backfill(store: PartitionStore, txn: StoreTransaction, after: bytes | None) -> bytes | None:
    """Index up to ``BACKFILL_RUNS`` committed runs after run key ``after`` (None: from the first),
    as this batch leaves them (called after the batch's own index changes); returns the last run
    key indexed, or None once every run is (and records that)."""
    start = after + b"\x00" if after is not None else keys.RUN
    last = None
    for count, (key, _) in enumerate(store.scan_range(start, keys.RUN + b"\xff")):
        if count == BACKFILL_RUNS:
            return last
        last = key
        raw = txn.get(key)
        if raw is not None:  # None: deleted in this batch (retention), with its index keys
            write(txn, None, visible(RunState.model_validate_json(raw)))
    txn.put(keys.VISIBILITY_BUILT, b"1")
    return None


def index_problems(store: PartitionStore) -> list[str]:
    """How a store's index differs from the one its runs imply (empty when it is exact): a key
    missing, one left over, or a record that does not say what the run does."""
    expected: dict[bytes, bytes] = {}
    for _, raw in store.scan(keys.RUN):
        entry = entry_of(visible(RunState.model_validate_json(raw)))
        expected[visible_key(entry.namespace, entry.order)] = entry.record()
        for name, value in entry.terms():
            expected[posting_key(entry.namespace, name, value, entry.order)] = b""
    actual = dict(store.scan(keys.VISIBLE)) | dict(store.scan(keys.POSTING))
    problems = [f"missing {key!r}" for key in sorted(expected.keys() - actual.keys())]
    problems += [f"left over {key!r}" for key in sorted(actual.keys() - expected.keys())]
    problems += [
        f"{key!r} holds {actual[key]!r}, the run says {expected[key]!r}"
        for key in sorted(expected.keys() & actual.keys())
        if actual[key] != expected[key]
    ]
    return problems
