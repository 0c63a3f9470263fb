"""DAG workflows run as one built-in code workflow that interprets the graph.

So a DAG gets exactly what code workflows get: durable timers, retries,
signals, replay, failover. A node runs once every incoming edge is decided;
it is skipped when no incoming edge was taken (its source was skipped, or the
condition was false). Independent branches run in parallel.

Node types handled in the workflow itself: ``sleep`` (``{"seconds": N}``, a
durable timer) and ``wait-signal`` (``{"name": S, "timeout": N}``). Any other
type is an activity on the node's queue; see ``ledgerflow/executors/builtins.py`` for
the built-in ones.
"""

from __future__ import annotations

import asyncio
from typing import Any

from ledgerflow.dag.expressions import evaluate, render
from ledgerflow.schemas.common import ActivityOptions, RetryPolicy
from ledgerflow.schemas.dag import DagDefinition, DagNode
from ledgerflow.sdk.context import current_runtime
from ledgerflow.sdk.definition import WorkflowDefinition, WorkflowRegistry, build_definition

DAG_WORKFLOW_NAME = "ledgerflow.dag"
DEFAULT_NODE_TIMEOUT = 300.0


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
        return await runtime.execute_activity(node.type, [args], options)


DAG_WORKFLOW = build_definition(_run_dag, DAG_WORKFLOW_NAME)


def definition_for(
    workflow_type: str, dag: DagDefinition | None, registry: WorkflowRegistry
) -> WorkflowDefinition | None:
    """The code a run runs: the DAG interpreter when it started with a DAG, else its workflow type
    from ``registry`` (None when that type is not loaded here)."""
    return DAG_WORKFLOW if dag is not None else registry.get(workflow_type)
