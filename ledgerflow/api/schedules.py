"""Schedules over REST: create, list, describe, update, pause, unpause, trigger, backfill and
delete (the Python client's ``ScheduleHandle`` calls, in the caller's namespace).

The schedule itself travels in its wire format (``ledgerflow/schemas/schedules.py``, the same
JSON as on Kafka, snake_case), as DAG definitions do; each change answers once the schedule's
owner applied it, with the schedule as it is then.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import Field

from ledgerflow import namespaces
from ledgerflow.api.auth import namespace_of
from ledgerflow.api.errors import InvalidRequestError
from ledgerflow.api.models import ApiModel, FieldProblem, RequestModel, ScheduleBinding
from ledgerflow.api.state import BODY_DOCS, GatewayState, error_doc, gateway_state
from ledgerflow.api.writes import send_command
from ledgerflow.errors import ScheduleAlreadyRunningError
from ledgerflow.schedule_client import AsyncScheduleHandle, create, list_entry
from ledgerflow.schemas import commands as c
from ledgerflow.schemas.common import BareId
from ledgerflow.schemas.schedules import (
    OverlapPolicy,
    Schedule,
    ScheduleAction,
    ScheduleDescription,
    ScheduleState,
    UtcTime,
)

router = APIRouter(prefix="/api/v1", tags=["schedules"])
ONE_SCHEDULE: dict[int | str, dict[str, Any]] = {
    404: error_doc("No schedule of this id exists."),
    502: error_doc("The owning engine answered unexpectedly."),
}
"""The responses of a route about one schedule, answered by its owner."""
CHANGE: dict[int | str, dict[str, Any]] = {**ONE_SCHEDULE, **BODY_DOCS}
PAGE = 100


class CreateScheduleRequest(RequestModel):
    schedule_id: BareId = Field(description="The schedule's id; its runs are `<id>-<fire time>`.")
    schedule: Schedule = Field(description="Spec, action, policy and state, in the wire format.")
    trigger_immediately: bool = Field(default=False, description="Also start a run now.")


class NoteRequest(RequestModel):
    note: str = Field(default="", max_length=1000)


class TriggerRequest(RequestModel):
    overlap: OverlapPolicy | None = Field(default=None, description="The schedule's own when absent.")


class BackfillRequest(RequestModel):
    start_at: UtcTime
    end_at: UtcTime
    overlap: OverlapPolicy | None = None


class ScheduleRow(ApiModel):
    schedule_id: str
    workflow_type: str
    paused: bool
    note: str
    next_fire_time: datetime | None
    actions: int
    running: int


def _without_id(items: list[tuple[str, Any]]) -> dict[str, Any]:
    return {k: v for k, v in items if k != "id"}


class ScheduleList(ApiModel):
    schedules: list[ScheduleRow]
    next_page_token: str | None = Field(default=None, description="Pass as `after` for the next page.")


def _handle(request: Request, schedule_id: str) -> AsyncScheduleHandle:
    state = gateway_state(request)
    engine_id = namespaces.qualify(namespace_of(request), schedule_id)

    async def send(key: str, command: c.InboxCommand) -> None:
        await send_command(state, key, command)

    return AsyncScheduleHandle(schedule_id, engine_id, state.live_reads(), send)


async def bind_schedule(request: Request, dag_id: str, binding: ScheduleBinding) -> ScheduleDescription:
    """Create (or replace) the schedule a DAG registration names: the DAG runs on it."""
    handle = _handle(request, binding.schedule_id or dag_id)
    schedule = Schedule(
        action=ScheduleAction(workflow_type=dag_id, input=binding.input),
        spec=binding.spec,
        policy=binding.policy,
        state=ScheduleState(paused=binding.paused),
    )
    try:
        await create(handle, schedule, trigger_immediately=False)
    except ScheduleAlreadyRunningError:
        await handle.update(schedule)
    return await handle.describe()


@router.post(
    "/schedules",
    status_code=201,
    response_model=ScheduleDescription,
    responses={409: error_doc("A schedule of this id exists already."), 502: ONE_SCHEDULE[502], **BODY_DOCS},
    summary="Create a schedule",
)
async def create_schedule(request: Request, body: CreateScheduleRequest) -> ScheduleDescription:
    """409 when the id has a schedule already; 422 naming the field of a bad spec."""
    handle = _handle(request, body.schedule_id)
    await create(handle, body.schedule, body.trigger_immediately)
    return await handle.describe()


@router.get("/schedules", response_model=ScheduleList, summary="List schedules")
async def list_schedules(
    request: Request,
    after: BareId | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = PAGE,
) -> ScheduleList:
    state: GatewayState = gateway_state(request)
    namespace = namespace_of(request)
    engine_after = namespaces.qualify(namespace, after) if after else None
    rows, next_after = await state.live_reads().schedules(namespace, engine_after, limit)
    entries = [list_entry(namespace, row) for row in rows]
    return ScheduleList(
        schedules=[ScheduleRow(schedule_id=e.id, **asdict(e, dict_factory=_without_id)) for e in entries],
        next_page_token=namespaces.within(namespace, next_after) if next_after else None,
    )


@router.get(
    "/schedules/{id}",
    response_model=ScheduleDescription,
    responses=ONE_SCHEDULE,
    summary="Describe a schedule",
)
async def describe_schedule(request: Request, id: BareId) -> ScheduleDescription:
    """The schedule, its next 10 fire times and its last 10 actions with their runs' outcomes."""
    return await _handle(request, id).describe()


