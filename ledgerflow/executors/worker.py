"""A worker: consumes one task queue, runs activities concurrently, reports to the inbox.

At least once: offsets are committed only below the oldest task that is still
running or whose result Kafka has not acknowledged yet, so a worker killed
mid-activity (or before its result landed) leaves the task to be run again by
the next worker of the queue. A result whose delivery fails is sent again
until Kafka takes it. A slow task never holds up the others of its partition.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import threading
import time
from collections.abc import Awaitable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import GroupAuthorizationFailedError, KafkaError, TopicAuthorizationFailedError
from pydantic import ValidationError

from ledgerflow import activity
from ledgerflow.codec.base import PayloadCodec
from ledgerflow.codec.envelope import encode
from ledgerflow.codec.keyfile import load_codec
from ledgerflow.config import Settings
from ledgerflow.executors.advertise import Advertiser, served
from ledgerflow.executors.aiokafka_config import client_options
from ledgerflow.executors.offsets import PartitionOffsets
from ledgerflow.executors.outcomes import heartbeat_record, outcome_record
from ledgerflow.executors.runner import AttemptRunner, attempt_info
from ledgerflow.schemas.commands import TaskCompleted, TaskFailed, TaskHeartbeat
from ledgerflow.schemas.tasks import ActivityTask, CancelActivity, task_message_adapter

log = logging.getLogger("ledgerflow.worker")
AttemptKey = tuple[str, str, int, int]
COMMIT_INTERVAL = 0.2
"""Seconds between offset commits (a killed worker re-runs at most this much finished work)."""
RESEND_DELAYS = (0.5, 1.0, 2.0, 5.0)
"""Seconds before sending a result again after a failed delivery (the last one repeats)."""
KEEP_MEMBERSHIP_EVERY = 1.0
"""With every slot busy: seconds between the calls that keep the group membership alive (well
inside the 6 s session timeout)."""
FETCH_RETRY_DELAY = 0.5
"""Seconds before fetching again after the consumer raised a group or fetch error."""
MAX_FETCH_FAILURES = 20
"""Fetches in a row that may raise (each followed by a rejoin) before the worker stops."""


@dataclass(frozen=True)
class Running:
    """An attempt running on this worker, and where its task record is."""

    task: asyncio.Task[None]
    context: activity.AttemptContext
    tp: TopicPartition
    offset: int


class Worker:
    """Runs the given activities for one queue. ``await run()`` until ``stop()``."""

    def __init__(
        self,
        settings: Settings,
        activities: dict[str, activity.ActivityDefinition],
        queue: str = "default",
        concurrency: int = 100,
        shutdown_grace: float = 30.0,
        codec: PayloadCodec | None = None,
    ) -> None:
        """``codec``: the payload codec; by default the one of the ``codec_keys_file`` setting."""
        self.settings = settings
        self.queue = queue
        self.concurrency = concurrency
        self.shutdown_grace = shutdown_grace
        self.codec = codec if codec is not None else load_codec(settings)
        threads = ThreadPoolExecutor(max_workers=min(concurrency, 64))
        self.runner = AttemptRunner(activities, threads, self.codec)
        self.advertiser = Advertiser(settings, queue, served(activities))
        self._stop = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._running: dict[AttemptKey, Running] = {}
        self._offsets: dict[TopicPartition, PartitionOffsets] = {}
        self._resumed: set[TopicPartition] = set()
        """Assigned partitions whose offsets ``resume_positions`` checked: the only ones committed."""
        self._assignments = 0
        """Revocations so far: a commit computed before one is not sent."""
        self._fetch_failures = 0
        """Fetches in a row that raised (the worker stops past ``MAX_FETCH_FAILURES``)."""
        self._producer: AIOKafkaProducer | None = None
        self._sends: set[asyncio.Future[Any]] = set()
        self._outcomes: dict[AttemptKey, asyncio.Future[Any]] = {}
        """The delivery of each running attempt's outcome (its offset is done when it lands)."""
        self.completed = 0
        self.abandoned = 0
        """Activities still running when the shutdown grace ended (their tasks stay uncommitted)."""

    def stop(self) -> None:
        self._stop.set()

    async def __aenter__(self) -> Worker:
        self._task = asyncio.create_task(self.run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.stop()
        await self._task

    async def run(self) -> None:
        topic = self.settings.task_topic(self.queue)
        consumer = AIOKafkaConsumer(
            **client_options(self.settings),
            group_id=f"{self.settings.prefix}workers.{self.queue}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            session_timeout_ms=6000,
            heartbeat_interval_ms=1000,
            # A queue's topic created a moment ago may be missing from the first metadata: the
            # group then assigns nothing until the next refresh (5 minutes by default).
            metadata_max_age_ms=5000,
        )
        producer = AIOKafkaProducer(
            **client_options(self.settings), enable_idempotence=True, acks="all", linger_ms=0
        )
        await producer.start()
        await consumer.start()
        self._subscribe(consumer)
        self._producer = producer
        log.info("worker on %s started", topic)
        # Offsets are committed beside the fetch loop, so waiting for Kafka's acknowledgement
        # of the reports never holds up the next tasks.
        committer = asyncio.create_task(self._commit_every(consumer, COMMIT_INTERVAL))
        committer.add_done_callback(_log_commit_loop_end)
        advertiser = asyncio.create_task(self.advertiser.run(producer, self._stop))
        try:
            while not self._stop.is_set():
                await self._fetch(consumer)
        finally:
            # Not cancelled: a cancelled commit round would cancel the report sends it waits on.
            self._stop.set()
            await asyncio.wait([committer])
            await self._drain()  # beside the advertiser's tombstone, which waits on Kafka at most 3 s
            await self._commit(consumer)
            await asyncio.wait([advertiser])
            await consumer.stop()
            await producer.stop()
            self.runner.threads.shutdown(wait=False, cancel_futures=True)

    async def _fetch(self, consumer: AIOKafkaConsumer) -> None:
        """Take as many tasks as there are free slots; with none free for a while, still call
        ``getmany``, every partition paused.

        aiokafka's group coordinator, after a group error (a failed heartbeat while a broker
        goes away, say), waits for the consumer's next ``getmany`` to hand it the error before
        it heartbeats or rejoins again; and a consumer that has not called it for
        ``max.poll.interval.ms`` leaves its group. A worker whose every slot is busy with long
        activities must stay a live member all the same, or its tasks move to other workers
        while it still runs them, and a group waiting for it does not settle.
        """
        self._slot_freed.clear()
        room = self.concurrency - len(self._running)
        if room > 0:
            _resume_all(consumer)
            await self._take(consumer, timeout_ms=100, max_records=room)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._slot_freed.wait(), KEEP_MEMBERSHIP_EVERY)
        if len(self._running) >= self.concurrency:
            # Paused, so it fetches nothing (records fetched already are dropped, and fetched
            # again on resume); a partition assigned during the call is not: one record at most
            _pause_all(consumer)
            await self._take(consumer, timeout_ms=0, max_records=1)

    async def _take(self, consumer: AIOKafkaConsumer, timeout_ms: int, max_records: int) -> None:
        try:
            batches = await consumer.getmany(timeout_ms=timeout_ms, max_records=max_records)
        except (GroupAuthorizationFailedError, TopicAuthorizationFailedError):
            raise  # an operator must grant it: stopping says so
        except KafkaError as exc:
            # aiokafka hands over a group error once per call, and after some (a heartbeat
            # answered with an unexpected code) it never heartbeats again until it rejoins:
            # the broker would drop this member while it runs its tasks. Subscribing anew
            # makes it rejoin; a partition that comes back goes on past the tasks taken.
            self._fetch_failures += 1
            if self._fetch_failures > MAX_FETCH_FAILURES:
                raise  # it does not clear: stopping says so, and a supervisor starts a fresh one
            log.warning("task fetch failed, rejoining the queue's group: %r", exc)
            self._subscribe(consumer)
            await asyncio.sleep(FETCH_RETRY_DELAY)
            return
        self._fetch_failures = 0
        for tp, messages in batches.items():
            for message in messages:
                self._accept(tp, message.offset, message.value)

    async def resume_positions(self, consumer: AIOKafkaConsumer, assigned: set[TopicPartition]) -> None:
        """Read each partition that comes back to this worker (a rejoin, an eager rebalance)
        from past the tasks it took already, when no one committed for it meanwhile.

        Kafka would start it at the last commit, below every task still running here or
        finished since: each would run again. When another worker committed for it meanwhile,
        what this worker knew of it is forgotten and Kafka's position stands.
        """
        for tp in assigned:
            known = self._offsets.get(tp)
            if known is not None and known.highest_seen >= 0:
                committed = await consumer.committed(tp)
                if (committed if committed is not None else -1) == known.committed:
                    consumer.seek(tp, known.highest_seen + 1)
                else:
                    # Read it again from that commit: aiokafka may have handed over records of it
                    # before this listener ran, and those are in flight here like any other.
                    known.rebase(committed if committed is not None else -1)
                    if committed is None:
                        await consumer.seek_to_beginning(tp)
                    else:
                        consumer.seek(tp, committed)
            self._resumed.add(tp)

    def forget_positions(self, revoked: set[TopicPartition]) -> None:
        """Nothing is committed for ``revoked`` partitions until ``resume_positions`` has
        checked what this worker knows of one that comes back."""
        self._resumed -= revoked
        self._assignments += 1

    def _subscribe(self, consumer: AIOKafkaConsumer) -> None:
        """(Re)join the queue's group."""
        self.forget_positions(set(self._resumed))  # checked again once assigned (resume_positions)
        consumer.unsubscribe()
        listener = _ResumePositions(self, consumer)
        consumer.subscribe(topics=[self.settings.task_topic(self.queue)], listener=listener)

    def _accept(self, tp: TopicPartition, offset: int, value: bytes | None) -> None:
        offsets = self._offsets.setdefault(tp, PartitionOffsets())
        try:
            message = task_message_adapter.validate_json(value or b"")
        except ValidationError as exc:
            log.error("skipping malformed task at %s/%d: %s", tp, offset, exc)
            offsets.started(offset)
            offsets.finished(offset)
            return
        if isinstance(message, CancelActivity):
            key = (message.workflow_id, message.run_id, message.seq, message.attempt)
            running = self._running.get(key)
            if running is not None:
                running.context.cancelled.set()
                running.task.cancel()
            offsets.started(offset)
            offsets.finished(offset)
            return
        offsets.started(offset)
        running = self._running.get((message.workflow_id, message.run_id, message.seq, message.attempt))
        if running is None:
            self._start(message, tp, offset)
        elif (running.tp, running.offset) != (tp, offset):
            offsets.finished(offset)  # another record of an attempt already running: skipped
        # else: the same record again (its partition came back to this worker after a rejoin,
        # read again from the last commit): the attempt already running finishes its offset

    def _start(self, task: ActivityTask, tp: TopicPartition, offset: int) -> None:
        """Run one attempt concurrently; its offset counts as done when it ends."""
        key = (task.workflow_id, task.run_id, task.seq, task.attempt)
        loop = asyncio.get_running_loop()
        info = attempt_info(task, self.codec)
        last_beat = [0.0]
        interval = max(0.2, (task.heartbeat_timeout or 3.0) / 3)
        loop_thread = threading.get_ident()
        unsent: list[Any] = []
        """The details of the last heartbeat held back by the throttle (at most one)."""

        def beat_record(details: Any) -> bytes:
            beat = TaskHeartbeat(
                workflow_id=task.workflow_id,
                run_id=task.run_id,
                seq=task.seq,
                attempt=task.attempt,
                details=encode(self.codec, details),
            )
            return heartbeat_record(beat, task.activity_type, self.settings)

        def heartbeat(details: Any) -> None:  # from the activity: the loop's thread or another
            now = time.monotonic()
            if now - last_beat[0] < interval:
                unsent[:] = [details]  # sent with the next heartbeat past the throttle, or a failure
                return
            last_beat[0] = now
            unsent.clear()
            send = functools.partial(
                self._report, task.workflow_id, beat_record(details), task.partition, outcome=False
            )
            if threading.get_ident() == loop_thread:
                send()  # now, so it is sent before the outcome this attempt may report next
            else:
                loop.call_soon_threadsafe(send)

        def report(outcome: TaskCompleted | TaskFailed) -> None:  # on the loop's thread
            if unsent and isinstance(outcome, TaskFailed):
                # The next attempt resumes from what this one last heartbeated: send it first.
                self._report(task.workflow_id, beat_record(unsent.pop()), task.partition, outcome=False)
            value = outcome_record(outcome, task.activity_type, self.settings)
            self._outcomes[key] = self._report(task.workflow_id, value, task.partition, outcome=True)

        ctx = activity.AttemptContext(info=info, heartbeat=heartbeat)
        attempt = loop.create_task(self.runner.run(task, ctx, report))
        self._running[key] = Running(attempt, ctx, tp, offset)

        def finished_offset(delivery: asyncio.Future[Any] | None = None) -> None:
            if delivery is not None and (delivery.cancelled() or delivery.exception() is not None):
                return  # never acknowledged (the worker is stopping): the task runs again elsewhere
            partition = self._offsets.get(tp)
            if partition is not None:  # None: revoked meanwhile
                partition.finished(offset)

        def done(finished: asyncio.Task[None]) -> None:
            self._running.pop(key, None)
            self._slot_freed.set()
            delivery = self._outcomes.pop(key, None)
            if finished.cancelled() and not ctx.cancelled.is_set():
                # Cut off by shutdown, not cancelled by its workflow: leave its offset
                # uncommitted so the task runs again elsewhere.
                return
            self.completed += 1
            if delivery is None or delivery.done():
                finished_offset(delivery)
            else:
                # The task counts as done once Kafka has its outcome, not before.
                delivery.add_done_callback(finished_offset)

        attempt.add_done_callback(done)

    def _report(
        self, workflow_id: str, value: bytes, partition: int | None, *, outcome: bool
    ) -> asyncio.Future[Any]:
        """Send a record to the inbox, to the partition the owner named (see ActivityTask.partition).

        Returns its delivery, done once Kafka acknowledged it. An ``outcome`` (a result or a
        failure) is sent again until it is, a heartbeat only once; only stopping the worker
        gives up on an outcome.
        """
        record = (value, workflow_id.encode(), partition)
        if outcome:
            future = asyncio.ensure_future(self._deliver(*record))
        else:
            future = asyncio.ensure_future(self._send(*record))
            future.add_done_callback(_log_send_error)
        self._sends.add(future)
        future.add_done_callback(self._sends.discard)
        return future

    async def _send(self, value: bytes, key: bytes, partition: int | None) -> Any:
        producer = self._producer
        assert producer is not None
        queued = producer.send(self.settings.topic("inbox"), value=value, key=key, partition=partition)
        return await _acknowledged(queued)

    async def _deliver(self, value: bytes, key: bytes, partition: int | None) -> Any:
        """Send until Kafka acknowledges: a failed result must not count as reported."""
        for attempt in itertools.count():
            try:
                return await self._send(value, key, partition)
            except Exception as exc:
                delay = RESEND_DELAYS[min(attempt, len(RESEND_DELAYS) - 1)]
                log.error("could not report a task result, sending it again in %.1f s: %s", delay, exc)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def _commit_every(self, consumer: AIOKafkaConsumer, interval: float) -> None:
        """Commit every ``interval`` seconds until the worker stops, and once more then."""
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), interval)
            await self._commit(consumer)

    async def _commit(self, consumer: AIOKafkaConsumer) -> None:
        # A revoked partition is not committed for (that would fail the whole commit); what
        # this worker knows of it is kept in case it comes back (resume_positions).
        assigned = consumer.assignment() & self._resumed
        assignments = self._assignments
        offsets = {
            tp: o
            for tp, po in self._offsets.items()
            if tp in assigned and (o := po.committable()) is not None
        }
        if not offsets:
            return
        # Results must be on Kafka before the tasks that produced them count as done. Every
        # task these offsets cover reported before it finished, so the reports not yet
        # acknowledged now are the ones to wait for; later ones belong to the next commit.
        # A result that cannot be delivered keeps its task's offset in flight (see _start), so
        # the wait is bounded: the commit goes ahead without the offsets such a task holds up.
        if self._sends:
            await asyncio.wait(list(self._sends), timeout=RESEND_DELAYS[-1])
        if self._assignments != assignments:
            return  # a rebalance meanwhile: another worker may have committed further
        try:
            await consumer.commit(offsets)
        except Exception as exc:  # e.g. partition revoked in a rebalance: tasks will rerun
            log.warning("offset commit failed: %s", exc)
            return
        for tp, offset in offsets.items():
            self._offsets[tp].committed = offset

    async def _drain(self) -> None:
        deadline = time.monotonic() + self.shutdown_grace
        if self._running:
            tasks = [running.task for running in self._running.values()]
            log.info("waiting up to %.0f s for %d running activities", self.shutdown_grace, len(tasks))
            _, pending = await asyncio.wait(tasks, timeout=self.shutdown_grace)
            self.abandoned = len(pending)
            for task in pending:
                task.cancel()
        await self._flush_reports(max(1.0, deadline - time.monotonic()))

    async def _flush_reports(self, timeout: float) -> None:
        """Wait until every result reported so far is acknowledged by Kafka, or give up on
        the ones still failing after ``timeout`` seconds: their tasks stay uncommitted."""
        deadline = time.monotonic() + timeout
        while self._sends and (left := deadline - time.monotonic()) > 0:
            await asyncio.wait(list(self._sends), timeout=left)
        for send in list(self._sends):
            log.error("giving up on an unacknowledged task result; the task will run again")
            send.cancel()
        if self._sends:
            await asyncio.wait(list(self._sends))


class _ResumePositions(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, worker: Worker, consumer: AIOKafkaConsumer) -> None:
        self.worker = worker
        self.consumer = consumer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        """Tasks running for a revoked partition finish and report all the same; nothing is
        committed for it meanwhile."""
        self.worker.forget_positions(revoked)

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.worker.resume_positions(self.consumer, assigned)


def _pause_all(consumer: AIOKafkaConsumer) -> None:
    running = consumer.assignment() - consumer.paused()
    if running:
        consumer.pause(*running)


def _resume_all(consumer: AIOKafkaConsumer) -> None:
    paused = consumer.paused()
    if paused:
        consumer.resume(*paused)


async def _acknowledged(queued: Awaitable[asyncio.Future[Any]]) -> Any:
    """A report's send until Kafka acknowledged it: aiokafka's ``send`` returns once the record
    is queued, with a future of its delivery."""
    delivery = await queued
    return await delivery


def _log_commit_loop_end(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("offset commits stopped: %s", task.exception())


def _log_send_error(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        log.error("could not report a task result: %s", future.exception())
