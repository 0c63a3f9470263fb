"""``GET /api/v1/node-types``: what a DAG node may name, with the input each built-in takes (its
JSON Schema, from ``ledgerflow/dag/node_inputs.py``), for a DAG editor's palette and forms."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import Field

from ledgerflow.api.models import ApiModel
from ledgerflow.api.state import gateway_state
from ledgerflow.dag.node_inputs import ALIASES, INPUTS
from ledgerflow.dag.node_types import IN_WORKFLOW_NODE_TYPES, IO_BUILTINS, PURE_BUILTINS

router = APIRouter(prefix="/api/v1")


class NodeType(ApiModel):
    name: str
    kind: Literal["pure", "io", "in_workflow", "activity"] = Field(
        description="pure: a built-in on by default; io: a built-in a worker must enable; in_workflow: "
        "run by the DAG interpreter itself; activity: one a live worker serves, or the gateway was "
        "told workers serve."
    )
    description: str = ""
    alias_of: str | None = None
    input_schema: dict[str, Any] | None = Field(
        default=None, description="JSON Schema of the node's input (null: any JSON object)."
    )
    queues: list[str] = Field(
        default_factory=list, description="An activity's: the task queues of the live workers serving it."
    )
    dag_node: bool = Field(
        default=True,
        description="Whether a DAG node may name it: an activity takes the node's input as its one "
        "argument (a JSON object); one with other parameters is served to code workflows only.",
    )


class NodeTypes(ApiModel):
    node_types: list[NodeType]


@router.get("/node-types", tags=["workflows"], summary="Node types a DAG may use", response_model=NodeTypes)
async def node_types(request: Request) -> NodeTypes:
    """Every built-in (under the seed system's names and Ledgerflow's own), the in-workflow
    nodes (`sleep`, `wait-signal`), and the activities live workers advertise (with their
    queues and the JSON Schema of their arguments, from their type hints) or this gateway was
    configured with; each built-in with its input's JSON Schema. A DAG whose literal node input
    breaks it is refused (422 naming the node and field)."""
    listed = []
    for name in sorted(PURE_BUILTINS | IO_BUILTINS):
        model = INPUTS.get(name)
        listed.append(
            NodeType(
                name=name,
                kind="pure" if name in PURE_BUILTINS else "io",
                description=(model.__doc__ or "").strip() if model else "",
                alias_of=ALIASES.get(name),
                input_schema=model.model_json_schema() if model else None,
            )
        )
    listed += [NodeType(name=name, kind="in_workflow") for name in IN_WORKFLOW_NODE_TYPES]
    state = gateway_state(request)
    served = await state.served_types()
    configured = set(state.settings.activity_types) - {"*"}
    for name in sorted((configured | set(served)) - set(INPUTS)):
        entry = served.get(name)
        listed.append(
            NodeType(
                name=name,
                kind="activity",
                input_schema=entry.input_schema if entry else None,
                queues=sorted(entry.queues) if entry else [],
                dag_node=entry.dag_node if entry and name not in configured else True,
            )
        )
    return NodeTypes(node_types=listed)
