"""The /api/v1/cluster routes (partition owners, engine stats, a workflow's location,
membership events) and /api/v1/events (the public lifecycle events topic)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from ledgerflow import namespaces
from ledgerflow.api.auth import namespace_of
from ledgerflow.api.models import (
    ClusterEvent,
    ClusterEventsResponse,
    ClusterStats,
    EventsResponse,
    MemberStats,
    ShardInfo,
    ShardsResponse,
    WorkflowLocation,
)
from ledgerflow.api.state import WorkflowIdPath, gateway_state
from ledgerflow.config import PAGE_LIMIT

router = APIRouter(prefix="/api/v1")


@router.get(
    "/cluster/events",
    tags=["cluster"],
    summary="Membership changes, partition moves and failovers",
    response_model=ClusterEventsResponse,
)
async def cluster_events(
    request: Request, limit: Annotated[int, Query(ge=1, le=PAGE_LIMIT)] = 100
) -> ClusterEventsResponse:
    """The latest cluster events, oldest first: engines joining and leaving, partitions
    assigned (with the time taken, restore included), revoked or lost, and failovers
    (an assignment that took partitions from a node that never gave them up)."""
    found = await gateway_state(request).live_tail().cluster_events(limit, 3.0)
    return ClusterEventsResponse(events=[ClusterEvent.model_validate(e) for e in found])


@router.get(
    "/cluster/shards", tags=["cluster"], summary="Owner of every partition", response_model=ShardsResponse
)
async def shards(request: Request) -> ShardsResponse:
    state = gateway_state(request)
    owners = state.live_reads()
    snapshot = owners.snapshot
    return ShardsResponse(
        partitions=state.settings.partitions,
        group_state=snapshot.state,
        shards=[
            ShardInfo(partition=p, owner=owners.owner(p), member_id=owners.member_of(p))
            for p in range(state.settings.partitions)
        ],
    )


@router.get(
    "/cluster/stats",
    tags=["cluster"],
    summary="Engine nodes, their partitions and state",
    response_model=ClusterStats,
)
async def stats(request: Request) -> ClusterStats:
    state = gateway_state(request)
    owners = state.live_reads()
    members = []
    assigned: set[int] = set()
    for member, data in await owners.nodes():
        assigned.update(member.partitions)
        rows = data.get("partitions", []) if data else []
        members.append(
            MemberStats(
                member_id=member.member_id,
                url=member.url,
                host=member.host,
                partitions=member.partitions,
                reachable=data is not None,
                node=data.get("node") if data else None,
                restoring=data.get("restoring", []) if data else [],
                partition_stats=[dict(r) for r in rows],
                open_workflows=sum(r["open_workflows"] for r in rows),
                lag=sum(r["lag"] for r in rows),
                process=data.get("process", {}) if data else {},
            )
        )
    return ClusterStats(
        group_state=owners.snapshot.state,
        partitions=state.settings.partitions,
        members=members,
        unassigned_partitions=sorted(set(range(state.settings.partitions)) - assigned),
    )


@router.get(
    "/cluster/workflows/{id}/location",
    tags=["cluster"],
    summary="Partition and owner of a workflow id",
    response_model=WorkflowLocation,
)
async def location(request: Request, id: WorkflowIdPath) -> WorkflowLocation:
    """Computed from the id alone (murmur2, as Kafka partitions the inbox); the workflow
    need not exist."""
    owners = gateway_state(request).live_reads()
    partition = owners.partition(namespaces.qualify(namespace_of(request), id))
    return WorkflowLocation(
        workflow_id=id,
        partition=partition,
        owner=owners.owner(partition),
        member_id=owners.member_of(partition),
        group_state=owners.snapshot.state,
    )


@router.get(
    "/events",
    tags=["cluster"],
    summary="Latest lifecycle events",
    response_model=EventsResponse,
)
async def events(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=PAGE_LIMIT)] = 100,
    workflow_id: Annotated[
        str | None, Query(alias="workflowId", description="Only this workflow's events.")
    ] = None,
) -> EventsResponse:
    """The tail of the public events topic (what consumers of `<prefix>events` read),
    oldest first."""
    state = gateway_state(request)
    namespace = namespace_of(request)
    engine_id = namespaces.qualify(namespace, workflow_id) if workflow_id else None
    partition = state.live_reads().partition(engine_id) if engine_id else None
    found, partial = await state.live_tail().lifecycle_events(limit, engine_id, partition, 2.0, namespace)
    shown = [
        e.model_copy(
            update={
                "workflow_id": namespaces.within(namespace, e.workflow_id),
                **({"data": state.clear(e.data)} if state.codec is not None else {}),
            }
        )
        for e in found
    ]
    return EventsResponse(events=shown, partial=partial)
