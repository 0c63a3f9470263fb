"""The seed system's node types under its own names: each input checked by its model (a failure
naming the field, not retried), outputs the next node takes (``items``), and literal inputs
refused when the DAG is registered (docs/dag.md)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from ledgerflow.config import Settings
from ledgerflow.dag.node_inputs import ALIASES, INPUTS
from ledgerflow.dag.node_types import ALL_BUILTINS
from ledgerflow.dag.registration import definition_problems
from ledgerflow.engine.workflow.dag import node_group
from ledgerflow.errors import ApplicationError
from ledgerflow.executors.builtins import worker_builtins
from ledgerflow.executors.sandbox.refusal import Refused
from ledgerflow.executors.sandbox.settings import BuiltinSettings
from ledgerflow.schemas.commands import TaskCompleted, TaskFailed
from ledgerflow.schemas.dag import DagDefinition
from tests.executors_unit.builtin_helpers import call
from tests.executors_unit.test_builtin_enabling import attempt

SEED_TYPES = {
    "random.numbers",
    "sequence.numbers",
    "file.csv",
    "file.text",
    "memory.collection",
    "filter.condition",
    "map.transform",
    "aggregate.sum",
    "data.clean",
    "data.transform",
    "console.log",
    "aggregate.count",
    "kafka.producer",
    "file.transfer",
    "sql.query",
    "kafka.consumer",
}
"""The seed's 17 types (16 names: file.text is a source and a sink)."""


def test_every_seed_type_is_a_builtin_with_an_input_model() -> None:
    assert SEED_TYPES <= ALL_BUILTINS
    assert set(INPUTS) >= SEED_TYPES
    assert set(ALIASES) <= ALL_BUILTINS and set(ALIASES.values()) <= SEED_TYPES
    for name in SEED_TYPES:
        assert "Example" in (INPUTS[name].__doc__ or ""), name


def test_random_numbers_are_the_same_on_a_retry_and_differ_between_nodes() -> None:
    definitions = worker_builtins(BuiltinSettings.model_validate({}), Settings())
    first = attempt(definitions, "random.numbers", {"count": 20, "low": 1, "high": 6})
    again = attempt(definitions, "random.numbers", {"count": 20, "low": 1, "high": 6})
    assert isinstance(first, TaskCompleted) and isinstance(again, TaskCompleted)
    assert first.result == again.result  # the same run, the same node: the same numbers
    numbers = first.result["numbers"]
    assert len(numbers) == 20 and all(1 <= n <= 6 for n in numbers) and len(set(numbers)) > 1
    seeded = attempt(definitions, "random.numbers", {"count": 20, "low": 1, "high": 6, "seed": 7})
    assert isinstance(seeded, TaskCompleted) and seeded.result != first.result


def test_a_bad_input_fails_at_once_naming_the_field() -> None:
    definitions = worker_builtins(BuiltinSettings.model_validate({}), Settings())
    outcome = attempt(definitions, "data.clean", {"items": [{"a": 1}], "types": {"a": "decimal"}})
    assert isinstance(outcome, TaskFailed)
    assert outcome.failure.type == "InvalidInput" and outcome.failure.non_retryable
    assert "types.a" in outcome.failure.message


async def test_a_seed_pipeline_source_two_transforms_and_a_sink() -> None:
    source = await call(
        "memory.collection",
        {
            "items": [
                {"name": " apple ", "qty": "3", "price": 2},
                {"name": "pear", "qty": "x", "price": 1},
                {"name": "apple", "qty": "3", "price": 2},
                {"name": "fig", "qty": None, "price": 4},
            ]
        },
    )
    clean = await call("data.clean", {"items": source["items"], "types": {"qty": "int"}})
    assert clean == {
        "items": [{"name": "apple", "qty": 3, "price": 2}, {"name": "fig", "price": 4}],
        "dropped": 2,
    }
    transformed = await call(
        "data.transform",
        {
            "items": clean["items"][:1],
            "rename": {"qty": "quantity"},
            "compute": {"total": "item['quantity'] * item['price']"},
            "select": ["name", "total"],
        },
    )
    assert transformed == {"items": [{"name": "apple", "total": 6}]}
    counted = await call("aggregate.count", {"items": clean["items"], "condition": "item['price'] > 2"})
    assert counted == {"count": 1}
    assert await call("aggregate.sum", {"items": transformed["items"], "field": "total"}) == {"sum": 6}
    with pytest.raises(ApplicationError, match="no field 'missing'"):
        await call("aggregate.sum", {"items": transformed["items"], "field": "missing"})


