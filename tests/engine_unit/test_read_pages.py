"""Owner reads cost what was asked (issue 12): a history page and a run listing read only
their page from RocksDB, from the key where it starts.

Each "reads only" test puts an unreadable record just past the page: a read that
loaded everything (as these reads did) fails on it; a paged read never touches it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ledgerflow.engine.processor import PartitionProcessor
from ledgerflow.engine.reads import RunFilter, list_runs
from ledgerflow.engine.state import keys
from ledgerflow.engine.state.committed import read_history, read_history_page
from ledgerflow.schemas.commands import SignalWorkflow, StartWorkflow
from tests.engine_unit.test_processor import batch, processor_at


def counter_with_signals(processor: PartitionProcessor, signals: int) -> None:
    """Workflow 'w' (SignalCounter, run 'r') that received ``signals`` signals: a history of
    ``signals + 1`` events, one a batch."""
    batch(processor, 1.0, StartWorkflow(workflow_id="w", workflow_type="SignalCounter", run_id="r"))
    for i in range(signals):
        batch(processor, 2.0 + i, SignalWorkflow(workflow_id="w", name="add", payload=i))


def test_a_history_page_is_the_slice_of_the_history_and_its_total(tmp_path: Path) -> None:
    processor = processor_at(tmp_path)
    counter_with_signals(processor, 30)
    whole = read_history(processor.store, "w", "r")
    assert len(whole) == 31
    page, total = read_history_page(processor.store, "w", "r", 10, 5)
    assert total == 31 and page == whole[10:15]
    assert read_history_page(processor.store, "w", "r", 28, 100) == (whole[28:], 31)
    assert read_history_page(processor.store, "w", "r", 31, 5) == ([], 31)
    assert read_history_page(processor.store, "w", "other-run", 0, 5) == ([], 0)


def test_a_history_page_reads_only_its_events(tmp_path: Path) -> None:
    processor = processor_at(tmp_path)
    counter_with_signals(processor, 30)
    processor.store.write({keys.history_key("w", "r", 12): b"unreadable"}, None)
    page, total = read_history_page(processor.store, "w", "r", 0, 11)
    assert [e.index for e in page] == list(range(1, 12)) and total == 31
    with pytest.raises(ValueError):  # what a whole read meets
        read_history(processor.store, "w", "r")


def start_many(processor: PartitionProcessor, n: int) -> list[str]:
    """Workflows w00, w01, ... (SignalCounter: they stay RUNNING); w03 and w07 are ThreeSteps."""
    ids = [f"w{i:02d}" for i in range(n)]
    starts = [
        StartWorkflow(
            workflow_id=w, workflow_type="ThreeSteps" if w in ("w03", "w07") else "SignalCounter", input=1
        )
        for w in ids
    ]
    batch(processor, 1.0, *starts)
    return ids


def listed(
    processor: PartitionProcessor, after: str | None, limit: int, **filters: str
) -> tuple[list[str], bool]:
    wanted = RunFilter(filters.get("status"), filters.get("workflow_type"))
    listing = list_runs([(processor.partition, processor.store)], wanted, after, None, limit, 10_000)
    return [r["workflow_id"] for r in listing.runs], listing.next_after is not None


def test_a_listing_pages_by_workflow_id_and_says_when_more_follow(tmp_path: Path) -> None:
    processor = processor_at(tmp_path)
    ids = start_many(processor, 12)
    assert listed(processor, None, 5) == (ids[:5], True)
    assert listed(processor, "w04", 5) == (ids[5:10], True)
    assert listed(processor, "w09", 5) == (ids[10:], False)
    assert listed(processor, "w0", 2) == (ids[:2], True)  # 'after' need not be a workflow id
    assert listed(processor, None, 5, workflow_type="ThreeSteps") == (["w03", "w07"], False)
    assert listed(processor, None, 1, workflow_type="ThreeSteps") == (["w03"], True)
    assert listed(processor, None, 5, status="COMPLETED") == ([], False)


def test_a_listing_reads_only_its_page_and_one_run_more(tmp_path: Path) -> None:
    processor = processor_at(tmp_path)
    ids = start_many(processor, 12)
    processor.store.write({keys.run_key("w07"): b"unreadable"}, None)
    assert listed(processor, None, 6) == (ids[:6], True)  # reads w00..w06
    assert listed(processor, None, 7) == (ids[:7], True)  # steps onto w07 without reading it
    assert listed(processor, "w07", 3) == (ids[8:11], True)  # starts past it
    with pytest.raises(ValueError):  # what a whole read meets
        listed(processor, None, 8)
