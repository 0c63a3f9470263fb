"""Paging a listing of runs across engine nodes (the gateway and the Python client share it).

Each node answers a page of its partitions' runs in workflow-id order and ``next_after``:
it examined every run of its partitions up to that id (null: to the end). A node stops
at a full page or after ``list_scan_limit`` runs, so past the smallest ``next_after``
another node may not have looked yet: the merged page ends there, and the next page
starts after its last run, or after that frontier when the filter left the page short.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def merge_listings(
    answers: Iterable[dict[str, Any]],
    limit: int,
    key: str = "workflow_id",
    reverse: bool = False,
    rows_in: str = "runs",
) -> tuple[list[dict[str, Any]], str | None]:
    """Up to ``limit`` runs from the nodes' answers, in the order of their ``key`` field, and the
    next cursor. A visibility query's pages are ordered by ``cursor`` (``reverse`` for
    ``ORDER BY StartTime ASC``: the cursor holds the start time inverted). ``rows_in``: the field
    of an answer that holds its rows (``schedules`` for a listing of schedules)."""
    rows: dict[str, dict[str, Any]] = {}
    frontiers: list[str] = []
    for answer in answers:
        for row in answer.get(rows_in, []):
            rows[str(row[key])] = row
        if answer.get("next_after") is not None:
            frontiers.append(str(answer["next_after"]))
    frontier = (max if reverse else min)(frontiers, default=None)

    def reached(k: str) -> bool:
        return frontier is None or (k >= frontier if reverse else k <= frontier)

    ordered = [rows[k] for k in sorted(rows, reverse=reverse) if reached(k)]
    page = ordered[:limit]
    if len(ordered) > limit:
        return page, str(page[-1][key])
    return page, frontier
