"""The owner loop: consume a batch of inbox records, apply it, commit it in one transaction."""

from __future__ import annotations

import gc
import logging
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    TIMESTAMP_NOT_AVAILABLE,
    Consumer,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)

from ledgerflow import kafkaclients as clients
from ledgerflow.codec.keyfile import load_codec
from ledgerflow.config import Settings
from ledgerflow.engine import metrics
from ledgerflow.engine.checkpoint import CALL_TIMEOUT, Checkpoint, StoreChanges
from ledgerflow.engine.cluster_events import ClusterEventPublisher
from ledgerflow.engine.commits import CommitNotices
from ledgerflow.engine.context import Admission, EngineContext
from ledgerflow.engine.definitions import DefinitionTable
from ledgerflow.engine.errors import ChangelogReadError, StuckCallError, UnusableQueueError
from ledgerflow.engine.ingress import IngressForwarder, ingress_transactional_id
from ledgerflow.engine.kafka.admin import ensure_queue_topics
from ledgerflow.engine.kafka.group import GroupProtocol, member_config, set_group_timeouts
from ledgerflow.engine.kafka.watchdog import CallGuard
from ledgerflow.engine.outbox import Outbox
from ledgerflow.engine.ownerlock import OwnerLock
from ledgerflow.engine.queues import QueueWatch
from ledgerflow.engine.rebalance import PartitionManager
from ledgerflow.engine.state import keys
from ledgerflow.engine.state.standby import StandbyReplicas
from ledgerflow.errors import DeploymentMovedError, TopicLayoutError
from ledgerflow.schemas.commands import UnreadableCommand, key_of, read_command
from ledgerflow.sdk.definition import WorkflowRegistry

log = logging.getLogger("ledgerflow.engine")

FULL_COLLECTION_EVERY = 100
"""Young (generation 1) collections between two full ones; Python's default is 10."""


def tune_garbage_collector() -> None:
    """Make the cycle collector's full collections rare in an engine process.

    A full collection walks every live object; with a full instance cache that is half a
    million objects and ~0.1 s each time. Workflow instances free themselves by reference
    counting (``WorkflowInstance.dispose``), so those walks found nothing to free, yet took
    a tenth of the owner loop in a burst (8,000 runs: 1,075 -> 1,145 workflows/s with this).
    What exists at start-up (modules, classes, schemas) is frozen out of them altogether.
    Call once, at process start; it is process-wide.
    """
    gc.collect()
    gc.freeze()
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_COLLECTION_EVERY)


def fill_batch(consumer: Consumer, first: Message, max_records: int, max_bytes: int) -> list[Message]:
    """``first`` and the records already fetched after it, up to ``max_records`` or about
    ``max_bytes`` of values (passed by one chunk at most), without waiting for more."""
    batch, size = [first], len(first.value() or b"")
    while len(batch) < max_records and size < max_bytes:
        more = consumer.consume(num_messages=min(BATCH_CHUNK, max_records - len(batch)), timeout=0)
        if not more:
            break
        batch += more
        size += sum(len(message.value() or b"") for message in more)
    return batch


STUCK_CALL_AFTER = clients.TRANSACTION_TIMEOUT_MS / 1000 + 5
"""Seconds after which the owner loop gives up on a commit call and its producer (see
CallGuard): by then the transaction timed out at its coordinator anyway."""

FAILED_BATCH_WAIT = 0.05
"""Seconds the owner loop waits after a failed batch, doubled for each one in a row..."""
FAILED_BATCH_WAIT_MAX = 5.0
"""... up to this."""

BATCH_CHUNK = 32
"""Records taken from the consumer at a time while a batch fills: how far ``max_batch_bytes``
may be passed (32 records of up to ``max_record_bytes`` each)."""


