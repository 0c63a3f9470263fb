"""The DAG expression language: safe evaluation of edge conditions and node input templates."""

from __future__ import annotations

import time
from typing import Any

import pytest

from ledgerflow.dag.expressions import ExpressionError, check, evaluate, render, templates

NAMES: dict[str, Any] = {
    "input": {"amount": 150, "country": "FR", "tags": ["vip", "new"], "user": {"name": "Ada"}},
    "nodes": {
        "check": {"output": {"ok": True, "score": 0.75, "items": [10, 20, 30]}, "status": "completed"},
        "skip": {"output": None, "status": "skipped"},
    },
}


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("input.amount > 100", True),
        ("input.amount >= 150", True),
        ("input.amount < 150", False),
        ("input.amount <= 149", False),
        ("input.amount == 150", True),
        ("input.amount != 150", False),
        ("100 < input.amount < 200", True),
        ("100 < input.amount < 120", False),
        ("input.country == 'FR'", True),
        ("'vip' in input.tags", True),
        ("'gold' not in input.tags", True),
        ("nodes.skip.output is None", True),
        ("nodes.skip.output is not null", False),
    ],
)
def test_comparisons(expression: str, expected: bool) -> None:
    assert evaluate(expression, NAMES) is expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("input.amount > 100 and nodes.check.output.ok", True),
        ("input.amount > 100 and not nodes.check.output.ok", False),
        ("input.amount > 1000 or input.country == 'FR'", True),
        ("input.amount > 1000 or input.country == 'DE'", False),
        ("not (input.amount > 1000)", True),
        ("true and not false", True),
    ],
)
def test_boolean_logic(expression: str, expected: bool) -> None:
    assert evaluate(expression, NAMES) is expected


def test_boolean_operators_return_operands_like_python() -> None:
    assert evaluate("nodes.skip.output or 'fallback'", NAMES) == "fallback"
    assert evaluate("input.country and input.amount", NAMES) == 150
    assert evaluate("nodes.skip.output and input.amount", NAMES) is None


def test_and_short_circuits() -> None:
    # the right side would fail (.x on an int), but is never evaluated
    assert evaluate("false and input.amount.x", NAMES) is False
    assert evaluate("true or input.amount.x", NAMES) is True


def test_attribute_access_reads_dict_keys() -> None:
    assert evaluate("input.user.name", NAMES) == "Ada"
    assert evaluate("nodes.check.output.score", NAMES) == 0.75
    assert evaluate("input.missing", NAMES) is None  # absent key reads as null


def test_item_access_and_arithmetic() -> None:
    assert evaluate("nodes.check.output.items[1]", NAMES) == 20
    assert evaluate("input['country']", NAMES) == "FR"
    assert evaluate("input.amount * 2 + 1", NAMES) == 301
    assert evaluate("input.amount / 4", NAMES) == 37.5
    assert evaluate("input.amount // 4 - 7 % 4", NAMES) == 34
    assert evaluate("-input.amount", NAMES) == -150
    assert evaluate("[input.amount, {'k': 1}]", NAMES) == [150, {"k": 1}]


def test_json_literals() -> None:
    assert evaluate("true", {}) is True
    assert evaluate("false", {}) is False
    assert evaluate("null", {}) is None


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(ExpressionError, match=r"unknown name 'output' \(known: input, nodes\)"):
        evaluate("output.x > 1", NAMES)


def test_attribute_on_a_non_dict_is_an_error() -> None:
    with pytest.raises(ExpressionError, match=r"'\.real' on a int"):
        evaluate("input.amount.real", NAMES)


def test_runtime_error_names_the_expression() -> None:
    with pytest.raises(ExpressionError, match=r"cannot evaluate 'input.amount / 0'"):
        evaluate("input.amount / 0", NAMES)
    with pytest.raises(ExpressionError, match=r"cannot evaluate 'nodes.check.output.items\[9\]'"):
        evaluate("nodes.check.output.items[9]", NAMES)


def test_syntax_error_names_the_expression() -> None:
    with pytest.raises(ExpressionError, match=r"cannot parse 'input.amount >'"):
        evaluate("input.amount >", NAMES)


