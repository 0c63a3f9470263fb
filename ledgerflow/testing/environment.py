"""Ledgerflow in one process, for tests: the real engine state machine, no Kafka, time that skips.

    from ledgerflow.testing import WorkflowEnvironment

    def test_a_month_of_reminders() -> None:
        with WorkflowEnvironment.start_time_skipping(workflows=[Reminders], activities=[notify]) as env:
            handle = env.client.start_workflow(Reminders.run, "c-1", id="reminders-c-1")
            assert handle.result() == 30          # 30 daily timers: well under a second

``env.client`` is a :class:`ledgerflow.Client` and ``env.async_client`` a
:class:`ledgerflow.AsyncClient` (the same methods, errors and handles as the real ones) whose
writes go to an in-process engine instead of Kafka, and whose reads are answered by it. The engine is
the partition state machine the real engines run (``PartitionProcessor``: history, timers,
retries, signals, updates, children, continue-as-new, resets), over a RocksDB store in a
temporary folder, with one partition; activities run in the same process, on an asyncio loop
and a thread pool, as a worker runs them. To mock an activity, give a function of the same
activity name (``@activity.defn(name="charge")``).

**Time skipping** (Temporal's ``start_time_skipping``): the environment's clock is the wall clock
plus what was skipped. While a caller waits on a result (``handle.result()``,
``client.result()``) and nothing is in flight (no command to apply, no activity running), the
clock jumps to the next timer, so a workflow that sleeps 30 days completes at once.
``env.sleep(seconds)`` moves the clock on explicitly; ``start_local`` never skips.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import tempfile
import threading
import time
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from ledgerflow import activity, namespaces
from ledgerflow.async_client import AsyncClient, StartRequest
from ledgerflow.client import Client, _LoopThread
from ledgerflow.codec.base import PayloadCodec
from ledgerflow.codec.envelope import encode
from ledgerflow.config import Settings
from ledgerflow.engine.context import EngineContext
from ledgerflow.engine.outbox import Outbox, OutRecord
from ledgerflow.engine.ownerlock import OwnerLock
from ledgerflow.engine.processor import PartitionProcessor
from ledgerflow.engine.reads import (
    RunFilter,
    cached_copy,
    history_page_json,
    list_runs,
    replayed,
    start_outcome_json,
)
from ledgerflow.engine.schedule_reads import list_schedules, read_schedule
from ledgerflow.engine.state import keys
from ledgerflow.engine.state.committed import read_history, read_history_page, read_run
from ledgerflow.engine.state.store import PartitionStore
from ledgerflow.engine.visibility_reads import count_runs, query_runs
from ledgerflow.errors import QueryFailedError, ScheduleNotFoundError, WorkflowNotFoundError
from ledgerflow.executors.outcomes import heartbeat_record, outcome_record
from ledgerflow.executors.runner import AttemptRunner, attempt_info
from ledgerflow.owner_reads import Count, Listing
from ledgerflow.schemas import commands as c
from ledgerflow.schemas.dag import DagDefinition
from ledgerflow.schemas.owner import (
    HistoryPageJson,
    OwnedRunJson,
    ScheduleSummaryJson,
    StartOutcomeJson,
    UpdateOutcomeJson,
    UpdateStatusJson,
)
from ledgerflow.schemas.tasks import ActivityTask, CancelActivity, TaskToken, task_message_adapter
from ledgerflow.sdk.definition import WorkflowRegistry, definition_of
from ledgerflow.visibility import parse as parse_query

AttemptKey = tuple[str, str, int, int]
NODE = "in-process"
BATCH = 200
"""Inbox commands applied in one batch at most."""
IDLE_WAIT = 0.02
"""Seconds the engine waits for work when it has none and may not skip."""
CLOSED_CHECK = 0.002
"""Seconds between two looks at a run a caller waits on (the in-process engine commits in the
same process: no notice to wait for)."""
SETTLE_WAIT = 5.0
"""Seconds ``WorkflowEnvironment.sleep`` waits at most for what became due to be applied."""


@dataclass(frozen=True)
class DeadLetter:
    """A command the engine refused, and why (what a real engine writes to the dead-letter topic)."""

    reason: str
    value: bytes | None


class _Engine:
    """One partition's state machine, fed from an in-memory inbox by a thread of its own."""

    def __init__(
        self,
        settings: Settings,
        registry: WorkflowRegistry,
        activities: dict[str, activity.ActivityDefinition],
        codec: PayloadCodec | None,
        skipping: bool,
    ) -> None:
        self.settings = settings
        self.codec = codec
        self.definitions: dict[str, DagDefinition] = {}
        self._folder = tempfile.mkdtemp(prefix="ledgerflow-env-")
        ctx = EngineContext(settings, registry, self.definitions.get, codec=codec)
        self.processor = PartitionProcessor(0, PartitionStore(Path(self._folder) / "p0"), ctx)
        self.lock = OwnerLock()
        self.inbox: deque[c.InboxCommand] = deque()
        self.dead_letters: list[DeadLetter] = []
        self.skipped = 0.0
        self.auto_skip = skipping
        self._waiters = 0
        self._in_batch = False
        self._counts = threading.Lock()
        """Guards ``skipped`` and ``_waiters``, changed by the engine's thread and the callers'."""
        self._threads = ThreadPoolExecutor(8, thread_name_prefix="ledgerflow-env-activity")
        self._runner = AttemptRunner(activities, self._threads, codec)
        self._running: dict[
            tuple[str, str, int, int], tuple[asyncio.Task[None], activity.AttemptContext]
        ] = {}
        self._loop = asyncio.new_event_loop()
        self._wake = asyncio.Event()
        self._closed = False
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="ledgerflow-env-engine", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ clock
    def now(self) -> float:
        return time.time() + self.skipped

    def skip(self, seconds: float) -> None:
        with self._counts:
            self.skipped += max(0.0, seconds)
        self.wake()

    def settled(self) -> bool:
        """Nothing to apply, no batch in progress and no timer due (activities may still run)."""
        return not self._in_batch and not self.inbox and not self._timers_due()

    @contextlib.contextmanager
    def waiting(self) -> Iterator[None]:
        """While held, the clock may jump to the next timer whenever nothing is in flight."""
        with self._counts:
            self._waiters += 1
        self.wake()
        try:
            yield
        finally:
            with self._counts:
                self._waiters -= 1

    # ------------------------------------------------------------------ input
    def submit(self, command: c.InboxCommand) -> None:
        self.inbox.append(command)
        self.wake()

    def wake(self) -> None:
        if not self._closed:
            self._loop.call_soon_threadsafe(self._wake.set)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._loop.call_soon_threadsafe(self._wake.set)
        self._thread.join(10)
        self._threads.shutdown(wait=False, cancel_futures=True)
        self.processor.store.close()
        shutil.rmtree(self._folder, ignore_errors=True)

    def check(self) -> None:
        """Raise what stopped the engine's thread, if anything did (a bug, never a caller's input)."""
        if self._error is not None:
            raise RuntimeError("the in-process engine stopped") from self._error

    # ------------------------------------------------------------------- loop
    def _main(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as exc:  # kept for the callers, who see it on their next call
            self._error = exc
        finally:
            for task, ctx in list(self._running.values()):
                ctx.cancelled.set()
                task.cancel()
            self._loop.run_until_complete(asyncio.sleep(0))
            self._loop.close()

    async def _serve(self) -> None:
        while not self._closed:
            self._wake.clear()
            if self.inbox or self._timers_due():
                self._batch()
                await asyncio.sleep(0)  # let activities and their reports run between batches
                continue
            if self._may_skip() and self._skip_to_next_timer():
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), IDLE_WAIT)

    def _timers_due(self) -> bool:
        due = self.processor.timers.next_fire_at()
        return due is not None and due <= self.now()

    def _may_skip(self) -> bool:
        return self.auto_skip and self._waiters > 0 and not self.inbox and not self._running

    def _skip_to_next_timer(self) -> bool:
        """Move the clock to the earliest stored timer; False when there is none ahead."""
        for key, _ in self.processor.store.scan(keys.TIMER):
            fire_at = keys.timer_millis(key) / 1000 + 0.001
            if fire_at <= self.now():
                return False  # due already: the next turn fires it
            with self._counts:
                self.skipped += fire_at - self.now()
            return True
        return False

    def _batch(self) -> None:
        # Set until what the batch wrote is routed back: a caller asking ``settled`` between the
        # store write and the routing would otherwise see an empty inbox and no timer due.
        self._in_batch = True
        try:
            self._apply_batch()
        finally:
            self._in_batch = False

    def _apply_batch(self) -> None:
        commands = [self.inbox.popleft() for _ in range(min(len(self.inbox), BATCH))]
        out = Outbox(self.settings)
        processor = self.processor
        with self.lock.owner():
            processor.begin(self.now(), out)
            for command in commands:
                reason = processor.handle(command)
                if reason is not None:
                    self.dead_letters.append(DeadLetter(reason, command.model_dump_json().encode()))
            processor.fire_timers()
            processor.store.write(dict(processor.finish()), None)
        for record in out.records:
            self._route(record)

    def _route(self, record: OutRecord) -> None:
        """Deliver what the engine wrote, as Kafka would: to the inbox, the workers, the
        definitions; lifecycle events are not kept."""
        topic = record.topic
        if topic == self.settings.topic("inbox"):
            try:
                self.inbox.append(c.read_command(record.value, "inbox record"))
            except c.UnreadableCommand as exc:
                self.dead_letters.append(DeadLetter(str(exc), record.value))
        elif topic == self.settings.topic("inbox.dlq"):
            headers = dict(record.headers or [])
            reason = headers.get("ledgerflow.dlq.reason") or b""
            text = reason.decode() if isinstance(reason, bytes) else str(reason)
            self.dead_letters.append(DeadLetter(text, record.value))
        elif topic == self.settings.topic("definitions"):
            self.define(record.value)
        elif topic.startswith(self.settings.topic("tasks.")):
            message = task_message_adapter.validate_json(record.value or b"")
            if isinstance(message, CancelActivity):
                self._cancel(message)
            else:
                self._start(message)

    def define(self, value: bytes | None) -> None:
        if value is not None:
            definition = DagDefinition.model_validate_json(value)
            self.definitions[definition.id] = definition

    # ------------------------------------------------------------- activities
    def _start(self, task: ActivityTask) -> None:
        key = (task.workflow_id, task.run_id, task.seq, task.attempt)
        if key in self._running:
            return
        token = TaskToken(**task.model_dump(include={"workflow_id", "run_id", "seq", "attempt", "partition"}))
        info = attempt_info(task, self.codec)

        def heartbeat(details: Any) -> None:  # from the activity's thread or the loop's
            beat = c.TaskHeartbeat(**token.attempt_fields(), details=encode(self.codec, details))
            record = heartbeat_record(beat, task.activity_type, self.settings)
            self.submit(c.read_command(record, "heartbeat"))

        def report(outcome: c.TaskCompleted | c.TaskFailed) -> None:
            record = outcome_record(outcome, task.activity_type, self.settings)
            self.submit(c.read_command(record, "activity outcome"))

        ctx = activity.AttemptContext(info=info, heartbeat=heartbeat)
        attempt = self._loop.create_task(self._runner.run(task, ctx, report))
        self._running[key] = (attempt, ctx)
        attempt.add_done_callback(lambda _done: self._finished(key))

    def _finished(self, key: AttemptKey) -> None:
        self._running.pop(key, None)
        self._wake.set()

    def _cancel(self, message: CancelActivity) -> None:
        running = self._running.get((message.workflow_id, message.run_id, message.seq, message.attempt))
        if running is not None:
            running[1].cancelled.set()
            running[0].cancel()


