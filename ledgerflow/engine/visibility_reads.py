"""Visibility queries over the index each partition keeps (engine/state/visibility.py).

A query walks its namespace's part of its partitions' index in start-time order (newest first
unless ``ORDER BY StartTime ASC``), merged across partitions, and tests each run against the
whole condition. With an equality the index has postings for (``CustomerId = 'c-1'``), it
walks the union of those postings instead, reading only the runs they name; with ``WorkflowId =``
it reads those runs alone. Like a listing, it stops at a full page or after ``list_scan_limit``
runs examined, and answers where to go on (a page token: ``next_after``); pages are merged
across engine nodes by ``ledgerflow.paging``.
"""

from __future__ import annotations

import heapq
import json
import logging
from collections.abc import Iterable, Iterator

from ledgerflow import namespaces
from ledgerflow.engine.reads import RunListing, summary
from ledgerflow.engine.state import keys, visibility
from ledgerflow.engine.state.models import RunState
from ledgerflow.engine.state.store import PartitionStore
from ledgerflow.schemas.owner import QueryRowJson
from ledgerflow.visibility import (
    Predicate,
    Query,
    Term,
    cursor_of,
    order_of_cursor,
    posting_terms,
    row_of,
)

log = logging.getLogger("ledgerflow.engine.visibility")

Found = tuple[str, int, bytes]
"""(order key, partition, the run's index record)."""


def query_runs(
    stores: Iterable[tuple[int, PartitionStore]],
    query: Query,
    after: str | None,
    namespace: str | None,
    limit: int,
    scan_limit: int,
) -> RunListing:
    """Up to ``limit`` runs of ``namespace`` (the default one when None) matching ``query`` past
    the page token ``after``, examining at most ``scan_limit``; each row carries its page token as
    ``cursor``, as ``next_after`` does. ValueError when ``after`` is not a page token."""
    start = order_of_cursor(after)
    namespace = namespace or namespaces.DEFAULT
    owned = list(stores)
    by_partition = dict(owned)
    listing = RunListing([], None, [partition for partition, _ in owned])
    terms = posting_terms(query)
    walks = [_walk(p, store, namespace, terms, start, query.descending, listing.failed) for p, store in owned]
    merged = heapq.merge(*walks, key=lambda found: found[0], reverse=not query.descending)
    for examined, (order, partition, record) in enumerate(merged):
        if len(listing.runs) == limit or examined == scan_limit:
            break
        listing.next_after = cursor_of(order)
        found = json.loads(record)
        if not query.matches(row_of(namespaces.split(_workflow_id(order))[1], found)):
            continue
        raw = by_partition[partition].get(keys.run_key(_workflow_id(order)))
        run = RunState.model_validate_json(raw) if raw is not None else None
        if run is not None and run.run_id == found["run_id"]:  # else replaced since: not what matched
            row: QueryRowJson = {**summary(run, partition), "cursor": cursor_of(order)}
            listing.runs.append(row)
    else:
        listing.next_after = None
    listing.partitions = [p for p in listing.partitions if p not in listing.failed]
    return listing


def count_runs(
    stores: Iterable[tuple[int, PartitionStore]], query: Query, namespace: str | None
) -> tuple[int, list[int]]:
    """How many runs of ``namespace`` match ``query``, and the partitions counted. A query that
    is the whole of its postings (none, or one equality or ``IN`` on ``WorkflowType`` or
    ``ExecutionStatus``: a run has one value of each) is counted from the keys alone."""
    namespace = namespace or namespaces.DEFAULT
    owned = list(stores)
    failed: set[int] = set()
    terms = posting_terms(query)
    exact = _key_prefixes(query, terms, namespace)
    count = 0
    for partition, store in owned:
        try:
            if exact is not None:
                count += sum(1 for prefix in exact for _ in store.scan(prefix))
                continue
            subtotal = 0  # kept only once the partition was read to its end
            for order, _, record in _walk(
                partition, store, namespace, terms, None, True, failed, raising=True
            ):
                bare = namespaces.split(_workflow_id(order))[1]
                subtotal += query.matches(row_of(bare, json.loads(record)))
            count += subtotal
        except Exception as exc:  # revoked while counting: its new owner answers for it
            log.info("partition %d left out of a visibility count: %s", partition, exc)
            failed.add(partition)
    return count, [p for p, _ in owned if p not in failed]


