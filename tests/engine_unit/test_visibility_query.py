"""The visibility query language: what it reads, how a run matches, and errors that name the token."""

from __future__ import annotations

import pytest

from ledgerflow import VisibilityQueryError
from ledgerflow.visibility import Term, parse, posting_terms, row_of

RECORD = {
    "run_id": "r-1",
    "workflow_type": "Checkout",
    "status": "RUNNING",
    "started_at": 1_764_500_000.0,  # 2025-11-30T10:53:20Z
    "closed_at": None,
    "search_attributes": {
        "CustomerId": {"type": "keyword", "value": "c-1"},
        "Amount": {"type": "int", "value": 250},
        "Score": {"type": "double", "value": 0.75},
        "Rush": {"type": "bool", "value": True},
        "Tags": {"type": "keyword_list", "value": ["gift", "fragile"]},
        "Notes": {"type": "text", "value": "Leave it with the neighbour, please"},
        "Due": {"type": "datetime", "value": "2026-12-24T18:00:00+00:00"},
    },
}
ROW = row_of("order-1", RECORD)


@pytest.mark.parametrize(
    ("query", "matches"),
    [
        ("", True),
        ("WorkflowType = 'Checkout' AND ExecutionStatus = 'Running' AND CustomerId = 'c-1'", True),
        ("workflowtype = 'Checkout'", False),  # names are case-sensitive, as in Temporal
        ("ExecutionStatus = 'running' and ExecutionStatus != 'Completed'", True),
        ("ExecutionStatus IN ('Completed', 'Failed')", False),
        ("CustomerId = 'c-1' OR CustomerId = 'c-2'", True),
        ("CustomerId <> 'c-1'", False),
        ("CustomerId STARTS_WITH 'c-'", True),
        ("CustomerId > 'c-0' AND CustomerId <= 'c-1'", True),
        ("Amount > 200 AND Amount <= 250", True),
        ("Amount = '250'", False),  # a string never equals an int
        ("Amount NOT BETWEEN 1 AND 100", True),
        ("Score >= 0.75 AND Score < 1e0", True),
        ("Rush = true", True),
        ("Rush = 'false'", False),
        ("Tags = 'gift' AND Tags != 'perishable'", True),
        ("Tags IN ('perishable', 'fragile')", True),
        ("Tags NOT IN ('gift')", False),
        ("Notes = 'NEIGHBOUR leave'", True),
        ("Notes = 'neighbour garage'", False),
        ("Due BETWEEN '2026-12-24T00:00:00Z' AND '2026-12-25T00:00:00+01:00'", True),
        ("Due > '2026-12-24T19:00:00+02:00'", True),  # 17:00 UTC
        ("StartTime < '2025-11-30T10:53:21Z' AND ExecutionTime > '2025-11-30T10:53:19Z'", True),
        ("CloseTime IS NULL AND Missing IS NULL AND Amount IS NOT NULL", True),
        ("Missing != 'x'", False),  # a run without the attribute matches only IS NULL
        ("(Amount < 10 OR Rush = true) AND (Tags = 'gift')", True),
        ('`CustomerId` = "c-1" ORDER BY StartTime ASC', True),
        ("WorkflowId = 'order-1' AND RunId = 'r-1'", True),
    ],
)
def test_a_condition_matches_as_temporal_users_expect(query: str, matches: bool) -> None:
    assert parse(query).matches(ROW) is matches


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("CustomerId = ", "the query ends too early: expected a number, a quoted string"),
        ("CustomerId == 'c-1'", "unexpected '=' at column 13"),
        ("CustomerId = 'c-1' ORDER StartTime", "unexpected 'StartTime' at column 26: expected BY"),
        ("CustomerId = 'c-1' AND AND Amount = 1", "unexpected 'AND' at column 24"),
        ("CustomerId = 'c-1' $ Amount", "unexpected '$' at column 20"),
        ("Amount IN ()", "unexpected ')' at column 12"),
        ("ExecutionStatus = 'Runing'", "ExecutionStatus 'Runing' at column 19: one of Running"),
        ("StartTime > 'yesterday'", "StartTime 'yesterday' at column 13: a time is an ISO 8601 string"),
        ("CloseTime < '2026-01-01T00:00:00'", "with a time zone"),
        ("ORDER BY CloseTime DESC", "ORDER BY CloseTime at column 10: runs are kept in start-time order"),
        ("CustomerId STARTS_WITH 5", "STARTS_WITH 5: a quoted string"),
        ("x = '" + "a" * 5000 + "'", "at most 4096"),
    ],
)
def test_an_error_names_the_token_and_where_it_is(query: str, message: str) -> None:
    with pytest.raises(VisibilityQueryError) as raised:
        parse(query)
    assert message in str(raised.value)


