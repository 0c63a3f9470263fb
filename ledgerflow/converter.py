"""Payloads on the wire are JSON; pydantic turns typed values into JSON and back.

Pydantic models, dataclasses, datetimes, UUIDs and the usual containers work
as activity and workflow arguments and results. No pickle, ever.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from typing import Any

from pydantic import TypeAdapter
from pydantic_core import to_jsonable_python

from ledgerflow.schemas.common import JSON


def to_json(value: Any) -> JSON:
    """A JSON-ready copy of ``value`` (raises pydantic's error for what JSON cannot hold)."""
    return to_jsonable_python(value)


@functools.lru_cache(maxsize=1024)
def _adapter(tp: Any) -> TypeAdapter[Any]:
    return TypeAdapter(tp)


def from_json(value: JSON, tp: Any) -> Any:
    """``value`` converted to the type ``tp``; unchanged when ``tp`` is None or Any."""
    if tp is None or tp is Any or tp is inspect.Parameter.empty:
        return value
    try:
        adapter = _adapter(tp)
    except TypeError:  # an unhashable type annotation: build the adapter each time
        adapter = TypeAdapter(tp)
    return adapter.validate_python(value)


def payload_of(args: list[Any]) -> Any:
    """One message payload (a signal's, an update's) from a handler's arguments: one argument is
    the payload itself, more travel as a list, none as null."""
    return args[0] if len(args) == 1 else (args or None)


def parameter_types(fn: Callable[..., Any], skip_self: bool = False) -> list[Any]:
    """The annotated types of ``fn``'s positional parameters (Any where missing)."""
    hints = _hints(fn)
    params = list(inspect.signature(fn).parameters.values())
    if skip_self:
        params = params[1:]
    return [
        hints.get(p.name, Any)
        for p in params
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL)
    ]


def return_type(fn: Callable[..., Any]) -> Any:
    """The annotated return type of ``fn`` (Any where missing)."""
    return _hints(fn).get("return", Any)


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn)
    except Exception:  # unresolved forward references: fall back to no conversion
        return {}


def args_from_json(values: list[JSON], types: list[Any]) -> list[Any]:
    """Positional arguments converted to their parameter types."""
    converted = []
    for i, value in enumerate(values):
        tp = types[i] if i < len(types) else Any
        converted.append(from_json(value, tp))
    return converted
