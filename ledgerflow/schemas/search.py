"""Search attributes and memo: what a run carries for visibility queries and for its callers.

A search attribute is typed (``keyword``, ``text``, ``int``, ``double``, ``bool``, ``datetime``,
``keyword_list``) by its value, as Temporal's typed search attributes are; nothing is registered
ahead. The engine indexes the keyword-like ones for equality (ledgerflow/engine/state/visibility.py)
and filters on every type (ledgerflow/visibility/query.py). A memo is free JSON, shown by describe
and never indexed.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, StringConstraints, TypeAdapter, model_validator

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
MAX_SEARCH_ATTRIBUTES_BYTES = 40 * 1024
"""A run's search attributes as JSON, all told (Temporal's default limit too)."""
MAX_INDEX_TERMS = 1024
"""Index postings a run's attributes make (keywords, list items, bools, distinct text words)."""
MAX_MEMO_FIELDS = 64
MAX_MEMO_BYTES = 64 * 1024
"""A run's memo as JSON, all told (values as recorded: encoded with a codec)."""

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
SearchAttributeName = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
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


def text_words(text: str) -> set[str]:
    """The words a text value is matched by (and indexed under), in lower case."""
    return set(re.findall(r"\w+", text.lower()))


def _attribute_names(values: dict[str, Any]) -> dict[str, Any]:
    if len(values) > MAX_SEARCH_ATTRIBUTES:
        raise ValueError(f"{len(values)} search attributes; a run holds at most {MAX_SEARCH_ATTRIBUTES}")
    reserved = sorted(SYSTEM_ATTRIBUTES.intersection(values))
    if reserved:
        raise ValueError(f"{', '.join(reserved)}: kept by the engine, a run cannot set it")
    return values


def _within_limits(values: dict[str, SearchAttributeValue]) -> dict[str, SearchAttributeValue]:
    """A run's whole set of attributes: its size as JSON and the index postings it makes."""
    _attribute_names(values)
    size = len(json.dumps({n: [v.type, v.value] for n, v in values.items()}, ensure_ascii=False).encode())
    if size > MAX_SEARCH_ATTRIBUTES_BYTES:
        raise ValueError(
            f"search attributes of {size} bytes; a run holds at most {MAX_SEARCH_ATTRIBUTES_BYTES}"
        )
    terms = 0
    for typed in values.values():
        if typed.type == "keyword_list":
            terms += len(typed.value)
        elif typed.type == "text":
            terms += len(text_words(typed.value))
        elif typed.type in ("keyword", "bool"):
            terms += 1
    if terms > MAX_INDEX_TERMS:
        raise ValueError(
            f"search attributes that make {terms} index entries (keywords, list items, text words); "
            f"at most {MAX_INDEX_TERMS}"
        )
    return values


SearchAttributes = Annotated[dict[SearchAttributeName, SearchAttributeValue], AfterValidator(_within_limits)]
"""A run's search attributes by name."""

SearchAttributeUpserts = Annotated[
    dict[SearchAttributeName, SearchAttributeValue | None], AfterValidator(_attribute_names)
]
"""Changes to a run's search attributes: a value sets it, null removes it."""

MemoField = Annotated[str, Field(min_length=1, max_length=256)]


def _memo_size(memo: dict[str, Any]) -> dict[str, Any]:
    size = len(json.dumps(memo, ensure_ascii=False, default=str).encode())
    if size > MAX_MEMO_BYTES:
        raise ValueError(f"a memo of {size} bytes; a run holds at most {MAX_MEMO_BYTES}")
    return memo


Memo = Annotated[dict[MemoField, JSON], Field(max_length=MAX_MEMO_FIELDS), AfterValidator(_memo_size)]
"""Free JSON fields shown with the run (each value a payload, encoded with the codec if any)."""


def upserted(
    current: dict[str, SearchAttributeValue], changes: dict[str, SearchAttributeValue | None]
) -> dict[str, SearchAttributeValue]:
    """``current`` with ``changes`` applied (a new dict; a null removes the attribute). ValueError
    when a change is not one (a name outside the rule, a reserved one) or the result is past the
    limits."""
    upserts_adapter.validate_python(changes)
    merged = dict(current)
    for name, value in changes.items():
        if value is None:
            merged.pop(name, None)
        else:
            merged[name] = value
    return _within_limits(merged)


upserts_adapter: TypeAdapter[dict[str, SearchAttributeValue | None]] = TypeAdapter(SearchAttributeUpserts)