@dataclass(frozen=True)
class EngineOptions:
    """How one engine node runs."""

    data_dir: Path
    advertised_url: str = ""
    """Where the gateway reaches this node's HTTP server (owner reads)."""
    max_batch: int = 500
    """Most inbox records applied in one transaction."""
    max_batch_bytes: int = 16 * 1024 * 1024
    """Inbox bytes after which a batch takes no more records (it may pass this by one chunk)."""
    max_wait: float = 0.05
    """Seconds to wait for more records when the inbox is idle."""
    cache_size: int = 2_000
    """Open workflow instances kept in memory per partition."""
    max_open_per_partition: int | None = None
    """Refuse starts when a partition holds this many open workflows (None: no limit)."""
    max_open_per_engine: int | None = None
    """Refuse starts when this node holds this many open workflows (None: no limit)."""
    retention: float | None = None
    """Seconds a closed run's state and history are kept before deletion (None: forever)."""
    standby: bool = False
    """Keep warm copies of the partitions this node does not own (faster takeovers)."""
    session_timeout_ms: int = 6000
    """How long the group waits for a silent node before moving its partitions (failover
    time). Brokers refuse values under their ``group.min.session.timeout.ms`` (6 s by default;
    ``group.consumer.min.session.timeout.ms``, 45 s, under the consumer protocol)."""
    group_protocol: GroupProtocol = "classic"
    """Kafka's group protocol for the engine group (see ledgerflow/engine/kafka/group.py)."""


