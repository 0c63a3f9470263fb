"""The visibility query language: Temporal's list filter, parsed by a grammar (lark).

    WorkflowType = 'Checkout' AND ExecutionStatus = 'Running' AND CustomerId = 'c-1'
    ORDER BY StartTime DESC

Conditions: ``= != <> < <= > >=``, ``IN (...)``, ``NOT IN (...)``, ``BETWEEN a AND b``,
``NOT BETWEEN``, ``STARTS_WITH 'pre'``, ``IS NULL``, ``IS NOT NULL``, joined by ``AND`` and
``OR`` with parentheses. Names are bare (``CustomerId``) or backticked (a reserved word such as
```Order```). Literals: quoted strings, numbers, ``true``/``false``; a time is an ISO 8601
string. ``ORDER BY StartTime`` (``ASC`` or ``DESC``, the default) is the one order the index
keeps. A run matches a condition on an attribute it lacks only through ``IS NULL``.

System attributes: ``WorkflowId``, ``RunId``, ``WorkflowType``, ``ExecutionStatus`` (Running,
Completed, Failed, Canceled, Terminated, ContinuedAsNew), ``StartTime``, ``ExecutionTime`` (the
same), ``CloseTime``. Every other name is a search attribute (ledgerflow/schemas/search.py), of
whatever type the run gave it.

Every error is a ``VisibilityQueryError`` that names the token and its column.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

from lark import (
    Lark,
    Token,
    Transformer,
    UnexpectedCharacters,
    UnexpectedEOF,
    UnexpectedInput,
    UnexpectedToken,
)

from ledgerflow.errors import VisibilityQueryError
from ledgerflow.schemas.search import text_words

MAX_QUERY_CHARS = 4096

_GRAMMAR = r"""
?start: query
query: condition? order?
?condition: or_expr
?or_expr: and_expr (_OR and_expr)*
?and_expr: atom (_AND atom)*
?atom: "(" condition ")" | predicate
predicate: name COMPARE value                      -> compare
    | name _IN "(" value ("," value)* ")"          -> in_
    | name _NOT _IN "(" value ("," value)* ")"     -> not_in
    | name _BETWEEN value _AND value               -> between
    | name _NOT _BETWEEN value _AND value          -> not_between
    | name _STARTS_WITH value                      -> starts_with
    | name _IS _NULL                               -> is_null
    | name _IS _NOT _NULL                          -> is_not_null
