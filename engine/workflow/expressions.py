"""A small, safe expression language for DAG edge conditions and node inputs.

Python expression syntax restricted to literals, names, attribute and item
access, comparisons, boolean logic and arithmetic. Nothing can be called or
imported. Attribute access on a dict reads its key, so
``nodes.check.output.amount > 100`` works on JSON.
"""

from __future__ import annotations

import ast
import operator
import re
from typing import Any

_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Mod: operator.mod,
    ast.FloorDiv: operator.floordiv,
}
_COMPARE = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
    ast.Is: operator.is_,
    ast.IsNot: operator.is_not,
}
MAX_EXPRESSION_LENGTH = 4096
"""Characters one expression may have (bounds its parse depth and work)."""
MAX_REPEAT_LENGTH = 100_000
"""Length a string or list built with ``*`` may reach: an expression runs on the owner loop."""
_TEMPLATE = re.compile(r"\{\{\s*((?:(?!\}\}).)+?)\s*\}\}")


class ExpressionError(ValueError):
    """An expression could not be parsed or evaluated; the message names it."""


def evaluate(expression: str, names: dict[str, Any]) -> Any:
    if len(expression) > MAX_EXPRESSION_LENGTH:
        raise ExpressionError(
            f"expression {expression[:40]!r}... is {len(expression)} characters, "
            f"limit {MAX_EXPRESSION_LENGTH}"
        )
    try:
        tree = ast.parse(expression, mode="eval")
    except (SyntaxError, RecursionError, MemoryError) as exc:
        raise ExpressionError(
            f"cannot parse {expression!r}: {getattr(exc, 'msg', type(exc).__name__)}"
        ) from exc
    try:
        return _eval(tree.body, names)
    except ExpressionError:
        raise
    except Exception as exc:
        raise ExpressionError(f"cannot evaluate {expression!r}: {exc}") from exc


def _eval(node: ast.AST, names: dict[str, Any]) -> Any:
    match node:
        case ast.Constant(value=value):
            return value
        case ast.Name(id=name):
            if name in ("true", "false", "null"):
                return {"true": True, "false": False, "null": None}[name]
            if name not in names:
                raise ExpressionError(f"unknown name {name!r} (known: {', '.join(sorted(names))})")
            return names[name]
        case ast.Attribute(value=value, attr=attr):
            base = _eval(value, names)
            if isinstance(base, dict):
                return base.get(attr)
            raise ExpressionError(f"'.{attr}' on a {type(base).__name__}")
        case ast.Subscript(value=value, slice=index):
            return _eval(value, names)[_eval(index, names)]
        case ast.BoolOp(op=op, values=values):
            if isinstance(op, ast.And):
                result: Any = True
                for v in values:
                    result = _eval(v, names)
                    if not result:
                        return result
                return result
            for v in values:
                result = _eval(v, names)
                if result:
                    return result
            return result
        case ast.UnaryOp(op=ast.Not(), operand=operand):
            return not _eval(operand, names)
        case ast.UnaryOp(op=ast.USub(), operand=operand):
            return -_eval(operand, names)
        case ast.BinOp(left=left, op=op, right=right) if type(op) in _BINARY:
            a, b = _eval(left, names), _eval(right, names)
            _check_cost(op, a, b)
            return _BINARY[type(op)](a, b)
        case ast.Compare(left=left, ops=ops, comparators=comparators):
            current = _eval(left, names)
            for cmp, comparator in zip(ops, comparators, strict=True):
                right_value = _eval(comparator, names)
                if not _COMPARE[type(cmp)](current, right_value):
                    return False
                current = right_value
            return True
        case ast.List(elts=elts) | ast.Tuple(elts=elts):
            return [_eval(e, names) for e in elts]
        case ast.Dict(keys=dict_keys, values=values):
            return {
                _eval(k, names): _eval(v, names)
                for k, v in zip(dict_keys, values, strict=True)
                if k is not None
            }
    raise ExpressionError(f"'{ast.unparse(node)}' is not allowed in an expression")


def _check_cost(op: ast.operator, a: Any, b: Any) -> None:
    """Refuse what would build a huge value (``'a' * 10**9``) or format one (``'%9999999d' % 1``)."""
    if isinstance(op, ast.Mod) and isinstance(a, str):
        raise ExpressionError("'%' formats strings: not allowed in an expression (use '+')")
    if isinstance(op, ast.Mult):
        for seq, times in ((a, b), (b, a)):
            built = len(seq) * times if isinstance(seq, (str, list)) and isinstance(times, int) else 0
            if built > MAX_REPEAT_LENGTH:
                raise ExpressionError(f"'*' would build {built:,} items, limit {MAX_REPEAT_LENGTH:,}")


def render(value: Any, names: dict[str, Any]) -> Any:
    """Resolve ``{{ expression }}`` templates in a JSON value.

    A string that is exactly one template becomes the expression's value (any
    JSON type); templates inside longer strings are interpolated as text.
    """
    if isinstance(value, str):
        whole = _TEMPLATE.fullmatch(value.strip())
        if whole:
            return evaluate(whole.group(1), names)
        return _TEMPLATE.sub(lambda m: str(evaluate(m.group(1), names)), value)
    if isinstance(value, list):
        return [render(v, names) for v in value]
    if isinstance(value, dict):
        return {k: render(v, names) for k, v in value.items()}
    return value