class Engine:
    """A partition-owner node. ``run()`` blocks until ``stop()``."""

    def __init__(self, settings: Settings, options: EngineOptions, registry: WorkflowRegistry) -> None:
        self.settings = settings
        self.options = options
        self.node_id = _node_id(options.data_dir)
        self.definitions = DefinitionTable(settings)
        self.queue_watch = QueueWatch(settings)
        limits = Admission(options.max_open_per_partition, options.max_open_per_engine, self.open_workflows)
        self.transactional_id = f"{settings.prefix}engine-{self.node_id}"
        self.ingress = IngressForwarder(
            settings,
            ingress_transactional_id(self.transactional_id),
            # classic whatever the engine group uses: its pattern subscription is librdkafka's own
            member_config("classic", options.session_timeout_ms),
        )
        self._groups = clients.GroupDescriber(settings)
        self.ctx = EngineContext(
            settings,
            registry,
            self.definitions.get,
            options.cache_size,
            limits,
            self.transactional_id,
            options.retention,
            codec=load_codec(settings),
        )
        self._stop = threading.Event()
        self.owner_lock = OwnerLock()
        self.commits = CommitNotices()
        """Held while the owner loop changes its processors' cached workflow instances (a
        batch, giving partitions up); a query copying a cached instance holds it too."""
        self._inbox_positions: dict[int, int] = {}
        """Inbox offsets this node last committed or went back to, per owned partition: what a
        transaction sends for a partition whose consumer position is not known yet (just
        assigned, or just sought back), so it still carries the zombie check."""
        self._failed_batches = 0
        """Batches failed in a row (reset by a commit): how long to wait before the next try."""
        self._queues: set[str] = set()
        """Task queues whose topics are known to exist."""
        self.started = threading.Event()
        self.consumer: Consumer | None = None
        self.partitions: PartitionManager | None = None

    @property
    def group_id(self) -> str:
        return f"{self.settings.prefix}engine"

    def open_workflows(self) -> int:
        """Open workflows on the partitions this node owns."""
        if self.partitions is None:
            return 0
        return sum(p.open_runs for p in list(self.partitions.processors.values()))

    def stop(self) -> None:
        self._stop.set()

    def ready(self) -> bool:
        """True once the node joined the group and no owned partition is restoring."""
        partitions = self.partitions
        return (
            self.started.is_set()
            and partitions is not None
            and partitions.assigned_once
            and not partitions.restoring
        )

    def run(self) -> None:
        self.definitions.start()
        self.queue_watch.start()
        self.ingress.start()
        try:
            while not self._stop.is_set():
                try:
                    self._run_session()
                except _Restart as exc:
                    log.warning("restarting the owner session: %s", exc)
                    time.sleep(0.5)
                except DeploymentMovedError:
                    raise  # restarting cannot help: the operator must use the new prefix
                except Exception as exc:
                    # Kafka trouble outside a transaction (a rebalance callback, a poll):
                    # the session's state is dropped and rebuilt from the store and Kafka.
                    log.exception("owner session failed, restarting: %s", exc)
                    time.sleep(1.0)
        finally:
            self.ingress.stop()
            self.definitions.stop()
            self.queue_watch.stop()

    def _run_session(self) -> None:
        """One consumer group membership with one transactional producer."""
        settings = self.settings
        # A short fetch wait: the end of a changelog partition is only seen when a fetch
        # comes back empty, and the default makes that fetch wait 500 ms per partition.
        restore_consumer = clients.consumer(
            settings, None, **{"enable.partition.eof": True, "fetch.wait.max.ms": 10}
        )
        events_producer = clients.plain_producer(settings, **{"acks": "1", "enable.idempotence": False})
        publish = ClusterEventPublisher(events_producer, settings, self.node_id, self.options.advertised_url)
        self.partitions = PartitionManager(
            self.ctx,
            self.options.data_dir,
            restore_consumer,
            publish=publish,
            fence=self._fence,
            live_producers=self._live_producers,
            standby=StandbyReplicas(settings, self.options.data_dir) if self.options.standby else None,
        )
        manager = self.partitions
        metrics.INBOX_LAG.source = lambda: manager.lag
        standby = self.partitions.standby
        if standby is not None:
            standby.start()
        protocol, session_ms = self.options.group_protocol, self.options.session_timeout_ms
        if protocol == "consumer":
            set_group_timeouts(self._groups.admin, self.group_id, session_ms)
        consumer = clients.consumer(
            settings,
            self.group_id,
            **{
                "client.id": f"ledgerflow-engine {self.options.advertised_url} {self.transactional_id}",
                "max.poll.interval.ms": 300000,
                **member_config(protocol, session_ms),
            },
        )
        self.consumer = consumer
        self._inbox_positions, self._failed_batches = {}, 0
        guard = CallGuard(STUCK_CALL_AFTER)
        checkpoint: Checkpoint | None = None
        partitions = self.partitions

        def on_assign(_: Consumer, tps: list[TopicPartition]) -> None:
            self._forget_positions(tps)
            partitions.assign([tp.partition for tp in tps])

        def on_revoke(_: Consumer, tps: list[TopicPartition]) -> None:
            self._forget_positions(tps)
            with self.owner_lock.owner():
                partitions.revoke([tp.partition for tp in tps], "revoked")
            self.commits.moved()

        def on_lost(_: Consumer, tps: list[TopicPartition]) -> None:
            self._forget_positions(tps)
            with self.owner_lock.owner():
                partitions.revoke([tp.partition for tp in tps], "lost")
            self.commits.moved()

        try:
            checkpoint = Checkpoint(settings, self._new_producer(guard), consumer, guard)
            consumer.subscribe(
                [settings.topic("inbox")], on_assign=on_assign, on_revoke=on_revoke, on_lost=on_lost
            )
            self.started.set()
            publish({"type": "NODE_JOINED"})
            while not self._stop.is_set():
                messages = self._next_batch(consumer)
                now = time.time()
                due = [
                    p for p in partitions.processors.values() if (p.timers.next_fire_at() or now + 1) <= now
                ]
                # A store from before the visibility index fills it in on idle turns too, unless
                # batches are failing (each failure reloads every store: not for an idle node).
                indexing = not self._failed_batches and any(
                    p.indexing for p in partitions.processors.values()
                )
                if not messages and not due and not indexing:
                    continue
                with self.owner_lock.owner():
                    self._process(messages, now, checkpoint)
                if self._failed_batches:
                    # The same failure again at once would only repeat the reload (a broker
                    # away, a record it refuses): wait longer after each failed batch in a row.
                    failed = self._failed_batches - 1
                    self._stop.wait(min(FAILED_BATCH_WAIT * 2**failed, FAILED_BATCH_WAIT_MAX))
        finally:
            self.started.clear()
            guard.close()
            with self.owner_lock.owner():
                partitions.close()
                self.commits.moved()
            if standby is not None:
                standby.stop()
            consumer.close()
            restore_consumer.close()
            if checkpoint is not None:
                checkpoint.producer.flush(5)
            publish({"type": "NODE_LEFT"})
            events_producer.flush(5)

    def _forget_positions(self, tps: list[TopicPartition]) -> None:
        """A partition assigned or given up: its position is the group's, not what we knew."""
        for tp in tps:
            self._inbox_positions.pop(tp.partition, None)

    def _new_producer(self, guard: CallGuard) -> Producer:
        """This node's transactional producer; starting it aborts what an earlier one left open."""
        producer = clients.transactional_producer(self.settings, self.transactional_id)
        guard.call("init_transactions", lambda: producer.init_transactions(CALL_TIMEOUT))
        return producer

    def _live_producers(self) -> set[str] | None:
        """Transactional ids of the engines in the group now (from their client ids); None if unknown."""
        group = self.group_id
        try:
            described = self._groups.describe(group, 5)
        except Exception as exc:  # cannot tell: fence nobody, the transaction timeout still applies
            log.warning("cannot describe the engine group: %s", exc)
            return None
        return {member.client_id.rsplit(" ", 1)[-1] for member in described.members}

    def _fence(self, transactional_id: str) -> bool:
        """Abort a dead owner's open transaction now, by starting its producer id once; whether
        it was fenced (our own earlier incarnation: init_transactions at session start did it)."""
        if transactional_id == self.transactional_id:
            return False
        # its namespace-ingress forwarder's transaction too (engine/ingress.py): the inbox's
        # readers wait behind it as well
        clients.fence(self.settings, ingress_transactional_id(transactional_id))
        return clients.fence(self.settings, transactional_id)

    def _next_batch(self, consumer: Consumer) -> list[Message]:
        """Wait for the first record only, then take what else is already fetched.

        ``consume(n, timeout)`` alone waits the whole timeout for ``n`` records, which
        would put that timeout on every step of an idle system; this way a lone record
        is applied at once and a busy inbox still yields large batches. A batch is bounded
        by bytes too: its records and what they produce are held until its transaction ends.
        """
        first = consumer.poll(self._wait())
        if first is None:
            return []
        return fill_batch(consumer, first, self.options.max_batch, self.options.max_batch_bytes)

    def _wait(self) -> float:
        assert self.partitions is not None
        fire_times = [
            t for p in self.partitions.processors.values() if (t := p.timers.next_fire_at()) is not None
        ]
        if not fire_times:
            return 0.2
        return max(0.0, min(0.2, min(fire_times) - time.time()))

    def _process(self, messages: list[Message], now: float, checkpoint: Checkpoint) -> None:
        assert self.partitions is not None
        started = time.monotonic()
        processors = self.partitions.processors
        out = Outbox(self.settings)
        offsets: dict[int, int] = {}
        try:
            checkpoint.begin()
            for processor in processors.values():
                processor.begin(now, out)
            for message in messages:
                self._apply(message, processors, out, offsets)
            for processor in processors.values():
                processor.fire_timers()
            self._add_positions(offsets, list(processors))
            self._ensure_queues(out.queues)
            stores = [
                StoreChanges(p.partition, p.store, dict(changes))
                for p in processors.values()
                if (changes := p.finish())
            ]
            applied = time.monotonic()
            checkpoint.commit(stores, out, offsets)
        except Exception as exc:
            self._abort(checkpoint, exc)
            return
        self.commits.committed(changed_workflows(stores))
        self._inbox_positions.update(offsets)
        self._failed_batches = 0
        self._update_lag(offsets)
        metrics.BATCH_SIZE.observe(len(messages))
        metrics.APPLY_LATENCY.observe(applied - started)
        metrics.COMMIT_LATENCY.observe(time.monotonic() - applied)
        _observe_inbox_waits(messages, now)
        open_now = self.open_workflows()
        metrics.OPEN_WORKFLOWS.set(open_now)
        capacity = self.options.max_open_per_engine
        metrics.ENGINE_LOAD.set(open_now / capacity if capacity else open_now)

    def _ensure_queues(self, queues: set[str]) -> None:
        """Create the topics of task queues this engine has not written to before.

        A DAG may name a queue before any worker for it started (the everyday order of a
        deployment); its task must wait there for one, not fail the batch's transaction
        on a missing topic. Created with the deployment's partitions and replication.
        """
        for queue in sorted(queues - self._queues):
            try:
                created = ensure_queue_topics(self.settings, (queue,))
            except KafkaException as exc:
                if exc.args[0].retriable():
                    raise  # the broker is away: the batch is tried again
                self._unusable(queue, exc.args[0].str())
            except TopicLayoutError as exc:
                self._unusable(queue, str(exc))
            else:
                if created:
                    log.info("created task topics %s", created)
                self._queues.add(queue)
                self.queue_watch.watch({queue})

    def _unusable(self, queue: str, reason: str) -> None:
        """Fail the runs that route to ``queue`` rather than retry this batch forever: the batch
        is aborted and tried again, and its runs' activities for the queue now fail them."""
        self.ctx.unusable_queues[queue] = reason
        raise UnusableQueueError(f"task queue {queue!r} is unusable: {reason}")

    def _add_positions(self, offsets: dict[int, int], partitions: list[int]) -> None:
        """Offsets for every owned partition, so every transaction (even one that only fires
        timers) carries the group metadata check that fences a zombie owner (KIP-447)."""
        assert self.consumer is not None
        inbox = self.settings.topic("inbox")
        missing = [TopicPartition(inbox, p) for p in partitions if p not in offsets]
        if missing:
            for tp in self.consumer.position(missing):
                if tp.offset >= 0:
                    offsets[tp.partition] = tp.offset
                elif (known := self._inbox_positions.get(tp.partition)) is not None:
                    offsets[tp.partition] = known

    def _update_lag(self, offsets: dict[int, int]) -> None:
        """Records behind the end of each inbox partition just consumed (from cached watermarks)."""
        assert self.partitions is not None and self.consumer is not None
        inbox = self.settings.topic("inbox")
        for partition, next_offset in offsets.items():
            _, high = self.consumer.get_watermark_offsets(TopicPartition(inbox, partition), cached=True)
            if high >= 0:
                self.partitions.lag[partition] = max(0, high - next_offset)

    def _apply(
        self, message: Message, processors: dict[int, Any], out: Outbox, offsets: dict[int, int]
    ) -> None:
        error = message.error()
        if error is not None:
            log.warning("inbox read error: %s", error)
            return
        partition, offset = message.partition(), message.offset()
        assert partition is not None and offset is not None  # set on every consumed record
        processor = processors.get(partition)
        if processor is None:
            return
        offsets[partition] = offset + 1
        value = message.value()
        reason: str | None
        try:
            command = read_command(value, "inbox record")
        except UnreadableCommand as exc:
            reason = str(exc)
        else:
            reason = _misplaced(command, partition, self.settings) or processor.handle(command)
        if reason is not None:
            metrics.DEAD_LETTERS.inc()
            out.dead_letter(message.key(), value, reason, message.topic() or "", partition, offset)

    def _abort(self, checkpoint: Checkpoint, exc: Exception) -> None:
        """End a failed batch without leaving the group (which would move every partition of
        the group again): abort its transaction, reload the partitions still owned here from
        their last commit, and read their inbox again from it.

        A producer that cannot abort (fenced, fatal, or its abort failed) is replaced: the new
        one's ``init_transactions`` aborts what the old one left open. Only when the consumer
        cannot be rewound does the whole session start again.
        """
        metrics.TRANSACTIONS.labels(outcome="aborted").inc()
        log.error("transaction failed, aborting: %s", exc)
        self._failed_batches += 1
        if not checkpoint.abort(exc):
            log.warning("replacing the transactional producer")
            if not isinstance(exc, StuckCallError):  # a stuck one is left to the thread blocked in it
                checkpoint.producer.purge()
            try:
                checkpoint.producer = self._new_producer(checkpoint.guard)
            except (KafkaException, StuckCallError) as start_error:
                raise _Restart(f"no transactional producer: {start_error}") from exc
        self._rewind(f"{type(exc).__name__}: {exc}")

    def _rewind(self, reason: str) -> None:
        """Back to the last commit: each owned partition's store caught up with its changelog
        (the failed commit may have reached Kafka), fresh processors over it (the old ones may
        hold changes of the aborted batch), and the inbox read again from its committed offset."""
        assert self.partitions is not None and self.consumer is not None
        owned = sorted(self.partitions.processors)
        inbox = self.settings.topic("inbox")
        try:
            self.partitions.reload(owned, reason)
            self.commits.moved()  # the stores were read again: waits look again
            committed = self.consumer.committed([TopicPartition(inbox, p) for p in owned], timeout=10)
            for tp in committed:
                if tp.error is not None:
                    raise KafkaException(tp.error)
                if tp.offset >= 0:
                    self._inbox_positions[tp.partition] = tp.offset
                offset = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
                self.consumer.seek(TopicPartition(inbox, tp.partition, offset))
        except (KafkaException, ChangelogReadError, TimeoutError) as exc:
            raise _Restart(f"cannot go back to the last commit: {exc}") from exc


