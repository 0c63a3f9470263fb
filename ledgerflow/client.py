"""The synchronous Python client: start, signal, cancel and inspect workflows.

    from ledgerflow import Client

    client = Client(bootstrap="127.0.0.1:9092")
    handle = client.start_workflow("Checkout", order, id="order-42")
    print(handle.result(timeout=30))

It runs :class:`ledgerflow.AsyncClient` on a private event loop in a daemon thread, so the two
take the same paths (a start the engine decides, a result pushed at the commit that closes
the run), raise the same errors and accept the same arguments; ``ledgerflow.async_client``
tells how writes and reads travel. Any thread may call it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from pydantic import BaseModel

from ledgerflow.async_client import (
    START_WAIT,
    AsyncActivityHandle,
    AsyncClient,
    AsyncWorkflowUpdateHandle,
    HistoryPage,
    StartRequest,
)
from ledgerflow.codec.base import PayloadCodec
from ledgerflow.config import PAGE_LIMIT, Settings
from ledgerflow.errors import WorkflowNotFoundError
from ledgerflow.schedule_client import ScheduleHandle, ScheduleListEntry
from ledgerflow.schemas.commands import IdConflictPolicy, IdReusePolicy
from ledgerflow.schemas.dag import DagDefinition
from ledgerflow.schemas.events import HistoryEvent
from ledgerflow.schemas.history import WorkflowHistory
from ledgerflow.schemas.owner import UpdateOutcomeJson
from ledgerflow.schemas.schedules import Schedule
from ledgerflow.schemas.tasks import TaskToken, read_task_token
from ledgerflow.search_attributes import TypedSearchAttributes

__all__ = ["ActivityHandle", "Client", "HistoryPage", "WorkflowHandle", "WorkflowUpdateHandle"]

T = TypeVar("T")


class _LoopThread:
    """A private event loop in a daemon thread, on which this synchronous Client runs its
    ``AsyncClient``. Any thread may call ``run``."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="ledgerflow-client", daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if threading.current_thread() is self._thread:
            coroutine.close()
            raise RuntimeError(
                "a synchronous Client was called from its own event loop (from code it runs, such "
                "as an async activity in the test environment): use an AsyncClient there"
            )
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def close(self) -> None:
        """Cancel what is still running on the loop (a caller blocked in it gets
        ``CancelledError``), then stop it."""
        self._loop.call_soon_threadsafe(self._cancel_all)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def _cancel_all(self) -> None:
        for task in asyncio.all_tasks(self._loop):
            task.cancel()


