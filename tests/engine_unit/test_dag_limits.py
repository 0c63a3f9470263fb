"""A DAG definition is checked whole when it is registered (issue 12): its size against the
deployment's limits, and every expression in it parsed, each problem named by field.

``definition_problems`` is what the gateway, the Client and the engine's Kafka ingress
all apply; the last test drives the engine's side through the partition processor.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ledgerflow.config import Settings
from ledgerflow.dag.registration import MAX_PROBLEMS, definition_problems, queue_problems
from ledgerflow.engine.context import EngineContext
from ledgerflow.engine.outbox import Outbox
from ledgerflow.engine.processor import PartitionProcessor
from ledgerflow.engine.state.store import PartitionStore
from ledgerflow.schemas.commands import RegisterDefinition
from ledgerflow.schemas.dag import DagDefinition
from ledgerflow.sdk.definition import WorkflowRegistry

LIMITS = Settings(max_dag_nodes=10, max_dag_edges=12, max_dag_depth=4, max_dag_bytes=2048)


def dag(
    nodes: list[dict[str, Any]], edges: list[tuple[str, str]] | None = None, id: str = "d", **condition: str
) -> DagDefinition:
    """A definition of ``nodes`` and ``edges``; ``condition`` maps an edge ``"a_b"`` to its condition."""
    pairs = edges or []
    return DagDefinition.model_validate(
        {
            "id": id,
            "nodes": nodes,
            "edges": [{"source": s, "target": t, "condition": condition.get(f"{s}_{t}")} for s, t in pairs],
        }
    )


def chain(n: int) -> DagDefinition:
    return dag(
        [{"id": f"n{i}", "type": "echo"} for i in range(n)], [(f"n{i}", f"n{i + 1}") for i in range(n - 1)]
    )


def messages(definition: DagDefinition, settings: Settings = LIMITS) -> list[str]:
    return [p.message for p in definition_problems(definition, settings)]


def test_a_definition_within_every_limit_passes() -> None:
    assert messages(chain(4)) == []


def test_too_many_nodes_names_the_setting() -> None:
    problems = definition_problems(dag([{"id": f"n{i}", "type": "echo"} for i in range(11)]), LIMITS)
    assert [(p.field, p.kind) for p in problems] == [("nodes", "dag_too_large")]
    assert problems[0].message == "nodes: 11 nodes, limit 10 (max_dag_nodes)"


def test_too_many_edges_names_the_setting() -> None:
    nodes = [{"id": "a", "type": "echo"}, {"id": "b", "type": "echo"}]
    assert messages(dag(nodes, [("a", "b")] * 13)) == ["edges: 13 edges, limit 12 (max_dag_edges)"]


def test_the_longest_path_counts_not_the_nodes() -> None:
    # a diamond of 6 nodes is 4 deep: within max_dag_depth 4; a chain of 5 is not
    diamond = dag(
        [{"id": x, "type": "echo"} for x in "abcdef"],
        [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d"), ("d", "e"), ("a", "f")],
    )
    assert messages(diamond) == []
    problems = definition_problems(chain(5), LIMITS)
    assert [(p.field, p.kind) for p in problems] == [("edges", "dag_too_large")]
    assert (
        problems[0].message
        == "edges: the longest path (n0 -> ... -> n4) has 5 nodes, limit 4 (max_dag_depth)"
    )


def test_depth_of_a_long_chain_is_found_without_recursion() -> None:
    roomy = Settings(
        max_dag_nodes=6000,
        max_dag_edges=6000,
        max_dag_depth=5000,
        max_dag_bytes=1_000_000,
        max_payload_bytes=1_000_000,
        max_record_bytes=3_000_000,
    )
    assert messages(chain(5000), roomy) == []
    assert "has 5,001 nodes, limit 5,000 (max_dag_depth)" in messages(chain(5001), roomy)[0]


def test_the_definitions_size_is_measured_as_json() -> None:
    big = dag([{"id": "a", "type": "echo", "input": {"text": "x" * 3000}}])
    assert messages(big) == [
        f"definition: {len(big.model_dump_json(by_alias=True)):,} bytes as JSON, limit 2,048 (max_dag_bytes)"
    ]


def test_a_definition_no_run_could_record_names_max_payload_bytes() -> None:
    settings = Settings(max_payload_bytes=1024, max_record_bytes=4096, max_dag_bytes=4096)
    problems = messages(dag([{"id": "a", "type": "echo", "input": {"text": "x" * 1500}}]), settings)
    assert len(problems) == 1 and "more than a run's first event may hold" in problems[0]
    assert problems[0].endswith("limit 1,024 (max_payload_bytes)")


def test_sizes_are_checked_before_expressions() -> None:
    nodes = [{"id": f"n{i}", "type": "echo", "input": {"v": "{{ nope }}"}} for i in range(11)]
    assert messages(dag(nodes)) == ["nodes: 11 nodes, limit 10 (max_dag_nodes)"]


def test_every_expression_is_parsed_and_named_by_field() -> None:
    definition = dag(
        [
            {
                "id": "ok",
                "type": "echo",
                "input": {"a": "{{ input.x + 1 }}", "t": "id-{{ nodes.ok.output }}"},
            },
            {"id": "syntax", "type": "echo", "input": {"deep": {"list": ["plain", "{{ input.x > }}"]}}},
            {"id": "name", "type": "echo", "input": {"v": "x {{ input.a }} {{ secrets.key }}"}},
            {"id": "call", "type": "echo", "input": {"v": "{{ open('/etc/passwd') }}"}},
            {"id": "deep", "type": "echo", "input": {"v": "{{ " + "-" * 120 + "1 }}"}},
            {"id": "long", "type": "echo", "input": {"v": "{{ " + "1+" * 2100 + "1 }}"}},
        ],
        [("ok", "syntax"), ("ok", "name")],
        ok_name="nodes.ok.output.ready and",
    )
    problems = definition_problems(definition, Settings())
    assert {p.kind for p in problems} == {"expression_invalid"}
    by_field = {p.field: p.message for p in problems}
    assert list(by_field) == [
        "nodes[1].input.deep.list[1]",
        "nodes[2].input.v",
        "nodes[3].input.v",
        "nodes[4].input.v",
        "nodes[5].input.v",
        "edges[1].condition",
    ]
    assert by_field["nodes[1].input.deep.list[1]"].startswith(
        "nodes[1].input.deep.list[1] (node 'syntax'): cannot parse 'input.x >'"
    )
    assert (
        "(node 'name'): unknown name 'secrets' in 'secrets.key' (known: input, nodes)"
        in by_field["nodes[2].input.v"]
    )
    assert "'open('/etc/passwd')' is not allowed" in by_field["nodes[3].input.v"]
    assert "nests more than 100 levels deep, limit 100" in by_field["nodes[4].input.v"]
    assert "is 4,201 characters, limit 4,096" in by_field["nodes[5].input.v"]
    assert by_field["edges[1].condition"].startswith("edges[1].condition (edge ok->name): cannot parse")


def test_problems_are_listed_up_to_a_bound() -> None:
    nodes = [{"id": f"n{i}", "type": "echo", "input": {"v": "{{ nope }}"}} for i in range(MAX_PROBLEMS + 5)]
    problems = definition_problems(dag(nodes), Settings())
    assert len(problems) == MAX_PROBLEMS + 1
    assert problems[-1].message == f"definition: more than {MAX_PROBLEMS} problems"


def test_the_engine_refuses_a_registration_over_a_limit_and_records_a_good_one(tmp_path: Path) -> None:
    ctx = EngineContext(LIMITS, WorkflowRegistry([]), lambda _id: None)
    processor = PartitionProcessor(0, PartitionStore(tmp_path / "p0"), ctx)
    out = Outbox(LIMITS)
    processor.begin(1.0, out)
    bad_expression = dag([{"id": "a", "type": "echo", "input": {"v": "{{ input. }}"}}], id="bad")
    reasons = [
        processor.handle(RegisterDefinition(definition=chain(5).model_copy(update={"id": "deep"}))),
        processor.handle(RegisterDefinition(definition=bad_expression)),
        processor.handle(RegisterDefinition(definition=chain(3).model_copy(update={"id": "good"}))),
    ]
    assert reasons[0] == (
        "definition 'deep' refused: "
        "edges: the longest path (n0 -> ... -> n4) has 5 nodes, limit 4 (max_dag_depth)"
    )
    assert reasons[1] is not None and reasons[1].startswith(
        "definition 'bad' refused: nodes[0].input.v (node 'a'): cannot parse 'input.'"
    )
    assert reasons[2] is None
    written = [r.key for r in out.records if r.topic == LIMITS.topic("definitions")]
    assert written == [b"good"]


def test_queues_whose_topics_collide_are_named_by_field() -> None:
    """Kafka treats '.' and '_' in topic names as the same: of two colliding queues in one
    definition the second is refused, and so is a queue colliding with an existing topic."""
    both = dag(
        [{"id": "a", "type": "echo", "queue": "pay.eu"}, {"id": "b", "type": "echo", "queue": "pay_eu"}]
    )
    [problem] = definition_problems(both, LIMITS)
    assert problem.field == "nodes[1].queue" and problem.kind == "queue_invalid"
    assert "'pay_eu'" in problem.message and "tasks.pay.eu" in problem.message

    one = dag([{"id": "a", "type": "echo", "queue": "ship_us"}])
    assert definition_problems(one, LIMITS) == []
    [clash] = queue_problems(one, LIMITS, [LIMITS.task_topic("ship.us"), "unrelated"])
    assert clash.field == "nodes[0].queue" and "collides with topic" in clash.message
    assert list(queue_problems(one, LIMITS, [LIMITS.task_topic("ship_us")])) == [], "its own topic"
