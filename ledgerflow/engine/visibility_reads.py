"""Visibility queries over the index each partition keeps (engine/state/visibility.py).

A query walks its partitions' index in start-time order (newest first unless ``ORDER BY
StartTime ASC``), merged across partitions, and tests each run against the whole condition.
With an equality the index has postings for (``CustomerId = 'c-1'``), it walks the union of
those postings instead, reading only the runs they name. Like a listing, it stops at a full
page or after ``list_scan_limit`` runs examined, and answers where to go on (a run's *order*
key: ``next_after``); pages are merged across engine nodes by ``ledgerflow.paging``.
"""

from __future__ import annotations

import heapq
import json
import logging
from collections.abc import Iterable, Iterator
from typing import Any

from ledgerflow import namespaces
from ledgerflow.engine.reads import RunListing, summary
from ledgerflow.engine.state import keys, visibility
from ledgerflow.engine.state.models import RunState
from ledgerflow.engine.state.store import PartitionStore
from ledgerflow.schemas.owner import QueryRowJson
from ledgerflow.visibility import Predicate, Query, Term, posting_terms, row_of

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
    """Up to ``limit`` runs matching ``query`` past the page token ``after``, examining at most
    ``scan_limit``; each row carries its page token as ``cursor``, as ``next_after`` does.
    ValueError when ``after`` is not a page token."""
    start = order_of_cursor(after)
    owned = list(stores)
    by_partition = dict(owned)
    listing = RunListing([], None, [partition for partition, _ in owned])
    terms = posting_terms(query)
    walks = [_walk(p, store, terms, start, query.descending, listing.failed) for p, store in owned]
    merged = heapq.merge(*walks, key=lambda found: found[0], reverse=not query.descending)
    for examined, (order, partition, record) in enumerate(merged):
        if len(listing.runs) == limit or examined == scan_limit:
            break
        listing.next_after = cursor_of(order)
        row = _row(order, record, namespace)
        if row is None or not query.matches(row):
            continue
        raw = by_partition[partition].get(keys.run_key(_workflow_id(order)))
        if raw is not None:
            run = RunState.model_validate_json(raw)
            found: QueryRowJson = {**summary(run, partition), "cursor": cursor_of(order)}
            listing.runs.append(found)
    else:
        listing.next_after = None
    listing.partitions = [p for p in listing.partitions if p not in listing.failed]
    return listing


def count_runs(
    stores: Iterable[tuple[int, PartitionStore]], query: Query, namespace: str | None
) -> tuple[int, list[int]]:
    """How many runs match ``query``, and the partitions counted. A query that is the whole of its
    postings (none, or one equality or ``IN`` on ``WorkflowType`` or ``ExecutionStatus``: a run
    has one value of each) is counted from the keys alone, no record read."""
    owned = list(stores)
    failed: set[int] = set()
    terms = posting_terms(query)
    exact = _key_prefixes(query, terms)
    count = 0
    for partition, store in owned:
        if exact is not None:
            count += _count_keys(partition, store, exact, namespace, failed)
            continue
        for order, _, record in _walk(partition, store, terms, None, True, failed):
            row = _row(order, record, namespace)
            if row is not None and query.matches(row):
                count += 1
    return count, [p for p, _ in owned if p not in failed]


def _key_prefixes(query: Query, terms: list[Term] | None) -> list[bytes] | None:
    """The key prefixes whose keys are exactly the runs ``query`` matches, or None."""
    condition = query.condition
    if condition is None:
        return [keys.VISIBLE]
    exact = (
        isinstance(condition, Predicate)
        and not condition.negated
        and condition.op in ("=", "in")
        and condition.name in ("WorkflowType", "ExecutionStatus")
    )
    if not exact or terms is None:
        return None
    return list({visibility.posting_prefix(t.name, t.value) for t in terms})


def _count_keys(
    partition: int, store: PartitionStore, prefixes: list[bytes], namespace: str | None, failed: set[int]
) -> int:
    count = 0
    try:
        for prefix in prefixes:
            for key, _ in store.scan(prefix):
                if (
                    namespace is None
                    or namespaces.split(_workflow_id(key[len(prefix) :].decode()))[0] == namespace
                ):
                    count += 1
    except Exception as exc:  # revoked while counting: its new owner answers for it
        log.info("partition %d left out of a visibility count: %s", partition, exc)
        failed.add(partition)
        return 0
    return count


def cursor_of(order: str) -> str:
    """An order key as a page token: printable (a URL carries it), sorting the same way."""
    return order.replace("\x00", ".", 1)


def order_of_cursor(cursor: str | None) -> str | None:
    """The order key of a page token; ValueError when it is not one."""
    if cursor is None:
        return None
    if len(cursor) < 17 or not cursor[:15].isdigit() or cursor[15] != ".":
        raise ValueError(f"{cursor[:40]!r} is not a page token of a visibility query")
    return cursor[:15] + "\x00" + cursor[16:]


def _workflow_id(order: str) -> str:
    return order.split("\x00", 1)[1]


def _row(order: str, record: bytes, namespace: str | None) -> dict[str, Any] | None:
    """The run's attributes for the condition, or None when it is not in ``namespace``."""
    workflow_id = _workflow_id(order)
    run_namespace, bare = namespaces.split(workflow_id)
    if namespace is not None and run_namespace != namespace:
        return None
    return row_of(bare, json.loads(record))


def _walk(
    partition: int,
    store: PartitionStore,
    terms: list[Term] | None,
    after: str | None,
    descending: bool,
    failed: set[int],
) -> Iterator[Found]:
    """A partition's index records past ``after``, in the query's order; through the union of
    ``terms``' postings when given."""
    try:
        if terms is None:
            for key, record in _ordered(store, keys.VISIBLE, after, descending):
                yield key[len(keys.VISIBLE) :].decode(), partition, record
            return
        postings = [
            _posted(store, visibility.posting_prefix(t.name, t.value), after, descending) for t in terms
        ]
        previous = None
        for order in heapq.merge(*postings, reverse=not descending):
            if order == previous:
                continue  # in two of the postings
            previous = order
            found = store.get(visibility.visible_key(order))
            if found is not None:
                yield order, partition, found
    except Exception as exc:  # revoked while reading: its new owner answers for it
        log.info("partition %d left out of a visibility query: %s", partition, exc)
        failed.add(partition)


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
