"""The visibility index on a real RocksDB store, kept by the partition state machine (no Kafka):
queries filter, order and page as they should, and after every change (start, upsert, close,
continue-as-new, retention, a store from before the index) the index is exactly what the runs
imply."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from ledgerflow import SearchAttributeKey, TypedSearchAttributes
from ledgerflow.engine.processor import PartitionProcessor
from ledgerflow.engine.state import keys, visibility
from ledgerflow.engine.state.committed import read_history, read_run
from ledgerflow.engine.visibility_reads import count_runs, query_runs
from ledgerflow.schemas.commands import SignalWorkflow, StartWorkflow
from ledgerflow.sdk.definition import WorkflowRegistry
from ledgerflow.testing.invariants import check_run
from ledgerflow.visibility import parse
from tests.engine_unit.test_processor import FLOWS, batch, processor_at
from tests.testapps.flows import CUSTOMER, PRIORITY

AMOUNT = SearchAttributeKey.for_int("Amount")
TAGS = SearchAttributeKey.for_keyword_list("Tags")
NOTES = SearchAttributeKey.for_text("Notes")
DUE = SearchAttributeKey.for_datetime("Due")
ORDERS = 12


def order(i: int) -> StartWorkflow:
    attributes = TypedSearchAttributes(
        [
            CUSTOMER.value_set(f"c-{i % 3}"),
            AMOUNT.value_set(i * 10),
            PRIORITY.value_set(i % 2 == 0),
            TAGS.value_set(["rush"] if i % 4 == 0 else ["slow", "bulk"]),
            NOTES.value_set("Late parcel, call first" if i == 5 else "left at the door"),
            DUE.value_set(datetime(2026, 12, 1 + i % 28, tzinfo=UTC)),
        ]
    )
    return StartWorkflow(
        workflow_id=f"order-{i:02d}",
        workflow_type="TrackedOrder",
        input=0,
        run_id=f"r{i}",
        search_attributes=attributes.wire(),
        memo={"note": f"note {i}"},
    )


def with_orders(tmp_path: Path, **context: float) -> PartitionProcessor:
    processor = processor_at(tmp_path, **context)
    for i in range(ORDERS):  # one batch each, a second apart: every run has its own start time
        batch(processor, 1000.0 + i, order(i))
    return processor


def ids(processor: PartitionProcessor, query: str, limit: int = 100) -> list[str]:
    listing = query_runs([(0, processor.store)], parse(query), None, None, limit, 10_000)
    return [row["workflow_id"] for row in listing.runs]


def newest_first(*numbers: int) -> list[str]:
    return [f"order-{i:02d}" for i in sorted(numbers, reverse=True)]


def index_is_exact(processor: PartitionProcessor) -> None:
    assert visibility.index_problems(processor.store) == []


def test_queries_filter_on_every_attribute_type_newest_first(tmp_path: Path) -> None:
    processor = with_orders(tmp_path)
    every = range(ORDERS)
    assert ids(processor, "") == newest_first(*every)
    assert ids(processor, "CustomerId = 'c-1'") == newest_first(*(i for i in every if i % 3 == 1))
    assert ids(processor, "CustomerId = 'c-1' ORDER BY StartTime ASC") == newest_first(1, 4, 7, 10)[::-1]
    assert ids(processor, "Amount >= 50 AND Amount < 90") == newest_first(5, 6, 7, 8)
    assert ids(processor, "Amount BETWEEN 20 AND 40 OR Amount IN (110)") == newest_first(2, 3, 4, 11)
    assert ids(processor, "Priority = true AND CustomerId = 'c-0'") == newest_first(0, 6)
    assert ids(processor, "Tags = 'rush'") == newest_first(0, 4, 8)
    assert ids(processor, "Tags IN ('bulk') AND CustomerId != 'c-0'") == newest_first(1, 2, 5, 7, 10, 11)
    assert ids(processor, "Notes = 'parcel late'") == newest_first(5)
    assert ids(processor, "Due > '2026-12-10T00:00:00Z'") == newest_first(10, 11)
    assert ids(processor, "WorkflowId STARTS_WITH 'order-1'") == newest_first(10, 11)
    running = "WorkflowType = 'TrackedOrder' AND ExecutionStatus = 'Running'"
    assert ids(processor, running) == newest_first(*every)
    assert ids(processor, "Stage = 'received-0' AND CloseTime IS NULL") == newest_first(*every)
    assert ids(processor, "StartTime >= '1970-01-01T00:16:50Z'") == newest_first(10, 11)  # 1010 s
    assert ids(processor, "Missing = 'x' OR Missing IS NOT NULL") == []
    assert ids(processor, "ExecutionStatus = 'Completed'") == []
    assert count_runs([(0, processor.store)], parse("Priority = false"), None) == (6, [0])
    index_is_exact(processor)


def test_pages_of_a_query_follow_one_another_without_a_gap_or_a_repeat(tmp_path: Path) -> None:
    processor = with_orders(tmp_path)
    for text, expected in (
        ("Tags = 'slow'", newest_first(*(i for i in range(ORDERS) if i % 4))),
        ("Tags = 'slow' ORDER BY StartTime ASC", newest_first(*(i for i in range(ORDERS) if i % 4))[::-1]),
        ("Amount > 15", newest_first(*range(2, ORDERS))),
    ):
        for scan_limit in (3, 10_000):  # a scan limit leaves pages short, never skips a run
            seen: list[str] = []
            after = None
            while True:
                page = query_runs([(0, processor.store)], parse(text), after, None, 4, scan_limit)
                assert len(page.runs) <= 4
                seen += [row["workflow_id"] for row in page.runs]
                after = page.next_after
                if after is None:
                    break
            assert seen == expected, (text, scan_limit)


def test_a_page_token_that_is_not_one_is_refused(tmp_path: Path) -> None:
    processor = with_orders(tmp_path)
    with pytest.raises(ValueError, match="not a page token"):
        query_runs([(0, processor.store)], parse(""), "order-03", None, 4, 100)


def test_the_index_follows_upserts_closes_and_continue_as_new(tmp_path: Path) -> None:
    processor = with_orders(tmp_path)
    batch(processor, 2000.0, SignalWorkflow(workflow_id="order-01", name="ship"))
    batch(processor, 2001.0, SignalWorkflow(workflow_id="order-02", name="continue"))
    index_is_exact(processor)
    assert ids(processor, "Stage = 'shipped'") == ["order-01"]
    assert ids(processor, "ExecutionStatus = 'Completed' AND Priority IS NULL") == ["order-01"]
    assert ids(processor, "CloseTime > '1970-01-01T00:33:19Z'") == ["order-01"]
    # The new run of order-02 started at 2001 s: newest of all, its attributes carried over.
    assert ids(processor, "CustomerId = 'c-2'")[0] == "order-02"
    assert ids(processor, "Stage = 'received-1'") == ["order-02"]
    assert "order-02" not in ids(processor, "Stage = 'received-0'")
    shipped = read_run(processor.store, "order-01")
    assert shipped is not None and shipped.result == {
        "customer": "c-1",
        "stage": "shipped",
        "priority": None,
        "memo": "note 1",
    }
    registry = WorkflowRegistry.from_modules([FLOWS])
    for workflow_id in ("order-01", "order-02"):
        run = read_run(processor.store, workflow_id)
        assert run is not None
        for run_id in [*run.previous_runs, run.run_id]:
            history = read_history(processor.store, workflow_id, run_id)
            state = run if run_id == run.run_id else None
            assert check_run(state, history, registry, workflow_id=workflow_id, run_id=run_id) == []


def test_a_run_past_its_retention_leaves_the_index(tmp_path: Path) -> None:
    processor = with_orders(tmp_path, retention=10.0)
    batch(processor, 2000.0, SignalWorkflow(workflow_id="order-03", name="ship"))
    assert ids(processor, "Stage = 'shipped'") == ["order-03"]
    batch(processor, 2011.0)
    assert read_run(processor.store, "order-03") is None
    assert ids(processor, "CustomerId = 'c-0'") == newest_first(0, 6, 9)
    index_is_exact(processor)


def test_a_store_from_before_the_index_is_filled_in_a_few_runs_a_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    processor = with_orders(tmp_path)
    store = processor.store
    old = [key for key, _ in store.scan(keys.VISIBLE)] + [key for key, _ in store.scan(keys.POSTING)]
    store.write({**dict.fromkeys(old), keys.VISIBILITY_BUILT: None}, None)
    assert ids(processor, "") == []
    monkeypatch.setattr(visibility, "BACKFILL_RUNS", 5)
    reopened = PartitionProcessor(0, store, processor.ctx)
    batch(reopened, 3000.0, SignalWorkflow(workflow_id="order-07", name="ship"))  # changes one run, too
    assert len(ids(reopened, "")) == 6, "the first batch indexes 5 runs, and the run it changed"
    assert store.get(keys.VISIBILITY_BUILT) is None
    batch(reopened, 3001.0)
    batch(reopened, 3002.0)
    assert store.get(keys.VISIBILITY_BUILT) == b"1"
    assert ids(reopened, "") == newest_first(*range(ORDERS))
    assert ids(reopened, "Stage = 'shipped'") == ["order-07"]
    index_is_exact(reopened)


def test_counts_and_pages_keep_to_the_namespace_asked_for(tmp_path: Path) -> None:
    processor = with_orders(tmp_path)
    other = order(99).model_copy(update={"workflow_id": "acme/order-99", "run_id": "r99"})
    batch(processor, 3000.0, other, SignalWorkflow(workflow_id="order-04", name="ship"))
    stores = [(0, processor.store)]
    texts = ("", "ExecutionStatus = 'Running'", "WorkflowType IN ('TrackedOrder', 'Other')", "Amount > 0")
    for text in texts:
        query = parse(text)
        for namespace in (None, "default", "acme"):
            listed = query_runs(stores, query, None, namespace, 1000, 10_000).runs
            counted, _ = count_runs(stores, query, namespace)  # from the keys alone, for the first three
            assert counted == len(listed), (text, namespace)
    default_ids = query_runs(stores, parse(""), None, "default", 1000, 10_000).runs
    assert "acme/order-99" not in {row["workflow_id"] for row in default_ids}
    acme = query_runs(stores, parse("WorkflowId = 'order-99'"), None, "acme", 10, 100).runs
    assert [row["workflow_id"] for row in acme] == ["acme/order-99"]  # engine ids; clients show them bare
    assert count_runs(stores, parse("ExecutionStatus = 'Completed'"), "default") == (1, [0])


def test_a_page_token_never_points_into_another_namespace(tmp_path: Path) -> None:
    processor = with_orders(tmp_path)
    hidden = order(98).model_copy(update={"workflow_id": "acme/secret-deal", "run_id": "r98"})
    batch(processor, 1005.5, hidden)  # between the default namespace's runs in start order
    stores = [(0, processor.store)]
    after, seen = None, []
    while True:
        page = query_runs(stores, parse("Amount >= 0"), after, None, 2, 2)
        seen += [row["workflow_id"] for row in page.runs]
        after = page.next_after
        if after is None:
            break
        assert "acme" not in after and "secret" not in after
    assert seen == newest_first(*range(ORDERS))


def test_equality_on_a_datetime_or_a_workflow_id_finds_the_run(tmp_path: Path) -> None:
    processor = with_orders(tmp_path)
    assert ids(processor, "Due = '2026-12-04T00:00:00Z'") == ["order-03"]
    assert ids(processor, "WorkflowId = 'order-07'") == ["order-07"]
    assert ids(processor, "WorkflowId IN ('order-02', 'order-09', 'nope') ORDER BY StartTime ASC") == [
        "order-02",
        "order-09",
    ]
    assert ids(processor, "WorkflowId = 'order-07' AND Amount < 10") == []
