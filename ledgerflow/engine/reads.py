"""Reads served beside the owner loop: run listings and queries (history pages are
``state.committed.read_history_page``).

They run on the engine's HTTP threads while the owner loop writes, sharing the GIL
with it, so each costs what it returns, not what the partition holds: a listing walks
the partitions' run keys in workflow-id order, stops once the page is full (or after
``list_scan_limit`` runs) and answers where to continue; a query on a run whose
instance the owner has cached copies that instance's state instead of replaying the
run's whole history.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import cast

from ledgerflow import namespaces
from ledgerflow.codec.base import PayloadCodec
from ledgerflow.engine.errors import WorkflowTypeNotLoaded
from ledgerflow.engine.ownerlock import OwnerLock
from ledgerflow.engine.processor import PartitionProcessor
from ledgerflow.engine.state import keys, requests
from ledgerflow.engine.state.committed import RunHead, read_run
from ledgerflow.engine.state.models import RunState
from ledgerflow.engine.state.store import PartitionStore
from ledgerflow.engine.workflow.dag import definition_for
from ledgerflow.engine.workflow.instance import WorkflowInstance, info_for
from ledgerflow.engine.workflow.replayer import replay
from ledgerflow.schemas import events as ev
from ledgerflow.schemas.owner import (
    HistoryPageJson,
    PendingSummaryJson,
    RunSummaryJson,
    StartOutcomeJson,
    StartRefusalJson,
)
from ledgerflow.sdk.definition import WorkflowRegistry

log = logging.getLogger("ledgerflow.engine.reads")

QUERY_LOCK_WAIT = 0.25
"""Seconds a query waits for the owner loop to finish its batch before replaying instead."""


# ------------------------------------------------------------------ starts
def start_outcome_json(
    store: PartitionStore, partition: int, workflow_id: str, request_id: str
) -> StartOutcomeJson:
    """What the engine recorded of the start with ``request_id`` (``applied`` False: nothing yet)."""
    raw = store.get(keys.request_key(workflow_id, request_id))
    refused = requests.refusal(raw)
    return {
        "partition": partition,
        "applied": requests.decided(raw),
        "run_id": requests.started_run(raw),
        "refusal": cast(StartRefusalJson, refused.__dict__) if refused else None,
    }


# ------------------------------------------------------------------ listings
@dataclass(frozen=True)
class RunFilter:
    status: str | None = None
    workflow_type: str | None = None

    def matches(self, raw: bytes) -> bool:
        if self.status is None and self.workflow_type is None:
            return True
        head = RunHead.model_validate_json(raw)
        return self.status in (None, head.status) and self.workflow_type in (None, head.workflow_type)


@dataclass
class RunListing:
    """A page of runs in workflow-id order, across the partitions listed."""

    runs: list[RunSummaryJson]
    next_after: str | None
    """Every run up to this workflow id was examined (listed or filtered out): the next page
    starts after it. None when every partition was listed to its end."""
    partitions: list[int]
    """The partitions this listing covers (one closed under it, being revoked, is left out)."""
    failed: set[int] = field(default_factory=set)


def list_runs(
    stores: Iterable[tuple[int, PartitionStore]],
    run_filter: RunFilter,
    after: str | None,
    namespace: str | None,
    limit: int,
    scan_limit: int,
) -> RunListing:
    """Up to ``limit`` matching runs after ``after``, examining at most ``scan_limit`` runs;
    only those of ``namespace`` when given (a range of ids to read, or for the default
    namespace, the ids without one).

    The partitions' run keys are merged in workflow-id order and read one at a time: the
    walk stops at the first key past a full page or past the scan limit, and ``next_after``
    says where it stopped.
    """
    owned = list(stores)
    listing = RunListing([], None, [partition for partition, _ in owned])
    bounds = namespaces.id_range(namespace) if namespace else None
    merged = heapq.merge(*(_runs_of(p, store, after, bounds, listing.failed) for p, store in owned))
    default_only = namespace == namespaces.DEFAULT
    for examined, (workflow_id, partition, raw) in enumerate(merged):
        if len(listing.runs) == limit or examined == scan_limit:
            break
        listing.next_after = workflow_id
        if default_only and namespaces.SEPARATOR in workflow_id:
            continue
        if run_filter.matches(raw):
            listing.runs.append(summary(RunState.model_validate_json(raw), partition))
    else:
        listing.next_after = None  # every partition was read to its end
    listing.partitions = [p for p in listing.partitions if p not in listing.failed]
    return listing


def _runs_of(
    partition: int,
    store: PartitionStore,
    after: str | None,
    bounds: tuple[str, str] | None,
    failed: set[int],
) -> Iterator[tuple[str, int, bytes]]:
    """(workflow id, partition, stored state) of a partition's runs after ``after`` (and before
    ``bounds``' end), in order."""
    start = keys.run_key(after) + b"\x00" if after is not None else keys.RUN
    end = keys.RUN + b"\xff"
    if bounds is not None:
        start, end = max(start, keys.run_key(bounds[0])), keys.run_key(bounds[1])
    try:
        for key, raw in store.scan_range(start, end):
            yield key[len(keys.RUN) :].decode(), partition, raw
    except Exception as exc:  # revoked while listing: its new owner lists it
        log.info("partition %d left out of a listing: %s", partition, exc)
        failed.add(partition)


