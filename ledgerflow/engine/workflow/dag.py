"""DAG workflows run as one built-in code workflow that interprets the graph.

So a DAG gets exactly what code workflows get: durable timers, retries,
signals, replay, failover. A node runs once every incoming edge is decided;
it is skipped when no incoming edge was taken (its source was skipped, or the
condition was false). Independent branches run in parallel.

Node types handled in the workflow itself: ``sleep`` (``{"seconds": N}``, a
durable timer) and ``wait-signal`` (``{"name": S, "timeout": N}``). Any other
type is an activity on the node's queue; see ``ledgerflow/executors/builtins.py`` for
the built-in ones. A ``kafka.consumer`` node reads as its own consumer group (``node_group``),
and its offsets are committed by a ``kafka.consumer.commit`` activity run once the node's result
is recorded.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

from ledgerflow.dag.expressions import evaluate, render
from ledgerflow.dag.node_types import KAFKA_CONSUMER, KAFKA_CONSUMER_COMMIT
from ledgerflow.schemas.common import ActivityOptions, RetryPolicy
from ledgerflow.schemas.dag import DagDefinition, DagNode
from ledgerflow.sdk.context import current_runtime
from ledgerflow.sdk.definition import WorkflowDefinition, WorkflowRegistry, build_definition

DAG_WORKFLOW_NAME = "ledgerflow.dag"
DEFAULT_NODE_TIMEOUT = 300.0
COMMIT_TIMEOUT = 60.0
"""Seconds one kafka.consumer.commit attempt may take."""


async def _run_dag(input: Any) -> dict[str, Any]:
    runtime = current_runtime()
    dag = runtime.info().dag
    assert dag is not None, "a DAG run needs its definition"
    return await DagRun(dag, input).run()


class DagRun:
    """The state of one DAG execution inside the workflow."""

    def __init__(self, dag: DagDefinition, input: Any) -> None:
        self.dag = dag
        self.input = input
        self.outputs: dict[str, Any] = {}
        self.status: dict[str, str] = {}
        loop = asyncio.get_running_loop()
        self.done: dict[str, asyncio.Future[None]] = {n.id: loop.create_future() for n in dag.nodes}

    def names(self) -> dict[str, Any]:
        nodes = {nid: {"output": out, "status": self.status.get(nid)} for nid, out in self.outputs.items()}
        for nid, status in self.status.items():
            nodes.setdefault(nid, {"output": None, "status": status})
        return {"input": self.input, "nodes": nodes}

    async def run(self) -> dict[str, Any]:
        incoming = self.dag.predecessors()
        tasks = [asyncio.ensure_future(self._node(node, incoming[node.id])) for node in self.dag.nodes]
        try:
            await asyncio.gather(*tasks)
        except BaseException:
            for task in tasks:
                task.cancel()
            raise
        return {nid: self.outputs[nid] for nid in (n.id for n in self.dag.nodes) if nid in self.outputs}

    async def _node(self, node: DagNode, edges: list[Any]) -> None:
        try:
            if edges:
                await asyncio.gather(*(self.done[e.source] for e in edges))
                taken = [
                    e
                    for e in edges
                    if self.status.get(e.source) == "completed"
                    and (e.condition is None or bool(evaluate(e.condition, self.names())))
                ]
                if not taken:
                    self.status[node.id] = "skipped"
                    return
            self.outputs[node.id] = await self._execute(node)
            self.status[node.id] = "completed"
        finally:
            if not self.done[node.id].done():
                self.done[node.id].set_result(None)

    async def _execute(self, node: DagNode) -> Any:
        runtime = current_runtime()
        args = render(node.input, self.names())
        if node.type == "sleep":
            await runtime.sleep(float(args.get("seconds", 0)))
            return {"slept": args.get("seconds", 0)}
        if node.type == "wait-signal":
            name = args.get("name") or node.id
            timeout = args.get("timeout")
            return await runtime.wait_signal(str(name), float(timeout) if timeout is not None else None)
        options = ActivityOptions(
            queue=node.queue,
            start_to_close_timeout=node.timeout_seconds or DEFAULT_NODE_TIMEOUT,
            retry=node.retry or RetryPolicy(),
            node=node.id,
        )
        if node.type == KAFKA_CONSUMER and isinstance(args, dict):
            args = {**args, "group": node_group(self.dag.id, node.id)}  # the node's own, always
        output = await runtime.execute_activity(node.type, [args], options)
        if node.type == KAFKA_CONSUMER and isinstance(output, dict) and output.get("offsets"):
            # Now that the batch is in the run's history, the group may move past it: retried
            # on its own terms, so a passing broker error does not fail a node whose result stands.
            commit = {key: output.get(key) for key in ("topic", "group", "offsets")}
            commit_options = options.model_copy(
                update={"retry": RetryPolicy(), "start_to_close_timeout": COMMIT_TIMEOUT}
            )
            await runtime.execute_activity(KAFKA_CONSUMER_COMMIT, [commit], commit_options)
        return output


def node_group(dag_id: str, node_id: str) -> str:
    """A kafka.consumer node's group: its DAG's and its own ids, each quoted so that no two
    (DAG, node) pairs share one (``a.b`` + ``c`` is not ``a`` + ``b.c``)."""
    return f"dag.{_quoted(dag_id)}.{_quoted(node_id)}"


def _quoted(part: str) -> str:
    return quote(part, safe="").replace(".", "%2E")


DAG_WORKFLOW = build_definition(_run_dag, DAG_WORKFLOW_NAME)


def definition_for(
    workflow_type: str, dag: DagDefinition | None, registry: WorkflowRegistry
) -> WorkflowDefinition | None:
    """The code a run runs: the DAG interpreter when it started with a DAG, else its workflow type
    from ``registry`` (None when that type is not loaded here)."""
    return DAG_WORKFLOW if dag is not None else registry.get(workflow_type)
