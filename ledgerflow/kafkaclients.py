"""Client configurations, in one place, so every producer partitions the same way and every
client reaches a secured cluster.

Every producer uses murmur2 (the Java client's default) so a record keyed by
workflow id lands on the same partition whoever writes it. Every client carries the
deployment's Kafka properties (TLS, SASL: ``Settings.kafka_properties``).
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, ConsumerGroupDescription

from ledgerflow.config import Settings

log = logging.getLogger("ledgerflow.engine.kafka")
PARTITIONER = "murmur2_random"
RECORD_FRAMING = 16 * 1024
"""Bytes a record may take beyond ``Settings.max_record_bytes`` (its batch framing, headers):
what producers and topics must accept on top of it."""
TRANSACTION_TIMEOUT_MS = 10_000
"""How long an engine's transaction may stay open before its coordinator aborts it."""
UNASSIGNED = -1
"""librdkafka's 'no partition given': the producer's partitioner (murmur2) picks it from the key."""


def common_config(settings: Settings) -> dict[str, Any]:
    """Where Kafka is and how to reach it: what every client's configuration starts from."""
    return {"bootstrap.servers": settings.bootstrap, **settings.kafka_properties}


def admin(settings: Settings, **extra: Any) -> AdminClient:
    return AdminClient({**common_config(settings), **extra})


GROUP_OPERATION_TIMEOUT = 600.0
"""Seconds librdkafka gives one consumer-group description before it times it out
(``GroupDescriber``: why so long)."""


class GroupDescriber:
    """Describes consumer groups for processes that do so again and again (engines, gateways,
    clients), with at most one description of each group in flight.

    librdkafka aborts the whole process when a group operation times out while its request to
    the group's coordinator is not sent yet (the coordinator moving, its broker down) and the
    coordinator then answers (``rd_kafka_enq_once_del_source_return: Assertion eonce->refcnt >
    0``, confluentinc/librdkafka#4605, open): an engine died that way when a broker was killed.
    So an operation here is given ``GROUP_OPERATION_TIMEOUT``, far longer than a coordinator
    takes to move, and a caller that cannot wait that long stops waiting for the result instead
    (``describe``'s ``wait``); the next caller waits on the same operation rather than start
    another, so callers that give up do not pile up operations.
    """

    def __init__(self, settings: Settings) -> None:
        self.admin = admin(settings)
        self._pending: dict[str, Future[ConsumerGroupDescription]] = {}
        self._lock = threading.Lock()

    def describe(self, group: str, wait: float) -> ConsumerGroupDescription:
        """The description of ``group``, waited for ``wait`` seconds. Raises
        ``concurrent.futures.TimeoutError`` after ``wait``, or the operation's ``KafkaException``."""
        with self._lock:
            future = self._pending.get(group)
            if future is None:
                operation = self.admin.describe_consumer_groups(
                    [group], request_timeout=GROUP_OPERATION_TIMEOUT
                )
                future = self._pending[group] = operation[group]
        try:
            description: ConsumerGroupDescription = future.result(timeout=wait)
        except TimeoutError:
            raise  # still pending: the next caller waits on it too
        except BaseException:
            self._settled(group, future)
            raise
        self._settled(group, future)
        return description

    def _settled(self, group: str, future: Future[ConsumerGroupDescription]) -> None:
        """``future`` answered: the next caller asks again."""
        with self._lock:
            if self._pending.get(group) is future:
                del self._pending[group]


def producer_config(settings: Settings, **extra: Any) -> dict[str, Any]:
    return {
        **common_config(settings),
        "partitioner": PARTITIONER,
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": 2,
        "message.max.bytes": settings.max_record_bytes + RECORD_FRAMING,
        **extra,
    }


def transactional_producer(settings: Settings, transactional_id: str, **extra: Any) -> Producer:
    return Producer(
        producer_config(
            settings,
            **{
                "transactional.id": transactional_id,
                # A zombie's open transaction blocks read_committed readers until it
                # is aborted; keep that window short.
                # Also bounds how long a crashed owner's open transaction can hold back
                # read_committed readers when it cannot be fenced (see rebalance.py).
                "transaction.timeout.ms": TRANSACTION_TIMEOUT_MS,
                # The coordinator answers CONCURRENT_TRANSACTIONS while the previous
                # transaction's markers are still being written, which a back-to-back
                # owner loop meets on nearly every batch; librdkafka then waits
                # retry.backoff.ms (100 ms by default) before trying again. Java lowered
                # that wait to 20 ms for the same reason (KAFKA-5477). The backoff still
                # grows exponentially up to retry.backoff.max.ms for real outages.
                "retry.backoff.ms": 5,
                **extra,
            },
        )
    )


def fence(settings: Settings, transactional_id: str) -> bool:
    """Abort the open transaction of a (dead or stuck) producer now, by starting its
    transactional id once; False when the coordinator could not be reached."""
    zombie = transactional_producer(settings, transactional_id)
    try:
        zombie.init_transactions(10)
    except KafkaException as exc:
        log.warning("could not fence %s: %s", transactional_id, exc)
        return False
    return True


def plain_producer(settings: Settings, **extra: Any) -> Producer:
    return Producer(producer_config(settings, **extra))


def consumer_config(settings: Settings, group_id: str | None, **extra: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        **common_config(settings),
        "isolation.level": "read_committed",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        **extra,
    }
    if group_id is not None:
        config["group.id"] = group_id
    else:
        # librdkafka wants one even for assign(); under the prefix, so the deployment's
        # prefixed group ACLs cover it
        config["group.id"] = f"{settings.prefix}reader"
    return config


def consumer(settings: Settings, group_id: str | None, **extra: Any) -> Consumer:
    return Consumer(consumer_config(settings, group_id, **extra))
