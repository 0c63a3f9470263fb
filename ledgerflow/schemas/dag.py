"""DAG workflow definitions: nodes and edges, as the seeds describe them.

A definition is validated when it is built: duplicate node ids, edges that
name unknown nodes, and cycles are rejected with an error naming the culprit.
"""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, Field, model_validator

from ledgerflow.schemas.common import JSON, QUEUE_PATTERN, Id, RetryPolicy, WireModel


class DagNode(WireModel):
    """One step: an activity (or built-in) run with templated input."""

    id: str = Field(min_length=1, max_length=128)
    """Unique id of the node within its definition."""
    type: str = Field(min_length=1)
    """Activity name or built-in node type (``echo``, ``sleep``, ``wait-signal``, ...)."""
    input: dict[str, JSON] = Field(default_factory=dict)
    """Input; strings may hold ``{{ expression }}`` over ``input`` and ``nodes``."""
    retry: RetryPolicy | None = None
    """Retry policy of the node's activity."""
    timeout_seconds: float | None = Field(
        default=None,
        gt=0,
        validation_alias=AliasChoices("timeoutSeconds", "timeout_seconds"),
        serialization_alias="timeoutSeconds",
    )
    """Seconds one attempt may take."""
    queue: str = Field(default="default", pattern=QUEUE_PATTERN)
    """Task queue whose workers run the node (its topic is created when a task first goes there)."""


class DagEdge(WireModel):
    """A dependency: ``target`` runs after ``source`` when ``condition`` holds."""

    source: str
    target: str
    condition: str | None = None
    """Optional expression over ``input`` and ``nodes``; the edge is taken when true."""


class DagDefinitionError(ValueError):
    """A DAG definition is invalid; the message names the node or edge."""


class DagDefinition(WireModel):
    """A workflow as a graph of nodes joined by edges."""

    id: Id
    """Definition id; also the ``workflow_type`` used to start it."""
    name: str = ""
    """Human-readable name."""
    nodes: list[DagNode] = Field(min_length=1)
    edges: list[DagEdge] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_graph(self) -> DagDefinition:
        problems = graph_problems(self.nodes, self.edges)
        if problems:
            raise DagDefinitionError("; ".join(problems))
        return self

    def predecessors(self) -> dict[str, list[DagEdge]]:
        """Incoming edges of every node (empty list for a root)."""
        incoming: dict[str, list[DagEdge]] = {n.id: [] for n in self.nodes}
        for edge in self.edges:
            incoming[edge.target].append(edge)
        return incoming


def graph_problems(nodes: list[DagNode], edges: list[DagEdge]) -> list[str]:
    """Every structural problem of a graph, each naming the node or edge."""
    problems: list[str] = []
    ids: set[str] = set()
    for node in nodes:
        if node.id in ids:
            problems.append(f"duplicate node id '{node.id}'")
        ids.add(node.id)
    for edge in edges:
        for end in ("source", "target"):
            name = getattr(edge, end)
            if name not in ids:
                problems.append(f"edge {edge.source}->{edge.target}: {end} '{name}' is not a node")
    if problems:
        return problems
    cycle = _find_cycle(ids, edges)
    if cycle:
        problems.append("cycle: " + " -> ".join(cycle))
    return problems


def _find_cycle(ids: set[str], edges: list[DagEdge]) -> list[str] | None:
    children: dict[str, list[str]] = {i: [] for i in ids}
    for edge in edges:
        children[edge.source].append(edge.target)
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    # Depth-first with an explicit stack (a chain of thousands of nodes must not hit
    # Python's recursion limit): each frame is a node and the index of its next child.
    for start in sorted(ids):
        if start in state:
            continue
        path: list[str] = [start]
        stack: list[list[Any]] = [[start, 0]]
        state[start] = 1
        while stack:
            frame = stack[-1]
            node, next_child = frame
            if next_child == len(children[node]):
                stack.pop()
                path.pop()
                state[node] = 2
                continue
            frame[1] += 1
            child = children[node][next_child]
            if state.get(child) == 1:
                return [*path[path.index(child) :], child]
            if child not in state:
                state[child] = 1
                path.append(child)
                stack.append([child, 0])
    return None


def dag_from_json(data: dict[str, Any]) -> DagDefinition:
    """Build a definition from its JSON form (raises pydantic's ValidationError)."""
    return DagDefinition.model_validate(data)