class _EngineReads:
    """What a Client's owner reads ask an engine node (``ledgerflow.owner_reads.OwnerReads``),
    answered by the in-process engine: the same JSON, and the same errors."""

    def __init__(self, engine: _Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings

    async def start(self, background: bool = False) -> None:
        return None

    async def close(self) -> None:
        return None

    def _run(self, workflow_id: str) -> Any:
        self.engine.check()
        return read_run(self.engine.processor.store, workflow_id)

    async def run(self, workflow_id: str, operation: str = "status") -> OwnedRunJson:
        run = self._run(workflow_id)
        if run is None:
            raise WorkflowNotFoundError(workflow_id)
        return cast(
            OwnedRunJson, {"partition": 0, "node": NODE, **run.model_dump(mode="json"), "queue_workers": {}}
        )

    async def closed(self, workflow_id: str, run_id: str | None, seconds: float) -> OwnedRunJson:
        deadline = time.monotonic() + seconds
        while True:
            run = self._run(workflow_id)
            changed = run is not None and (not run.is_open or (run_id is not None and run.run_id != run_id))
            if changed or time.monotonic() >= deadline:
                return await self.run(workflow_id)
            await asyncio.sleep(CLOSED_CHECK)

    async def started(
        self, workflow_id: str, request_id: str, run_id: str, seconds: float
    ) -> StartOutcomeJson:
        deadline = time.monotonic() + seconds
        while True:
            self.engine.check()
            outcome = start_outcome_json(self.engine.processor.store, 0, workflow_id, request_id)
            refusal = outcome["refusal"]
            told = refusal is not None and refusal["start_run_id"] == run_id
            if outcome["applied"] or told or time.monotonic() >= deadline:
                return outcome
            await asyncio.sleep(CLOSED_CHECK)

    async def update_status(self, workflow_id: str, update_id: str) -> UpdateStatusJson:
        run = self._run(workflow_id)
        if run is None:
            raise WorkflowNotFoundError(workflow_id)
        outcome = run.updates.get(update_id)
        update = cast(UpdateOutcomeJson, outcome.model_dump(mode="json")) if outcome else None
        return {"run_id": run.run_id, "status": run.status, "update": update}

    async def history_page(
        self, workflow_id: str, run_id: str | None, offset: int, limit: int
    ) -> HistoryPageJson:
        run = self._run(workflow_id)
        if run is None:
            raise WorkflowNotFoundError(workflow_id)
        rid = run_id or run.run_id
        events, total = read_history_page(self.engine.processor.store, workflow_id, rid, offset, limit)
        if not total:
            raise WorkflowNotFoundError(workflow_id)  # as a real owner's 404 reads
        return history_page_json(workflow_id, rid, events, total, offset)

    async def query(self, workflow_id: str, name: str, args: list[Any], shown_id: str | None = None) -> Any:
        run = self._run(workflow_id)
        if run is None:
            raise WorkflowNotFoundError(shown_id or workflow_id)
        processor = self.engine.processor
        instance = cached_copy(processor, self.engine.lock, run)
        try:
            if instance is None:
                history = read_history(processor.store, run.workflow_id, run.run_id)
                instance = replayed(processor.ctx.registry, run, history, processor.ctx.codec)
            return instance.query(name, args)
        except Exception as exc:
            raise QueryFailedError(shown_id or workflow_id, f"{type(exc).__name__}: {exc}") from exc
        finally:
            if instance is not None:
                instance.dispose()

    async def listing(self, params: dict[str, Any], limit: int) -> Listing:
        self.engine.check()
        stores = [(0, self.engine.processor.store)]
        namespace, after, scan_limit = (
            params.get("namespace"),
            params.get("after"),
            self.settings.list_scan_limit,
        )
        if params.get("query") is not None:
            query = parse_query(params["query"])
            found = query_runs(stores, query, after, namespace, limit, scan_limit)
            return Listing(found.runs, found.next_after, [])
        filters = RunFilter(params.get("status"), params.get("workflow_type"))
        found = list_runs(stores, filters, after, namespace, limit, scan_limit)
        return Listing(found.runs, found.next_after, [])

    async def count(self, query: str, namespace: str | None) -> Count:
        self.engine.check()
        counted, _ = count_runs([(0, self.engine.processor.store)], parse_query(query), namespace)
        return Count(counted)

    async def schedule(self, schedule_id: str) -> dict[str, Any]:
        self.engine.check()
        found = read_schedule(self.engine.processor.store, schedule_id, self.engine.now())
        if found is None:
            raise ScheduleNotFoundError(schedule_id)
        return found.model_dump(mode="json")

    async def schedules(
        self, namespace: str | None, after: str | None, limit: int
    ) -> tuple[list[ScheduleSummaryJson], str | None]:
        self.engine.check()
        stores = [(0, self.engine.processor.store)]
        found = list_schedules(stores, namespace, after, limit, self.engine.now())
        return found["schedules"], found["next_after"]

    async def nodes(self) -> list[tuple[Any, Any]]:
        return []


class _EnvironmentCore(AsyncClient):
    """An ``AsyncClient`` whose writes go to the in-process engine and whose reads it answers.

    It does not call ``AsyncClient.__init__`` (which makes a Kafka producer and reads the
    engines' group); it sets what the client's methods use and replaces the two seams,
    ``_write`` and ``_reads``.
    """

    def __init__(self, engine: _Engine, settings: Settings, namespace: str) -> None:
        self.namespace = namespace
        self._settings = settings
        self._engine = engine
        self.codec = engine.codec
        self._reads = _EngineReads(engine, settings)  # type: ignore[assignment]
        self._waits = self._reads
        self._connected = True
        self._closed = False

    async def _write(self, topic: str, key: str, value: bytes, partition: int | None = None) -> None:
        self._engine.check()
        if topic == self.settings.topic("definitions"):
            self._engine.define(value)
        else:
            self._engine.submit(c.read_command(value, "inbox record"))

    async def result(
        self,
        workflow_id: str,
        timeout: float = 60.0,
        run_id: str | None = None,
        result_type: Any = None,
        *,
        start: StartRequest | None = None,
    ) -> Any:
        with self._engine.waiting():
            return await super().result(workflow_id, timeout, run_id, result_type, start=start)

    async def close(self) -> None:
        self._closed = True


class _EnvironmentClient(Client):
    """The synchronous ``Client`` over an ``_EnvironmentCore`` (no Kafka to connect to)."""

    def __init__(self, core: _EnvironmentCore) -> None:
        self._loop = _LoopThread()
        self._closed = False
        self._async = core


class WorkflowEnvironment:
    """An in-process Ledgerflow for tests (see the module's docstring); a context manager."""

    def __init__(
        self,
        *,
        workflows: Sequence[Any] = (),
        activities: Sequence[Any] = (),
        modules: Sequence[str] = (),
        skipping: bool,
        codec: PayloadCodec | None = None,
        namespace: str = namespaces.DEFAULT,
    ) -> None:
        registry = WorkflowRegistry.from_modules(modules)
        for target in workflows:
            registry.add(definition_of(target))
        found = activity.collect(modules)
        found.update(activity.definitions(activities))
        self.settings = Settings(partitions=1)
        self._engine = _Engine(self.settings, registry, found, codec, skipping)
        self.async_client: AsyncClient = _EnvironmentCore(self._engine, self.settings, namespace)
        """The environment's ``AsyncClient`` (Temporal's ``env.client``): for ``async def`` tests."""
        self.client: Client = _EnvironmentClient(_EnvironmentCore(self._engine, self.settings, namespace))
        """The environment's synchronous ``Client``."""

    @classmethod
    def start_time_skipping(
        cls,
        *,
        workflows: Sequence[Any] = (),
        activities: Sequence[Any] = (),
        modules: Sequence[str] = (),
        codec: PayloadCodec | None = None,
    ) -> WorkflowEnvironment:
        """An environment whose clock skips to the next timer while a result is awaited and
        nothing is in flight. ``workflows``: ``@workflow.defn`` classes or functions;
        ``activities``: ``@activity.defn`` functions (or methods of an object); ``modules``: find
        both at the top of these modules, as ``ledgerflow engine --workflows`` and ``ledgerflow
        worker --activities`` do."""
        return cls(workflows=workflows, activities=activities, modules=modules, skipping=True, codec=codec)

    @classmethod
    def start_local(
        cls,
        *,
        workflows: Sequence[Any] = (),
        activities: Sequence[Any] = (),
        modules: Sequence[str] = (),
        codec: PayloadCodec | None = None,
    ) -> WorkflowEnvironment:
        """An environment on the wall clock: timers fire when they are due, never sooner."""
        return cls(workflows=workflows, activities=activities, modules=modules, skipping=False, codec=codec)

    @property
    def dead_letters(self) -> list[DeadLetter]:
        """The commands the engine refused, with why (a real engine's dead-letter topic)."""
        return list(self._engine.dead_letters)

    def now(self) -> datetime:
        """The environment's clock (the wall clock plus what was skipped), as workflows see it."""
        return datetime.fromtimestamp(self._engine.now(), UTC)

    def sleep(self, seconds: float) -> None:
        """Move the clock on by ``seconds`` and let what became due run."""
        self._engine.skip(seconds)
        deadline = time.monotonic() + SETTLE_WAIT
        time.sleep(IDLE_WAIT)
        while not self._engine.settled() and time.monotonic() < deadline:
            time.sleep(IDLE_WAIT / 4)
        time.sleep(IDLE_WAIT)  # the last batch's outcome reaches the store

    @contextlib.contextmanager
    def auto_time_skipping_disabled(self) -> Iterator[None]:
        """Within this block, waiting on a result does not skip time."""
        before, self._engine.auto_skip = self._engine.auto_skip, False
        try:
            yield
        finally:
            self._engine.auto_skip = before

    def close(self) -> None:
        self.client.close()
        self._engine.close()

    def __enter__(self) -> WorkflowEnvironment:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
