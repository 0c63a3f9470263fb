"""A partition that comes back to a worker (a rejoin, an eager rebalance): read past the tasks it
took when no one else committed meanwhile, else again from the group's commit; never a commit
for a partition whose offsets were not checked since it came back, nor one computed before a
revocation. Kafka is replaced by fakes (the bookkeeping alone); tests/executors/
test_worker_membership.py runs a rejoin on a real broker."""

from __future__ import annotations

import asyncio

from ledgerflow.config import Settings
from ledgerflow.executors.offsets import PartitionOffsets
from ledgerflow.executors.worker import Worker
from tests.executors_unit.fakes import TASKS, FakeProducer, RebalancingConsumer


def worker_with(tracked: PartitionOffsets) -> Worker:
    worker = Worker(Settings(), {})
    worker._producer = FakeProducer()  # type: ignore[assignment]
    worker._offsets[TASKS] = tracked
    return worker


def tracked(committed: int, running: set[int], highest: int) -> PartitionOffsets:
    offsets = PartitionOffsets(committed=committed)
    for offset in range(committed, highest + 1):
        offsets.started(offset)
        if offset not in running:
            offsets.finished(offset)
    return offsets


async def test_back_with_no_commit_by_another_it_reads_past_what_it_took() -> None:
    worker = worker_with(tracked(committed=10, running={12}, highest=15))
    consumer = RebalancingConsumer(broker=10)
    await worker.resume_positions(consumer, {TASKS})  # type: ignore[arg-type]
    assert consumer.seeks == [(TASKS, 16)]
    assert worker._offsets[TASKS].committable() == 12  # task 12 still holds the commit back


async def test_back_after_another_worker_committed_it_reads_again_from_that_commit() -> None:
    worker = worker_with(tracked(committed=10, running={12, 20}, highest=21))
    consumer = RebalancingConsumer(broker=18)
    await worker.resume_positions(consumer, {TASKS})  # type: ignore[arg-type]
    assert consumer.seeks == [(TASKS, 18)]
    known = worker._offsets[TASKS]
    # 12 is below the other worker's commit: Kafka counts it done. 18 and 19 ran here and
    # reported; 20 still runs and holds the commit back until it ends
    assert known.in_flight == {20}
    assert known.committable() == 20
    known.finished(20)
    assert known.committable() == 21


async def test_nothing_committed_in_the_group_reads_from_the_beginning() -> None:
    worker = worker_with(tracked(committed=5, running=set(), highest=7))
    consumer = RebalancingConsumer(broker=None)
    await worker.resume_positions(consumer, {TASKS})  # type: ignore[arg-type]
    assert consumer.seeks == [(TASKS, "beginning")]


async def test_no_commit_for_a_partition_revoked_and_not_checked_since() -> None:
    worker = worker_with(tracked(committed=-1, running=set(), highest=3))
    consumer = RebalancingConsumer(broker=None)
    await worker.resume_positions(consumer, {TASKS})  # type: ignore[arg-type]
    worker.forget_positions({TASKS})  # revoked; assigned again, listener not run yet
    await worker._commit(consumer)  # type: ignore[arg-type]
    assert consumer.commits == []
    await worker.resume_positions(consumer, {TASKS})  # type: ignore[arg-type]
    await worker._commit(consumer)  # type: ignore[arg-type]
    assert consumer.commits == [{TASKS: 4}]


async def test_a_commit_computed_before_a_revocation_is_not_sent() -> None:
    worker = worker_with(tracked(committed=-1, running=set(), highest=3))
    consumer = RebalancingConsumer(broker=None)
    await worker.resume_positions(consumer, {TASKS})  # type: ignore[arg-type]
    pending: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    worker._sends.add(pending)  # a result not acknowledged yet: the commit waits for it
    commit = asyncio.create_task(worker._commit(consumer))  # type: ignore[arg-type]
    await asyncio.sleep(0.01)
    worker.forget_positions({TASKS})
    await worker.resume_positions(consumer, {TASKS})  # type: ignore[arg-type]
    pending.set_result(None)
    await asyncio.wait_for(commit, 1)
    assert consumer.commits == [], "sent offsets computed before the partition moved"
