"""Restore a partition store from its changelog partition.

Only the tail after the store's own checkpoint is read when one survives; a
store without a checkpoint is wiped and rebuilt from the start. Reads are
``read_committed``, so writes of aborted transactions never reach the store.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, KafkaException, TopicPartition

from ledgerflow.engine import metrics
from ledgerflow.engine.state.store import PartitionStore

log = logging.getLogger("ledgerflow.engine.recovery")
FLUSH_EVERY = 10_000


@dataclass(frozen=True)
class RestoreResult:
    partition: int
    start_offset: int | None
    """First changelog offset read, or None when nothing needed reading."""
    records: int
    seconds: float


def open_and_restore(
    path: Path, consumer: Consumer, topic: str, partition: int, timeout: float = 120.0
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
    records = _consume_into(store, consumer, topic, partition, start, timeout)
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


def _watermarks(consumer: Consumer, tp: TopicPartition, timeout: float) -> tuple[int, int]:
    """The partition's offsets, waiting out a leader election (e.g. just after topic creation)."""
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
            time.sleep(0.2)


_TRANSIENT = (
    KafkaError.NOT_LEADER_FOR_PARTITION,
    KafkaError.LEADER_NOT_AVAILABLE,
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError._TIMED_OUT,  # noqa: SLF001
    KafkaError._TRANSPORT,  # noqa: SLF001
)


def _consume_into(
    store: PartitionStore, consumer: Consumer, topic: str, partition: int, start: int, timeout: float
) -> int:
    consumer.assign([TopicPartition(topic, partition, start)])
    deadline = time.monotonic() + timeout
    changes: dict[bytes, bytes | None] = {}
    last_offset: int | None = None
    records = 0
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
                    raise RuntimeError(f"changelog read failed: {error}")
                key = message.key()
                if key is None:
                    continue
                changes[key] = message.value()
                last_offset = message.offset()
                records += 1
            if len(changes) >= FLUSH_EVERY or (eof and changes):
                store.write(changes, last_offset)
                changes = {}
            if eof:
                return records
    finally:
        consumer.unassign()
