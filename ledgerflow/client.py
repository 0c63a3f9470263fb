"""The Python client: start, signal, cancel and inspect workflows.

    from ledgerflow import Client

    client = Client(bootstrap="127.0.0.1:9092")
    handle = client.start_workflow("Checkout", order, id="order-42")
    print(handle.result(timeout=30))

Writes go to the inbox topic (acknowledged by all in-sync replicas before the
call returns). Reads go to the engine node that owns the workflow's partition,
with the engine token (``engine_token``, or the file ``LEDGERFLOW_ENGINE_TOKEN_FILE`` names)
when the engines require one. An id that breaks the id rule raises ``InvalidIdError`` before anything is sent.

With a payload codec (``codec``, or the key file ``LEDGERFLOW_CODEC_KEYS_FILE`` names), inputs,
signals and query arguments are encoded before they are sent, and what is read (status,
results, failures' details, history, query results) is decoded; without one, an encoded
payload read raises ``CodecKeyNeeded``.
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

from confluent_kafka import Producer
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
    EngineAuthError,
    LedgerflowError,
    OwnerResponseError,
    OwnerUnavailableError,
    WorkflowAlreadyStartedError,
    WorkflowFailedError,
    WorkflowNotFoundError,
    WorkflowUpdateFailedError,
    check_id,
    failure_from_exception,
)
from ledgerflow.kafkaclients import UNASSIGNED, plain_producer
from ledgerflow.owner_reads import OwnerReads
from ledgerflow.reset_points import children_refusal, reset_refusal
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
from ledgerflow.schemas.owner import AdmissionJson, UpdateOutcomeJson, UpdateStatusJson
from ledgerflow.schemas.tasks import TaskToken, read_task_token
from ledgerflow.sdk.definition import QUERY_ATTR, SIGNAL_ATTR, UPDATE_ATTR, definition_of

CLOSED = ("COMPLETED", "FAILED", "CANCELED", "TERMINATED")
RESULT_POLL_HOLD = 10.0
"""Seconds the owner holds one long poll of ``result`` (it answers at once when the run closes)."""
NAMESPACE_ENV = "LEDGERFLOW_NAMESPACE"
OWNER_WAIT = 3.0
"""Seconds a read waits for a partition's owner to appear (during a rebalance)."""
OWNER_ANSWER_TIMEOUT = 30.0
"""Seconds an owner may take to answer a read (a query may replay a long history)."""
START_WAIT = 5.0
"""Seconds a handle's read waits for the start that made the handle to be applied."""
T = TypeVar("T")