def test_order_defaults_to_newest_first() -> None:
    assert parse("CustomerId = 'c-1'").descending
    assert parse("ORDER BY StartTime").descending
    assert not parse("ORDER BY ExecutionTime asc").descending


def test_the_plan_reads_postings_of_the_most_selective_equality() -> None:
    query = parse("WorkflowType = 'Checkout' AND ExecutionStatus = 'Running' AND CustomerId = 'c-1'")
    # 'c-1' may be a keyword, or words of a text attribute: the postings of both.
    assert posting_terms(query) == [Term("CustomerId", "c-1"), Term("CustomerId", "\x011")]
    assert posting_terms(parse("ExecutionStatus = 'Running' AND WorkflowType = 'Checkout'")) == [
        Term("WorkflowType", "Checkout")
    ]
    assert posting_terms(parse("ExecutionStatus IN ('Running', 'Failed')")) == [
        Term("ExecutionStatus", "RUNNING"),
        Term("ExecutionStatus", "FAILED"),
    ]
    assert posting_terms(parse("Rush = true")) == [Term("Rush", "true")]
    # Nothing every match must hold: read every run.
    for query_text in ("Amount = 5", "CustomerId = 'a' OR Rush = true", "CustomerId != 'a'", ""):
        assert posting_terms(parse(query_text)) is None, query_text


def test_an_int_literal_keeps_all_64_bits() -> None:
    row = row_of("w", {**RECORD, "search_attributes": {"N": {"type": "int", "value": 9007199254740993}}})
    assert parse("N = 9007199254740993").matches(row)
    assert not parse("N = 9007199254740992").matches(row)


def test_a_literal_of_another_type_never_matches_even_negated() -> None:
    assert not parse("Amount NOT IN ('250')").matches(ROW)
    assert not parse("Amount != '250'").matches(ROW)
    assert not parse("Notes = '!!'").matches(ROW)  # no word: nothing to look for


def test_conditions_nested_past_the_limit_are_refused_not_crashed_on() -> None:
    deep = "(" * 40 + "Amount = 1" + ")" * 40
    assert parse(deep).matches(ROW) is False  # parentheses alone do not nest conditions
    nested = "Amount = 1"
    for _ in range(40):
        nested = f"(Amount = 2 OR ({nested} AND Rush = true))"
    with pytest.raises(VisibilityQueryError, match="deeper than 32 levels"):
        parse(nested)
    widest, level = "a=1", 0
    while len(widest) < 4000:  # ~420 levels: the tree's walk itself would overflow the stack
        widest, level = f"(a=1 {('OR', 'AND')[level % 2]} {widest})", level + 1
    with pytest.raises(VisibilityQueryError, match="deeper than 32 levels"):
        parse(widest)


def test_the_plan_reads_workflow_ids_directly_and_leaves_times_to_the_walk() -> None:
    assert posting_terms(parse("CustomerId = 'c-1' AND WorkflowId IN ('a', 'b')")) == [
        Term("WorkflowId", "a"),
        Term("WorkflowId", "b"),
    ]
    assert posting_terms(parse("Due = '2026-12-24T18:00:00Z'")) is None  # a datetime has no postings
