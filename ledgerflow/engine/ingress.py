"""Namespace ingress: each namespace's own Kafka topic of commands, forwarded into the inbox.

A Kafka record does not carry the principal that produced it, so the inbox cannot tell who wrote
a command: whoever may write the inbox is trusted with every namespace (docs/operations.md).
A namespace's producers write ``<prefix>ingress.<namespace>`` instead, in the inbox's record
format with bare ids, and the broker's ACLs bind each principal to the topics it may write
(``ledgerflow topics grant --namespace-producer NS=PRINCIPAL``): the topic a record came from
is the namespace it acts in, checked by Kafka itself.

Every engine runs one member of the ``<prefix>ingress`` group over all those topics (a pattern
subscription, so a namespace's topic is picked up once created). Each batch is forwarded in one
Kafka transaction with the offsets it consumed: a record reaches the inbox exactly once, with
its ids qualified by the topic's namespace, or the dead-letter topic with the reason.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from ledgerflow import kafkaclients as clients
from ledgerflow import namespaces
from ledgerflow.config import Settings
from ledgerflow.engine import metrics
from ledgerflow.engine.errors import StuckCallError
from ledgerflow.engine.kafka.watchdog import CallGuard
from ledgerflow.engine.outbox import Outbox
from ledgerflow.errors import PayloadTooLarge
from ledgerflow.schemas import commands as c

log = logging.getLogger("ledgerflow.ingress")

ACCEPTED = (
    c.StartWorkflow,
    c.SignalWorkflow,
    c.CancelWorkflow,
    c.TerminateWorkflow,
    c.RegisterDefinition,
    c.CreateSchedule,
    c.UpdateSchedule,
    c.PauseSchedule,
    c.TriggerSchedule,
    c.BackfillSchedule,
    c.DeleteSchedule,
)
"""What a namespace's producers may send; results, children's outcomes and scheduled runs'
outcomes come from Ledgerflow's own workers and engines, on the inbox."""
BATCH = 500
BATCH_BYTES = 4 * 1024 * 1024
"""Bytes of records forwarded in one transaction at most (well inside its 10 s timeout)."""
CALL_TIMEOUT = 10.0
METADATA_REFRESH_MS = 5000
"""How soon a namespace's new ingress topic is found (librdkafka's default is 5 minutes)."""


def ingress_transactional_id(engine_transactional_id: str) -> str:
    """The transactional id of an engine's forwarder (fenced with the engine's own)."""
    return f"{engine_transactional_id}-ingress"


def subscription(settings: Settings) -> str:
    """The pattern of every ingress topic of the deployment (librdkafka: a leading ``^``)."""
    # Kafka topic names hold letters, digits, '.', '_' and '-': only '.' means something in a
    # regex. A namespace holds no '.', so another deployment whose prefix starts with this
    # one's ingress name is not matched.
    return "^" + settings.ingress_topic("").replace(".", r"\.") + "[a-z0-9-]+$"


def namespace_of_topic(settings: Settings, topic: str) -> str | None:
    """The namespace an ingress topic is for, or None when its name is not a valid namespace."""
    name = topic.removeprefix(settings.ingress_topic(""))
    return name if name != topic and namespaces.is_valid(name) else None


class Refused(ValueError):
    """An ingress record that may not reach the inbox; its message is the dead letter's reason."""


def qualified(command: c.InboxCommand, namespace: str) -> tuple[str, c.InboxCommand]:
    """(inbox key, the command as the engine takes it) of a command read from ``namespace``'s
    ingress topic; ``Refused`` with the reason when it may not go on."""
    if not isinstance(command, ACCEPTED):
        kinds = ", ".join(k.model_fields["kind"].default for k in ACCEPTED)
        raise Refused(f"{command.kind} is written by Ledgerflow itself; an ingress topic takes {kinds}")
    if isinstance(command, c.RegisterDefinition):
        key = _engine_id("definition.id", command.definition.id, namespace)
        definition = command.definition.model_copy(update={"id": key})
        return key, command.model_copy(update={"definition": definition})
    if isinstance(command, c.StartWorkflow):
        _check_start(command)
    if isinstance(command, c.SCHEDULE_COMMANDS):
        key = _engine_id("schedule_id", command.schedule_id, namespace)
        return key, command.model_copy(update={"schedule_id": key})
    key = _engine_id("workflow_id", command.workflow_id, namespace)
    return key, command.model_copy(update={"workflow_id": key})


def inbox_record(out: Outbox, settings: Settings, topic: str, value: bytes | None) -> None:
    """Put the inbox record of one ingress record (``value``, read from ``topic``) in ``out``;
    ``Refused`` with the reason when it may not go on."""
    namespace = namespace_of_topic(settings, topic)
    if namespace is None:
        raise Refused(f"ingress topic {topic!r}: a namespace is {namespaces.RULE}")
    try:
        command = c.read_command(value, "ingress record")
    except c.UnreadableCommand as exc:
        raise Refused(str(exc)) from None
    try:
        out.inbox(*qualified(command, namespace))
    except PayloadTooLarge as exc:  # the record no longer fits once its ids name the namespace
        raise Refused(str(exc)) from None


