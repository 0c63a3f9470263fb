"""Move a stopped deployment to a new shard layout: ``ledgerflow reshard``.

Workflows are never re-hashed in place: the partition of a workflow id names its
owner, its changelog and its inbox, so a new partition count (or partitioner)
means new topics. This module copies a deployment to a new topic prefix:

- every state record (runs, histories, timers, idempotency keys) to the new
  changelog partition of its workflow id; open-run counts are recomputed;
- the inbox records the old engines had not processed yet (starts, signals,
  activity results), to the new inbox partition of their workflow;
- registered DAG definitions;
- one fresh task for every activity attempt that was running, since its old
  task (or its result) may be lost in the old topics. Workers are at-least-once
  already, and the owner ignores a second result for the same attempt.

All of it is one Kafka transaction together with a *moved* marker written to
every old changelog partition: either the move happened and the old deployment
refuses to start again (``DeploymentMovedError``), or nothing is visible.
Engines and workers of the old deployment must be stopped first; their consumer
groups are checked. Starters (gateways, clients, producers) must be stopped or
pointed at the new prefix by the operator: nothing can tell them apart.
"""

from __future__ import annotations

import logging
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, TopicPartition
from confluent_kafka.admin import AdminClient, TopicMetadata

from ledgerflow import kafkaclients as clients
from ledgerflow.config import Settings
from ledgerflow.engine.attempts import attempt_task
from ledgerflow.engine.kafka.admin import ensure_topics
from ledgerflow.engine.state import keys
from ledgerflow.engine.state.models import RunState
from ledgerflow.engine.state.recovery import open_and_restore
from ledgerflow.errors import DeploymentMovedError, ReshardError

log = logging.getLogger("ledgerflow.engine.reshard")
TRANSACTION_TIMEOUT_MS = 900_000
"""The broker's default ``transaction.max.timeout.ms``: the whole copy is one transaction."""
READ_TIMEOUT = 120.0

Progress = Callable[[str], None]
Headers = dict[str, str | bytes | None] | list[tuple[str, str | bytes | None]] | None


@dataclass
class ReshardReport:
    source_partitions: int
    target_partitions: int
    workflows: int = 0
    open_workflows: int = 0
    state_records: int = 0
    inbox_records: int = 0
    tasks_redispatched: int = 0
    definitions: int = 0
    open_per_partition: list[int] = field(default_factory=list)
    seconds: float = 0.0


def reshard(source: Settings, target: Settings, progress: Progress = lambda _: None) -> ReshardReport:
    """Copy the stopped deployment ``source`` to the new topics of ``target``; see the module doc."""
    started = time.monotonic()
    if source.prefix == target.prefix:
        raise ReshardError(
            "the new prefix must differ from the old one: the shard layout lives in the topics"
        )
    admin = clients.admin(source)
    topics = admin.list_topics(timeout=30).topics
    inbox = topics.get(source.topic("inbox"))
    if inbox is None:
        raise ReshardError(
            f"no deployment under prefix {source.prefix!r}: topic {source.topic('inbox')!r} missing"
        )
    source = source.model_copy(update={"partitions": len(inbox.partitions)})
    queues = sorted(
        name.removeprefix(source.task_topic("")) for name in topics if name.startswith(source.task_topic(""))
    )
    groups = [f"{source.prefix}engine", *(f"{source.prefix}workers.{q}" for q in queues)]
    _require_stopped(admin, groups)
    _require_unused(target, topics)

    progress(f"creating topics under {target.prefix!r} with {target.partitions} partitions")
    ensure_topics(target, tuple(queues) or ("default",))
    move = _Move(source, target, progress)
    try:
        move.copy_state()
        move.copy_inbox()
        move.copy_definitions()
        ensure_topics(target, tuple(sorted({*queues, *(queue for queue, _, _ in move.tasks)})))
        move.resend_tasks()
        # Sealed last (reading the old changelog must not wait behind our own transaction),
        # then checked again: an old engine started during the copy makes the move abort,
        # and one starting from now on waits in its restore for this transaction and then
        # finds the marker.
        move.seal_source()
        _require_stopped(admin, groups)
        progress("committing")
        move.producer.commit_transaction(TRANSACTION_TIMEOUT_MS / 1000)
    except BaseException:
        move.producer.abort_transaction(30)
        raise
    finally:
        move.reader.close()
    report = move.report
    report.seconds = time.monotonic() - started
    log.info("moved %s to %s: %s", source.prefix, target.prefix, report)
    return report


def _require_stopped(admin: AdminClient, groups: list[str]) -> None:
    described = admin.describe_consumer_groups(groups, request_timeout=10)
    running = []
    for group, future in described.items():
        members = future.result(15).members
        if members:
            running.append(f"{group!r} has {len(members)} live member(s)")
    if running:
        raise ReshardError("stop the old deployment's engines and workers first: " + "; ".join(running))


def _require_unused(target: Settings, topics: Mapping[str, TopicMetadata]) -> None:
    """The new prefix must be fresh: copying onto existing state would mix two deployments."""
    names = [target.topic("inbox"), target.topic("changelog")]
    present = [name for name in names if name in topics]
    if not present:
        return
    probe = clients.consumer(target, None)
    try:
        for name in present:
            for p in topics[name].partitions:
                _, high = probe.get_watermark_offsets(TopicPartition(name, p), timeout=10)
                if high > 0:
                    raise ReshardError(
                        f"topic {name!r} already holds records: choose a prefix no deployment uses"
                    )
    finally:
        probe.close()


