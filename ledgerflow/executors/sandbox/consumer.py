"""Records the kafka.consumer built-in may read: a bounded batch from an allow-listed topic.

A node reads as a consumer group of this deployment's, ``<prefix>consumer.<group>`` (a DAG node's
``group`` is its own, set by the DAG interpreter; a code workflow names one), so it never reads or
moves an application's groups, nor another deployment's. The group starts from the offsets it
last committed (a new one from ``start``, pinned there by its first commit), with every partition
of the topic assigned to it: no group membership, so no rebalance, and two runs reading as one
group at once read the same records. The node never commits: the DAG interpreter runs
``kafka.consumer.commit`` with the node's ``offsets`` once the node's result is recorded in the
run's history. An attempt that crashes, times out or is retried, and a result the engine does not
record, leave the offsets where they were; a crash between the record and the commit reads the
batch again in the next run (at least once, like every activity).

Reads ``read_committed``. The cluster and credentials are the worker's (``Settings``;
confluent-kafka, which applies every security property the engine does), the topics those of the
worker's ``consume_topics`` setting. Both built-ins are synchronous: they run in the worker's
activity threads, like ``sql.query``.
"""

from __future__ import annotations

import json
import time
from typing import Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from ledgerflow import kafkaclients
from ledgerflow.config import Settings
from ledgerflow.dag import node_inputs as inputs
from ledgerflow.dag.node_types import KAFKA_CONSUMER
from ledgerflow.errors import ApplicationError
from ledgerflow.executors.sandbox.refusal import Refused
from ledgerflow.executors.sandbox.settings import BuiltinSettings
from ledgerflow.executors.sandbox.topics import check_topic

GROUP_INFIX = "consumer."
"""Between the deployment's prefix and a node's group: the groups kafka.consumer nodes use."""
NOT_JSON = "InvalidRecord"
"""Failure type of a ``value_format: json`` read that met a value that is not JSON (not retried)."""


class TopicReader:
    """Reads kafka.consumer batches and commits their offsets, within the worker's settings."""

    def __init__(self, builtin_settings: BuiltinSettings, settings: Settings) -> None:
        self.patterns = builtin_settings.consume_topics
        self.settings = settings

    def kafka_group(self, group: str) -> str:
        """The Kafka consumer group of a node's ``group``: one of this deployment's."""
        return f"{self.settings.prefix}{GROUP_INFIX}{group}"

    def read(self, args: inputs.KafkaConsumer) -> dict[str, Any]:
        """One batch: at most ``max_records`` records, or those read within ``timeout`` seconds."""
        if args.group is None:
            raise Refused(KAFKA_CONSUMER, "the input names no 'group' (a DAG node is given its own)")
        check_topic(KAFKA_CONSUMER, args.topic, self.patterns, "consume_topics", self.settings.prefix)
        # never "latest" here: a committed offset that retention passed would skip what is left
        consumer = kafkaclients.consumer(self.settings, self.kafka_group(args.group))
        try:
            positions = consumer.committed(self._partitions(consumer, args.topic), timeout=30)
            offsets: dict[str, int] = {}
            for tp in positions:
                if tp.error is not None:
                    raise KafkaException(tp.error)
                if tp.offset < 0 and args.start == "latest":
                    # pinned where the group began, or records written before its next read are skipped
                    tp.offset = consumer.get_watermark_offsets(tp, timeout=30)[1]
                    offsets[str(tp.partition)] = tp.offset
            consumer.assign(positions)
            items: list[Any] = []
            records: list[dict[str, Any]] = []
            taken = 0
            deadline = time.monotonic() + args.timeout
            while len(items) < args.max_records and taken < args.max_bytes:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                for message in consumer.consume(min(1000, args.max_records - len(items)), left):
                    error = message.error()
                    if error is not None:
                        if error.retriable() and not error.fatal():
                            continue  # librdkafka retries it (a broker restarting, say)
                        raise KafkaException(error)  # the attempt fails: nothing was committed
                    size = len(message.value() or b"")
                    if items and taken + size > args.max_bytes:
                        taken = args.max_bytes  # this one and what follows: the next batch's
                        break
                    taken += size
                    partition, offset = int(message.partition() or 0), int(message.offset() or 0)
                    items.append(_value(message.value(), args.value_format, args.topic, partition, offset))
                    key, (_, stamp) = _text(message.key()), message.timestamp()
                    records.append({"partition": partition, "offset": offset, "key": key, "timestamp": stamp})
                    offsets[str(partition)] = offset + 1
        finally:
            consumer.close()
        return {
            "topic": args.topic,
            "group": args.group,
            "items": items,
            "records": records,
            "offsets": offsets,
            "count": len(items),
        }

    def commit(self, args: inputs.KafkaConsumerCommit) -> dict[str, Any]:
        """Commit ``offsets`` for ``group`` (again, harmlessly, when a retry repeats it)."""
        check_topic(KAFKA_CONSUMER, args.topic, self.patterns, "consume_topics", self.settings.prefix)
        try:
            offsets = [TopicPartition(args.topic, int(p), offset) for p, offset in args.offsets.items()]
        except ValueError:
            raise ApplicationError(
                "kafka.consumer.commit input: offsets are keyed by partition number",
                type="InvalidInput",
                non_retryable=True,
            ) from None
        if offsets:
            consumer = kafkaclients.consumer(self.settings, self.kafka_group(args.group))
            try:
                for tp in consumer.commit(offsets=offsets, asynchronous=False) or []:
                    if tp.error is not None:
                        raise KafkaException(tp.error)
            finally:
                consumer.close()
        return {"committed": dict(args.offsets)}

    @staticmethod
    def _partitions(consumer: Consumer, topic: str) -> list[TopicPartition]:
        found = consumer.list_topics(topic, timeout=30).topics.get(topic)
        if (
            found is None
            or not found.partitions
            or (found.error is not None and found.error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART)
        ):
            raise ApplicationError(
                f"kafka.consumer: topic {topic!r} does not exist", type="TopicNotFound", non_retryable=True
            )
        if found.error is not None:
            raise KafkaException(found.error)
        return [TopicPartition(topic, number) for number in sorted(found.partitions)]


def _text(raw: bytes | None) -> str | None:
    return None if raw is None else raw.decode("utf-8", errors="replace")


def _value(raw: bytes | None, value_format: str, topic: str, partition: int, offset: int) -> Any:
    if raw is None:
        return None
    if value_format == "text":
        return raw.decode("utf-8", errors="replace")
    try:
        return json.loads(raw)
    except ValueError:
        if value_format == "json":
            raise ApplicationError(
                f"kafka.consumer: the value at {topic}/{partition}@{offset} is not JSON",
                type=NOT_JSON,
                non_retryable=True,
            ) from None
        return raw.decode("utf-8", errors="replace")
