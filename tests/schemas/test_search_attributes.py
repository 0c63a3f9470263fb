"""Search attributes and memo on the wire: typed values, and limits that keep a run's index and
state bounded whatever a caller sends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from ledgerflow import SearchAttributeKey, TypedSearchAttributes
from ledgerflow.schemas.commands import StartWorkflow
from ledgerflow.schemas.search import SearchAttributeValue, upserted


def start(**fields: object) -> StartWorkflow:
    return StartWorkflow.model_validate({"workflow_id": "w", "workflow_type": "T", **fields})


def test_values_are_checked_against_their_type() -> None:
    assert SearchAttributeValue(type="double", value=2).value == 2.0
    due = datetime(2026, 12, 24, 19, tzinfo=timezone(timedelta(hours=1)))
    assert SearchAttributeValue(type="datetime", value=due).value == "2026-12-24T18:00:00+00:00"
    for kind, value, message in [
        ("int", "5", "an int value must be an integer"),
        ("int", True, "an int value must be an integer"),
        ("int", 2**63, "fit in 64 bits"),
        ("double", float("nan"), "finite"),
        ("bool", 1, "true or false"),
        ("keyword", "x" * 513, "at most 512"),
        ("keyword", "a\x00b", "NUL"),
        ("datetime", "2026-12-24T18:00:00", "needs a time zone"),
        ("keyword_list", ["a"] * 65, "at most 64"),
    ]:
        with pytest.raises(ValidationError, match=message):
            SearchAttributeValue(type=kind, value=value)  # type: ignore[arg-type]


def test_a_run_s_attributes_and_memo_are_bounded_as_a_whole() -> None:
    many_words = " ".join(f"w{i}" for i in range(400))  # 400 distinct words in under 2048 characters
    with pytest.raises(ValidationError, match="1200 index entries"):
        start(search_attributes={n: {"type": "text", "value": many_words} for n in ("A", "B", "C")})
    big = "😀" * 2000  # 8 KB each as UTF-8
    with pytest.raises(ValidationError, match="at most 40960"):
        start(search_attributes={f"T{i}": {"type": "text", "value": big} for i in range(6)})
    with pytest.raises(ValidationError, match="WorkflowType: kept by the engine"):
        start(search_attributes={"WorkflowType": {"type": "keyword", "value": "x"}})
    with pytest.raises(ValidationError, match="should match pattern"):
        start(search_attributes={"customer-id": {"type": "keyword", "value": "x"}})
    with pytest.raises(ValidationError, match="at most 65536"):
        start(memo={"note": "x" * 70_000})
    with pytest.raises(ValidationError, match="workflow_type"):
        start(workflow_type="Order\x00x")


def test_an_upsert_is_held_to_the_same_rules() -> None:
    current = {"A": SearchAttributeValue(type="keyword", value="a")}
    assert upserted(current, {"A": None, "B": SearchAttributeValue(type="int", value=1)}) == {
        "B": SearchAttributeValue(type="int", value=1)
    }
    with pytest.raises(ValueError, match="should match pattern"):
        upserted(current, {"bad name": None})
    with pytest.raises(ValueError, match="kept by the engine"):
        upserted(current, {"ExecutionStatus": SearchAttributeValue(type="keyword", value="x")})


def test_typed_keys_refuse_names_the_query_language_cannot_write() -> None:
    with pytest.raises(ValueError, match="a letter or '_'"):
        SearchAttributeKey.for_keyword("customer-id")
    with pytest.raises(ValueError, match="kept by the engine"):
        SearchAttributeKey.for_datetime("StartTime")
    due = SearchAttributeKey.for_datetime("Due")
    moment = datetime(2026, 12, 24, 18, tzinfo=UTC)
    typed = TypedSearchAttributes([due.value_set(moment)])  # type: ignore[list-item]
    assert TypedSearchAttributes.from_wire(typed.wire()).get(due) == moment
