"""Ledgerflow: durable execution on Apache Kafka.

The public surface is small on purpose::

    from ledgerflow import workflow, activity, Client, RetryPolicy
"""

from typing import TYPE_CHECKING, Any

from ledgerflow import activity, workflow
from ledgerflow.errors import (
    ActivityError,
    ApplicationError,
    ChildWorkflowError,
    InvalidIdError,
    LedgerflowError,
    NonDeterminismError,
    OwnerUnavailableError,
    PayloadTooLarge,
    QueryFailedError,
    ScheduleAlreadyRunningError,
    ScheduleNotFoundError,
    VisibilityQueryError,
    WorkflowAlreadyStartedError,
    WorkflowFailedError,
    WorkflowNotFoundError,
    WorkflowUpdateFailedError,
)
from ledgerflow.schemas.common import RetryPolicy
from ledgerflow.schemas.history import WorkflowHistory
from ledgerflow.schemas.schedules import (
    CalendarSpec,
    IntervalSpec,
    Schedule,
    ScheduleAction,
    ScheduleDescription,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleState,
)
from ledgerflow.search_attributes import (
    SearchAttributeKey,
    SearchAttributePair,
    SearchAttributeUpdate,
    TypedSearchAttributes,
)

if TYPE_CHECKING:
    from ledgerflow.async_client import AsyncClient, AsyncWorkflowHandle
    from ledgerflow.client import Client, WorkflowHandle
    from ledgerflow.schedule_client import AsyncScheduleHandle, ScheduleHandle

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    """The clients and their handles, imported on first use: workflow and activity code
    imports ``ledgerflow`` and needs no Kafka client library loaded."""
    if name in ("Client", "WorkflowHandle"):
        from ledgerflow import client

        return getattr(client, name)
    if name in ("AsyncClient", "AsyncWorkflowHandle"):
        from ledgerflow import async_client

        return getattr(async_client, name)
    if name in ("ScheduleHandle", "AsyncScheduleHandle"):
        from ledgerflow import schedule_client

        return getattr(schedule_client, name)
    raise AttributeError(f"module 'ledgerflow' has no attribute {name!r}")


__all__ = [
    "ActivityError",
    "ApplicationError",
    "AsyncClient",
    "AsyncScheduleHandle",
    "AsyncWorkflowHandle",
    "CalendarSpec",
    "ChildWorkflowError",
    "Client",
    "IntervalSpec",
    "InvalidIdError",
    "LedgerflowError",
    "NonDeterminismError",
    "OwnerUnavailableError",
    "PayloadTooLarge",
    "QueryFailedError",
    "RetryPolicy",
    "Schedule",
    "ScheduleAction",
    "ScheduleAlreadyRunningError",
    "ScheduleDescription",
    "ScheduleHandle",
    "ScheduleNotFoundError",
    "SchedulePolicy",
    "ScheduleSpec",
    "ScheduleState",
    "SearchAttributeKey",
    "SearchAttributePair",
    "SearchAttributeUpdate",
    "TypedSearchAttributes",
    "VisibilityQueryError",
    "WorkflowAlreadyStartedError",
    "WorkflowFailedError",
    "WorkflowHandle",
    "WorkflowHistory",
    "WorkflowNotFoundError",
    "WorkflowUpdateFailedError",
    "__version__",
    "activity",
    "workflow",
]