def _check_start(command: c.StartWorkflow) -> None:
    if command.parent_workflow_id is not None or command.parent_run_id or command.parent_seq is not None:
        raise Refused("parent_workflow_id: only an engine starts a child workflow")
    if command.dag is not None:
        raise Refused("dag: name a registered DAG in workflow_type; a run's DAG is not sent inline")
    if namespaces.SEPARATOR in command.workflow_type:
        raise Refused(
            f"workflow_type: {command.workflow_type[:200]!r} holds '/'; name a type of this namespace"
        )


def _engine_id(field: str, value: str, namespace: str) -> str:
    named, bare = namespaces.split(value)
    if namespaces.SEPARATOR in value and named != namespace:
        raise Refused(
            f"{field}: {value[:200]!r} names namespace {named!r}, but this is namespace "
            f"{namespace!r}'s ingress topic"
        )
    return namespaces.qualify(namespace, bare)


class IngressForwarder:
    """The thread forwarding every namespace's ingress topic into the inbox."""

    def __init__(self, settings: Settings, transactional_id: str, membership: dict[str, Any]) -> None:
        """``membership``: group settings with the engine's session timeout, so a dead engine's
        ingress partitions move as soon as its inbox partitions do."""
        self.settings = settings
        self.transactional_id = transactional_id
        self.membership = membership
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def group_id(self) -> str:
        return f"{self.settings.prefix}ingress"

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ingress", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(CALL_TIMEOUT)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._session()
            except Exception as exc:
                # A failed transaction, a fenced producer, Kafka away: start over from the
                # group's committed offsets (nothing uncommitted reached the inbox).
                log.warning("ingress forwarding restarts: %s", exc)
                self._stop.wait(1.0)

    def _session(self) -> None:
        consumer = clients.consumer(
            self.settings,
            self.group_id,
            **{
                "topic.metadata.refresh.interval.ms": METADATA_REFRESH_MS,
                "client.id": f"ledgerflow-ingress {self.transactional_id}",
                **self.membership,
            },
        )
        producer = clients.transactional_producer(self.settings, self.transactional_id)
        guard = CallGuard(CALL_TIMEOUT * 2)
        try:
            guard.call("init_transactions", lambda: producer.init_transactions(CALL_TIMEOUT))
            consumer.subscribe([subscription(self.settings)])
            while not self._stop.is_set():
                messages = [m for m in consumer.consume(BATCH, 0.2) if _readable(m)]
                for batch in _by_bytes(messages, BATCH_BYTES):
                    self._forward(consumer, producer, guard, batch)
        finally:
            # A producer stuck in a call is left to the thread blocked in it (CallGuard); the
            # next session's init_transactions fences it.
            guard.close()
            consumer.close()

    def _forward(
        self, consumer: Consumer, producer: Producer, guard: CallGuard, messages: list[Message]
    ) -> None:
        out = Outbox(self.settings)
        offsets: dict[tuple[str, int], int] = {}
        refused = 0
        for message in messages:
            topic, partition, offset = message.topic() or "", message.partition(), message.offset()
            assert partition is not None and offset is not None  # set on every consumed record
            offsets[(topic, partition)] = offset + 1
            try:
                inbox_record(out, self.settings, topic, message.value())
            except Refused as exc:
                refused += 1
                out.dead_letter(message.key(), message.value(), str(exc), topic, partition, offset)
        producer.begin_transaction()
        try:
            for record in out.records:
                producer.produce(
                    record.topic,
                    key=record.key,
                    value=record.value,
                    headers=record.headers,
                    partition=clients.UNASSIGNED if record.partition is None else record.partition,
                )
            positions = [TopicPartition(t, p, o) for (t, p), o in offsets.items()]
            metadata = consumer.consumer_group_metadata()
            guard.call(
                "send_offsets_to_transaction",
                lambda: producer.send_offsets_to_transaction(positions, metadata, CALL_TIMEOUT),
            )
            guard.call("commit_transaction", lambda: producer.commit_transaction(CALL_TIMEOUT))
        except StuckCallError:
            raise  # the session starts again with a new producer, whose start fences this one
        except KafkaException:
            _abort(producer, guard)
            raise
        metrics.INGRESS_FORWARDED.inc(len(messages) - refused)
        if refused:
            metrics.DEAD_LETTERS.inc(refused)


def _readable(message: Message) -> bool:
    error = message.error()
    if error is None:
        return True
    if error.code() != KafkaError._PARTITION_EOF:  # noqa: SLF001
        log.warning("ingress read error: %s", error)
    return False


def _abort(producer: Producer, guard: CallGuard) -> None:
    try:
        guard.call("abort_transaction", lambda: producer.abort_transaction(CALL_TIMEOUT))
    except (KafkaException, StuckCallError) as exc:
        log.warning("could not abort the ingress transaction: %s", exc)


def _by_bytes(messages: list[Message], limit: int) -> Iterator[list[Message]]:
    """``messages`` in order, in runs of at most ``limit`` bytes (at least one record each)."""
    batch: list[Message] = []
    size = 0
    for message in messages:
        length = len(message.value() or b"") + len(message.key() or b"")
        if batch and size + length > limit:
            yield batch
            batch, size = [], 0
        batch.append(message)
        size += length
    if batch:
        yield batch
