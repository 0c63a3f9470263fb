"""At least once: a worker commits a task's offset only after Kafka acknowledged its result.

aiokafka's ``send`` returns as soon as the record is queued; the commit must wait for the
delivery itself. Kafka is replaced by two small fakes (pure commit logic); the whole path
through a real broker is covered by tests/engine.
"""

from __future__ import annotations

import asyncio

from ledgerflow.config import Settings
from ledgerflow.executors.offsets import PartitionOffsets
from ledgerflow.executors.worker import Worker
from ledgerflow.schemas.commands import TaskCompleted
from tests.executors_unit.fakes import TASKS, FakeProducer, RecordingConsumer


async def worker_on_fakes() -> tuple[Worker, FakeProducer, RecordingConsumer]:
    """A worker just assigned ``TASKS`` (as the rebalance listener leaves it)."""
    worker = Worker(Settings(), {})
    producer = FakeProducer()
    worker._producer = producer  # type: ignore[assignment]
    consumer = RecordingConsumer()
    await worker.resume_positions(consumer, consumer.assignment())  # type: ignore[arg-type]
    return worker, producer, consumer


def finished_task(worker: Worker, offset: int) -> None:
    """Task ``offset`` ran and reported its result (as the attempt runner does), then ended."""
    tracked = worker._offsets.setdefault(TASKS, PartitionOffsets())
    tracked.started(offset)
    outcome = TaskCompleted(workflow_id="w", run_id="r", seq=offset, attempt=1, result=offset)
    worker._report("w", outcome.model_dump_json().encode(), 0, outcome=True)
    tracked.finished(offset)


async def test_an_offset_is_committed_only_once_its_result_is_acknowledged() -> None:
    worker, producer, consumer = await worker_on_fakes()
    finished_task(worker, 0)
    await asyncio.sleep(0.01)  # the result is queued (send returned) before the commit starts
    commit = asyncio.create_task(worker._commit(consumer))  # type: ignore[arg-type]
    await asyncio.sleep(0.05)
    assert len(producer.deliveries) == 1, "the result was not sent"
    assert consumer.commits == [], "committed while the result was only queued"
    producer.deliveries[0].set_result("acknowledged")
    await asyncio.wait_for(commit, 1)
    assert consumer.commits == [{TASKS: 1}]


async def test_a_commit_waits_only_for_the_results_its_offsets_cover() -> None:
    worker, producer, consumer = await worker_on_fakes()
    finished_task(worker, 0)
    commit = asyncio.create_task(worker._commit(consumer))  # type: ignore[arg-type]
    await asyncio.sleep(0.05)  # the commit took its offsets and waits for result 0
    finished_task(worker, 1)  # reported later: the next commit's business
    producer.deliveries[0].set_result("acknowledged")
    await asyncio.wait_for(commit, 1)
    assert consumer.commits == [{TASKS: 1}]
    assert not producer.deliveries[1].done()