class _Restart(Exception):
    """Leave the current consumer session and start a fresh one."""


INBOX_WAIT_SAMPLES = 16
"""Records of a batch whose wait is observed at most (evenly spaced): what a histogram needs,
at a cost per batch that does not grow with it."""


def _observe_inbox_waits(messages: list[Message], now: float) -> None:
    """The applied records' waits since their Kafka timestamps (skipped when they have none)."""
    observe = metrics.INBOX_WAIT.observe
    step = max(1, len(messages) // INBOX_WAIT_SAMPLES)
    for message in messages[::step]:
        kind, stamp = message.timestamp()
        if kind != TIMESTAMP_NOT_AVAILABLE and stamp > 0:
            observe(max(0.0, now - stamp / 1000))


def changed_workflows(stores: list[StoreChanges]) -> set[str]:
    """The workflow ids whose run state or request records a batch wrote (what long polls wait on)."""
    return {
        key[2:].split(b"\x00", 1)[0].decode()
        for store in stores
        for key in store.changes
        if key.startswith((keys.RUN, keys.REQUEST))
    }


def _misplaced(command: Any, partition: int, settings: Settings) -> str | None:
    """Why a workflow's command on another partition than its workflow id's is refused, or None.

    Its workflow's owner is elsewhere: applied here it would start a second run of the same
    id, unknown to every read, or miss the run it is meant for (a null key, a key that is not
    the workflow id, a producer partitioning with something else than murmur2).
    """
    workflow_id = key_of(command)
    if workflow_id is None:
        return None  # a definition: every engine reads them all
    home = settings.partition_of(workflow_id)
    if home == partition:
        return None
    return (
        f"misplaced: record on inbox partition {partition}, but workflow {workflow_id[:200]!r} belongs "
        f"to partition {home}: key inbox records by workflow id and partition with murmur2"
    )


def _node_id(data_dir: Path) -> str:
    """A stable id for this node's data folder: its transactional id fences its own zombie."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "node-id"
    if path.exists():
        return path.read_text().strip()
    node = uuid.uuid4().hex[:12]
    path.write_text(node)
    return node
