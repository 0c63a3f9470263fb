"""A sample DAG: a 4-node fan-out / fan-in over built-in nodes."""

from __future__ import annotations

from typing import Any

FAN_OUT_FAN_IN: dict[str, Any] = {
    "id": "sample-fan-out",
    "name": "fan out, fan in",
    "nodes": [
        {"id": "numbers", "type": "sequence.numbers", "input": {"stop": "{{ input.count }}"}},
        {
            "id": "squares",
            "type": "map.transform",
            "input": {"items": "{{ nodes.numbers.output.numbers }}", "expression": "item * item"},
        },
        {
            "id": "evens",
            "type": "filter.condition",
            "input": {"items": "{{ nodes.numbers.output.numbers }}", "condition": "item % 2 == 0"},
        },
        {
            "id": "total",
            "type": "aggregate.sum",
            "input": {"items": "{{ nodes.squares.output['items'] + nodes.evens.output['items'] }}"},
        },
    ],
    "edges": [
        {"source": "numbers", "target": "squares"},
        {"source": "numbers", "target": "evens"},
        {"source": "squares", "target": "total"},
        {"source": "evens", "target": "total"},
    ],
}