def summary(run: RunState, partition: int) -> RunSummaryJson:
    """The fields of a run that listings show."""
    pending: list[PendingSummaryJson] = [
        {
            "seq": seq,
            "activity": p.activity_type,
            "attempt": p.attempt,
            "state": p.state,
            "last_failure": p.last_failure.message if p.last_failure else None,
        }
        for seq, p in run.activities.items()
    ]
    return {
        "partition": partition,
        "workflow_id": run.workflow_id,
        "run_id": run.run_id,
        "workflow_type": run.workflow_type,
        "status": run.status,
        "started_at": run.started_at,
        "closed_at": run.closed_at,
        "history_length": run.history_length,
        "history_bytes": run.history_bytes,
        "pending_activities": pending,
        "search_attributes": {
            name: {"type": typed.type, "value": typed.value} for name, typed in run.search_attributes.items()
        },
        "memo": run.memo,
    }


# ------------------------------------------------------------------- queries
def cached_copy(
    processor: PartitionProcessor, owner_lock: OwnerLock, run: RunState
) -> WorkflowInstance | None:
    """A copy of the run's cached instance when it holds exactly the committed history.

    The owner loop drives cached instances under ``owner_lock`` (a batch, giving up a
    partition), so holding it here means no workflow code runs on the instance while it
    is copied, and the instance is either at a committed state or (a batch that failed
    before the session restarted) ahead of it, which its event count tells. The query
    itself runs on the copy after the lock is released: it runs caller-chosen arguments
    through workflow code, which must not hold up the partition's owner loop. None when
    the run is closed or not cached (``run`` is its committed state, read before), the
    loop is busy past ``QUERY_LOCK_WAIT``, or the workflow's object cannot be copied (it
    holds a future or a task): then the caller replays.
    """
    if not run.is_open or processor.cache.peek(run.workflow_id, run.run_id) is None:
        return None  # a hint read without the lock: nothing to wait the loop out for
    with owner_lock.reader(QUERY_LOCK_WAIT) as held:
        if not held:
            return None
        try:
            return _copy_if_committed(processor, run.workflow_id)
        except Exception as exc:  # an object deepcopy refuses: replaying answers it
            log.info("cached instance of %s not copied for a query: %s", run.workflow_id, exc)
            return None


def _copy_if_committed(processor: PartitionProcessor, workflow_id: str) -> WorkflowInstance | None:
    """Under the owner lock: a copy of the cached instance if it is at the committed state."""
    run = read_run(processor.store, workflow_id)
    if run is None or not run.is_open:
        return None
    instance = processor.cache.peek(workflow_id, run.run_id)
    if instance is None or instance.closed or instance.applied != run.history_length:
        return None
    return instance.copy_for_query()


def replayed(
    registry: WorkflowRegistry,
    run: RunState,
    history: list[ev.HistoryEvent],
    codec: PayloadCodec | None = None,
) -> WorkflowInstance:
    """A fresh instance replayed to the run's committed history, apart from the owner's cache."""
    started = history[0]
    assert isinstance(started, ev.WorkflowStarted)
    definition = definition_for(run.workflow_type, started.dag, registry)
    if definition is None:
        raise WorkflowTypeNotLoaded(run.workflow_type)
    instance = WorkflowInstance(definition, info_for(run.workflow_id, run.run_id, -1, started), codec)
    replay(instance, history)
    return instance


def history_page_json(
    workflow_id: str, run_id: str, events: list[ev.HistoryEvent], total: int, offset: int
) -> HistoryPageJson:
    """A page of a run's history as the internal API answers it."""
    return {
        "workflow_id": workflow_id,
        "run_id": run_id,
        "total": total,
        "offset": offset,
        "events": [e.model_dump(mode="json") for e in events],
    }
