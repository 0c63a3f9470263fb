"""One Kafka transaction per batch: state, tasks, events and inbox offsets commit together.

The ``Checkpoint`` owns the transaction from ``begin()`` to ``commit()`` or ``abort()``; what it
commits is the batch's changes (each partition's store writes and the ``Outbox``), not the
processors that made them. ``commit()`` takes five steps: produce each partition's store changes to the
changelog (partition p for store p) → produce the outbox (tasks, public
events, inbox messages, dead letters) → send the inbox offsets with the
consumer's group metadata (so a fenced zombie cannot commit) → commit the
transaction → write each store's changes to RocksDB with the changelog offset
it reached. A failure before the commit aborts the transaction; RocksDB is
then untouched.

Every Kafka call of the commit has a timeout; the two that talk to a coordinator run under
the ``CallGuard`` as well, since librdkafka does not always honour it (ledgerflow/engine/kafka/watchdog.py).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, Producer, TopicPartition

from ledgerflow.config import Settings
from ledgerflow.engine import metrics
from ledgerflow.engine.errors import StuckCallError, UndeliveredRecordError
from ledgerflow.engine.kafka.watchdog import CallGuard
from ledgerflow.engine.outbox import Outbox
from ledgerflow.engine.state.store import PartitionStore
from ledgerflow.kafkaclients import UNASSIGNED

log = logging.getLogger("ledgerflow.engine")
CALL_TIMEOUT = 10.0
"""Seconds each Kafka call of a commit may take (the transaction's own timeout is as long)."""


@dataclass(frozen=True)
class StoreChanges:
    """One partition's writes of a batch: produced to its changelog partition, and written to its
    store once the transaction has committed."""

    partition: int
    store: PartitionStore
    changes: dict[bytes, bytes | None]


class Checkpoint:
    def __init__(self, settings: Settings, producer: Producer, consumer: Consumer, guard: CallGuard) -> None:
        self.settings = settings
        self.producer = producer
        """The session's transactional producer; the owner loop replaces one that cannot abort."""
        self.consumer = consumer
        self.guard = guard
        self._changelog_offsets: dict[int, int] = {}
        self._delivery_error: KafkaError | None = None

    def _on_changelog_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self._delivery_error = error
            return
        partition, offset = message.partition(), message.offset()
        assert partition is not None and offset is not None  # set on every delivered record
        if offset > self._changelog_offsets.get(partition, -1):
            self._changelog_offsets[partition] = offset

    def _on_delivery(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self._delivery_error = error

    def begin(self) -> None:
        self.producer.begin_transaction()

    def commit(self, stores: list[StoreChanges], outbox: Outbox, inbox_offsets: dict[int, int]) -> None:
        """Publish and commit the batch; raises KafkaException when Kafka refused it."""
        self._changelog_offsets = {}
        self._delivery_error = None
        changelog = self.settings.topic("changelog")
        for store in stores:
            for key, value in store.changes.items():
                self.producer.produce(
                    changelog,
                    key=key,
                    value=value,
                    partition=store.partition,
                    on_delivery=self._on_changelog_delivery,
                )
        for record in outbox.records:
            self.producer.produce(
                record.topic,
                key=record.key,
                value=record.value,
                headers=record.headers,
                partition=UNASSIGNED if record.partition is None else record.partition,
                on_delivery=self._on_delivery,
            )
        producer, call = self.producer, self.guard.call
        if inbox_offsets:
            inbox = self.settings.topic("inbox")
            positions = [TopicPartition(inbox, p, offset) for p, offset in inbox_offsets.items()]
            metadata = self.consumer.consumer_group_metadata()
            call(
                "send_offsets_to_transaction",
                lambda: producer.send_offsets_to_transaction(positions, metadata, CALL_TIMEOUT),
            )
        undelivered = producer.flush(CALL_TIMEOUT)
        if undelivered:
            error = KafkaError(KafkaError._TIMED_OUT, f"{undelivered} records not delivered")  # noqa: SLF001
            raise KafkaException(error)
        if self._delivery_error is not None:
            raise UndeliveredRecordError(
                f"a record of the transaction was not delivered: {self._delivery_error}"
            )
        call("commit_transaction", lambda: producer.commit_transaction(CALL_TIMEOUT))
        metrics.TRANSACTIONS.labels(outcome="committed").inc()
        for store in stores:
            store.store.write(store.changes, self._changelog_offsets.get(store.partition))

    def abort(self, exc: Exception) -> bool:
        """Abort the transaction after ``exc``; False when the producer cannot (stuck, fenced,
        fatal, or the abort refused): the owner loop must replace it."""
        if isinstance(exc, StuckCallError):
            return False
        if isinstance(exc, KafkaException):
            error = exc.args[0]
            if error.fatal() or error.code() == KafkaError._FENCED:  # noqa: SLF001
                return False
        producer = self.producer
        try:
            self.guard.call("abort_transaction", lambda: producer.abort_transaction(CALL_TIMEOUT))
        except (KafkaException, StuckCallError) as abort_error:
            log.error("abort failed: %s", abort_error)
            return False
        return True
