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


def merge_listings(answers: Iterable[dict[str, Any]], limit: int) -> tuple[list[dict[str, Any]], str | None]:
    """Up to ``limit`` runs from the nodes' answers, in workflow-id order, and the next cursor."""
    rows: dict[str, dict[str, Any]] = {}
    frontiers: list[str] = []
    for answer in answers:
        for row in answer.get("runs", []):
            rows[str(row["workflow_id"])] = row
        if answer.get("next_after") is not None:
            frontiers.append(str(answer["next_after"]))
    frontier = min(frontiers, default=None)
    ordered = [rows[k] for k in sorted(rows) if frontier is None or k <= frontier]
    page = ordered[:limit]
    if len(ordered) > limit:
        return page, str(page[-1]["workflow_id"])
    return page, frontier
