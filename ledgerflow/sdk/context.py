"""The runtime that ``ledgerflow.workflow``'s functions delegate to.

Outside an activation there is no runtime and every call raises a clear error.
"""

from __future__ import annotations

import contextvars
import random
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from ledgerflow.errors import LedgerflowError
from ledgerflow.schemas.common import JSON, ActivityOptions
from ledgerflow.schemas.dag import DagDefinition
from ledgerflow.schemas.search import SearchAttributeValue
from ledgerflow.search_attributes import TypedSearchAttributes


@dataclass(frozen=True)
class WorkflowInfo:
    """Facts about the running workflow."""

    workflow_id: str
    """As the workflow's callers name it, within its namespace (``workflow.info()``); inside the
    engine, the namespaced id (ledgerflow/namespaces.py)."""
    run_id: str
    workflow_type: str
    partition: int
    dag: DagDefinition | None = None
    namespace: str = "default"
    search_attributes: Mapping[str, SearchAttributeValue] = field(default_factory=dict)
    """The run's search attributes as the wire holds them, with the code's upserts so far."""
    memo: Mapping[str, JSON] = field(default_factory=dict)
    """The run's memo as started, each value as recorded (encoded with a codec): ``workflow.memo()``
    decodes it."""

    @property
    def typed_search_attributes(self) -> TypedSearchAttributes:
        return TypedSearchAttributes.from_wire(self.search_attributes)


class WorkflowRuntime(ABC):
    """What a workflow instance provides to the code it runs."""

    @abstractmethod
    def info(self) -> WorkflowInfo: ...

    @abstractmethod
    def now(self) -> datetime: ...

    @abstractmethod
    def random(self) -> random.Random: ...

    @abstractmethod
    def uuid4(self) -> uuid.UUID: ...

    @abstractmethod
    async def execute_activity(
        self, activity_type: str, args: list[JSON], options: ActivityOptions
    ) -> JSON: ...

    @abstractmethod
    async def sleep(self, seconds: float) -> None: ...

    @abstractmethod
    async def wait_signal(self, name: str, timeout: float | None) -> JSON: ...

    @abstractmethod
    async def wait_condition(self, fn: Callable[[], bool], timeout: float | None) -> None: ...

    @abstractmethod
    async def execute_child_workflow(self, workflow_type: str, workflow_id: str, input: JSON) -> JSON: ...

    @abstractmethod
    def is_replaying(self) -> bool: ...

    @abstractmethod
    def patched(self, patch_id: str) -> bool: ...

    @abstractmethod
    def upsert_search_attributes(self, changes: dict[str, SearchAttributeValue | None]) -> None: ...

    @abstractmethod
    def memo(self) -> dict[str, JSON]: ...


_current: contextvars.ContextVar[WorkflowRuntime | None] = contextvars.ContextVar(
    "ledgerflow_workflow_runtime", default=None
)


class NotInWorkflowError(LedgerflowError):
    """A ``ledgerflow.workflow`` function was called outside a running workflow."""


def current_runtime() -> WorkflowRuntime:
    runtime = _current.get()
    if runtime is None:
        raise NotInWorkflowError(
            "not in a workflow: ledgerflow.workflow functions work only inside workflow code"
        )
    return runtime


def set_runtime(runtime: WorkflowRuntime | None) -> contextvars.Token[WorkflowRuntime | None]:
    return _current.set(runtime)


def reset_runtime(token: contextvars.Token[WorkflowRuntime | None]) -> None:
    _current.reset(token)


class ContinueAsNewRequest(BaseException):
    """Raised by ``workflow.continue_as_new``; ends the run and starts a fresh one."""

    def __init__(self, input: JSON) -> None:
        super().__init__("continue as new")
        self.input = input