order: _ORDER _BY name DIRECTION?
name: NAME | QUOTED_NAME
value: STRING | NUMBER | TRUE | FALSE
COMPARE: "=" | "!=" | "<>" | "<=" | ">=" | "<" | ">"
_OR.2: /OR\b/i
_AND.2: /AND\b/i
_NOT.2: /NOT\b/i
_IN.2: /IN\b/i
_BETWEEN.2: /BETWEEN\b/i
_STARTS_WITH.2: /STARTS_WITH\b/i
_IS.2: /IS\b/i
_NULL.2: /NULL\b/i
_ORDER.2: /ORDER\b/i
_BY.2: /BY\b/i
DIRECTION.2: /(ASC|DESC)\b/i
TRUE.2: /true\b/i
FALSE.2: /false\b/i
NAME: /[A-Za-z_][A-Za-z0-9_]*/
QUOTED_NAME: /`[^`]+`/
STRING: /'(?:[^'\\]|\\.)*'/ | /"(?:[^"\\]|\\.)*"/
NUMBER: /-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?/
%import common.WS
%ignore WS
"""

_READABLE = {
    "COMPARE": "an operator (= != < <= > >=)",
    "STRING": "a quoted string",
    "NUMBER": "a number",
    "TRUE": "true",
    "FALSE": "false",
    "NAME": "an attribute name",
    "QUOTED_NAME": "a `quoted` attribute name",
    "DIRECTION": "ASC or DESC",
    "_OR": "OR",
    "_AND": "AND",
    "_NOT": "NOT",
    "_IN": "IN",
    "_BETWEEN": "BETWEEN",
    "_STARTS_WITH": "STARTS_WITH",
    "_IS": "IS",
    "_NULL": "NULL",
    "_ORDER": "ORDER",
    "_BY": "BY",
    "LPAR": "(",
    "RPAR": ")",
    "COMMA": ",",
    "$END": "the end of the query",
}

STATUSES = {
    "running": "RUNNING",
    "completed": "COMPLETED",
    "failed": "FAILED",
    "canceled": "CANCELED",
    "terminated": "TERMINATED",
    "continuedasnew": "CONTINUED_AS_NEW",
    "continued_as_new": "CONTINUED_AS_NEW",
}
"""ExecutionStatus as Temporal spells it (any case), and as the engine keeps it."""

ORDERABLE = {"StartTime", "ExecutionTime"}
TIME_ATTRIBUTES = {"StartTime", "ExecutionTime", "CloseTime"}


# ------------------------------------------------------------------- syntax tree
@dataclass(frozen=True)
class Literal:
    value: str | float | bool
    text: str
    column: int


@dataclass(frozen=True)
class Predicate:
    """One condition on one attribute: ``op`` is a comparison, ``in``, ``between``,
    ``starts_with`` or ``null``; ``negated`` turns it round (``NOT IN``, ``IS NOT NULL``)."""

    name: str
    op: str
    values: tuple[Literal, ...]
    column: int
    negated: bool = False


@dataclass(frozen=True)
class And:
    parts: tuple[Condition, ...]


@dataclass(frozen=True)
class Or:
    parts: tuple[Condition, ...]


Condition = Predicate | And | Or


@dataclass(frozen=True)
class Query:
    condition: Condition | None = None
    descending: bool = True
    matcher: Callable[[Row], bool] = field(default=lambda _row: True, compare=False, repr=False)

    def matches(self, row: Row) -> bool:
        return self.matcher(row)


def _unquote(token: Token) -> str:
    body = str(token)[1:-1]
    return re.sub(r"\\(.)", r"\1", body)


class _Build(Transformer[Token, Any]):
    def name(self, items: list[Token]) -> tuple[str, int]:
        token = items[0]
        text = str(token)[1:-1] if token.type == "QUOTED_NAME" else str(token)
        return text, token.column or 0

    def value(self, items: list[Token]) -> Literal:
        token = items[0]
        column = token.column or 0
        if token.type == "STRING":
            return Literal(_unquote(token), str(token), column)
        if token.type == "NUMBER":
            text = str(token)
            whole = not any(c in text for c in ".eE")
            return Literal(int(text) if whole else float(text), text, column)
        return Literal(token.type == "TRUE", str(token), column)

    def compare(self, items: list[Any]) -> Predicate:
        (name, column), op, value = items
        op = "!=" if str(op) == "<>" else str(op)
        return Predicate(name, op, (value,), column)

    def in_(self, items: list[Any]) -> Predicate:
        (name, column), *values = items
        return Predicate(name, "in", tuple(values), column)

    def not_in(self, items: list[Any]) -> Predicate:
        return _negate(self.in_(items))

    def between(self, items: list[Any]) -> Predicate:
        (name, column), low, high = items
        return Predicate(name, "between", (low, high), column)

    def not_between(self, items: list[Any]) -> Predicate:
        return _negate(self.between(items))

    def starts_with(self, items: list[Any]) -> Predicate:
        (name, column), prefix = items
        return Predicate(name, "starts_with", (prefix,), column)

    def is_null(self, items: list[Any]) -> Predicate:
        (name, column) = items[0]
        return Predicate(name, "null", (), column)

    def is_not_null(self, items: list[Any]) -> Predicate:
        return _negate(self.is_null(items))

    def and_expr(self, items: list[Condition]) -> And:
        return And(tuple(items))

    def or_expr(self, items: list[Condition]) -> Or:
        return Or(tuple(items))

    def order(self, items: list[Any]) -> tuple[str, int, bool]:
        name, column = items[0]
        descending = len(items) < 2 or str(items[1]).upper() == "DESC"
        return name, column, descending

    def query(self, items: list[Any]) -> tuple[Condition | None, tuple[str, int, bool] | None]:
        condition = next((i for i in items if isinstance(i, Predicate | And | Or)), None)
        order = next((i for i in items if isinstance(i, tuple)), None)
        return condition, order


def _negate(predicate: Predicate) -> Predicate:
    return Predicate(predicate.name, predicate.op, predicate.values, predicate.column, negated=True)


@cache
def _parser() -> Lark:
    return Lark(_GRAMMAR, parser="lalr", lexer="basic", maybe_placeholders=False)


def _syntax_error(text: str, exc: UnexpectedInput) -> VisibilityQueryError:
    column = getattr(exc, "column", "?")
    if (isinstance(exc, UnexpectedToken) and exc.token.type == "$END") or isinstance(exc, UnexpectedEOF):
        expected = sorted(_READABLE.get(t, t) for t in getattr(exc, "expected", set()) or ())
        return VisibilityQueryError(f"the query ends too early: expected {', '.join(expected) or 'more'}")
    if isinstance(exc, UnexpectedToken):
        expected = sorted(_READABLE.get(t, t) for t in exc.expected)
        return VisibilityQueryError(
            f"unexpected {str(exc.token)!r} at column {column}: expected {', '.join(expected)}"
        )
    if isinstance(exc, UnexpectedCharacters):
        return VisibilityQueryError(f"unexpected {exc.char!r} at column {column}")
    return VisibilityQueryError(f"the query cannot be read at column {column}")


def parse(text: str) -> Query:
    """``text`` as a query; raises ``VisibilityQueryError`` naming the token at fault."""
    if len(text) > MAX_QUERY_CHARS:
        raise VisibilityQueryError(f"the query is {len(text)} characters; at most {MAX_QUERY_CHARS}")
    try:
        tree = _parser().parse(text)
    except UnexpectedInput as exc:
        raise _syntax_error(text, exc) from None
    try:
        condition, order = _Build().transform(tree)
    except RecursionError:  # nesting past what the tree's walk can take: far past MAX_DEPTH
        raise VisibilityQueryError(f"the query nests conditions deeper than {MAX_DEPTH} levels") from None
    if condition is not None and _depth(condition) > MAX_DEPTH:
        raise VisibilityQueryError(f"the query nests conditions deeper than {MAX_DEPTH} levels")
    descending = True
    if order is not None:
        name, column, descending = order
        if name not in ORDERABLE:
            raise VisibilityQueryError(
                f"ORDER BY {name} at column {column}: runs are kept in start-time order; "
                "order by StartTime (ASC or DESC)"
            )
    if condition is not None:
        _check(condition)
    matcher = _compile(condition) if condition is not None else (lambda _row: True)
    return Query(condition, descending, matcher)


MAX_DEPTH = 32
"""Levels of nested AND/OR a query may hold (its evaluation recurses)."""


def _depth(condition: Condition) -> int:
    """Levels of ``condition``, counted without recursing (a hostile query may hold hundreds)."""
    deepest, stack = 0, [(condition, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        if not isinstance(node, Predicate):
            stack.extend((part, level + 1) for part in node.parts)
    return deepest


def cursor_of(order: str) -> str:
    """An index order key (``<inverted start>\x00<workflow id>``) as a page token: printable (a URL
    carries it) and sorting the same way."""
    return order.replace("\x00", ".", 1)


def order_of_cursor(cursor: str | None) -> str | None:
    """The order key of a page token; ValueError when it is not one (a workflow id, say)."""
    if cursor is None:
        return None
    if len(cursor) < 17 or not cursor[:15].isdigit() or cursor[15] != ".":
        raise ValueError(f"{cursor[:40]!r} is not a page token of a visibility query")
    return cursor[:15] + "\x00" + cursor[16:]


def _check(condition: Condition) -> None:
    """Refuse what no run could ever match for a reason the caller should hear."""
    if not isinstance(condition, Predicate):
        for part in condition.parts:
            _check(part)
        return
    for literal in condition.values:
        if condition.name == "ExecutionStatus":
            if not isinstance(literal.value, str) or status_of(literal.value) is None:
                known = "Running, Completed, Failed, Canceled, Terminated, ContinuedAsNew"
                raise VisibilityQueryError(
                    f"ExecutionStatus {literal.text} at column {literal.column}: one of {known}"
                )
        elif condition.name in TIME_ATTRIBUTES and epoch(literal.value) is None:
            raise VisibilityQueryError(
                f"{condition.name} {literal.text} at column {literal.column}: "
                "a time is an ISO 8601 string with a time zone ('2026-11-30T12:00:00Z')"
            )
    if condition.op == "starts_with" and not isinstance(condition.values[0].value, str):
        raise VisibilityQueryError(f"STARTS_WITH {condition.values[0].text}: a quoted string")


def status_of(text: str) -> str | None:
    return STATUSES.get(text.lower()) or (text if text in STATUSES.values() else None)


def epoch(value: Any) -> float | None:
    """Seconds since the epoch of an ISO 8601 time with a zone ('Z' too), else None."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.timestamp() if moment.tzinfo is not None else None


# ------------------------------------------------------------------- evaluation
Row = Mapping[str, Any]
"""What a condition reads: name -> (type, value) of the attributes a run has (``row_of``)."""


def row_of(workflow_id: str, record: Mapping[str, Any]) -> dict[str, tuple[str, Any]]:
    """The attributes of a run as the index records it (engine/state/visibility.py)."""
    row: dict[str, tuple[str, Any]] = {
        name: (typed["type"], typed["value"]) for name, typed in record["search_attributes"].items()
    }
    row["WorkflowId"] = ("keyword", workflow_id)
    row["RunId"] = ("keyword", record["run_id"])
    row["WorkflowType"] = ("keyword", record["workflow_type"])
    row["ExecutionStatus"] = ("status", record["status"])
    row["StartTime"] = row["ExecutionTime"] = ("time", record["started_at"])
    if record.get("closed_at") is not None:
        row["CloseTime"] = ("time", record["closed_at"])
    return row


def _operand(kind: str, literal: Literal) -> Any:
    """The literal as a value of type ``kind`` can be compared with, or None (never matches)."""
    value = literal.value
    if kind in ("keyword", "text", "keyword_list"):
        return value if isinstance(value, str) else None
    if kind == "status":
        return status_of(value) if isinstance(value, str) else None
    if kind in ("int", "double"):
        return value if isinstance(value, int | float) and not isinstance(value, bool) else None
    if kind == "bool":
        if isinstance(value, bool):
            return value
        return {"true": True, "false": False}.get(value.lower()) if isinstance(value, str) else None
    if kind in ("time", "datetime"):
        return epoch(value)
    return None


def _stored(kind: str, value: Any) -> Any:
    return epoch(value) if kind == "datetime" else value


_ORDERING: dict[str, Callable[[Any, Any], bool]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def _equal(kind: str, stored: Any, operand: Any) -> bool:
    if kind == "text":
        words = text_words(operand)
        return bool(words) and words <= text_words(stored)
    if kind == "keyword_list":
        return operand in stored
    return bool(stored == operand)


def _holds(predicate: Predicate, row: Row) -> bool:
    found = row.get(predicate.name)
    if predicate.op == "null":
        return (found is None) != predicate.negated
    if found is None:
        return False
    kind, raw = found
    stored = _stored(kind, raw)
    operands = [_operand(kind, literal) for literal in predicate.values]
    op = predicate.op
    if op == "=":
        return operands[0] is not None and _equal(kind, stored, operands[0])
    if op == "!=":
        return operands[0] is not None and not _equal(kind, stored, operands[0])
    if op == "in":
        if predicate.negated and any(o is None for o in operands):
            return False  # as != with a literal of another type: no match
        return any(o is not None and _equal(kind, stored, o) for o in operands) != predicate.negated
    if kind in ("keyword_list", "text", "status", "bool"):
        if op == "starts_with" and kind == "keyword_list":
            return any(item.startswith(operands[0]) for item in stored) if operands[0] is not None else False
        if op != "starts_with":
            return False
    if op == "starts_with":
        return isinstance(stored, str) and operands[0] is not None and stored.startswith(operands[0])
    if any(o is None for o in operands):
        return False
    if op == "between":
        return bool(operands[0] <= stored <= operands[1]) != predicate.negated
    return _ORDERING[op](stored, operands[0])


def _compile(condition: Condition) -> Callable[[Row], bool]:
    if isinstance(condition, Predicate):
        return lambda row: _holds(condition, row)
    parts = [_compile(part) for part in condition.parts]
    if isinstance(condition, And):
        return lambda row: all(part(row) for part in parts)
    return lambda row: any(part(row) for part in parts)


# --------------------------------------------------------------------- planning
@dataclass(frozen=True)
class Term:
    """An equality the index has postings for: runs whose ``name`` holds ``value``."""

    name: str
    value: str


def posting_terms(query: Query) -> list[Term] | None:
    """Postings whose union holds every run the query can match, or None: read every run.

    Taken from one equality (or ``IN``) of the top-level ``AND``: ``WorkflowId`` (its runs are
    read by id), else a search attribute's (usually the most selective), else ``WorkflowType``,
    else ``ExecutionStatus``. A string
    literal may name a keyword, a keyword_list item or a word of a text attribute; a boolean a
    bool attribute. Numbers and times have no postings.
    """
    condition = query.condition
    parts = condition.parts if isinstance(condition, And) else (condition,) if condition else ()
    candidates: list[tuple[int, list[Term]]] = []
    for part in parts:
        if not isinstance(part, Predicate) or part.negated or part.op not in ("=", "in"):
            continue
        terms = _terms_of(part)
        if terms is not None:
            rank = {"WorkflowId": -1, "ExecutionStatus": 2, "WorkflowType": 1}.get(part.name, 0)
            candidates.append((rank, terms))
    if not candidates:
        return None
    return min(candidates, key=lambda c: c[0])[1]


def _terms_of(predicate: Predicate) -> list[Term] | None:
    terms: list[Term] = []
    for literal in predicate.values:
        value = literal.value
        if predicate.name == "ExecutionStatus":
            status = status_of(value) if isinstance(value, str) else None
            if status is None:
                return None
            terms.append(Term("ExecutionStatus", status))
        elif predicate.name == "WorkflowType":
            if not isinstance(value, str):
                return None
            terms.append(Term("WorkflowType", value))
        elif predicate.name == "WorkflowId":
            if not isinstance(value, str):
                return None
            terms.append(Term("WorkflowId", value))  # read by id, not a posting
        elif predicate.name in ("RunId", *TIME_ATTRIBUTES):
            return None
        elif isinstance(value, str) and epoch(value) is not None:
            return None  # may be a datetime attribute's, which has no postings
        elif isinstance(value, bool):
            terms.append(Term(predicate.name, "true" if value else "false"))
        elif isinstance(value, str):
            terms.append(Term(predicate.name, value))
            words = text_words(value)
            if words:  # a text attribute holding them all holds the longest (the rarest, likely)
                terms.append(Term(predicate.name, TEXT_WORD + max(sorted(words), key=len)))
            if value.lower() in ("true", "false"):
                terms.append(Term(predicate.name, value.lower()))
        else:
            return None
    return terms


TEXT_WORD = "\x01"
"""Marks a posting of one word of a text attribute (apart from a keyword of the same spelling)."""