class _Move:
    """One reshard: reads the old topics, writes the new ones, all in one transaction."""

    def __init__(self, source: Settings, target: Settings, progress: Progress) -> None:
        self.source = source
        self.target = target
        self.progress = progress
        self.report = ReshardReport(source.partitions, target.partitions)
        self.tasks: list[tuple[str, str, bytes]] = []
        """(queue, workflow id, task JSON) of every running activity attempt, to send again."""
        self.reader = clients.consumer(source, None, **{"enable.partition.eof": True})
        self.producer = clients.transactional_producer(
            target,
            f"{target.prefix}reshard-{uuid.uuid4().hex[:8]}",
            **{"transaction.timeout.ms": TRANSACTION_TIMEOUT_MS, "linger.ms": 20},
        )
        self.producer.init_transactions(30)
        self.producer.begin_transaction()

    def copy_state(self) -> None:
        """Every state record to the new changelog partition of its workflow; open-run counts anew."""
        source, target = self.source, self.target
        open_runs: Counter[int] = Counter()
        now = time.time()
        with tempfile.TemporaryDirectory(prefix="ledgerflow-reshard-") as scratch:
            for p in range(source.partitions):
                self.progress(f"reading changelog partition {p + 1}/{source.partitions}")
                store, _ = open_and_restore(
                    Path(scratch) / f"partition-{p}",
                    self.reader,
                    source.topic("changelog"),
                    p,
                    READ_TIMEOUT,
                    fence=lambda owner: clients.fence(source, owner),
                )
                try:
                    if (moved_to := store.moved_to()) is not None:
                        raise DeploymentMovedError(source.prefix, moved_to)
                    for key, value in store.scan(b""):
                        workflow_id = keys.workflow_of(key)
                        if workflow_id is None:
                            continue  # the partition's own metadata; recomputed below
                        partition = target.partition_of(workflow_id)
                        self._produce(target.topic("changelog"), key, value, partition)
                        self.report.state_records += 1
                        if not key.startswith(keys.RUN):
                            continue
                        self.report.workflows += 1
                        run = RunState.model_validate_json(value)
                        if run.is_open:
                            open_runs[partition] += 1
                            self._collect_running_attempts(run, partition, now)
                finally:
                    store.close()
        for p in range(target.partitions):
            self._produce(target.topic("changelog"), keys.OPEN_RUNS, str(open_runs[p]).encode(), p)
        self.report.open_workflows = sum(open_runs.values())
        self.report.open_per_partition = [open_runs[p] for p in range(target.partitions)]

    def _collect_running_attempts(self, run: RunState, partition: int, now: float) -> None:
        for seq, pending in run.activities.items():
            if pending.state != "running":
                continue  # waiting out a retry delay: its retry timer moved with the state
            task = attempt_task(run, seq, pending, now, partition)
            self.tasks.append((pending.options.queue, run.workflow_id, task))

    def copy_inbox(self) -> None:
        """Inbox records past the old engines' committed offsets, to their workflow's new partition."""
        source, target = self.source, self.target
        self.progress("copying unprocessed inbox records")
        group = clients.consumer(source, f"{source.prefix}engine")
        try:
            committed = group.committed(
                [TopicPartition(source.topic("inbox"), p) for p in range(source.partitions)], timeout=30
            )
        finally:
            group.close()
        for tp in committed:
            start = tp.offset if tp.offset >= 0 else OFFSET_BEGINNING
            for message in _read(self.reader, tp.topic, tp.partition, start):
                key = message.key()
                partition = target.partition_of(key.decode()) if key else tp.partition % target.partitions
                self._produce(target.topic("inbox"), key, message.value(), partition, message.headers())
                self.report.inbox_records += 1

    def copy_definitions(self) -> None:
        for message in _read(self.reader, self.source.topic("definitions"), 0, OFFSET_BEGINNING):
            self._produce(
                self.target.topic("definitions"), message.key(), message.value(), 0, message.headers()
            )
            self.report.definitions += 1

    def resend_tasks(self) -> None:
        for queue, workflow_id, task in self.tasks:
            self._produce(self.target.task_topic(queue), workflow_id.encode(), task)
        self.report.tasks_redispatched = len(self.tasks)

    def seal_source(self) -> None:
        """Mark every old changelog partition as moved: old engines refuse to start on it."""
        for p in range(self.source.partitions):
            self._produce(self.source.topic("changelog"), keys.MOVED_TO, self.target.prefix.encode(), p)

    def _produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int = clients.UNASSIGNED,
        headers: Headers = None,
    ) -> None:
        while True:
            try:
                self.producer.produce(topic, value, key, partition=partition, headers=headers)
                return
            except BufferError:  # the local queue is full: let deliveries drain it
                self.producer.poll(0.1)


def _read(reader: Consumer, topic: str, partition: int, start: int) -> Iterator[Message]:
    """Committed records of one partition from ``start`` to the end seen now."""
    tp = TopicPartition(topic, partition, start)
    _, high = reader.get_watermark_offsets(tp, timeout=10, cached=False)
    if high == 0 or (start >= 0 and start >= high):
        return
    reader.assign([tp])
    deadline = time.monotonic() + READ_TIMEOUT
    try:
        while True:
            if time.monotonic() > deadline:
                raise ReshardError(f"reading {topic}/{partition} took over {READ_TIMEOUT} s")
            message = reader.poll(1.0)
            if message is None:
                continue
            error = message.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:  # noqa: SLF001 - the documented name
                    raise ReshardError(f"reading {topic}/{partition} failed: {error}")
                if reader.position([tp])[0].offset >= high:
                    return
                continue
            yield message
    finally:
        reader.unassign()
