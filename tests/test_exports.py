"""The public surface is pinned: changing it is a deliberate edit of this file."""

from __future__ import annotations

import ledgerflow
from ledgerflow import activity, workflow


def test_top_level_exports() -> None:
    assert ledgerflow.__all__ == [
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


def test_workflow_exports() -> None:
    assert workflow.__all__ == [
        "NotInWorkflowError",
        "RetryPolicy",
        "UpdateMethod",
        "WorkflowInfo",
        "continue_as_new",
        "defn",
        "deprecate_patch",
        "execute_activity",
        "execute_activity_method",
        "execute_child_workflow",
        "execute_local_activity",
        "execute_local_activity_method",
        "info",
        "is_replaying",
        "memo",
        "memo_value",
        "now",
        "patched",
        "query",
        "random",
        "run",
        "signal",
        "sleep",
        "update",
        "upsert_search_attributes",
        "uuid4",
        "wait_condition",
        "wait_signal",
    ]


def test_activity_exports() -> None:
    assert activity.__all__ == [
        "ActivityCancelledError",
        "ActivityDefinition",
        "Info",
        "collect",
        "definition_of",
        "defn",
        "heartbeat",
        "info",
        "is_cancelled",
        "raise_complete_async",
    ]


def test_every_exported_name_exists() -> None:
    for module in (ledgerflow, workflow, activity):
        missing = [name for name in module.__all__ if not hasattr(module, name)]
        assert missing == [], f"{module.__name__} exports missing names {missing}"
