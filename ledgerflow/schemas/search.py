"""Search attributes and memo: what a run carries for visibility queries and for its callers.

A search attribute is typed (``keyword``, ``text``, ``int``, ``double``, ``bool``, ``datetime``,
``keyword_list``) by its value, as Temporal's typed search attributes are; nothing is registered
ahead. The engine indexes the keyword-like ones for equality (ledgerflow/engine/state/visibility.py)
and filters on every type (ledgerflow/visibility/query.py). A memo is free JSON, shown by describe
and never indexed.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, StringConstraints, model_validator

from ledgerflow.schemas.common import JSON, WireModel

SearchAttributeType = Literal["keyword", "text", "int", "double", "bool", "datetime", "keyword_list"]

SYSTEM_ATTRIBUTES = frozenset(
    {"WorkflowId", "RunId", "WorkflowType", "ExecutionStatus", "StartTime", "CloseTime", "ExecutionTime"}
)
"""Attributes every run has, kept by the engine: a run cannot set them."""

MAX_SEARCH_ATTRIBUTES = 64
MAX_KEYWORD_CHARS = 512
"""A keyword is part of an index key; longer values are text."""
MAX_TEXT_CHARS = 2048
"""Each word of a text value gets an index posting."""
MAX_KEYWORD_LIST_ITEMS = 64
MAX_MEMO_FIELDS = 64

SearchAttributeName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")]
"""A letter or '_', then up to 63 letters, digits or '_' (a name the query language can write bare)."""


def _keyword(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a string, not {type(value).__name__}")
    if len(value) > MAX_KEYWORD_CHARS:
        raise ValueError(f"{what} is {len(value)} characters; a keyword holds at most {MAX_KEYWORD_CHARS}")
    if "\x00" in value:
        raise ValueError(f"{what} holds a NUL character")
    return value


def _utc_iso(value: Any) -> str:
    """A datetime (or ISO 8601 text) with a time zone, as ISO 8601 in UTC."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError as exc:
            raise ValueError(f"a datetime value must be ISO 8601 text: {exc}") from None
    if not isinstance(value, datetime):
        raise ValueError(f"a datetime value must be ISO 8601 text, not {type(value).__name__}")
    if value.tzinfo is None:
        raise ValueError("a datetime value needs a time zone (a naive time means nothing to other hosts)")
    return value.astimezone(UTC).isoformat()


def checked_value(kind: SearchAttributeType, value: Any) -> Any:
    """``value`` as a search attribute of type ``kind`` holds it; ValueError says what is wrong."""
    if kind == "keyword":
        return _keyword(value, "a keyword value")
    if kind == "text":
        if not isinstance(value, str):
            raise ValueError(f"a text value must be a string, not {type(value).__name__}")
        if len(value) > MAX_TEXT_CHARS:
            raise ValueError(f"a text value is {len(value)} characters; at most {MAX_TEXT_CHARS}")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"an int value must be an integer, not {type(value).__name__}")
        if not -(2**63) <= value < 2**63:
            raise ValueError("an int value must fit in 64 bits")
        return value
    if kind == "double":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"a double value must be a number, not {type(value).__name__}")
        if not math.isfinite(value):
            raise ValueError("a double value must be finite")
        return float(value)
    if kind == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"a bool value must be true or false, not {type(value).__name__}")
        return value
    if kind == "datetime":
        return _utc_iso(value)
    if not isinstance(value, list):
        raise ValueError(f"a keyword_list value must be a list of strings, not {type(value).__name__}")
    if len(value) > MAX_KEYWORD_LIST_ITEMS:
        raise ValueError(f"a keyword_list holds {len(value)} items; at most {MAX_KEYWORD_LIST_ITEMS}")
    return [_keyword(item, "a keyword_list item") for item in value]


class SearchAttributeValue(WireModel):
    """One typed value, as ``{"type": "keyword", "value": "c-1"}``; a datetime is ISO 8601 in UTC."""

    type: SearchAttributeType
    value: JSON

    @model_validator(mode="before")
    @classmethod
    def _typed(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("type"), str):
            kind = data["type"]
            if kind in SearchAttributeType.__args__:  # type: ignore[attr-defined]
                return {**data, "value": checked_value(kind, data.get("value"))}
        return data


def _attribute_names(values: dict[str, Any]) -> dict[str, Any]:
    if len(values) > MAX_SEARCH_ATTRIBUTES:
        raise ValueError(f"{len(values)} search attributes; a run holds at most {MAX_SEARCH_ATTRIBUTES}")
    reserved = sorted(SYSTEM_ATTRIBUTES.intersection(values))
    if reserved:
        raise ValueError(f"{', '.join(reserved)}: kept by the engine, a run cannot set it")
    return values


SearchAttributes = Annotated[
    dict[SearchAttributeName, SearchAttributeValue], AfterValidator(_attribute_names)
]
"""A run's search attributes by name."""

SearchAttributeUpserts = Annotated[
    dict[SearchAttributeName, SearchAttributeValue | None], AfterValidator(_attribute_names)
]
"""Changes to a run's search attributes: a value sets it, null removes it."""

Memo = Annotated[
    dict[Annotated[str, Field(min_length=1, max_length=256)], JSON], Field(max_length=MAX_MEMO_FIELDS)
]
"""Free JSON fields shown with the run (each value a payload, encoded with the codec if any)."""


def upserted(
    current: dict[str, SearchAttributeValue], changes: dict[str, SearchAttributeValue | None]
) -> dict[str, SearchAttributeValue]:
    """``current`` with ``changes`` applied (a new dict; a null removes the attribute)."""
    merged = dict(current)
    for name, value in changes.items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
    return _attribute_names(merged)
