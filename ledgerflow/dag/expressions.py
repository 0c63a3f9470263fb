"""A small, safe expression language for DAG edge conditions and node inputs.

Python expression syntax restricted to JSON literals, names, attribute and item
access, comparisons, boolean logic and arithmetic. Nothing can be called or
imported, and there are no ranges or slices. Attribute access on a dict reads
its key, so ``nodes.check.output.amount > 100`` works on JSON.

Expressions run on an engine's owner loop, so what one may cost is bounded:
its length, how deeply it nests, and how many items the values it builds hold.
:func:`check` applies the parse-time bounds when a DAG is registered;
:func:`evaluate` and :func:`render` apply all of them when a run reaches it.
"""

from __future__ import annotations

import ast
import functools
import operator
from collections.abc import Callable, Collection, Iterator
from typing import Any

_BINARY: dict[type[ast.operator], Callable[[Any, Any], Any]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Mod: operator.mod,
    ast.FloorDiv: operator.floordiv,
}
_COMPARE: dict[type[ast.cmpop], Callable[[Any, Any], Any]] = {
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
_UNARY = (ast.Not, ast.USub)
_NODES = (ast.Name, ast.Attribute, ast.Subscript, ast.BoolOp, ast.Compare, ast.List, ast.Tuple, ast.Dict)
"""Expression nodes allowed whatever their operator (constants, unary and binary ones are checked apart)."""
_CONSTANTS = (str, int, float, bool, type(None))
"""Literal values an expression may hold: JSON's (no bytes, complex numbers or ``...``)."""
_JSON_NAMES = {"true": True, "false": False, "null": None}

MAX_EXPRESSION_LENGTH = 4096
"""Characters one expression may have."""
MAX_EXPRESSION_DEPTH = 100
"""Levels of nesting one expression may have (``-(-(...))``, ``[[...]]``, ``a + b + ...`` counts one
per operand): evaluation walks the tree recursively on the owner loop's stack."""
MAX_VALUE_ITEMS = 100_000
"""Items a value built by an expression (with ``*``, ``+``, a list or a dict) may hold: characters of
a string, elements of a list, keys and values of a dict, nested ones included, and one element
repeated ``n`` times counted ``n`` times, as its JSON would be written."""
MAX_INPUT_ITEMS = 1_000_000
"""Items the values of one rendered node input's templates may hold together, counted the same way
(a reference to a 200,000-character input counts 200,000). A larger input could never be recorded
(``max_payload_bytes``), and writing it out would stall the owner loop first."""

Sized = tuple[Any, int | None]
"""A value and its size in items; ``None`` when it is (part of) a name's value, measured when needed."""


class ExpressionError(ValueError):
    """An expression could not be parsed or evaluated; the message names it."""


@functools.lru_cache(maxsize=4096)
def parse(expression: str) -> ast.Expression:
    """The checked syntax tree of ``expression``: every construct allowed, within the length and
    depth limits. Raises :class:`ExpressionError` naming what is wrong."""
    if len(expression) > MAX_EXPRESSION_LENGTH:
        raise ExpressionError(
            f"expression {_shown(expression)} is {len(expression):,} characters, "
            f"limit {MAX_EXPRESSION_LENGTH:,}"
        )
    try:
        tree = ast.parse(expression, mode="eval")
    except (SyntaxError, RecursionError, MemoryError, ValueError) as exc:
        raise ExpressionError(
            f"cannot parse {_shown(expression)}: {getattr(exc, 'msg', None) or type(exc).__name__}"
        ) from exc
    if _too_deep(tree.body):
        raise ExpressionError(
            f"expression {_shown(expression)} nests more than {MAX_EXPRESSION_DEPTH} levels deep, "
            f"limit {MAX_EXPRESSION_DEPTH}"
        )
    for node in ast.walk(tree.body):  # outermost first: the error names the largest forbidden part
        if isinstance(node, ast.expr) and not _allowed(node):
            raise ExpressionError(f"'{ast.unparse(node)}' is not allowed in an expression")
    return tree


def _shown(expression: str) -> str:
    """The expression as an error message quotes it: whole when short, its start when long."""
    return repr(expression) if len(expression) <= 80 else f"{expression[:60]!r}..."


def _too_deep(root: ast.expr) -> bool:
    """Whether the tree nests over the limit; iterative, so a deep tree cannot exhaust the stack
    while it is measured (evaluating, or quoting a part in an error, recurses)."""
    stack: list[tuple[ast.AST, int]] = [(root, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > MAX_EXPRESSION_DEPTH:
            return True
        # a level is an expression; the parts between (operators, keyword arguments) add none
        stack.extend((child, depth + isinstance(child, ast.expr)) for child in ast.iter_child_nodes(node))
    return False


def _allowed(node: ast.expr) -> bool:
    match node:
        case ast.Constant(value=value):
            return isinstance(value, _CONSTANTS)
        case ast.UnaryOp(op=op):
            return isinstance(op, _UNARY)
        case ast.BinOp(op=op):
            return type(op) in _BINARY
        case ast.Dict(keys=keys):
            return None not in keys  # ``{**x}``
    return isinstance(node, _NODES)


def check(expression: str, names: Collection[str]) -> None:
    """Raise :class:`ExpressionError` unless ``expression`` parses within the limits and reads
    only ``names`` (and ``true``, ``false``, ``null``): what can be known before it runs."""
    for node in ast.walk(parse(expression)):
        if isinstance(node, ast.Name) and node.id not in names and node.id not in _JSON_NAMES:
            raise ExpressionError(
                f"unknown name {node.id!r} in {_shown(expression)} (known: {', '.join(sorted(names))})"
            )


def evaluate(expression: str, names: dict[str, Any]) -> Any:
    """The value of ``expression`` over ``names``."""
    return _Evaluation(names).value(expression)


class _Evaluation:
    """Evaluations over one set of names; values from the names are measured once each.

    Measurements are remembered by object id: safe because the names (and so every
    part of them) outlive the evaluation. Values the expression builds carry their size.
    """

    def __init__(self, names: dict[str, Any]) -> None:
        self.names = names
        self._measured: dict[int, int] = {}

    def value(self, expression: str) -> Any:
        return self.sized(expression)[0]

    def sized(self, expression: str) -> Sized:
        tree = parse(expression)
        try:
            return self._eval(tree.body)
        except ExpressionError:
            raise
        except Exception as exc:
            raise ExpressionError(f"cannot evaluate {_shown(expression)}: {exc}") from exc

    def size(self, sized: Sized) -> int:
        value, size = sized
        if size is not None:
            return size
        if not isinstance(value, (list, dict)):
            return _items(value)
        key = id(value)
        if key not in self._measured:
            self._measured[key] = _items(value)
        return self._measured[key]

    def _eval(self, node: ast.expr) -> Sized:
        match node:
            case ast.Constant(value=value):
                return value, None
            case ast.Name(id=name):
                return self._name(name), None
            case ast.Attribute(value=value, attr=attr):
                base, size = self._eval(value)
                if isinstance(base, dict):
                    return base.get(attr), size  # a part is no larger than its whole
                raise ExpressionError(f"'.{attr}' on a {type(base).__name__}")
            case ast.Subscript(value=value, slice=index):
                base, size = self._eval(value)
                return base[self._eval(index)[0]], size
            case ast.BoolOp(op=op, values=values):
                return self._bool(isinstance(op, ast.And), values)
            case ast.UnaryOp(op=ast.Not(), operand=operand):
                return not self._eval(operand)[0], None
            case ast.UnaryOp(op=ast.USub(), operand=operand):
                return -self._eval(operand)[0], None
            case ast.BinOp(left=left, op=op, right=right):
                return self._binary(op, self._eval(left), self._eval(right))
            case ast.Compare(left=left, ops=ops, comparators=comparators):
                return self._compare(left, ops, comparators), None
            case ast.List(elts=elts) | ast.Tuple(elts=elts):
                return self._list(elts)
            case ast.Dict(keys=keys, values=values):
                return self._dict([k for k in keys if k is not None], values)
        raise ExpressionError(f"'{ast.unparse(node)}' is not allowed in an expression")

    def _name(self, name: str) -> Any:
        if name in _JSON_NAMES:
            return _JSON_NAMES[name]
        if name not in self.names:
            raise ExpressionError(f"unknown name {name!r} (known: {', '.join(sorted(self.names))})")
        return self.names[name]

    def _bool(self, conjunction: bool, values: list[ast.expr]) -> Sized:
        """``and`` / ``or`` as Python has them: the deciding operand, not a bool."""
        result: Sized = (conjunction, None)
        for value in values:
            result = self._eval(value)
            if bool(result[0]) is not conjunction:
                return result
        return result

    def _compare(self, left: ast.expr, ops: list[ast.cmpop], comparators: list[ast.expr]) -> bool:
        current = self._eval(left)[0]
        for cmp, comparator in zip(ops, comparators, strict=True):
            right = self._eval(comparator)[0]
            if not _COMPARE[type(cmp)](current, right):
                return False
            current = right
        return True

    def _binary(self, op: ast.operator, left: Sized, right: Sized) -> Sized:
        """Arithmetic, refusing what would build a huge value (``'a' * 10**9``, ``[[0]*9999]*9999``)
        or format one (``'%9999999d' % 1``) before building it."""
        a, b = left[0], right[0]
        if isinstance(op, ast.Mod) and isinstance(a, str):
            raise ExpressionError("'%' formats strings: not allowed in an expression (use '+')")
        built: int | None = None
        if isinstance(op, ast.Mult):
            for seq, times in ((left, b), (right, a)):
                if isinstance(seq[0], (str, list)) and isinstance(times, int):
                    built = self.size(seq) * max(times, 0)
        elif isinstance(op, ast.Add) and _concatenable(a, b):
            built = self.size(left) + self.size(right)
        if built is not None and built > MAX_VALUE_ITEMS:
            symbol = "*" if isinstance(op, ast.Mult) else "+"
            raise ExpressionError(f"'{symbol}' would build {built:,} items, limit {MAX_VALUE_ITEMS:,}")
        return _BINARY[type(op)](a, b), built

    def _list(self, elements: list[ast.expr]) -> Sized:
        values: list[Any] = []
        size = 0
        for element in elements:
            sized = self._eval(element)
            size = _within(size + self._slot(sized), "a list")
            values.append(sized[0])
        return values, size

    def _dict(self, keys: list[ast.expr], values: list[ast.expr]) -> Sized:
        built: dict[Any, Any] = {}
        size = 0
        for key_node, value_node in zip(keys, values, strict=True):
            key, value = self._eval(key_node), self._eval(value_node)
            size = _within(size + self._slot(key) + self._slot(value), "a dict")
            built[key[0]] = value[0]
        return built, size

    def _slot(self, sized: Sized) -> int:
        """Items one element adds to a list or dict: itself, and what it holds."""
        return 1 + (self.size(sized) if isinstance(sized[0], (str, list, dict)) else 0)


def _concatenable(a: Any, b: Any) -> bool:
    return (isinstance(a, str) and isinstance(b, str)) or (isinstance(a, list) and isinstance(b, list))


def _within(size: int, what: str) -> int:
    if size > MAX_VALUE_ITEMS:
        raise ExpressionError(f"{what} would hold over {MAX_VALUE_ITEMS:,} items, limit {MAX_VALUE_ITEMS:,}")
    return size


def _items(value: Any) -> int:
    """How many items ``value`` holds: a string its characters, a list or dict one per element,
    key and value plus what each holds (iteratively: any depth), anything else one."""
    if not isinstance(value, (list, dict)):
        return len(value) if isinstance(value, str) else 1
    total = 0
    stack: list[list[Any] | dict[Any, Any]] = [value]
    while stack:
        current = stack.pop()
        children = current if isinstance(current, list) else [*current.keys(), *current.values()]
        total += len(children)
        for child in children:
            if isinstance(child, str):
                total += len(child)
            elif isinstance(child, (list, dict)):
                stack.append(child)
    return total


# ---------------------------------------------------------------- templates
def templates(text: str) -> Iterator[tuple[int, int, str]]:
    """Each ``{{ expression }}`` in ``text``: its start, end and expression.

    A template lies on one line, and ``{{}}`` is plain text. One pass over the text:
    the regular expression this replaces took quadratic time on a run of ``{{``
    (147 s for 64 KB), on the owner loop.
    """
    start = text.find("{{")
    while start != -1:
        end = text.find("}}", start + 2)
        if end == -1:
            return
        inner = text[start + 2 : end]
        newline = inner.find("\n")
        if newline != -1:
            start = text.find("{{", start + 3 + newline)
        elif inner:
            yield start, end + 2, inner.strip() or inner
            start = text.find("{{", end + 2)
        else:
            start = text.find("{{", start + 1)


def render(value: Any, names: dict[str, Any]) -> Any:
    """Resolve ``{{ expression }}`` templates in a JSON value.

    A string that is exactly one template becomes the expression's value (any
    JSON type); templates inside longer strings are interpolated as text. The
    templates' values hold at most :data:`MAX_INPUT_ITEMS` items together.
    """
    return _Renderer(_Evaluation(names)).render(value)


class _Renderer:
    def __init__(self, evaluation: _Evaluation) -> None:
        self.evaluation = evaluation
        self.items = 0

    def render(self, value: Any) -> Any:
        if isinstance(value, str):
            return self._text(value)
        if isinstance(value, list):
            return [self.render(v) for v in value]
        if isinstance(value, dict):
            return {k: self.render(v) for k, v in value.items()}
        return value

    def _text(self, text: str) -> Any:
        found = list(templates(text))
        if len(found) == 1 and found[0][1] - found[0][0] == len(text.strip()):
            sized = self.evaluation.sized(found[0][2])
            self._add(self.evaluation.size(sized))
            return sized[0]
        pieces: list[str] = []
        position = 0
        for start, end, expression in found:
            piece = str(self.evaluation.value(expression))
            self._add(len(piece))
            pieces += [text[position:start], piece]
            position = end
        return "".join([*pieces, text[position:]]) if found else text

    def _add(self, items: int) -> None:
        self.items += items
        if self.items > MAX_INPUT_ITEMS:
            raise ExpressionError(
                f"the node's input would hold over {MAX_INPUT_ITEMS:,} items from its templates, "
                f"limit {MAX_INPUT_ITEMS:,}"
            )
