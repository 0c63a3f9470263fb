"""The asyncio client: start, signal, update, cancel and inspect workflows without blocking a loop.

    from ledgerflow import AsyncClient

    client = await AsyncClient.connect(bootstrap="127.0.0.1:9092")
    handle = await client.start_workflow("Checkout", order, id="order-42")
    print(await handle.result())

Writes go to the inbox topic and return once Kafka acknowledged them (by every in-sync
replica); writes made together share librdkafka's batches. Reads go to the engine node that
owns the workflow's partition, with the engine token (``engine_token``, or the file
``LEDGERFLOW_ENGINE_TOKEN_FILE`` names) when the engines require one.

**A start is decided by the engine.** ``start_workflow`` sends the start and then waits (a long
poll of the owner, answered at the commit that applied it) for what the engine made of it: the
run it opened, the open run it found (``already_started``), or why it refused it
(``WorkflowAlreadyStartedError``, ``CapacityError``). Nothing is read before the start is sent,
so two clients starting one id race only inside the engine, which keeps one open run.

**A result is pushed, not polled**: ``result`` is a long poll the owner answers at the commit
that closed the run.

The synchronous :class:`ledgerflow.Client` runs this client on a private event loop: both take
the same paths, raise the same errors and accept the same arguments. An id that breaks the id
rule raises ``InvalidIdError`` before anything is sent. With a payload codec (``codec``, or the
key file ``LEDGERFLOW_CODEC_KEYS_FILE`` names), what is sent is encoded and what is read decoded.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from pydantic import BaseModel

from ledgerflow import namespaces
from ledgerflow.codec.base import PayloadCodec
from ledgerflow.codec.envelope import decode, decode_tree, encode, encode_failure
from ledgerflow.codec.keyfile import load_codec
from ledgerflow.config import PAGE_LIMIT, Settings
from ledgerflow.converter import from_json, payload_of, to_json
from ledgerflow.dag.registration import definition_problems
from ledgerflow.engine_token import token_from
from ledgerflow.errors import (
    CapacityError,
    LedgerflowError,
    OwnerResponseError,
    OwnerUnavailableError,
    RunLimitError,
    StartRejectedError,
    WorkflowAlreadyStartedError,
    WorkflowFailedError,
    WorkflowNotFoundError,
    WorkflowUpdateFailedError,
    check_id,
    failure_from_exception,
)
from ledgerflow.kafka_writes import KafkaWriter
from ledgerflow.owner_reads import OwnerReads
from ledgerflow.owner_watch import OwnerWatch
from ledgerflow.reset_points import children_refusal, reset_refusal
from ledgerflow.schedule_client import AsyncScheduleHandle, ScheduleListEntry
from ledgerflow.schedule_client import create as create_schedule
from ledgerflow.schedule_client import list_all as list_all_schedules
from ledgerflow.schemas import commands as c
from ledgerflow.schemas.commands import IdConflictPolicy, IdReusePolicy
from ledgerflow.schemas.common import Failure
from ledgerflow.schemas.dag import DagDefinition, DagDefinitionError
from ledgerflow.schemas.events import (
    HistoryEvent,
    WorkflowCompleted,
    WorkflowContinuedAsNew,
    WorkflowReset,
    history_event_adapter,
)
from ledgerflow.schemas.history import WorkflowHistory
from ledgerflow.schemas.owner import (
    OwnedRunJson,
    StartOutcomeJson,
    StartRefusalJson,
    UpdateOutcomeJson,
    UpdateStatusJson,
)
from ledgerflow.schemas.schedules import Schedule
from ledgerflow.schemas.tasks import TaskToken, read_task_token
from ledgerflow.sdk.definition import QUERY_ATTR, SIGNAL_ATTR, UPDATE_ATTR, definition_of
from ledgerflow.search_attributes import TypedSearchAttributes
from ledgerflow.visibility import order_of_cursor
from ledgerflow.visibility import parse as parse_query

CLOSED = ("COMPLETED", "FAILED", "CANCELED", "TERMINATED")
RESULT_POLL_HOLD = 10.0
"""Seconds the owner holds one long poll of ``result`` (it answers at once when the run closes)."""
UNDECIDED_POLL_HOLD = 1.0
"""Seconds one long poll of ``result`` is held while the start of its run is undecided (between
two looks for the engine's decision)."""
START_DECISION_WAIT = 10.0
"""Seconds ``start_workflow`` waits for the engine's decision on a start it sent. Past that (no
engine owns the partition yet, say) it returns the handle of the run it asked for: the start is
in Kafka and will be decided when an engine reaches it, and ``result`` reports a refusal then."""
NAMESPACE_ENV = "LEDGERFLOW_NAMESPACE"
OWNER_WAIT = 3.0
"""Seconds a read waits for a partition's owner to appear (during a rebalance)."""
OWNER_ANSWER_TIMEOUT = 30.0
"""Seconds an owner may take to answer a read (a query may replay a long history)."""
START_WAIT = 5.0
"""Seconds a handle's read waits for the start that made the handle to be applied."""
WRITE_TIMEOUT = 10.0
"""Seconds a write may wait for Kafka's acknowledgement."""
RETRY_PAUSE = 0.05
"""Seconds between two reads that found nothing new (an owner away, a run not started yet)."""
T = TypeVar("T")


class Waits(Protocol):
    """Where the client's long polls go (``OwnerWatch``; the test environment answers them itself)."""

    async def started(
        self, workflow_id: str, request_id: str, run_id: str, seconds: float
    ) -> StartOutcomeJson: ...

    async def closed(self, workflow_id: str, run_id: str | None, seconds: float) -> OwnedRunJson: ...

    async def close(self) -> None: ...


@dataclass(frozen=True)
class HistoryPage:
    """Some consecutive events of a run, and how many it has."""

    run_id: str
    total: int
    events: list[HistoryEvent]


@dataclass(frozen=True)
class StartRequest:
    """A start whose decision the engine had not made when ``start_workflow`` returned."""

    request_id: str
    run_id: str


class AsyncClient:
    """Talks to Ledgerflow through Kafka (writes) and the owning engine node (reads), on the
    caller's event loop. Made by ``await AsyncClient.connect(...)``; close it with
    ``await client.close()`` (or ``async with``)."""

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
        """Not connected yet: ``connect`` makes and connects one. ``engine_token``: the engines'
        HTTP token; by default the one in the file the ``engine_token_file`` setting (env
        ``LEDGERFLOW_ENGINE_TOKEN_FILE``) names, if any. ``codec``: the payload codec; by default
        the one of the ``codec_keys_file`` setting. ``namespace``: where the ids and DAG
        definitions this client names live (an id written ``<namespace>/<id>`` names another
        namespace's run: the client holds Kafka credentials, which reach the whole deployment).
        By default ``$LEDGERFLOW_NAMESPACE``, else ``default``."""
        namespace = namespace or os.environ.get(NAMESPACE_ENV) or namespaces.DEFAULT
        if not namespaces.is_valid(namespace):
            raise ValueError(f"namespace {namespace!r}: a namespace is {namespaces.RULE}")
        self.namespace = namespace
        base = settings or Settings()
        overrides: dict[str, Any] = {}
        if bootstrap is not None:
            overrides["bootstrap"] = bootstrap
        if prefix is not None:
            overrides["prefix"] = prefix
        if partitions is not None:
            overrides["partitions"] = partitions
        self._settings = base.model_copy(update=overrides)
        self._writer = KafkaWriter(self._settings, WRITE_TIMEOUT, "ledgerflow-client")
        token = engine_token if engine_token is not None else token_from(self._settings.engine_token_file)
        self.codec = codec if codec is not None else load_codec(self._settings)
        # Patient where the gateway is not: a script reading right after a rebalance waits for
        # the partition's new owner (up to OWNER_WAIT s) instead of failing at once.
        self._reads = OwnerReads(
            self._settings,
            token,
            budget=OWNER_WAIT,
            ttl=1.0,
            attempts=1_000,
            pause=0.1,
            request_timeout=OWNER_ANSWER_TIMEOUT,
        )
        self._waits: Waits = OwnerWatch(self._reads)
        self._connected = False
        self._closed = False

    @classmethod
    async def connect(
        cls,
        bootstrap: str | None = None,
        prefix: str | None = None,
        **options: Any,
    ) -> AsyncClient:
        """A connected client (the options are ``__init__``'s)."""
        client = cls(bootstrap, prefix, **options)
        try:
            await client.connect_now()
        except BaseException:
            await client.close()
            raise
        return client

    async def connect_now(self) -> None:
        """Connect a client made by ``AsyncClient(...)`` (``connect`` and ``async with`` do; any
        method does on first use)."""
        await self._connect()

    async def _connect(self) -> None:
        if not self._connected:
            await self._reads.start(background=False)
            self._connected = True

    @property
    def settings(self) -> Settings:
        return self._settings

    @settings.setter
    def settings(self, settings: Settings) -> None:
        """New settings (say, more partitions after a resharding) for writes and reads alike."""
        self._settings = settings
        self._reads.settings = settings

    async def close(self) -> None:
        """Flush what was sent and let go of the reads' connections (once)."""
        if self._closed:
            return
        self._closed = True
        await asyncio.to_thread(self._writer.close)
        await self._waits.close()
        await self._reads.close()

    async def __aenter__(self) -> AsyncClient:
        await self._connect()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ------------------------------------------------------------------ writes
    async def send(self, key: str, command: BaseModel, partition: int | None = None) -> None:
        """Produce one inbox command and wait until Kafka acknowledged it (to ``partition``, else
        the partition of ``key``).

        Raises ``PayloadTooLarge`` for a command the engine would refuse for its size.
        """
        value = command.model_dump_json(by_alias=True).encode()
        self.settings.check_size(
            "max_payload_bytes", len(value), lambda: f"the {type(command).__name__} for {key!r}"
        )
        if partition is None:
            partition = self.settings.partition_of(key)
        await self._write(self.settings.topic("inbox"), key, value, partition)

    async def _write(self, topic: str, key: str, value: bytes, partition: int | None = None) -> None:
        """The one way records leave this client (the in-process test environment replaces it)."""
        await self._writer.send(topic, key, value, partition)

    def get_async_activity_handle(self, task_token: str) -> AsyncActivityHandle:
        """Complete, fail or heartbeat an activity attempt that called
        ``activity.raise_complete_async()``, named by its ``activity.info().task_token``.

        Raises ``ValueError`` for a string that is not a task token."""
        return AsyncActivityHandle(self, read_task_token(task_token))

    async def start_workflow(
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
    ) -> AsyncWorkflowHandle:
        """Start a run; if one is open for ``id`` already, return it with ``already_started``.

        ``search_attributes`` find the run in ``list_workflows(query=...)``; ``memo`` is shown
        by ``describe`` (each value converted like an input, encoded with the codec).

        ``id_conflict_policy``, when a run of ``id`` is open: return it (``use_existing``), raise
        ``WorkflowAlreadyStartedError`` (``fail``), or terminate it and start (``terminate_existing``).
        ``id_reuse_policy``, when the latest run of ``id`` is closed: start (``allow_duplicate``),
        start only if it did not complete (``allow_duplicate_failed_only``), or raise
        ``WorkflowAlreadyStartedError`` (``reject_duplicate``). The engine decides, when the
        start reaches it: a start racing another is held to them too.

        ``request_id`` makes the start idempotent: sent again, it starts nothing and returns the
        run the first one led to. A start refused for capacity raises ``CapacityError`` and may be
        sent again with the same ``request_id``.

        With ``start_signal`` (signal-with-start): the signal (``start_signal_args`` its arguments)
        goes to the open run of ``id`` if there is one, else to the run this starts, once its code
        has run to its first wait. Either way it is sent, and never lost to a start that races it.
        """
        engine_id = self._engine_id(id)
        if request_id is not None:
            check_id("request id", request_id)
        if start_signal is not None and id_conflict_policy == "fail":
            raise ValueError(
                "a signal-with-start goes to the open run: id_conflict_policy='fail' cannot be kept"
            )
        definition = None if isinstance(workflow, str) else definition_of(workflow)
        name = definition.name if definition is not None else workflow
        typed = definition.result_type if definition is not None else None
        signal = None
        if start_signal is not None:
            signal = c.StartSignal(
                name=handler_name(start_signal, SIGNAL_ATTR),
                payload=encode(self.codec, to_json(payload_of(start_signal_args or []))),
            )
        await self._connect()  # before the send: what follows it must not fail for want of it
        # A new run id for every send, even of one request id: a refusal the engine recorded for
        # an earlier send of the request is told apart from the decision on this one.
        run_id = str(uuid.uuid4())
        request = request_id or run_id
        await self.send(
            engine_id,
            c.StartWorkflow(
                workflow_id=engine_id,
                workflow_type=name,
                input=encode(self.codec, to_json(input)),
                run_id=run_id,
                execution_timeout=execution_timeout,
                request_id=request,
                start_signal=signal,
                id_conflict_policy=id_conflict_policy,
                id_reuse_policy=id_reuse_policy,
                search_attributes=search_attributes.wire() if search_attributes else {},
                memo={k: encode(self.codec, to_json(v)) for k, v in (memo or {}).items()},
            ),
        )
        outcome = await self._start_decision(engine_id, request, run_id, START_DECISION_WAIT)
        if outcome is None:
            return AsyncWorkflowHandle(
                self, id, run_id, result_type=typed, start=StartRequest(request, run_id)
            )
        resolved = str(outcome["run_id"])
        return AsyncWorkflowHandle(self, id, resolved, already_started=resolved != run_id, result_type=typed)

    async def _start_decision(
        self, engine_id: str, request_id: str, run_id: str, wait: float
    ) -> StartOutcomeJson | None:
        """The engine's decision on the start sent as ``run_id`` with ``request_id``, waited for up
        to ``wait`` seconds; None when there is none yet, or it cannot be read (the start is in
        Kafka already: its handle learns the decision later, through ``result``). Raises the
        engine's refusal."""
        await self._connect()
        deadline = time.monotonic() + wait
        while True:
            remaining = max(0.0, deadline - time.monotonic())
            try:
                outcome = await self._waits.started(engine_id, request_id, run_id, remaining)
            except WorkflowNotFoundError:
                return None  # an engine from before this route: it cannot tell
            except (OwnerUnavailableError, OwnerResponseError):
                outcome = None  # no owner now, or it failed to answer: ask again until the wait ends
            if outcome is not None:
                refusal = outcome["refusal"]
                if refusal is not None and refusal["start_run_id"] in (None, run_id):
                    raise _refusal_error(self._shown(engine_id), outcome["partition"], refusal)
                if outcome["applied"]:
                    if outcome["run_id"] is None:
                        raise LedgerflowError(
                            f"request id {request_id!r} of {self._shown(engine_id)!r} was used by "
                            "another command, not a start: nothing was started"
                        )
                    return outcome
            if time.monotonic() >= deadline:
                return None
            await asyncio.sleep(RETRY_PAUSE)

    async def signal(
        self,
        workflow_id: str,
        signal: str | Callable[..., Any],
        payload: Any = None,
        request_id: str | None = None,
    ) -> None:
        """Send a signal (by name, or its ``@workflow.signal`` method) to the workflow's open run."""
        name = handler_name(signal, SIGNAL_ATTR)
        engine_id = self._engine_id(workflow_id)
        if request_id is not None:
            check_id("request id", request_id)
        await self.send(
            engine_id,
            c.SignalWorkflow(
                workflow_id=engine_id,
                name=name,
                payload=encode(self.codec, to_json(payload)),
                request_id=request_id or str(uuid.uuid4()),
            ),
        )

    async def execute_update(
        self,
        workflow_id: str,
        update: str | Callable[..., Any],
        *args: Any,
        id: str | None = None,
        timeout: float = 60.0,
        result_type: type[T] | None = None,
    ) -> Any:
        """Run an update (by name, or its ``@workflow.update`` method) on the workflow's open run and
        return its handler's result. Raises ``WorkflowUpdateFailedError`` when its validator
        rejected it or its handler raised."""
        handle = await self.start_update(workflow_id, update, *args, id=id, timeout=timeout)
        return await handle.result(timeout, result_type)

    async def start_update(
        self,
        workflow_id: str,
        update: str | Callable[..., Any],
        *args: Any,
        id: str | None = None,
        timeout: float = 60.0,
        run_id: str | None = None,
    ) -> AsyncWorkflowUpdateHandle:
        """Send an update and wait until the engine applied it: return its handle once its
        validator accepted it, raise ``WorkflowUpdateFailedError`` when it rejected it. ``id``
        (default: a new one) makes the update idempotent: sent twice, it runs once. ``run_id``:
        the run it is meant for (a handle's), which the engine may not have started yet."""
        name = handler_name(update, UPDATE_ATTR)
        update_id = id or str(uuid.uuid4())
        check_id("update id", update_id)
        engine_id = self._engine_id(workflow_id)
        payload = encode(self.codec, to_json(payload_of(list(args))))
        command = c.UpdateWorkflow(
            workflow_id=engine_id, update_id=update_id, name=name, payload=payload, request_id=update_id
        )
        await self.send(engine_id, command)
        await self.update_outcome(workflow_id, update_id, timeout, until_done=False, run_id=run_id)
        return AsyncWorkflowUpdateHandle(self, workflow_id, update_id)

    async def update_outcome(
        self, workflow_id: str, update_id: str, timeout: float, until_done: bool, run_id: str | None = None
    ) -> UpdateOutcomeJson:
        """The update's outcome once it is applied (``until_done``: once its handler ended);
        raises ``WorkflowUpdateFailedError`` for a rejected or failed update, or one whose run
        closed first, and ``TimeoutError`` past ``timeout``."""
        engine_id = self._engine_id(workflow_id)
        await self._connect()
        deadline = time.monotonic() + timeout
        while True:
            try:
                state: UpdateStatusJson | None = await self._reads.update_status(engine_id, update_id)
            except (WorkflowNotFoundError, OwnerUnavailableError):
                state = None  # not started yet, or its partition is moving
            if state is not None and run_id is not None and state["run_id"] != run_id:
                state = None  # the run it was sent to is not started yet
            outcome = state["update"] if state else None
            if outcome is not None and outcome["status"] in ("rejected", "failed"):
                failure = Failure.model_validate(decode_tree(self.codec, outcome["failure"]))
                raise WorkflowUpdateFailedError(workflow_id, update_id, failure)
            if outcome is not None and (outcome["status"] == "completed" or not until_done):
                return outcome
            if state is not None and state["status"] != "RUNNING":
                message = f"the run ended {state['status']} before the update " + (
                    "finished" if outcome else "was applied"
                )
                raise WorkflowUpdateFailedError(
                    workflow_id, update_id, Failure(type=state["status"], message=message)
                )
            if time.monotonic() > deadline:
                raise TimeoutError(f"update {update_id!r} of {workflow_id!r} not done after {timeout} s")
            await asyncio.sleep(0.02)

    async def cancel(self, workflow_id: str, reason: str = "") -> None:
        engine_id = self._engine_id(workflow_id)
        await self.send(engine_id, c.CancelWorkflow(workflow_id=engine_id, reason=reason))

    async def terminate(self, workflow_id: str, reason: str = "") -> None:
        engine_id = self._engine_id(workflow_id)
        await self.send(engine_id, c.TerminateWorkflow(workflow_id=engine_id, reason=reason))

    async def reset(
        self,
        workflow_id: str,
        to_event: int,
        *,
        run_id: str | None = None,
        reason: str = "",
        timeout: float = 10.0,
    ) -> AsyncWorkflowHandle:
        """Reset the latest run (or ``run_id``, which must be the latest) to its event
        ``to_event``: a new run begins with its history before that event and goes on with the
        code deployed now (the old run is terminated if open). Returns the new run's handle.

        Raises ``ValueError`` naming why when the run cannot be reset there (the event is not one
        its code reacted to, or a child is open before it), and ``LedgerflowError`` when the
        new run did not appear within ``timeout`` seconds.
        """
        history = await self.fetch_history(workflow_id, run_id)
        state = await self.describe(workflow_id)
        refusal = reset_refusal(history.events, to_event) or children_refusal(state)
        if refusal is not None:
            raise ValueError(f"cannot reset run {history.run_id} of {workflow_id!r}: {refusal}")
        engine_id = self._engine_id(workflow_id)
        command = c.ResetWorkflow(
            workflow_id=engine_id,
            run_id=history.run_id,
            to_event=to_event,
            reason=reason,
            request_id=str(uuid.uuid4()),
        )
        await self.send(engine_id, command)
        deadline = time.monotonic() + timeout
        while True:
            latest = (await self.describe(workflow_id))["run_id"]
            if latest != history.run_id:
                marker = (await self.history_page(workflow_id, latest, to_event - 1, 1)).events
                made = (
                    marker
                    and isinstance(marker[0], WorkflowReset)
                    and marker[0].reset_run_id == history.run_id
                )
                if made:
                    return AsyncWorkflowHandle(self, workflow_id, latest)
                raise LedgerflowError(
                    f"run {history.run_id} of {workflow_id!r} was not reset: run {latest} started "
                    "meanwhile (the engine refused the reset; its dead-letter topic says why)"
                )
            if time.monotonic() > deadline:
                raise LedgerflowError(
                    f"the reset of run {history.run_id} of {workflow_id!r} was not applied within "
                    f"{timeout} s (the engine may have refused it: its dead-letter topic says why)"
                )
            await asyncio.sleep(RETRY_PAUSE)

    def _engine_id(self, workflow_id: str) -> str:
        """The engine's id of ``workflow_id`` in this client's namespace (an id that names its
        namespace already is taken as it is)."""
        check_id("workflow id", workflow_id)
        if namespaces.SEPARATOR in workflow_id:  # "default/x" is "x": one name per run
            return namespaces.qualify(*namespaces.split(workflow_id))
        return namespaces.qualify(self.namespace, workflow_id)

    def _shown(self, engine_id: str) -> str:
        """An engine id as this client's caller names it (bare in its own namespace)."""
        return namespaces.within(self.namespace, engine_id)

    async def register_dag(self, definition: DagDefinition | dict[str, Any]) -> DagDefinition:
        """Register (or replace) a DAG definition; runs started after this call see it.

        Written straight to the compacted definitions topic, so a start sent
        after this returns always finds the definition. Checked first as the gateway
        checks it: a definition over a size limit or with an expression that cannot
        parse raises ``DagDefinitionError`` naming each problem, and nothing is written.
        """
        dag = (
            definition if isinstance(definition, DagDefinition) else DagDefinition.model_validate(definition)
        )
        problems = definition_problems(dag, self.settings)
        if problems:
            raise DagDefinitionError("; ".join(p.message for p in problems))
        stored = dag.model_copy(update={"id": self._engine_id(dag.id)})
        await self._write(
            self.settings.topic("definitions"), stored.id, stored.model_dump_json(by_alias=True).encode()
        )
        return dag

    # ------------------------------------------------------------------- reads
    async def describe(self, workflow_id: str) -> dict[str, Any]:
        """Status of the workflow's latest run (a dict as the REST API returns it), its payloads
        decoded."""
        return self._visible(decode_tree(self.codec, await self._status(self._engine_id(workflow_id))))

    async def _described(self, workflow_id: str) -> dict[str, Any] | None:
        """``describe``, or None when the run is not there (yet) or its owner is not reachable."""
        try:
            return await self.describe(workflow_id)
        except (WorkflowNotFoundError, OwnerUnavailableError):
            return None

    def _visible(self, data: dict[str, Any]) -> dict[str, Any]:
        """Engine JSON with the workflow ids of this client's namespace bare."""
        return namespaces.visible(self.namespace, data)

    async def _status(self, workflow_id: str) -> dict[str, Any]:
        """The latest run's status as its owner answers it (payloads as they are stored; the
        engine's id and ids)."""
        await self._connect()
        check_id("workflow id", workflow_id)
        return dict(await self._reads.run(workflow_id))

    async def history_page(
        self, workflow_id: str, run_id: str | None = None, offset: int = 0, limit: int = PAGE_LIMIT
    ) -> HistoryPage:
        """Events ``offset + 1`` to ``offset + limit`` of the latest run (or of ``run_id``).

        The owner reads only those events, whatever the length of the history.
        """
        if run_id is not None:
            check_id("run id", run_id)
        engine_id = self._engine_id(workflow_id)
        await self._connect()
        data = await self._reads.history_page(engine_id, run_id, offset, limit)
        events = [
            history_event_adapter.validate_python(self._visible(decode_tree(self.codec, e)))
            for e in data["events"]
        ]
        return HistoryPage(str(data["run_id"]), int(data["total"]), events)

    async def history(
        self, workflow_id: str, run_id: str | None = None, offset: int = 0
    ) -> list[HistoryEvent]:
        """The history of the latest run (or of ``run_id``) after its first ``offset`` events,
        read page by page."""
        events: list[HistoryEvent] = []
        while True:
            page = await self.history_page(workflow_id, run_id, offset + len(events))
            events += page.events
            run_id = page.run_id  # later pages of the same run, even if a new run starts
            if not page.events or offset + len(events) >= page.total:
                return events

    async def fetch_history(self, workflow_id: str, run_id: str | None = None) -> WorkflowHistory:
        """The whole history of the latest run (or of ``run_id``), naming its run: what a
        ``Replayer`` replays and ``ledgerflow history --export`` writes."""
        first = await self.history_page(workflow_id, run_id, 0)
        events = list(first.events)
        if first.events and len(events) < first.total:
            events += await self.history(workflow_id, first.run_id, len(events))
        return WorkflowHistory(workflow_id, first.run_id, events)

    async def _closing_event(self, workflow_id: str, run_id: str) -> HistoryEvent:
        """The last event of a closed run: two one-event pages, however long its history."""
        total = (await self.history_page(workflow_id, run_id, limit=1)).total
        return (await self.history_page(workflow_id, run_id, offset=total - 1, limit=1)).events[0]

    async def query(self, workflow_id: str, query: str | Callable[..., Any], *args: Any) -> Any:
        """Ask the run a query (by name, or its ``@workflow.query`` method): answered from its
        committed state. Raises ``QueryFailedError`` when it cannot be answered."""
        name = handler_name(query, QUERY_ATTR)
        engine_id = self._engine_id(workflow_id)
        encoded = [encode(self.codec, to_json(a)) for a in args]
        await self._connect()
        result = await self._reads.query(engine_id, name, encoded, shown_id=workflow_id)
        return decode(self.codec, result)

    async def list_page(
        self,
        status: str | None = None,
        workflow_type: str | None = None,
        limit: int = 100,
        after: str | None = None,
        *,
        query: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page (``limit`` at most ``PAGE_LIMIT``) of latest runs across every engine node,
        ordered by workflow id, and the cursor of the next page (pass it as ``after``; None on
        the last). A filtered page may be short, even empty, and still have a next one (see
        ``list_scan_limit``).

        With ``query`` (Temporal's list filter: ``WorkflowType = 'X' AND CustomerId = 'c-1'
        ORDER BY StartTime DESC``; docs/visibility.md), the runs it matches in start-time order
        instead, newest first by default; ``after`` is then the page token the last page gave.
        A query that cannot be read raises ``VisibilityQueryError`` naming the token."""
        params: dict[str, Any] = {"limit": limit, "namespace": self.namespace}
        if query is not None:
            if status is not None or workflow_type is not None:
                raise ValueError("give the status and type inside the query (ExecutionStatus, WorkflowType)")
            parse_query(query)
            params["query"] = query
            if after is not None:
                order_of_cursor(after)  # ValueError: not a page token of a query
                params["after"] = after
        elif after is not None:
            params["after"] = self._engine_id(after)
        for name, value in (("status", status), ("workflow_type", workflow_type)):
            if value is not None:
                params[name] = value
        await self._connect()
        listing = await self._reads.listing(params, limit)
        self._check_complete(listing.missing_partitions)
        next_after = listing.next_after
        if query is None and next_after is not None:
            next_after = namespaces.within(self.namespace, next_after)
        rows = [self._visible(decode_tree(self.codec, dict(row))) for row in listing.runs]
        for row in rows:
            row.pop("cursor", None)
        return rows, next_after

    @staticmethod
    def _check_complete(missing: list[int]) -> None:
        if missing:
            # The gateway answers such a page marked partial; a list in Python has no such mark.
            reason = f"no engine answered for partitions {missing}"
            raise OwnerUnavailableError("*", missing[0], 1.0, reason)

    async def list_workflows(
        self,
        status: str | None = None,
        workflow_type: str | None = None,
        limit: int = 100,
        after: str | None = None,
        *,
        query: str | None = None,
    ) -> list[dict[str, Any]]:
        """Up to ``limit`` latest runs after ``after``, ordered by workflow id (or those ``query``
        matches, in its order: see ``list_page``), read page by page (``PAGE_LIMIT`` a page)."""
        rows: list[dict[str, Any]] = []
        while True:
            page, after = await self.list_page(
                status, workflow_type, min(limit - len(rows), PAGE_LIMIT), after, query=query
            )
            rows += page
            if after is None or len(rows) >= limit:
                return rows

    async def count_workflows(self, query: str = "") -> int:
        """How many workflows' latest runs ``query`` matches (all of them for ""), e.g.
        ``count_workflows("ExecutionStatus = 'Running'")``."""
        parse_query(query)
        await self._connect()
        counted = await self._reads.count(query, self.namespace)
        self._check_complete(counted.missing_partitions)
        return counted.count

    # ------------------------------------------------------------ schedules
    async def create_schedule(
        self, id: str, schedule: Schedule, *, trigger_immediately: bool = False
    ) -> AsyncScheduleHandle:
        """Create schedule ``id`` (``ScheduleAlreadyRunningError`` when it exists) and return its
        handle once its owner has it; ``trigger_immediately`` also starts a run now."""
        handle = self.get_schedule_handle(id)
        await self._connect()
        await create_schedule(handle, schedule, trigger_immediately)
        return handle

    def get_schedule_handle(self, id: str) -> AsyncScheduleHandle:
        return AsyncScheduleHandle(id, self._engine_id(id), self._reads, self.send)

    async def list_schedules(self) -> list[ScheduleListEntry]:
        """Every schedule of this client's namespace, in id order."""
        await self._connect()
        return await list_all_schedules(self._reads, self.namespace)

    async def cluster(self) -> list[dict[str, Any]]:
        """Every engine node with the partitions it owns and their state."""
        nodes = []
        await self._connect()
        for member, data in await self._reads.nodes():
            info: dict[str, Any] = {"url": member.url, "member_id": member.member_id}
            if data is None:
                info["error"] = f"{member.url or 'a member without a URL'} did not answer"
            else:
                info.update(data)
            nodes.append(info)
        return nodes

    async def result(
        self,
        workflow_id: str,
        timeout: float = 60.0,
        run_id: str | None = None,
        result_type: Any = None,
        *,
        start: StartRequest | None = None,
    ) -> Any:
        """Wait for a run to close; return its result (converted to ``result_type`` if given) or
        raise WorkflowFailedError.

        Without ``run_id``, the latest run. With it, that run, following its continue-as-new
        chain to the run that really ends. ``start``: the start that asked for ``run_id``, when
        the engine had not decided it yet (a handle's): its refusal is raised here.
        """
        if run_id is not None:
            check_id("run id", run_id)
        await self._connect()
        deadline = time.monotonic() + timeout
        engine_id = self._engine_id(workflow_id)
        state: dict[str, Any] | None = None
        while True:
            # A long poll: the owner answers once the run closes (or another run took its place),
            # so the result arrives one commit after it is recorded, without asking again. While
            # the start is undecided the poll is short: a refusal opens no run to wake it.
            hold = UNDECIDED_POLL_HOLD if start is not None else RESULT_POLL_HOLD
            wait = min(hold, max(0.0, deadline - time.monotonic()))
            asked = time.monotonic()
            try:
                answer = await self._waits.closed(engine_id, run_id or _run_of(state), wait)
                state = self._visible(decode_tree(self.codec, dict(answer)))
            except OwnerUnavailableError:
                state = None
                await asyncio.sleep(RETRY_PAUSE)
            except WorkflowNotFoundError:
                state = None  # the start is not applied yet (the owner waited for it already)
                if time.monotonic() - asked < wait / 2:
                    # Not held: an engine from before the long poll answers its route 404 at
                    # once. Read the status instead, as that engine's clients did.
                    state = await self._described(workflow_id)
                    await asyncio.sleep(RETRY_PAUSE)
            if state is not None and run_id is not None and run_id != state["run_id"]:
                if run_id in state["previous_runs"]:
                    closing = await self._closing_event(workflow_id, run_id)
                    if isinstance(closing, WorkflowContinuedAsNew):
                        run_id = closing.new_run_id
                        continue
                    return from_json(self._outcome(workflow_id, closing), result_type)
                state = None  # this run is not started: the owner cannot hold the poll for it
                if start is None:
                    await asyncio.sleep(RETRY_PAUSE)
            if state is None and start is not None:
                # The start this run was asked by may have been refused, or led to another run.
                decided = await self._start_decision(engine_id, start.request_id, start.run_id, 0.0)
                if decided is not None:
                    run_id, start = str(decided["run_id"]), None
                    continue
                await asyncio.sleep(RETRY_PAUSE)  # undecided: a poll for another run returns at once
            if state is not None and state["status"] in CLOSED:
                if state["status"] == "COMPLETED":
                    return from_json(state["result"], result_type)
                failure = (
                    Failure.model_validate(state["failure"])
                    if state.get("failure")
                    else Failure(type=state["status"], message=f"run {state['status'].lower()}")
                )
                raise WorkflowFailedError(workflow_id, state["status"], failure)
            if time.monotonic() >= deadline:
                status = state["status"] if state else "unknown"
                raise TimeoutError(f"workflow {workflow_id!r} still {status} after {timeout} s")

    @staticmethod
    def _outcome(workflow_id: str, closing: HistoryEvent) -> Any:
        """The result of a run that ended with ``closing``, or its failure raised."""
        if isinstance(closing, WorkflowCompleted):
            return closing.result
        status = {"workflow_failed": "FAILED", "workflow_canceled": "CANCELED"}.get(
            closing.kind, "TERMINATED"
        )
        failure = getattr(closing, "failure", None) or Failure(type=status, message=f"run {status.lower()}")
        raise WorkflowFailedError(workflow_id, status, failure)


@dataclass(frozen=True)
class AsyncWorkflowHandle:
    """A reference to one workflow id (and the run a start returned)."""

    client: AsyncClient
    workflow_id: str
    run_id: str | None
    already_started: bool = False
    """True when a start found this workflow already running and returned that run."""
    result_type: Any = None
    """What ``result`` converts the run's result to: the workflow's return annotation when it
    was started by its class or run method."""
    start: StartRequest | None = field(default=None, repr=False)
    """The start that made this handle, while the engine had not decided it."""

    async def result(self, timeout: float = 60.0, result_type: Any = None) -> Any:
        """Wait for this handle's run (following continue-as-new) to close; return its result
        (converted to ``result_type``, else to the handle's)."""
        return await self.client.result(
            self.workflow_id,
            timeout=timeout,
            run_id=self.run_id,
            result_type=result_type or self.result_type,
            start=self.start,
        )

    async def describe(self) -> dict[str, Any]:
        return await self._after_start(lambda: self.client.describe(self.workflow_id))

    async def signal(self, signal: str | Callable[..., Any], payload: Any = None) -> None:
        """Send a signal (by name, or its ``@workflow.signal`` method) to the open run."""
        await self.client.signal(self.workflow_id, signal, payload)

    async def query(self, query: str | Callable[..., Any], *args: Any) -> Any:
        """Ask the run a query (by name, or its ``@workflow.query`` method)."""
        return await self._after_start(lambda: self.client.query(self.workflow_id, query, *args))

    async def execute_update(
        self, update: str | Callable[..., Any], *args: Any, id: str | None = None, timeout: float = 60.0
    ) -> Any:
        """Run an update (by name, or its ``@workflow.update`` method) on this handle's run and
        return its result (see ``AsyncClient.execute_update``)."""
        return await (await self.start_update(update, *args, id=id, timeout=timeout)).result(timeout)

    async def start_update(
        self, update: str | Callable[..., Any], *args: Any, id: str | None = None, timeout: float = 60.0
    ) -> AsyncWorkflowUpdateHandle:
        """Send an update to this handle's run and wait until its validator accepted it (see
        ``AsyncClient.start_update``)."""
        return await self.client.start_update(
            self.workflow_id, update, *args, id=id, timeout=timeout, run_id=self.run_id
        )

    async def _after_start(self, read: Callable[[], Awaitable[T]]) -> T:
        """``read()``, waiting (bounded) for the start this handle was made by when the engine
        had not applied it yet when the handle was returned."""
        deadline = time.monotonic() + START_WAIT
        while True:
            try:
                return await read()
            except WorkflowNotFoundError:
                if self.start is None or time.monotonic() > deadline:
                    raise
            await asyncio.sleep(0.02)

    async def cancel(self, reason: str = "") -> None:
        await self.client.cancel(self.workflow_id, reason)

    async def terminate(self, reason: str = "") -> None:
        await self.client.terminate(self.workflow_id, reason)

    async def history(self) -> list[HistoryEvent]:
        return await self.client.history(self.workflow_id, self.run_id)

    async def fetch_history(self) -> WorkflowHistory:
        return await self.client.fetch_history(self.workflow_id, self.run_id)


@dataclass(frozen=True)
class AsyncWorkflowUpdateHandle:
    """An update sent to a workflow and accepted by its validator."""

    client: AsyncClient
    workflow_id: str
    update_id: str

    async def result(self, timeout: float = 60.0, result_type: type[T] | None = None) -> Any:
        """Wait for the update's handler to end; return its result, or raise
        ``WorkflowUpdateFailedError`` with what it raised."""
        outcome = await self.client.update_outcome(self.workflow_id, self.update_id, timeout, until_done=True)
        return from_json(decode(self.client.codec, outcome["result"]), result_type)


@dataclass(frozen=True)
class AsyncActivityHandle:
    """An activity attempt completed outside its worker (``get_async_activity_handle``).

    What is sent counts only while that attempt is the running one: after its timeout, a retry
    or a cancel, the engine drops it (as it drops any late result)."""

    client: AsyncClient
    token: TaskToken

    async def complete(self, result: Any = None) -> None:
        """The attempt's result."""
        t = self.token
        payload = encode(self.client.codec, to_json(result))
        command = c.TaskCompleted(**t.attempt_fields(), result=payload)
        await self.client.send(t.workflow_id, command, partition=t.partition)

    async def fail(self, error: BaseException | str, *, non_retryable: bool = False) -> None:
        """The attempt failed (its retry policy decides what follows), with ``error``'s type and
        message."""
        failure = (
            Failure(type="ApplicationError", message=error)
            if isinstance(error, str)
            else failure_from_exception(error)
        )
        if non_retryable:
            failure = failure.model_copy(update={"non_retryable": True})
        t = self.token
        command = c.TaskFailed(**t.attempt_fields(), failure=encode_failure(self.client.codec, failure))
        await self.client.send(t.workflow_id, command, partition=t.partition)

    async def heartbeat(self, details: Any = None) -> None:
        """The attempt is alive (its heartbeat timeout starts over); ``details`` reach a retry."""
        t = self.token
        details = encode(self.client.codec, to_json(details))
        command = c.TaskHeartbeat(**t.attempt_fields(), details=details)
        await self.client.send(t.workflow_id, command, partition=t.partition)


def _refusal_error(workflow_id: str, partition: int, refusal: StartRefusalJson) -> LedgerflowError:
    """The error a caller gets for a start the engine refused."""
    if refusal["kind"] == "already_started":
        return WorkflowAlreadyStartedError(workflow_id, str(refusal["run_id"]), str(refusal["status"]))
    if refusal["kind"] == "capacity":
        return CapacityError(workflow_id, partition, refusal["message"])
    if refusal["kind"] == "limit":
        return RunLimitError(f"start of {workflow_id!r} refused: {refusal['message']}")
    return StartRejectedError(workflow_id, refusal["message"])


def _run_of(state: dict[str, Any] | None) -> str | None:
    """The open run a long poll waits on: the one seen last (None before any was seen)."""
    return str(state["run_id"]) if state is not None else None


def handler_name(handler: str | Callable[..., Any], attribute: str) -> str:
    """The signal or query name a handler method was declared with (a name is itself)."""
    if isinstance(handler, str):
        return handler
    name = getattr(handler, attribute, None)
    if not isinstance(name, str):
        kind = {SIGNAL_ATTR: "signal", QUERY_ATTR: "query", UPDATE_ATTR: "update"}[attribute]
        raise TypeError(f"{handler!r} is not a @workflow.{kind} method")
    return name