async def test_file_text_csv_and_transfer_inside_the_roots(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "in").mkdir(parents=True)
    (root / "archive").mkdir()
    (root / "in" / "orders.csv").write_text("name,qty\napple,3\npear,5\n")
    roots: dict[str, Any] = {"file_roots": (root,)}
    rows = await call("file.csv", {"path": str(root / "in" / "orders.csv")}, **roots)
    assert rows["items"] == [{"name": "apple", "qty": "3"}, {"name": "pear", "qty": "5"}] == rows["rows"]
    written = await call("file.text", {"path": str(root / "out.txt"), "lines": ["a", "b"]}, **roots)
    assert written == {"path": str(root / "out.txt"), "bytes": 4}
    assert await call("file.text", {"path": str(root / "out.txt")}, **roots) == {
        "text": "a\nb\n",
        "lines": ["a", "b"],
    }

    source, target = root / "in" / "orders.csv", root / "archive" / "orders.csv"
    data = source.read_bytes()
    moved = await call(
        "file.transfer", {"source": str(source), "target": str(target), "mode": "move"}, **roots
    )
    assert moved["sha256"] == hashlib.sha256(data).hexdigest() and moved["bytes"] == len(data)
    assert target.read_bytes() == data and not source.exists()
    with pytest.raises(Refused, match="outside the file roots"):
        await call("file.transfer", {"source": str(target), "target": str(tmp_path / "x.csv")}, **roots)
    assert target.exists()  # a refused move leaves the source where it was


def test_a_literal_input_that_breaks_its_model_is_refused_at_registration() -> None:
    dag = DagDefinition.model_validate(
        {
            "id": "seed",
            "nodes": [
                {"id": "src", "type": "random.numbers", "input": {"count": -1}},
                {"id": "f", "type": "filter.condition", "input": {"items": "{{ nodes.src.output.items }}"}},
                {"id": "ok", "type": "aggregate.count", "input": {"items": "{{ nodes.f.output.items }}"}},
            ],
            "edges": [{"source": "src", "target": "f"}, {"source": "f", "target": "ok"}],
        }
    )
    problems = {p.field: p.message for p in definition_problems(dag, Settings())}
    assert set(problems) == {"nodes[0].input.count", "nodes[1].input.condition"}
    assert "node 'src', random.numbers" in problems["nodes[0].input.count"]


def test_a_dag_names_neither_a_consumers_commit_nor_its_group() -> None:
    """A kafka.consumer node reads as its own group, committed by the interpreter only: a DAG
    naming the commit or a group could move another DAG's group (skip or replay its records)."""
    dag = DagDefinition.model_validate(
        {
            "id": "sneaky",
            "nodes": [
                {"id": "read", "type": "kafka.consumer", "input": {"topic": "t", "group": "dag.other.read"}},
                {
                    "id": "skip",
                    "type": "kafka.consumer.commit",
                    "input": {"topic": "t", "group": "dag.other.read", "offsets": {"0": 1000}},
                },
            ],
        }
    )
    problems = {p.field: p.message for p in definition_problems(dag, Settings())}
    assert set(problems) == {"nodes[0].input.group", "nodes[1].type"}
    assert "its own group" in problems["nodes[0].input.group"]
    assert "run by the DAG interpreter" in problems["nodes[1].type"]
    assert "kafka.consumer.commit" not in ALL_BUILTINS  # nor may a worker's builtins setting name it


def test_a_consumer_nodes_group_is_its_own_and_unambiguous() -> None:
    assert node_group("etl", "read") == "dag.etl.read"
    assert node_group("a.b", "c") != node_group("a", "b.c")
    assert node_group("ns/a", "b") != node_group("ns", "a/b")