def _key_prefixes(query: Query, terms: list[Term] | None, namespace: str) -> list[bytes] | None:
    """The key prefixes whose keys are exactly the runs ``query`` matches, or None."""
    condition = query.condition
    if condition is None:
        return [visibility.visible_prefix(namespace)]
    exact = (
        isinstance(condition, Predicate)
        and not condition.negated
        and condition.op in ("=", "in")
        and condition.name in ("WorkflowType", "ExecutionStatus")
    )
    if not exact or terms is None:
        return None
    return sorted({visibility.posting_prefix(namespace, t.name, t.value) for t in terms})


def _workflow_id(order: str) -> str:
    return order.split("\x00", 1)[1]


def _walk(
    partition: int,
    store: PartitionStore,
    namespace: str,
    terms: list[Term] | None,
    after: str | None,
    descending: bool,
    failed: set[int],
    raising: bool = False,
) -> Iterator[Found]:
    """A partition's index records of ``namespace`` past ``after``, in the query's order; through
    the union of ``terms``' postings when given. A partition revoked while it is read is left
    out (added to ``failed``), unless ``raising``."""
    try:
        if terms is None:
            prefix = visibility.visible_prefix(namespace)
            for key, record in _ordered(store, prefix, after, descending):
                yield key[len(prefix) :].decode(), partition, record
            return
        if terms[0].name == "WorkflowId":
            yield from _runs_named(partition, store, namespace, terms, after, descending)
            return
        postings = [
            _posted(store, visibility.posting_prefix(namespace, t.name, t.value), after, descending)
            for t in terms
        ]
        previous = None
        for order in heapq.merge(*postings, reverse=not descending):
            if order == previous:
                continue  # in two of the postings
            previous = order
            found = store.get(visibility.visible_key(namespace, order))
            if found is not None:
                yield order, partition, found
    except Exception as exc:
        if raising:
            raise
        log.info("partition %d left out of a visibility query: %s", partition, exc)
        failed.add(partition)


def _runs_named(
    partition: int,
    store: PartitionStore,
    namespace: str,
    terms: list[Term],
    after: str | None,
    descending: bool,
) -> Iterator[Found]:
    """The index records of the workflow ids ``terms`` name, read by id (no walk)."""
    found: list[Found] = []
    for term in terms:
        raw = store.get(keys.run_key(namespaces.qualify(namespace, term.value)))
        if raw is None:
            continue
        run = RunState.model_validate_json(raw)
        order = visibility.order_of(run.started_at, run.workflow_id)
        if after is not None and (order <= after if descending else order >= after):
            continue
        record = store.get(visibility.visible_key(namespace, order))
        if record is not None:
            found.append((order, partition, record))
    yield from sorted(set(found), reverse=not descending)


def _posted(store: PartitionStore, prefix: bytes, after: str | None, descending: bool) -> Iterator[str]:
    """The order keys of one posting list, in the query's order."""
    for key, _ in _ordered(store, prefix, after, descending):
        yield key[len(prefix) :].decode()


def _ordered(
    store: PartitionStore, prefix: bytes, after: str | None, descending: bool
) -> Iterator[tuple[bytes, bytes]]:
    """Keys under ``prefix`` past ``prefix + after``: ascending for ``descending`` start times
    (the keys hold inverted times), else from the last down."""
    if descending:
        start = prefix + after.encode() + b"\x00" if after is not None else prefix
        return store.scan_range(start, prefix + b"\xff")
    stop = prefix + after.encode() if after is not None else prefix + b"\xff"
    return store.scan_range_backwards(prefix, stop)