@pytest.mark.parametrize(
    ("expression", "culprit"),
    [
        ("__import__('os').system('true')", "__import__('os').system('true')"),
        ("len(input.tags)", "len(input.tags)"),
        ("input.user.get('name')", "input.user.get('name')"),
        ("(lambda: 1)()", "(lambda: 1)()"),
        ("lambda: 1", "lambda: 1"),
        ("[x for x in input.tags]", "[x for x in input.tags]"),
        ("input.amount if true else 0", "input.amount if true else 0"),
        ("(x := 1)", "(x := 1)"),
        ("input.amount ** 2", "input.amount ** 2"),
        ("f'{input}'", "f'{input}'"),
    ],
)
def test_forbidden_constructs_are_named(expression: str, culprit: str) -> None:
    with pytest.raises(ExpressionError) as caught:
        evaluate(expression, NAMES)
    assert f"'{culprit}' is not allowed in an expression" in str(caught.value)


def test_dunder_attributes_cannot_escape() -> None:
    # attribute access is key lookup on dicts and refused on anything else
    assert evaluate("input.__class__", NAMES) is None
    with pytest.raises(ExpressionError):
        evaluate("input.amount.__class__", NAMES)
    with pytest.raises(ExpressionError):
        evaluate("().__class__", NAMES)


# ---------------------------------------------------------------- templates
def test_whole_template_keeps_the_type() -> None:
    assert render("{{ input.amount }}", NAMES) == 150
    assert render("{{input.tags}}", NAMES) == ["vip", "new"]
    assert render("  {{ nodes.check.output.ok }} ", NAMES) is True
    assert render("{{ nodes.skip.output }}", NAMES) is None
    assert render("{{ input.user }}", NAMES) == {"name": "Ada"}


def test_templates_inside_text_are_interpolated() -> None:
    assert render("Hello {{ input.user.name }}, you owe {{ input.amount * 2 }}!", NAMES) == (
        "Hello Ada, you owe 300!"
    )
    assert render("id-{{ input.country }}-{{ input.amount }}", NAMES) == "id-FR-150"


def test_two_templates_spanning_the_whole_string_are_interpolated() -> None:
    assert render("{{ input.country }}-{{ input.amount }}", NAMES) == "FR-150"


def test_render_walks_json() -> None:
    value = {
        "to": "{{ input.user.name }}",
        "lines": ["{{ nodes.check.output.items[0] }}", "plain", 7],
        "nested": {"ok": "{{ nodes.check.output.ok }}", "none": None},
    }
    assert render(value, NAMES) == {
        "to": "Ada",
        "lines": [10, "plain", 7],
        "nested": {"ok": True, "none": None},
    }


def test_text_without_templates_is_unchanged() -> None:
    assert render("no braces { here }", NAMES) == "no braces { here }"
    assert render(42, NAMES) == 42


def test_template_errors_name_the_expression() -> None:
    with pytest.raises(ExpressionError, match=r"'len\(input\.tags\)' is not allowed"):
        render("count: {{ len(input.tags) }}", NAMES)
    with pytest.raises(ExpressionError, match=r"unknown name 'nope'"):
        render({"deep": ["{{ nope }}"]}, NAMES)


# ------------------------------------------------------------------- costs
BIG = {"text": "x" * 200_000, "numbers": list(range(60_000))}


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("'a' * 2000000", "'*' would build 2,000,000 items, limit 100,000"),
        ("2000000 * [0]", "'*' would build 2,000,000 items, limit 100,000"),
        # one list repeated: 100,000 references to a list of 100,000, written out as 10^10 items
        ("[[0] * 100000] * 100000", "a list would hold over 100,000 items"),
        ("[input.numbers] * 2", "'*' would build 120,002 items"),
        ("[''] * 1000000000", "'*' would build 1,000,000,000 items"),
        ("[[]] * 1000000000", "'*' would build 1,000,000,000 items"),
        ("input.numbers + input.numbers", "'+' would build 120,000 items"),
        ("input.text + '!'", "'+' would build 200,001 items"),
        ("[input.numbers, input.numbers]", "a list would hold over 100,000 items"),
        ("{'a': input.numbers, 'b': input.numbers}", "a dict would hold over 100,000 items"),
    ],
)
def test_values_an_expression_builds_are_bounded_before_they_are_built(expression: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message.replace("*", r"\*").replace("+", r"\+")):
        evaluate(expression, {"input": BIG})


