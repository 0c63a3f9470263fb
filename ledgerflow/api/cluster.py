"""The /api/v1/cluster routes (partition owners, engine stats, a workflow's location,
membership events) and /api/v1/events (the public lifecycle events topic, and the cluster's
events under the seed system's kinds)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from ledgerflow import namespaces
from ledgerflow.api.auth import namespace_of, principal_of
from ledgerflow.api.models import (
    ClusterEvent,
    ClusterEventsResponse,
    ClusterStats,
    Event,
    EventsResponse,
    MemberStats,
    ShardInfo,
    ShardsResponse,
    WorkflowLocation,
)
from ledgerflow.api.scopes import Scope
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


SEED_KINDS: dict[str, str] = {
    "NODE_JOINED": "member_event",
    "NODE_LEFT": "member_event",
    "PARTITIONS_ASSIGNING": "shard_rebalance",
    "PARTITIONS_REVOKED": "shard_rebalance",
    "PARTITIONS_LOST": "shard_rebalance",
    "PARTITIONS_CLOSED": "shard_rebalance",
    "PARTITIONS_RELOADED": "shard_rebalance",
    "PARTITIONS_ASSIGNED": "workflow_migration",
    "OWNER_FENCED": "workflow_failover",
}
"""The seed system's kind of each cluster event (an assignment that took partitions from a node
that never gave them up is a ``workflow_failover``). Ledgerflow has no leader: ``leader_changed``
is never served."""
KINDS_RULE = r"^[a-z_]{1,64}(,[a-z_]{1,64}){0,31}$"


@router.get(
    "/events",
    tags=["cluster"],
    summary="Latest workflow lifecycle and cluster events",
    response_model=EventsResponse,
)
async def events(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=PAGE_LIMIT)] = 100,
    workflow_id: Annotated[
        str | None, Query(alias="workflowId", description="Only this workflow's events.")
    ] = None,
    kind: Annotated[
        str | None,
        Query(
            pattern=KINDS_RULE,
            description="Only these kinds, comma-separated: seed kinds (member_event, shard_rebalance, "
            "workflow_migration, workflow_failover) and lifecycle types in lower case (workflow_completed).",
        ),
    ] = None,
) -> EventsResponse:
    """The tail of the public events topic (what consumers of `<prefix>events` read) and, for a
    caller with the `admin` scope (which `/cluster/events` needs), the cluster's events under the
    seed system's kinds, merged in time order, oldest first (the latest `limit`). Every event has
    a `kind`; a workflow's events are its namespace's alone, a cluster event names no workflow."""
    state = gateway_state(request)
    namespace = namespace_of(request)
    kinds = set(kind.split(",")) if kind else None
    engine_id = namespaces.qualify(namespace, workflow_id) if workflow_id else None
    partition = state.live_reads().partition(engine_id) if engine_id else None
    merged: list[Event] = []
    partial = False
    if kinds is None or kinds - set(SEED_KINDS.values()):
        found, partial = await state.live_tail().lifecycle_events(limit, engine_id, partition, 2.0, namespace)
        merged += [
            Event(
                kind=e.type.lower(),
                **e.model_dump(exclude={"workflow_id", "data"}),
                workflow_id=namespaces.within(namespace, e.workflow_id),
                data=state.clear(e.data) if state.codec is not None else e.data,
            )
            for e in found
        ]
    if engine_id is None and principal_of(request).allows(Scope.ADMIN):  # as /cluster/events
        for raw in await state.live_tail().cluster_events(limit, 3.0):
            cluster = ClusterEvent.model_validate(raw)
            seed_kind = (
                "workflow_failover" if cluster.failover_from else SEED_KINDS.get(cluster.type, "member_event")
            )
            merged.append(
                Event(
                    kind=seed_kind,
                    **cluster.model_dump(include=set(Event.model_fields) - {"kind"}),
                )
            )
    if kinds is not None:
        merged = [e for e in merged if e.kind in kinds]
    merged.sort(key=lambda e: e.time)
    return EventsResponse(events=merged[-limit:], partial=partial)
