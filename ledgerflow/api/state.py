"""What every gateway route shares: the per-app state and small response helpers.

One ``GatewayState`` lives on ``app.state.gateway``; routes reach it through
``gateway_state(request)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Path, Request
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry
from pydantic import BaseModel

from ledgerflow.api.kafka import AsyncProducer
from ledgerflow.api.middleware import RequestMetrics
from ledgerflow.api.models import ErrorBody
from ledgerflow.api.routing import RoutingMetrics
from ledgerflow.api.served import ServedActivities, ServedType
from ledgerflow.api.settings import GatewaySettings
from ledgerflow.api.tail import EventTail
from ledgerflow.codec.base import PayloadCodec
from ledgerflow.codec.envelope import decode_tree, encode
from ledgerflow.dag.node_types import ALL_BUILTINS, IN_WORKFLOW_NODE_TYPES
from ledgerflow.owner_reads import OwnerReads
from ledgerflow.schemas.common import BareId

WorkflowIdPath = Annotated[
    BareId,
    Path(
        description="Workflow id.",
        openapi_examples={"order": {"summary": "A workflow id", "value": "order-42"}},
    ),
]


def known_node_types(settings: GatewaySettings) -> frozenset[str]:
    """Types a DAG node may name: built-in activities, in-workflow types, configured activities."""
    return frozenset({*ALL_BUILTINS, *IN_WORKFLOW_NODE_TYPES, *settings.activity_types})


@dataclass
class GatewayState:
    settings: GatewaySettings
    registry: CollectorRegistry
    request_metrics: RequestMetrics
    routing_metrics: RoutingMetrics
    node_types: frozenset[str]
    producer: AsyncProducer | None = None
    reads: OwnerReads | None = None
    tail: EventTail | None = None
    served: ServedActivities | None = None
    """The activities live workers advertise (``ledgerflow/api/served.py``)."""
    codec: PayloadCodec | None = None
    """The payload codec (``codec_keys_file``): inputs and signals are encoded before they are
    written; what read routes answer is decoded. Without one, payloads pass as they are."""

    async def served_types(self) -> dict[str, ServedType]:
        """Activity name -> the queues of the live workers serving it."""
        return await self.served.current() if self.served is not None else {}

    def encoded(self, value: Any) -> Any:
        """``value`` as the inbox takes it (an envelope, with a codec)."""
        return encode(self.codec, value)

    def clear(self, value: Any) -> Any:
        """``value`` (a run's state, events, a query result) with its envelopes decoded, with a
        codec; as it is without one (a gateway without keys shows envelopes)."""
        return value if self.codec is None else decode_tree(self.codec, value)

    def live_tail(self) -> EventTail:
        if self.tail is None:
            raise RuntimeError("the gateway is not started (lifespan not run)")
        return self.tail

    def live_reads(self) -> OwnerReads:
        if self.reads is None:
            raise RuntimeError("the gateway is not started (lifespan not run)")
        return self.reads

    def live_producer(self) -> AsyncProducer:
        if self.producer is None:
            raise RuntimeError("the gateway is not started (lifespan not run)")
        return self.producer


def gateway_state(request: Request) -> GatewayState:
    """The gateway state of the app serving ``request``."""
    state: GatewayState = request.app.state.gateway
    return state


def json_response(status: int, model: BaseModel) -> JSONResponse:
    """``model`` as JSON (by alias) with ``status``."""
    return JSONResponse(model.model_dump(mode="json", by_alias=True), status_code=status)


def error_doc(description: str) -> dict[str, Any]:
    """An OpenAPI ``responses`` entry whose body is the shared error body."""
    return {"model": ErrorBody, "description": description}


BODY_DOCS: dict[int | str, dict[str, Any]] = {413: error_doc("The body is larger than allowed.")}
"""The responses of a route that takes a body, besides the ones every route shares."""
READ_DOCS: dict[int | str, dict[str, Any]] = {
    404: error_doc("No run of this workflow id exists."),
    502: error_doc("The owning engine answered unexpectedly."),
}
"""The responses of a read about one workflow, answered by its owner."""
