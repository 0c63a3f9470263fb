"""What a DAG definition must pass to be registered, beyond its wire schema.

The schema (``ledgerflow.schemas.dag``) refuses what no deployment could run:
duplicate ids, dangling edges, cycles. This adds what depends on the
deployment's settings or on the expression language: the definition's size
(nodes, edges, longest path, bytes) and every expression parsing within its
limits. The gateway, the Client and the engine's Kafka ingress all call
:func:`definition_problems`, so a definition is refused when it is registered,
never when a run reaches the node.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any

from ledgerflow.config import Settings
from ledgerflow.dag.expressions import ExpressionError, check, templates
from ledgerflow.dag.node_inputs import input_problems
from ledgerflow.dag.node_types import KAFKA_CONSUMER, KAFKA_CONSUMER_COMMIT
from ledgerflow.schemas.dag import DagDefinition

EXPRESSION_NAMES = ("input", "nodes")
"""What a DAG's expressions may read: the run's input and the upstream nodes."""
MAX_PROBLEMS = 20
"""Problems reported for one definition; a definition with more is refused after the first ones."""

Location = tuple[str | int, ...]


@dataclass(frozen=True)
class Problem:
    """One reason a definition is refused."""

    loc: Location
    """Where in the definition, e.g. ``("nodes", 2, "input", "url")``; empty: the whole of it."""
    message: str
    """Starts with :attr:`field`, names the node or edge, and for a limit the setting."""
    kind: str
    """``dag_too_large``, ``expression_invalid``, ``queue_invalid``, ``input_invalid`` (a built-in
    node's literal input breaks its model), or ``dag_invalid`` (too many problems to list)."""

    @property
    def field(self) -> str:
        """``loc`` as a dotted path, e.g. ``nodes[2].input.url`` (``definition`` for the whole)."""
        return dotted(self.loc) or "definition"


def dotted(loc: Location) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def definition_problems(dag: DagDefinition, settings: Settings) -> list[Problem]:
    """Why ``dag`` may not be registered under ``settings``; empty when it may.

    Sizes first, so an oversized definition is refused without walking it further.
    """
    problems = _size_problems(dag, settings)
    if problems:
        return problems
    depth, path = _longest_path(dag)
    if depth > settings.max_dag_depth:
        shown = " -> ".join(path) if len(path) <= 4 else f"{path[0]} -> ... -> {path[-1]}"
        what = f"the longest path ({shown}) has {depth:,} nodes"
        problems.append(_limit(("edges",), what, settings.max_dag_depth, "max_dag_depth"))
    checks = (queue_problems(dag, settings, ()), _expression_problems(dag), _input_problems(dag))
    for problem in itertools.chain(*checks):
        if len(problems) == MAX_PROBLEMS:
            problems.append(Problem((), f"definition: more than {MAX_PROBLEMS} problems", "dag_invalid"))
            break
        problems.append(problem)
    return problems


def _size_problems(dag: DagDefinition, settings: Settings) -> list[Problem]:
    problems = []
    if len(dag.nodes) > settings.max_dag_nodes:
        problems.append(
            _limit(("nodes",), f"{len(dag.nodes):,} nodes", settings.max_dag_nodes, "max_dag_nodes")
        )
    if len(dag.edges) > settings.max_dag_edges:
        problems.append(
            _limit(("edges",), f"{len(dag.edges):,} edges", settings.max_dag_edges, "max_dag_edges")
        )
    size = len(dag.model_dump_json(by_alias=True))
    if size > settings.max_dag_bytes:
        problems.append(_limit((), f"{size:,} bytes as JSON", settings.max_dag_bytes, "max_dag_bytes"))
    elif size > settings.max_payload_bytes:
        # Every run records its definition in its first event, which must fit a payload.
        what = f"{size:,} bytes as JSON, more than a run's first event may hold"
        problems.append(_limit((), what, settings.max_payload_bytes, "max_payload_bytes"))
    return problems


def _limit(loc: Location, what: str, limit: int, setting: str) -> Problem:
    return Problem(
        loc, f"{dotted(loc) or 'definition'}: {what}, limit {limit:,} ({setting})", "dag_too_large"
    )


def _longest_path(dag: DagDefinition) -> tuple[int, list[str]]:
    """Nodes on the longest path, and that path (Kahn's order: iterative, any depth)."""
    children: dict[str, list[str]] = {node.id: [] for node in dag.nodes}
    waiting = dict.fromkeys(children, 0)
    for edge in dag.edges:
        children[edge.source].append(edge.target)
        waiting[edge.target] += 1
    length = dict.fromkeys(children, 1)
    previous: dict[str, str] = {}
    ready = [node for node, count in waiting.items() if count == 0]
    while ready:
        node = ready.pop()
        for child in children[node]:
            if length[node] + 1 > length[child]:
                length[child] = length[node] + 1
                previous[child] = node
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    end = max(length, key=length.__getitem__)
    path = [end]
    while path[-1] in previous:
        path.append(previous[path[-1]])
    return length[end], path[::-1]


def queue_problems(dag: DagDefinition, settings: Settings, topics: Collection[str]) -> Iterator[Problem]:
    """Nodes whose task queue's topic Kafka would refuse to create: its name collides with
    another queue's of this definition, or with one of ``topics`` (the existing topics, when the
    caller can list them). Kafka treats ``.`` and ``_`` as the same in topic names."""
    taken = {_collision_key(topic): topic for topic in topics}
    for index, node in enumerate(dag.nodes):
        topic = settings.task_topic(node.queue)
        other = taken.setdefault(_collision_key(topic), topic)
        if other != topic:
            loc: Location = ("nodes", index, "queue")
            message = (
                f"{dotted(loc)} (node '{node.id}'): task queue {node.queue!r} would need topic "
                f"{topic!r}, which collides with topic {other!r} ('.' and '_' are the same to Kafka)"
            )
            yield Problem(loc, message, "queue_invalid")


def _collision_key(topic: str) -> str:
    return topic.replace(".", "_")


def _expression_problems(dag: DagDefinition) -> Iterator[Problem]:
    for index, node in enumerate(dag.nodes):
        for loc, text in _strings(node.input):
            for _, _, expression in templates(text):
                problem = _check(("nodes", index, "input", *loc), f"node '{node.id}'", expression)
                if problem is not None:
                    yield problem
                    break  # one problem per string: the rest of it would repeat the story
    for index, edge in enumerate(dag.edges):
        if edge.condition is not None:
            problem = _check(
                ("edges", index, "condition"), f"edge {edge.source}->{edge.target}", edge.condition
            )
            if problem is not None:
                yield problem


def _input_problems(dag: DagDefinition) -> Iterator[Problem]:
    """Each literal input field of a built-in node that breaks its type's model
    (``dag/node_inputs.py``); a field holding a ``{{ }}`` template is judged when the node runs."""
    for index, node in enumerate(dag.nodes):
        if node.type == KAFKA_CONSUMER_COMMIT:
            where: Location = ("nodes", index, "type")
            yield Problem(
                where,
                f"{dotted(where)} (node '{node.id}'): {KAFKA_CONSUMER_COMMIT} is run by the DAG "
                f"interpreter after a {KAFKA_CONSUMER} node, for that node's group only",
                "input_invalid",
            )
            continue
        if node.type == KAFKA_CONSUMER and "group" in node.input:
            where = ("nodes", index, "input", "group")
            yield Problem(
                where,
                f"{dotted(where)} (node '{node.id}', {node.type}): a DAG node reads as its own group, "
                "which the DAG interpreter names",
                "input_invalid",
            )
        templated = frozenset(
            key for key, value in node.input.items() if any("{{" in text for _, text in _strings(value))
        )
        for loc, message in input_problems(node.type, node.input, templated):
            where = ("nodes", index, "input", *loc)
            yield Problem(
                where, f"{dotted(where)} (node '{node.id}', {node.type}): {message}", "input_invalid"
            )


def _check(loc: Location, owner: str, expression: str) -> Problem | None:
    try:
        check(expression, EXPRESSION_NAMES)
    except ExpressionError as exc:
        return Problem(loc, f"{dotted(loc)} ({owner}): {exc}", "expression_invalid")
    return None


def _strings(value: Any) -> Iterator[tuple[Location, str]]:
    """Every string in a JSON value with its location, in document order (iteratively)."""
    stack: list[tuple[Location, Any]] = [((), value)]
    while stack:
        loc, current = stack.pop()
        if isinstance(current, str):
            yield loc, current
        elif isinstance(current, list):
            stack.extend(((*loc, i), item) for i, item in reversed(list(enumerate(current))))
        elif isinstance(current, dict):
            stack.extend(((*loc, str(k)), item) for k, item in reversed(list(current.items())))