@router.put(
    "/schedules/{id}", response_model=ScheduleDescription, responses=CHANGE, summary="Update a schedule"
)
async def update_schedule(request: Request, id: BareId, body: Schedule) -> ScheduleDescription:
    handle = _handle(request, id)
    await handle.update(body)
    return await handle.describe()


@router.delete(
    "/schedules/{id}", status_code=204, responses=ONE_SCHEDULE, summary="Delete a schedule (its runs go on)"
)
async def delete_schedule(request: Request, id: BareId) -> Response:
    await _handle(request, id).delete()
    return Response(status_code=204)


@router.post(
    "/schedules/{id}/pause", response_model=ScheduleDescription, responses=CHANGE, summary="Pause a schedule"
)
async def pause_schedule(request: Request, id: BareId, body: NoteRequest) -> ScheduleDescription:
    handle = _handle(request, id)
    await handle.pause(body.note)
    return await handle.describe()


@router.post(
    "/schedules/{id}/unpause",
    response_model=ScheduleDescription,
    responses=CHANGE,
    summary="Unpause a schedule",
)
async def unpause_schedule(request: Request, id: BareId, body: NoteRequest) -> ScheduleDescription:
    """It fires from now on; what it would have fired while paused is not caught up."""
    handle = _handle(request, id)
    await handle.unpause(body.note)
    return await handle.describe()


@router.post(
    "/schedules/{id}/trigger", response_model=ScheduleDescription, responses=CHANGE, summary="Start a run now"
)
async def trigger_schedule(request: Request, id: BareId, body: TriggerRequest) -> ScheduleDescription:
    handle = _handle(request, id)
    await handle.trigger(body.overlap)
    return await handle.describe()


@router.post(
    "/schedules/{id}/backfill",
    response_model=ScheduleDescription,
    responses=CHANGE,
    summary="Take past fire times now",
)
async def backfill_schedule(request: Request, id: BareId, body: BackfillRequest) -> ScheduleDescription:
    """Every fire time of the spec from `start_at` to `end_at`, taken now under `overlap`."""
    handle = _handle(request, id)
    try:
        await handle.backfill(body.start_at, body.end_at, body.overlap)
    except ValueError as exc:  # more fire times than one backfill takes
        problem = FieldProblem(loc=["body", "endAt"], field="endAt", message=str(exc), type="too_many_fires")
        raise InvalidRequestError([problem]) from None
    return await handle.describe()
