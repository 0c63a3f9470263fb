"""Async activity completion over REST: an activity that called ``activity.raise_complete_async()``
is completed, failed or kept alive by whoever holds its task token (a person approving, a
webhook), as ``Client.get_async_activity_handle`` does from Python.

Each route writes a task result to the inbox, as a worker would; the engine takes it only while
that attempt is the running one. A token names a workflow: the caller must be allowed in its
namespace.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import APIRouter, Request
from pydantic import BaseModel

from ledgerflow import namespaces
from ledgerflow.api.auth import namespace_of
from ledgerflow.api.errors import InvalidRequestError, NamespaceForbiddenError
from ledgerflow.api.models import (
    ActivityCompletion,
    ActivityFailureRequest,
    ActivityHeartbeatRequest,
    CommandAccepted,
    CommandKind,
    FieldProblem,
)
from ledgerflow.api.state import BODY_DOCS, gateway_state
from ledgerflow.api.writes import send_command
from ledgerflow.schemas import commands as c
from ledgerflow.schemas.common import Failure
from ledgerflow.schemas.tasks import TaskToken, read_task_token

router = APIRouter(prefix="/api/v1")


async def _report(
    request: Request, token_text: str, kind: CommandKind, build: Callable[[TaskToken], BaseModel]
) -> CommandAccepted:
    try:
        token = read_task_token(token_text)
    except ValueError as exc:
        problem = FieldProblem(
            loc=["body", "taskToken"], field="taskToken", message=str(exc), type="invalid_token"
        )
        raise InvalidRequestError([problem]) from None
    namespace = namespaces.namespace_of(token.workflow_id)
    if namespace != namespace_of(request):
        raise NamespaceForbiddenError(namespace)
    partition = await send_command(gateway_state(request), token.workflow_id, build(token))
    return CommandAccepted(
        workflow_id=namespaces.within(namespace, token.workflow_id), command=kind, partition=partition
    )


@router.post(
    "/activities/complete",
    tags=["activities"],
    summary="Complete an activity attempt by its task token",
    status_code=202,
    response_model=CommandAccepted,
    responses=BODY_DOCS,
)
async def complete(request: Request, body: ActivityCompletion) -> CommandAccepted:
    """The result of an attempt that called `activity.raise_complete_async()`; dropped by the
    engine when that attempt is no longer the running one (timed out, retried, cancelled)."""
    result = gateway_state(request).encoded(body.result)
    return await _report(
        request,
        body.task_token,
        "complete",
        lambda t: c.TaskCompleted(**t.attempt_fields(), result=result),
    )


@router.post(
    "/activities/fail",
    tags=["activities"],
    summary="Fail an activity attempt by its task token",
    status_code=202,
    response_model=CommandAccepted,
    responses=BODY_DOCS,
)
async def fail(request: Request, body: ActivityFailureRequest) -> CommandAccepted:
    """The attempt failed: its activity's retry policy decides what follows (`nonRetryable`
    ends the activity now)."""
    failure = Failure(type=body.type, message=body.message, non_retryable=body.non_retryable)
    return await _report(
        request,
        body.task_token,
        "fail",
        lambda t: c.TaskFailed(**t.attempt_fields(), failure=failure),
    )


@router.post(
    "/activities/heartbeat",
    tags=["activities"],
    summary="Heartbeat an activity attempt by its task token",
    status_code=202,
    response_model=CommandAccepted,
    responses=BODY_DOCS,
)
async def heartbeat(request: Request, body: ActivityHeartbeatRequest) -> CommandAccepted:
    """The attempt is alive: its heartbeat timeout starts over, and `details` reach a retry."""
    details = gateway_state(request).encoded(body.details)
    return await _report(
        request,
        body.task_token,
        "heartbeat",
        lambda t: c.TaskHeartbeat(**t.attempt_fields(), details=details),
    )