def test_values_within_the_bound_are_built() -> None:
    assert len(evaluate("[0] * 100000", {})) == 100_000
    assert len(evaluate("'a' * 99999 + 'b'", {})) == 100_000
    assert evaluate("[input.numbers][0][-1]", {"input": BIG}) == 59_999
    assert len(evaluate("input.text", {"input": BIG})) == 200_000  # reading is not building


def test_string_formatting_is_refused() -> None:
    with pytest.raises(ExpressionError, match="'%' formats strings"):
        evaluate("'%999999999d' % 1", {})


@pytest.mark.parametrize(
    "expression",
    ["-" * 150 + "1", "not " * 150 + "true", "1" + " + 1" * 150, "[" * 99 + "1" + "]" * 99 + "[0]" * 60],
)
def test_deep_nesting_is_refused_at_parse_naming_the_limit(expression: str) -> None:
    with pytest.raises(ExpressionError, match="nests more than 100 levels deep, limit 100"):
        evaluate(expression, {})


def test_nesting_within_the_limit_evaluates() -> None:
    assert evaluate("1" + " + 1" * 98, {}) == 99
    assert evaluate("-" * 98 + "1", {}) == 1


@pytest.mark.parametrize("expression", ["b'x'", "1j", "...", "{**input}", "input.text[1:3]", "(1, *input)"])
def test_constructs_beyond_json_and_ranges_are_refused(expression: str) -> None:
    with pytest.raises(ExpressionError, match="is not allowed in an expression"):
        evaluate(expression, {"input": BIG})


def test_a_long_expression_is_refused_and_quoted_short() -> None:
    with pytest.raises(ExpressionError, match=r"is 5,001 characters, limit 4,096") as caught:
        evaluate("1" + "+1" * 2500, {})
    assert len(str(caught.value)) < 200, "the message should quote the start, not all of it"


def test_check_parses_and_names_unknown_names_without_evaluating() -> None:
    check("input.amount / 0 > nodes.a.output", ("input", "nodes"))  # fails only when run
    check("true and not null", ("input",))
    with pytest.raises(ExpressionError, match=r"unknown name 'output' in 'output.x' \(known: input, nodes\)"):
        check("output.x", ("input", "nodes"))
    with pytest.raises(ExpressionError, match=r"cannot parse 'input\.amount >'"):
        check("input.amount >", ("input",))


# ---------------------------------------------------------------- template costs
def test_templates_are_found_in_one_pass() -> None:
    # The pattern this replaced took 147 s here (quadratic in the run of '{{').
    started = time.perf_counter()
    assert render("{{" * 100_000, {}) == "{{" * 100_000
    elapsed = time.perf_counter() - started
    print(f"render of 200 KB of '{{{{': {elapsed:.3f} s")
    assert elapsed < 5.0


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("{{}}", []),
        ("{{ a }}}", ["a"]),
        ("{{{ a }}", ["{ a"]),
        ("{{ a\n}} {{ b }}", ["b"]),
        ("x {{a}} y {{ b.c }}", ["a", "b.c"]),
        ("{{ a }", []),
    ],
)
def test_template_boundaries(text: str, found: list[str]) -> None:
    assert [expression for _, _, expression in templates(text)] == found


def test_a_rendered_input_is_bounded_across_its_templates() -> None:
    names = {"input": BIG}
    assert len(render({"a": "{{ input.text }}", "b": "{{ input.text }}"}, names)["b"]) == 200_000
    with pytest.raises(ExpressionError, match=r"over 1,000,000 items from its templates, limit 1,000,000"):
        render({f"k{i}": "{{ input.text }}" for i in range(6)}, names)
    with pytest.raises(ExpressionError, match="limit 1,000,000"):
        render("{{ input.text }}" * 6, names)


def test_a_forbidden_part_of_a_deep_expression_is_refused_without_recursing() -> None:
    # quoting the call recursed through 900 levels below it: RecursionError, not ExpressionError
    with pytest.raises(ExpressionError, match="nests more than 100 levels deep"):
        evaluate("f(x=" + "-" * 900 + "1)", {})