class Client:
    """Talks to Ledgerflow through Kafka (writes) and the owning engine node (reads); every
    method returns when its work is done (``AsyncClient`` has the same ones, awaitable)."""

    def __init__(
        self,
        bootstrap: str | None = None,
        prefix: str | None = None,
        *,
        settings: Settings | None = None,
        partitions: int | None = None,
        engine_token: str | None = None,
        codec: PayloadCodec | None = None,
        namespace: str | None = None,
    ) -> None:
        """The options are ``AsyncClient``'s: ``engine_token`` (by default from the
        ``engine_token_file`` setting), ``codec`` (by default from ``codec_keys_file``) and
        ``namespace`` (by default ``$LEDGERFLOW_NAMESPACE``, else ``default``)."""
        core = AsyncClient(
            bootstrap,
            prefix,
            settings=settings,
            partitions=partitions,
            engine_token=engine_token,
            codec=codec,
            namespace=namespace,
        )
        self._async: AsyncClient = core
        self._loop = _LoopThread()
        self._closed = False
        try:
            self._run(core.connect_now())
        except BaseException:
            self.close()
            raise

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self._loop.run(coroutine)

    @property
    def namespace(self) -> str:
        return self._async.namespace

    @property
    def codec(self) -> PayloadCodec | None:
        return self._async.codec

    @property
    def settings(self) -> Settings:
        return self._async.settings

    @settings.setter
    def settings(self, settings: Settings) -> None:
        """New settings (say, more partitions after a resharding) for writes and reads alike."""
        self._async.settings = settings

    def close(self) -> None:
        """Flush what was sent and let go of the reads' connections and thread (once)."""
        if self._closed:
            return
        self._closed = True
        self._run(self._async.close())
        self._loop.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ writes
    def send(self, key: str, command: BaseModel, partition: int | None = None) -> None:
        """Produce one inbox command and wait until Kafka acknowledged it (to ``partition``, else
        the partition of ``key``). Raises ``PayloadTooLarge`` for a command the engine would
        refuse for its size."""
        self._run(self._async.send(key, command, partition))

    def get_async_activity_handle(self, task_token: str) -> ActivityHandle:
        """Complete, fail or heartbeat an activity attempt that called
        ``activity.raise_complete_async()``, named by its ``activity.info().task_token``.

        Raises ``ValueError`` for a string that is not a task token."""
        return ActivityHandle(AsyncActivityHandle(self._async, read_task_token(task_token)), self._run)

    def start_workflow(
        self,
        workflow: Any,
        input: Any = None,
        *,
        id: str,
        execution_timeout: float | None = None,
        request_id: str | None = None,
        start_signal: str | Callable[..., Any] | None = None,
        start_signal_args: list[Any] | None = None,
        id_conflict_policy: IdConflictPolicy = "use_existing",
        id_reuse_policy: IdReusePolicy = "allow_duplicate",
        search_attributes: TypedSearchAttributes | None = None,
        memo: Mapping[str, Any] | None = None,
    ) -> WorkflowHandle:
        """Start a run and return its handle once the engine decided the start (see
        ``AsyncClient.start_workflow``: id policies, ``request_id``, signal-with-start, search
        attributes and memo)."""
        handle = self._run(
            self._async.start_workflow(
                workflow,
                input,
                id=id,
                execution_timeout=execution_timeout,
                request_id=request_id,
                start_signal=start_signal,
                start_signal_args=start_signal_args,
                id_conflict_policy=id_conflict_policy,
                id_reuse_policy=id_reuse_policy,
                search_attributes=search_attributes,
                memo=memo,
            )
        )
        return WorkflowHandle(
            self, id, handle.run_id, handle.already_started, handle.result_type, start=handle.start
        )

    def signal(
        self,
        workflow_id: str,
        signal: str | Callable[..., Any],
        payload: Any = None,
        request_id: str | None = None,
    ) -> None:
        """Send a signal (by name, or its ``@workflow.signal`` method) to the workflow's open run."""
        self._run(self._async.signal(workflow_id, signal, payload, request_id))

    def execute_update(
        self,
        workflow_id: str,
        update: str | Callable[..., Any],
        *args: Any,
        id: str | None = None,
        timeout: float = 60.0,
        result_type: type[T] | None = None,
    ) -> Any:
        """Run an update on the workflow's open run and return its handler's result (see
        ``AsyncClient.execute_update``)."""
        return self._run(
            self._async.execute_update(
                workflow_id, update, *args, id=id, timeout=timeout, result_type=result_type
            )
        )

    def start_update(
        self,
        workflow_id: str,
        update: str | Callable[..., Any],
        *args: Any,
        id: str | None = None,
        timeout: float = 60.0,
        run_id: str | None = None,
    ) -> WorkflowUpdateHandle:
        """Send an update and return its handle once its validator accepted it (see
        ``AsyncClient.start_update``)."""
        handle = self._run(
            self._async.start_update(workflow_id, update, *args, id=id, timeout=timeout, run_id=run_id)
        )
        return WorkflowUpdateHandle(workflow_id, handle.update_id, handle, self._run)

    def update_outcome(
        self, workflow_id: str, update_id: str, timeout: float, until_done: bool, run_id: str | None = None
    ) -> UpdateOutcomeJson:
        """See ``AsyncClient.update_outcome``."""
        return self._run(self._async.update_outcome(workflow_id, update_id, timeout, until_done, run_id))

    def cancel(self, workflow_id: str, reason: str = "") -> None:
        self._run(self._async.cancel(workflow_id, reason))

    def terminate(self, workflow_id: str, reason: str = "") -> None:
        self._run(self._async.terminate(workflow_id, reason))

    def reset(
        self,
        workflow_id: str,
        to_event: int,
        *,
        run_id: str | None = None,
        reason: str = "",
        timeout: float = 10.0,
    ) -> WorkflowHandle:
        """Reset the latest run (or ``run_id``) to its event ``to_event`` and return the new
        run's handle (see ``AsyncClient.reset``)."""
        handle = self._run(
            self._async.reset(workflow_id, to_event, run_id=run_id, reason=reason, timeout=timeout)
        )
        return WorkflowHandle(self, workflow_id, handle.run_id)

    def register_dag(self, definition: DagDefinition | dict[str, Any]) -> DagDefinition:
        """Register (or replace) a DAG definition (see ``AsyncClient.register_dag``)."""
        return self._run(self._async.register_dag(definition))

    # ------------------------------------------------------------------- reads
    def describe(self, workflow_id: str) -> dict[str, Any]:
        """Status of the workflow's latest run (a dict as the REST API returns it), its payloads
        decoded."""
        return self._run(self._async.describe(workflow_id))

    def history_page(
        self, workflow_id: str, run_id: str | None = None, offset: int = 0, limit: int = PAGE_LIMIT
    ) -> HistoryPage:
        """Events ``offset + 1`` to ``offset + limit`` of the latest run (or of ``run_id``)."""
        return self._run(self._async.history_page(workflow_id, run_id, offset, limit))

    def history(self, workflow_id: str, run_id: str | None = None, offset: int = 0) -> list[HistoryEvent]:
        """The history of the latest run (or of ``run_id``) after its first ``offset`` events."""
        return self._run(self._async.history(workflow_id, run_id, offset))

    def fetch_history(self, workflow_id: str, run_id: str | None = None) -> WorkflowHistory:
        """The whole history of the latest run (or of ``run_id``), naming its run."""
        return self._run(self._async.fetch_history(workflow_id, run_id))

    def query(self, workflow_id: str, query: str | Callable[..., Any], *args: Any) -> Any:
        """Ask the run a query (by name, or its ``@workflow.query`` method). Raises
        ``QueryFailedError`` when it cannot be answered."""
        return self._run(self._async.query(workflow_id, query, *args))

    def list_page(
        self,
        status: str | None = None,
        workflow_type: str | None = None,
        limit: int = 100,
        after: str | None = None,
        *,
        query: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page of latest runs across every engine node, or of those a visibility ``query``
        matches (see ``AsyncClient.list_page``)."""
        return self._run(self._async.list_page(status, workflow_type, limit, after, query=query))

    def list_workflows(
        self,
        status: str | None = None,
        workflow_type: str | None = None,
        limit: int = 100,
        after: str | None = None,
        *,
        query: str | None = None,
    ) -> list[dict[str, Any]]:
        """Up to ``limit`` latest runs after ``after``, ordered by workflow id, or those ``query``
        matches in its order."""
        return self._run(self._async.list_workflows(status, workflow_type, limit, after, query=query))

    def count_workflows(self, query: str = "") -> int:
        """How many workflows' latest runs ``query`` matches (see ``AsyncClient.count_workflows``)."""
        return self._run(self._async.count_workflows(query))

    def create_schedule(
        self, id: str, schedule: Schedule, *, trigger_immediately: bool = False
    ) -> ScheduleHandle:
        """Create schedule ``id`` (see ``AsyncClient.create_schedule``)."""
        created = self._run(
            self._async.create_schedule(id, schedule, trigger_immediately=trigger_immediately)
        )
        return ScheduleHandle(self._run, created)

    def get_schedule_handle(self, id: str) -> ScheduleHandle:
        return ScheduleHandle(self._run, self._async.get_schedule_handle(id))

    def list_schedules(self) -> list[ScheduleListEntry]:
        return self._run(self._async.list_schedules())

    def cluster(self) -> list[dict[str, Any]]:
        """Every engine node with the partitions it owns and their state."""
        return self._run(self._async.cluster())

    def result(
        self,
        workflow_id: str,
        timeout: float = 60.0,
        run_id: str | None = None,
        result_type: Any = None,
        *,
        start: StartRequest | None = None,
    ) -> Any:
        """Wait for a run to close; return its result (converted to ``result_type`` if given) or
        raise ``WorkflowFailedError`` (see ``AsyncClient.result``)."""
        return self._run(self._async.result(workflow_id, timeout, run_id, result_type, start=start))


@dataclass(frozen=True)
class WorkflowHandle:
    """A reference to one workflow id (and the run a start returned)."""

    client: Client
    workflow_id: str
    run_id: str | None
    already_started: bool = False
    """True when a start found this workflow already running and returned that run."""
    result_type: Any = None
    """What ``result`` converts the run's result to: the workflow's return annotation when it
    was started by its class or run method."""
    start: StartRequest | None = field(default=None, repr=False)
    """The start that made this handle, while the engine had not decided it."""

    def result(self, timeout: float = 60.0, result_type: Any = None) -> Any:
        """Wait for this handle's run (following continue-as-new) to close; return its result
        (converted to ``result_type``, else to the handle's)."""
        return self.client.result(
            self.workflow_id,
            timeout=timeout,
            run_id=self.run_id,
            result_type=result_type or self.result_type,
            start=self.start,
        )

    def describe(self) -> dict[str, Any]:
        return self._after_start(lambda: self.client.describe(self.workflow_id))

    def signal(self, signal: str | Callable[..., Any], payload: Any = None) -> None:
        """Send a signal (by name, or its ``@workflow.signal`` method) to the open run."""
        self.client.signal(self.workflow_id, signal, payload)

    def query(self, query: str | Callable[..., Any], *args: Any) -> Any:
        """Ask the run a query (by name, or its ``@workflow.query`` method)."""
        return self._after_start(lambda: self.client.query(self.workflow_id, query, *args))

    def execute_update(
        self, update: str | Callable[..., Any], *args: Any, id: str | None = None, timeout: float = 60.0
    ) -> Any:
        """Run an update (by name, or its ``@workflow.update`` method) on this handle's run and
        return its result (see ``Client.execute_update``)."""
        return self.start_update(update, *args, id=id, timeout=timeout).result(timeout)

    def start_update(
        self, update: str | Callable[..., Any], *args: Any, id: str | None = None, timeout: float = 60.0
    ) -> WorkflowUpdateHandle:
        """Send an update to this handle's run and wait until its validator accepted it (see
        ``Client.start_update``)."""
        return self.client.start_update(
            self.workflow_id, update, *args, id=id, timeout=timeout, run_id=self.run_id
        )

    def _after_start(self, read: Callable[[], T]) -> T:
        """``read()``, waiting (bounded) for the start this handle was made by when the engine
        had not applied it yet when the handle was returned."""
        deadline = time.monotonic() + START_WAIT
        while True:
            try:
                return read()
            except WorkflowNotFoundError:
                if self.start is None or time.monotonic() > deadline:
                    raise
            time.sleep(0.02)

    def cancel(self, reason: str = "") -> None:
        self.client.cancel(self.workflow_id, reason)

    def terminate(self, reason: str = "") -> None:
        self.client.terminate(self.workflow_id, reason)

    def history(self) -> list[HistoryEvent]:
        return self.client.history(self.workflow_id, self.run_id)

    def fetch_history(self) -> WorkflowHistory:
        return self.client.fetch_history(self.workflow_id, self.run_id)


@dataclass(frozen=True)
class WorkflowUpdateHandle:
    """An update sent to a workflow and accepted by its validator."""

    workflow_id: str
    update_id: str
    _handle: AsyncWorkflowUpdateHandle = field(repr=False)
    _run: Callable[[Coroutine[Any, Any, Any]], Any] = field(repr=False)

    def result(self, timeout: float = 60.0, result_type: type[T] | None = None) -> Any:
        """Wait for the update's handler to end; return its result, or raise
        ``WorkflowUpdateFailedError`` with what it raised."""
        return self._run(self._handle.result(timeout, result_type))


@dataclass(frozen=True)
class ActivityHandle:
    """An activity attempt completed outside its worker (``Client.get_async_activity_handle``;
    ``ledgerflow.async_client.AsyncActivityHandle`` is its awaitable twin).

    What is sent counts only while that attempt is the running one: after its timeout, a retry
    or a cancel, the engine drops it (as it drops any late result)."""

    _handle: AsyncActivityHandle = field(repr=False)
    _run: Callable[[Coroutine[Any, Any, Any]], Any] = field(repr=False)

    @property
    def token(self) -> TaskToken:
        return self._handle.token

    def complete(self, result: Any = None) -> None:
        """The attempt's result."""
        self._run(self._handle.complete(result))

    def fail(self, error: BaseException | str, *, non_retryable: bool = False) -> None:
        """The attempt failed (its retry policy decides what follows), with ``error``'s type and
        message."""
        self._run(self._handle.fail(error, non_retryable=non_retryable))

    def heartbeat(self, details: Any = None) -> None:
        """The attempt is alive (its heartbeat timeout starts over); ``details`` reach a retry."""
        self._run(self._handle.heartbeat(details))
