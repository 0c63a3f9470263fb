"""Restore a partition store from its changelog partition.

Only the tail after the store's own checkpoint is read when one survives; a
store without a checkpoint is wiped and rebuilt from the start. Reads are
``read_committed``, so writes of aborted transactions never reach the store.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from ledgerflow.engine import metrics
from ledgerflow.engine.errors import ChangelogReadError
from ledgerflow.engine.state.keys import OWNER_KEY
from ledgerflow.engine.state.store import PartitionStore

log = logging.getLogger("ledgerflow.engine.recovery")
FLUSH_EVERY = 10_000
FENCE_AFTER = 0.5
"""Seconds the restore waits on another producer's open transaction before fencing it."""


@dataclass(frozen=True)
class RestoreResult:
    partition: int
    start_offset: int | None
    """First changelog offset read, or None when nothing needed reading."""
    records: int
    seconds: float


Fence = Callable[[str], object]
"""Abort the open transaction of the producer with this transactional id (by fencing it)."""


def open_and_restore(
    path: Path,
    consumer: Consumer,
    topic: str,
    partition: int,
    timeout: float = 120.0,
    fence: Fence | None = None,
) -> tuple[PartitionStore, RestoreResult]:
    """Open the partition's store and bring it up to the changelog's committed end."""
    started = time.monotonic()
    low, high = _watermarks(consumer, TopicPartition(topic, partition), timeout)
    store = PartitionStore(path)
    checkpoint = store.changelog_offset()
    if checkpoint is None or checkpoint >= high:
        # No checkpoint: whatever is there is unusable. Past the end: the topic was
        # recreated. Either way rebuild from the start of the changelog.
        if checkpoint is not None:
            log.warning(
                "local checkpoint %d of partition %d is past the changelog end %d; rebuilding",
                checkpoint,
                partition,
                high,
                extra={"partition": partition},
            )
        store.close()
        PartitionStore.wipe(path)
        store = PartitionStore(path)
        checkpoint = None
    start = checkpoint + 1 if checkpoint is not None else OFFSET_BEGINNING
    if high == 0 or (checkpoint is not None and checkpoint + 1 >= high):
        return store, RestoreResult(partition, None, 0, time.monotonic() - started)
    records = _consume_into(store, consumer, topic, partition, start, high, timeout, fence)
    seconds = time.monotonic() - started
    metrics.RESTORED_RECORDS.inc(records)
    metrics.RESTORE_SECONDS.observe(seconds)
    first = start if start != OFFSET_BEGINNING else low
    log.info(
        "restored partition %d: %d changelog records from offset %d in %.3f s",
        partition,
        records,
        first,
        seconds,
        extra={"partition": partition},
    )
    return store, RestoreResult(partition, first, records, seconds)


def _position(consumer: Consumer, tp: TopicPartition) -> int:
    offset = consumer.position([TopicPartition(tp.topic, tp.partition)])[0].offset
    return int(offset) if offset >= 0 else 0


def _watermarks(consumer: Consumer, tp: TopicPartition, timeout: float) -> tuple[int, int]:
    """The partition's offsets, waiting out a leader election (just after topic creation, or
    after the leader's broker died).

    librdkafka sends the query to the leader its metadata names, and a query that times out
    does not refresh that metadata: after kill -9 of the leader's broker every retry went to
    the dead broker until it came back (90 s without progress in a chaos run, on a cluster that
    had elected a new leader in 3 s). So each retry asks for the topic's metadata first.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            low, high = consumer.get_watermark_offsets(tp, timeout=10, cached=False)
            return int(low), int(high)
        except KafkaException as exc:
            error = exc.args[0]
            if (not error.retriable() and error.code() not in _TRANSIENT) or time.monotonic() > deadline:
                raise
            log.info("changelog partition %d not readable yet (%s); retrying", tp.partition, error)
            with contextlib.suppress(KafkaException):  # the next query tells whether it helped
                consumer.list_topics(tp.topic, timeout=5)
            time.sleep(0.2)


_TRANSIENT = (
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    # a newly elected leader answers this until its high watermark has caught up with the ISR
    KafkaError.OFFSET_NOT_AVAILABLE,
    KafkaError._TIMED_OUT,  # noqa: SLF001
    KafkaError._TRANSPORT,  # noqa: SLF001
    # a query still queued for a dead broker when fresh metadata drops that broker
    KafkaError._DESTROY_BROKER,  # noqa: SLF001
)


def _consume_into(
    store: PartitionStore,
    consumer: Consumer,
    topic: str,
    partition: int,
    start: int,
    high: int,
    timeout: float,
    fence: Fence | None,
) -> int:
    """Apply the changelog from ``start`` up to the high watermark ``high`` seen before.

    Reading is ``read_committed``, so the end-of-partition event comes at the last stable
    offset. A previous owner that died inside a transaction holds that offset back until
    its transaction is aborted (``transaction.timeout.ms``); records committed after it by
    a later owner must not be missed, so the restore waits until it has passed ``high``.
    When it is held back for a while, the previous owner (named in the store) is fenced,
    which aborts its transaction at once instead of at its timeout.
    """
    tp = TopicPartition(topic, partition, start)
    consumer.assign([tp])
    deadline = time.monotonic() + timeout
    changes: dict[bytes, bytes | None] = {}
    last_offset: int | None = None
    records = 0
    stuck_since: float | None = None
    try:
        while True:
            if time.monotonic() > deadline:
                raise TimeoutError(f"restoring changelog partition {partition} took over {timeout} s")
            # poll() returns with the first record (or the end-of-partition event);
            # consume(n, timeout) alone would wait out the timeout for n records.
            first = consumer.poll(0.5)
            messages = [] if first is None else [first, *consumer.consume(num_messages=5000, timeout=0)]
            eof = False
            for message in messages:
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:  # noqa: SLF001 - the documented name
                        eof = True
                        continue
                    raise ChangelogReadError(f"changelog read failed: {error}")
                key = message.key()
                if key is None:
                    continue
                changes[key] = message.value()
                last_offset = message.offset()
                records += 1
            caught_up = eof and _position(consumer, tp) >= high
            if len(changes) >= FLUSH_EVERY or (eof and changes):
                store.write(changes, last_offset)
                changes = {}
            if caught_up:
                return records
            if messages and not eof:
                stuck_since = None
            else:  # nothing new: either the end, or held back by an open transaction
                stuck_since = stuck_since or time.monotonic()
                if fence is not None and time.monotonic() - stuck_since > FENCE_AFTER:
                    owner = changes.get(OWNER_KEY) or store.get(OWNER_KEY)
                    if owner is not None:
                        log.warning(
                            "changelog partition %d is held by an open transaction of %s; fencing it",
                            partition,
                            owner.decode(),
                            extra={"partition": partition},
                        )
                        fence(owner.decode())
                    fence = None  # once
    finally:
        consumer.unassign()