class _LoopThread:
    """A private event loop in a daemon thread, on which this synchronous Client runs the
    asyncio owner reads it shares with the gateway. Any thread may call ``run``."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="ledgerflow-client", daemon=True)
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


@dataclass(frozen=True)
class HistoryPage:
    """Some consecutive events of a run, and how many it has."""

    run_id: str
    total: int
    events: list[HistoryEvent]


@dataclass(frozen=True)
class WorkflowUpdateHandle:
    """An update sent to a workflow and accepted by its validator."""

    client: Client
    workflow_id: str
    update_id: str

    def result(self, timeout: float = 60.0, result_type: type[T] | None = None) -> Any:
        """Wait for the update's handler to end; return its result, or raise
        ``WorkflowUpdateFailedError`` with what it raised."""
        outcome = self.client.update_outcome(self.workflow_id, self.update_id, timeout, until_done=True)
        return from_json(decode(self.client.codec, outcome["result"]), result_type)


@dataclass(frozen=True)
class AsyncActivityHandle:
    """An activity attempt completed outside its worker (``Client.get_async_activity_handle``).

    What is sent counts only while that attempt is the running one: after its timeout, a retry
    or a cancel, the engine drops it (as it drops any late result)."""

    client: Client
    token: TaskToken

    def complete(self, result: Any = None) -> None:
        """The attempt's result."""
        t = self.token
        payload = encode(self.client.codec, to_json(result))
        command = c.TaskCompleted(**t.attempt_fields(), result=payload)
        self.client.send(t.workflow_id, command, partition=t.partition)

    def fail(self, error: BaseException | str, *, non_retryable: bool = False) -> None:
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
        self.client.send(t.workflow_id, command, partition=t.partition)

    def heartbeat(self, details: Any = None) -> None:
        """The attempt is alive (its heartbeat timeout starts over); ``details`` reach a retry."""
        t = self.token
        details = encode(self.client.codec, to_json(details))
        command = c.TaskHeartbeat(**t.attempt_fields(), details=details)
        self.client.send(t.workflow_id, command, partition=t.partition)


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

    def result(self, timeout: float = 60.0, result_type: Any = None) -> Any:
        """Wait for this handle's run (following continue-as-new) to close; return its result
        (converted to ``result_type``, else to the handle's)."""
        return self.client.result(
            self.workflow_id, timeout=timeout, run_id=self.run_id, result_type=result_type or self.result_type
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
        """``read()``, waiting (bounded) for the start this handle was made by when the read
        races it: the engine may not have applied the start yet when it is asked."""
        deadline = time.monotonic() + START_WAIT
        while True:
            try:
                return read()
            except WorkflowNotFoundError:
                if self.run_id is None or time.monotonic() > deadline:
                    raise
            time.sleep(0.02)

    def cancel(self, reason: str = "") -> None:
        self.client.cancel(self.workflow_id, reason)

    def history(self) -> list[HistoryEvent]:
        return self.client.history(self.workflow_id, self.run_id)

    def fetch_history(self) -> WorkflowHistory:
        return self.client.fetch_history(self.workflow_id, self.run_id)


class Client:
    """Talks to Ledgerflow through Kafka (writes) and the owning engine node (reads)."""

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
        """``engine_token``: the engines' HTTP token; by default the one in the file the
        ``engine_token_file`` setting (env ``LEDGERFLOW_ENGINE_TOKEN_FILE``) names, if any.
        ``codec``: the payload codec; by default the one of the ``codec_keys_file`` setting.
        ``namespace``: where the ids and DAG definitions this client names live (an id written
        ``<namespace>/<id>`` names another namespace's run: the Client holds Kafka credentials,
        which reach the whole deployment). By default ``$LEDGERFLOW_NAMESPACE``, else ``default``
        (so the CLI acts in the namespace that variable names)."""
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
        self._producer: Producer = plain_producer(self.settings)
        token = engine_token if engine_token is not None else token_from(self.settings.engine_token_file)
        self.codec = codec if codec is not None else load_codec(self.settings)
        # Patient where the gateway is not: a script reading right after a rebalance waits for
        # the partition's new owner (up to OWNER_WAIT s) instead of failing at once.
        self._reads = OwnerReads(
            self.settings,
            token,
            budget=OWNER_WAIT,
            ttl=1.0,
            attempts=1_000,
            pause=0.1,
            request_timeout=OWNER_ANSWER_TIMEOUT,
        )
        self._loop = _LoopThread()
        self._loop.run(self._reads.start(background=False))
        self._closed = False

    @property
    def settings(self) -> Settings:
        return self._settings

    @settings.setter
    def settings(self, settings: Settings) -> None:
        """New settings (say, more partitions after a resharding) for writes and reads alike."""
        self._settings = settings
        self._reads.settings = settings

    def close(self) -> None:
        """Flush what was sent and let go of the reads' connections and thread (once)."""
        if self._closed:
            return
        self._closed = True
        self._producer.flush(10)
        self._loop.run(self._reads.close())
        self._loop.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ writes
    def send(self, key: str, command: BaseModel, timeout: float = 10.0, partition: int | None = None) -> None:
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
        self._produce(self.settings.topic("inbox"), key, value, timeout, partition)

    def get_async_activity_handle(self, task_token: str) -> AsyncActivityHandle:
        """Complete, fail or heartbeat an activity attempt that called
        ``activity.raise_complete_async()``, named by its ``activity.info().task_token``.

        Raises ``ValueError`` for a string that is not a task token."""
        return AsyncActivityHandle(self, read_task_token(task_token))

    def _produce(
        self, topic: str, key: str, value: bytes, timeout: float = 10.0, partition: int | None = None
    ) -> None:
        errors: list[str] = []

        def on_delivery(error: Any, _message: Any) -> None:
            if error is not None:
                errors.append(str(error))

        self._producer.produce(
            topic,
            key=key.encode(),
            value=value,
            partition=UNASSIGNED if partition is None else partition,
            on_delivery=on_delivery,
        )
        remaining = self._producer.flush(timeout)
        if remaining or errors:
            raise LedgerflowError(f"write to {topic} not acknowledged: {errors or 'timed out'}")

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
    ) -> WorkflowHandle:
        """Start a run; if one is open for ``id`` already, return it with ``already_started``.

        ``id_conflict_policy``, when a run of ``id`` is open: return it (``use_existing``), raise
        ``WorkflowAlreadyStartedError`` (``fail``), or terminate it and start (``terminate_existing``).
        ``id_reuse_policy``, when the latest run of ``id`` is closed: start (``allow_duplicate``),
        start only if it did not complete (``allow_duplicate_failed_only``), or raise
        ``WorkflowAlreadyStartedError`` (``reject_duplicate``). The engine applies both again
        when the start arrives, so a start racing another is held to them too.

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
        try:
            admission: AdmissionJson | None = self._loop.run(self._reads.admission(engine_id, request_id))
        except EngineAuthError:
            raise
        except (OwnerUnavailableError, OwnerResponseError):
            admission = None  # unreachable: send anyway; the engine keeps one open run and its limits
        if admission and admission.get("request_run"):  # this request's start was applied already
            return WorkflowHandle(self, id, admission["request_run"], already_started=True, result_type=typed)
        current = admission["run"] if admission else None
        running = current is not None and current["status"] == "RUNNING"
        if running and current is not None and signal is None:
            if id_conflict_policy == "fail":
                raise WorkflowAlreadyStartedError(id, current["run_id"], "RUNNING")
            if id_conflict_policy == "use_existing":
                return WorkflowHandle(self, id, current["run_id"], already_started=True, result_type=typed)
        if (
            current is not None
            and not running
            and (
                id_reuse_policy == "reject_duplicate"
                or (id_reuse_policy == "allow_duplicate_failed_only" and current["status"] == "COMPLETED")
            )
        ):
            raise WorkflowAlreadyStartedError(id, current["run_id"], current["status"])
        if admission and admission["refusal"] and not running:  # a running one takes the signal
            raise CapacityError(id, admission["partition"], admission["refusal"])
        run_id = c.start_run_id(engine_id, request_id)
        self.send(
            engine_id,
            c.StartWorkflow(
                workflow_id=engine_id,
                workflow_type=name,
                input=encode(self.codec, to_json(input)),
                run_id=run_id,
                execution_timeout=execution_timeout,
                request_id=request_id or run_id,
                start_signal=signal,
                id_conflict_policy=id_conflict_policy,
                id_reuse_policy=id_reuse_policy,
            ),
        )
        if running and current is not None and id_conflict_policy == "use_existing":
            return WorkflowHandle(self, id, current["run_id"], already_started=True, result_type=typed)
        if signal is not None:
            # A run that opened meanwhile may have taken the signal, and this run never starts.
            return WorkflowHandle(self, id, self._run_taking(engine_id, run_id, current), result_type=typed)
        return WorkflowHandle(self, id, run_id, result_type=typed)

    def _run_taking(self, engine_id: str, run_id: str, before: Any) -> str:
        """The run a signal-with-start reached: ``run_id`` once the engine started it, or a run
        another start opened first (which took the signal). Waits up to ``START_WAIT``."""
        previous = before["run_id"] if before else None
        deadline = time.monotonic() + START_WAIT
        while time.monotonic() < deadline:
            try:
                state = self._status(engine_id)
            except (WorkflowNotFoundError, OwnerUnavailableError):
                state = None
            if state is not None and run_id in (state["run_id"], *state["previous_runs"]):
                return run_id  # this start opened its run
            if state is not None and state["run_id"] != previous:
                return str(state["run_id"])  # another start's run, open since the admission read
            time.sleep(0.02)
        return run_id

    def signal(
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
        self.send(
            engine_id,
            c.SignalWorkflow(
                workflow_id=engine_id,
                name=name,
                payload=encode(self.codec, to_json(payload)),
                request_id=request_id or str(uuid.uuid4()),
            ),
        )

    def execute_update(
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
        handle = self.start_update(workflow_id, update, *args, id=id, timeout=timeout)
        return handle.result(timeout, result_type)

    def start_update(
        self,
        workflow_id: str,
        update: str | Callable[..., Any],
        *args: Any,
        id: str | None = None,
        timeout: float = 60.0,
        run_id: str | None = None,
    ) -> WorkflowUpdateHandle:
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
        self.send(engine_id, command)
        self.update_outcome(workflow_id, update_id, timeout, until_done=False, run_id=run_id)
        return WorkflowUpdateHandle(self, workflow_id, update_id)

    def update_outcome(
        self, workflow_id: str, update_id: str, timeout: float, until_done: bool, run_id: str | None = None
    ) -> UpdateOutcomeJson:
        """The update's outcome once it is applied (``until_done``: once its handler ended);
        raises ``WorkflowUpdateFailedError`` for a rejected or failed update, or one whose run
        closed first, and ``TimeoutError`` past ``timeout``."""
        engine_id = self._engine_id(workflow_id)
        deadline = time.monotonic() + timeout
        while True:
            try:
                state: UpdateStatusJson | None = self._loop.run(
                    self._reads.update_status(engine_id, update_id)
                )
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
            time.sleep(0.02)

    def cancel(self, workflow_id: str, reason: str = "") -> None:
        engine_id = self._engine_id(workflow_id)
        self.send(engine_id, c.CancelWorkflow(workflow_id=engine_id, reason=reason))

    def terminate(self, workflow_id: str, reason: str = "") -> None:
        engine_id = self._engine_id(workflow_id)
        self.send(engine_id, c.TerminateWorkflow(workflow_id=engine_id, reason=reason))

    def reset(
        self,
        workflow_id: str,
        to_event: int,
        *,
        run_id: str | None = None,
        reason: str = "",
        timeout: float = 10.0,
    ) -> WorkflowHandle:
        """Reset the latest run (or ``run_id``, which must be the latest) to its event
        ``to_event``: a new run begins with its history before that event and goes on with the
        code deployed now (the old run is terminated if open). Returns the new run's handle.

        Raises ``ValueError`` naming why when the run cannot be reset there (the event is not one
        its code reacted to, or a child is open before it), and ``LedgerflowError`` when the
        new run did not appear within ``timeout`` seconds.
        """
        history = self.fetch_history(workflow_id, run_id)
        state = self.describe(workflow_id)
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
        self.send(engine_id, command)
        deadline = time.monotonic() + timeout
        while True:
            latest = self.describe(workflow_id)["run_id"]
            if latest != history.run_id:
                marker = self.history_page(workflow_id, latest, to_event - 1, 1).events
                made = (
                    marker
                    and isinstance(marker[0], WorkflowReset)
                    and marker[0].reset_run_id == history.run_id
                )
                if made:
                    return WorkflowHandle(self, workflow_id, latest)
                raise LedgerflowError(
                    f"run {history.run_id} of {workflow_id!r} was not reset: run {latest} started "
                    "meanwhile (the engine refused the reset; its dead-letter topic says why)"
                )
            if time.monotonic() > deadline:
                raise LedgerflowError(
                    f"the reset of run {history.run_id} of {workflow_id!r} was not applied within "
                    f"{timeout} s (the engine may have refused it: its dead-letter topic says why)"
                )
            time.sleep(0.05)

    def _engine_id(self, workflow_id: str) -> str:
        """The engine's id of ``workflow_id`` in this client's namespace (an id that names its
        namespace already is taken as it is)."""
        check_id("workflow id", workflow_id)
        if namespaces.SEPARATOR in workflow_id:  # "default/x" is "x": one name per run
            return namespaces.qualify(*namespaces.split(workflow_id))
        return namespaces.qualify(self.namespace, workflow_id)

    def register_dag(self, definition: DagDefinition | dict[str, Any]) -> DagDefinition:
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
        self._produce(
            self.settings.topic("definitions"), stored.id, stored.model_dump_json(by_alias=True).encode()
        )
        return dag

    # ------------------------------------------------------------------- reads
    def describe(self, workflow_id: str) -> dict[str, Any]:
        """Status of the workflow's latest run (a dict as the REST API returns it), its payloads
        decoded."""
        result: dict[str, Any] = self._visible(
            decode_tree(self.codec, self._status(self._engine_id(workflow_id)))
        )
        return result

    def _described(self, workflow_id: str) -> dict[str, Any] | None:
        """``describe``, or None when the run is not there (yet) or its owner is not reachable."""
        try:
            return self.describe(workflow_id)
        except (WorkflowNotFoundError, OwnerUnavailableError):
            return None

    def _visible(self, data: dict[str, Any]) -> dict[str, Any]:
        """Engine JSON with the workflow ids of this client's namespace bare."""
        return namespaces.visible(self.namespace, data)

    def _status(self, workflow_id: str) -> dict[str, Any]:
        """The latest run's status as its owner answers it (payloads as they are stored; the
        engine's id and ids)."""
        check_id("workflow id", workflow_id)
        return dict(self._loop.run(self._reads.run(workflow_id)))

    def history_page(
        self, workflow_id: str, run_id: str | None = None, offset: int = 0, limit: int = PAGE_LIMIT
    ) -> HistoryPage:
        """Events ``offset + 1`` to ``offset + limit`` of the latest run (or of ``run_id``).

        The owner reads only those events, whatever the length of the history.
        """
        if run_id is not None:
            check_id("run id", run_id)
        engine_id = self._engine_id(workflow_id)
        data = self._loop.run(self._reads.history_page(engine_id, run_id, offset, limit))
        events = [
            history_event_adapter.validate_python(self._visible(decode_tree(self.codec, e)))
            for e in data["events"]
        ]
        return HistoryPage(str(data["run_id"]), int(data["total"]), events)

    def history(self, workflow_id: str, run_id: str | None = None, offset: int = 0) -> list[HistoryEvent]:
        """The history of the latest run (or of ``run_id``) after its first ``offset`` events,
        read page by page."""
        events: list[HistoryEvent] = []
        while True:
            page = self.history_page(workflow_id, run_id, offset + len(events))
            events += page.events
            run_id = page.run_id  # later pages of the same run, even if a new run starts
            if not page.events or offset + len(events) >= page.total:
                return events

    def fetch_history(self, workflow_id: str, run_id: str | None = None) -> WorkflowHistory:
        """The whole history of the latest run (or of ``run_id``), naming its run: what a
        ``Replayer`` replays and ``ledgerflow history --export`` writes."""
        first = self.history_page(workflow_id, run_id, 0)
        events = list(first.events)
        if first.events and len(events) < first.total:
            events += self.history(workflow_id, first.run_id, len(events))
        return WorkflowHistory(workflow_id, first.run_id, events)

    def _closing_event(self, workflow_id: str, run_id: str) -> HistoryEvent:
        """The last event of a closed run: two one-event pages, however long its history."""
        total = self.history_page(workflow_id, run_id, limit=1).total
        return self.history_page(workflow_id, run_id, offset=total - 1, limit=1).events[0]

    def query(self, workflow_id: str, query: str | Callable[..., Any], *args: Any) -> Any:
        """Ask the run a query (by name, or its ``@workflow.query`` method): answered from its
        committed state. Raises ``QueryFailedError`` when it cannot be answered."""
        name = handler_name(query, QUERY_ATTR)
        engine_id = self._engine_id(workflow_id)
        encoded = [encode(self.codec, to_json(a)) for a in args]
        result = self._loop.run(self._reads.query(engine_id, name, encoded, shown_id=workflow_id))
        return decode(self.codec, result)

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

    def list_page(
        self,
        status: str | None = None,
        workflow_type: str | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> tuple[list[dict[str, Any]], str | None]:
        """One page (``limit`` at most ``PAGE_LIMIT``) of latest runs across every engine node,
        ordered by workflow id, and the cursor of the next page (pass it as ``after``; None on
        the last). A filtered page may be short, even empty, and still have a next one (see
        ``list_scan_limit``)."""
        params: dict[str, Any] = {"limit": limit, "namespace": self.namespace}
        if after is not None:
            params["after"] = self._engine_id(after)
        for name, value in (("status", status), ("workflow_type", workflow_type)):
            if value is not None:
                params[name] = value
        listing = self._loop.run(self._reads.listing(params, limit))
        if listing.missing_partitions:
            # The gateway answers such a page marked partial; a list in Python has no such mark.
            missing = listing.missing_partitions
            reason = f"no engine answered for partitions {missing}"
            raise OwnerUnavailableError("*", missing[0], 1.0, reason)
        next_after = listing.next_after
        shown = next_after if next_after is None else namespaces.within(self.namespace, next_after)
        return [self._visible(dict(row)) for row in listing.runs], shown

    def list_workflows(
        self,
        status: str | None = None,
        workflow_type: str | None = None,
        limit: int = 100,
        after: str | None = None,
    ) -> list[dict[str, Any]]:
        """Up to ``limit`` latest runs after ``after``, ordered by workflow id, read page by page
        (``PAGE_LIMIT`` runs a page at most)."""
        rows: list[dict[str, Any]] = []
        while True:
            page, after = self.list_page(status, workflow_type, min(limit - len(rows), PAGE_LIMIT), after)
            rows += page
            if after is None or len(rows) >= limit:
                return rows

    def cluster(self) -> list[dict[str, Any]]:
        """Every engine node with the partitions it owns and their state."""
        nodes = []
        for member, data in self._loop.run(self._reads.nodes()):
            info: dict[str, Any] = {"url": member.url, "member_id": member.member_id}
            if data is None:
                info["error"] = f"{member.url or 'a member without a URL'} did not answer"
            else:
                info.update(data)
            nodes.append(info)
        return nodes

    def result(
        self,
        workflow_id: str,
        timeout: float = 60.0,
        run_id: str | None = None,
        poll: float = 0.05,
        result_type: Any = None,
    ) -> Any:
        """Wait for a run to close; return its result (converted to ``result_type`` if given) or
        raise WorkflowFailedError.

        Without ``run_id``, the latest run. With it, that run, following its
        continue-as-new chain to the run that really ends.
        """
        if run_id is not None:
            check_id("run id", run_id)
        deadline = time.monotonic() + timeout
        engine_id = self._engine_id(workflow_id)
        state: dict[str, Any] | None = None
        while True:
            # A long poll: the owner answers once the run closes (or another run took its place),
            # so the result arrives one commit after it is recorded, without asking again.
            wait = min(RESULT_POLL_HOLD, max(0.0, deadline - time.monotonic()))
            asked = time.monotonic()
            try:
                answer = self._loop.run(self._reads.closed(engine_id, run_id or _run_of(state), wait))
                state = self._visible(decode_tree(self.codec, dict(answer)))
            except OwnerUnavailableError:
                state = None
                time.sleep(poll)
            except WorkflowNotFoundError:
                state = None  # the start is not applied yet (the owner waited for it already)
                if time.monotonic() - asked < wait / 2:
                    # Not held: an engine from before the long poll answers its route 404 at
                    # once. Read the status instead, as that engine's clients did.
                    state = self._described(workflow_id)
                    time.sleep(poll)
            if state is not None and run_id is not None and run_id != state["run_id"]:
                if run_id in state["previous_runs"]:
                    closing = self._closing_event(workflow_id, run_id)
                    if isinstance(closing, WorkflowContinuedAsNew):
                        run_id = closing.new_run_id
                        continue
                    return from_json(self._outcome(workflow_id, closing), result_type)
                state = None  # the start of this run is not applied yet: the owner cannot hold
                time.sleep(poll)  # the poll for it (another run is the latest), so ask again soon
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
