"""Typed search attributes, as temporalio names them: keys with a type, pairs, updates.

    CUSTOMER = SearchAttributeKey.for_keyword("CustomerId")
    await client.start_workflow(Order.run, order, id="order-1",
                                search_attributes=TypedSearchAttributes([CUSTOMER.value_set("c-1")]))
    workflow.upsert_search_attributes([CUSTOMER.value_unset()])
    client.list_workflows(query="CustomerId = 'c-1' ORDER BY StartTime DESC")

On the wire each value is ``{"type": ..., "value": ...}`` (ledgerflow/schemas/search.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar, overload

from ledgerflow.schemas.search import (
    NAME_PATTERN,
    SYSTEM_ATTRIBUTES,
    SearchAttributeType,
    SearchAttributeValue,
)

T = TypeVar("T")


@dataclass(frozen=True)
class SearchAttributeKey(Generic[T]):
    """A search attribute's name and type."""

    name: str
    type: SearchAttributeType

    def __post_init__(self) -> None:
        if not re.fullmatch(NAME_PATTERN, self.name):
            raise ValueError(
                f"search attribute name {self.name[:80]!r}: a letter or '_', then up to 63 letters, "
                "digits or '_'"
            )
        if self.name in SYSTEM_ATTRIBUTES:
            raise ValueError(f"{self.name}: kept by the engine, a run cannot set it")

    @staticmethod
    def for_keyword(name: str) -> SearchAttributeKey[str]:
        """Matched whole (``=``, ``IN``, ``STARTS_WITH``); indexed for equality."""
        return SearchAttributeKey(name, "keyword")

    @staticmethod
    def for_text(name: str) -> SearchAttributeKey[str]:
        """Free text: ``Notes = 'late parcel'`` matches when every word of the literal is in it."""
        return SearchAttributeKey(name, "text")

    @staticmethod
    def for_int(name: str) -> SearchAttributeKey[int]:
        return SearchAttributeKey(name, "int")

    @staticmethod
    def for_float(name: str) -> SearchAttributeKey[float]:
        return SearchAttributeKey(name, "double")

    @staticmethod
    def for_bool(name: str) -> SearchAttributeKey[bool]:
        return SearchAttributeKey(name, "bool")

    @staticmethod
    def for_datetime(name: str) -> SearchAttributeKey[datetime]:
        """A time with a time zone; queries compare it with ISO 8601 literals."""
        return SearchAttributeKey(name, "datetime")

    @staticmethod
    def for_keyword_list(name: str) -> SearchAttributeKey[Sequence[str]]:
        """Several keywords: ``Tags = 'rush'`` matches a run whose list holds ``rush``."""
        return SearchAttributeKey(name, "keyword_list")

    def value_set(self, value: T) -> SearchAttributeUpdate:
        """An update setting this attribute to ``value``."""
        return SearchAttributeUpdate(self, value)

    def value_unset(self) -> SearchAttributeUpdate:
        """An update removing this attribute from the run."""
        return SearchAttributeUpdate(self, None)

    def wire(self, value: T) -> SearchAttributeValue:
        """``value`` as the wire carries it; ValueError when it does not fit the type."""
        raw: Any = list(value) if self.type == "keyword_list" else value  # type: ignore[call-overload]
        return SearchAttributeValue(type=self.type, value=raw)


@dataclass(frozen=True)
class SearchAttributePair(Generic[T]):
    key: SearchAttributeKey[T]
    value: T


@dataclass(frozen=True)
class SearchAttributeUpdate:
    """Set ``key`` to ``value``, or remove it (``value`` None)."""

    key: SearchAttributeKey[Any]
    value: Any


class TypedSearchAttributes(Sequence[SearchAttributePair[Any]]):
    """A run's search attributes: pairs of typed keys and values, one per name."""

    def __init__(self, pairs: Iterable[SearchAttributePair[Any]] = ()) -> None:
        by_name: dict[str, SearchAttributePair[Any]] = {}
        for pair in pairs:
            by_name[pair.key.name] = pair
        self._pairs = list(by_name.values())

    @overload
    def __getitem__(self, index: int) -> SearchAttributePair[Any]: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[SearchAttributePair[Any]]: ...
    def __getitem__(self, index: int | slice) -> Any:
        return self._pairs[index]

    def __len__(self) -> int:
        return len(self._pairs)

    def __iter__(self) -> Iterator[SearchAttributePair[Any]]:
        return iter(self._pairs)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TypedSearchAttributes) and self._pairs == other._pairs

    def __repr__(self) -> str:
        return f"TypedSearchAttributes({self._pairs!r})"

    def get(self, key: SearchAttributeKey[T], default: T | None = None) -> T | None:
        """The value of ``key`` (its name and type), or ``default``."""
        for pair in self._pairs:
            if pair.key == key:
                return pair.value  # type: ignore[no-any-return]
        return default

    def wire(self) -> dict[str, SearchAttributeValue]:
        return {pair.key.name: pair.key.wire(pair.value) for pair in self._pairs}

    @staticmethod
    def from_wire(values: Mapping[str, SearchAttributeValue]) -> TypedSearchAttributes:
        """The attributes a run holds (as describe and ``workflow.info()`` give them)."""
        pairs: list[SearchAttributePair[Any]] = []
        for name, typed in values.items():
            value: Any = typed.value
            if typed.type == "datetime":
                value = datetime.fromisoformat(value)
            pairs.append(SearchAttributePair(SearchAttributeKey(name, typed.type), value))
        return TypedSearchAttributes(pairs)

    @staticmethod
    def from_json(values: Mapping[str, Any]) -> TypedSearchAttributes:
        """The ``search_attributes`` of ``describe()`` or a listed run, typed:
        ``TypedSearchAttributes.from_json(handle.describe()["search_attributes"])``."""
        typed = {name: SearchAttributeValue.model_validate(value) for name, value in values.items()}
        return TypedSearchAttributes.from_wire(typed)


def updates_wire(updates: Iterable[SearchAttributeUpdate]) -> dict[str, SearchAttributeValue | None]:
    """``updates`` as the wire carries them (the last one of a name wins)."""
    return {u.key.name: None if u.value is None else u.key.wire(u.value) for u in updates}


__all__ = [
    "SearchAttributeKey",
    "SearchAttributePair",
    "SearchAttributeUpdate",
    "TypedSearchAttributes",
]
