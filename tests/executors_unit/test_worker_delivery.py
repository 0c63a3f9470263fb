"""A task's offset is committed only once Kafka took its outcome, even when a delivery fails.

Kafka is replaced by fakes (the commit logic alone); tests/executors runs the same case
against a real broker.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ledgerflow import activity
from ledgerflow.config import Settings
from ledgerflow.executors import worker as worker_module
from ledgerflow.executors.worker import Worker
from ledgerflow.schemas.tasks import ActivityTask
from tests.executors_unit.fakes import TASKS, FakeProducer, RecordingConsumer


@activity.defn
async def echo(n: int) -> int:
    return n


async def until(condition: Any, timeout: float = 2.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, "condition never held"
        await asyncio.sleep(0.005)


async def worker_sending_one_outcome(**options: Any) -> tuple[Worker, FakeProducer, RecordingConsumer]:
    """A worker on fakes that ran one task and is sending its outcome (not acknowledged yet)."""
    producer = FakeProducer()
    worker = Worker(Settings(), {"echo": activity.definition_of(echo)}, **options)
    worker._producer = producer  # type: ignore[assignment]
    consumer = RecordingConsumer()
    await worker.resume_positions(consumer, consumer.assignment())  # type: ignore[arg-type]
    task = ActivityTask(
        workflow_id="w", run_id="r", seq=1, attempt=1, activity_type="echo", args=[7], scheduled_at=0.0
    )
    worker._accept(TASKS, 0, task.model_dump_json().encode())
    await until(lambda: producer.deliveries)
    return worker, producer, consumer


async def test_a_failed_delivery_is_sent_again_and_its_task_committed_only_once_it_lands(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(worker_module, "RESEND_DELAYS", (0.01,))
    worker, producer, consumer = await worker_sending_one_outcome()
    await until(lambda: not worker._running)  # the attempt ended; its outcome is not on Kafka yet
    await worker._commit(consumer)  # type: ignore[arg-type]
    assert consumer.commits == [], "committed before the outcome was acknowledged"

    producer.deliveries[0].set_exception(RuntimeError("MESSAGE_SIZE_TOO_LARGE"))
    await until(lambda: len(producer.deliveries) == 2)  # sent again
    assert producer.sent[1] == producer.sent[0]
    await worker._commit(consumer)  # type: ignore[arg-type]
    assert consumer.commits == [], "a failed delivery let its task's offset be committed"

    producer.deliveries[1].set_result("acknowledged")
    await until(lambda: worker._offsets[TASKS].committable() is not None)
    await worker._commit(consumer)  # type: ignore[arg-type]
    assert consumer.commits == [{TASKS: 1}]
    worker.runner.threads.shutdown(wait=False)


async def test_stopping_gives_up_on_an_undelivered_outcome_and_leaves_its_task_uncommitted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    worker, _, consumer = await worker_sending_one_outcome(shutdown_grace=0.1)
    await asyncio.wait_for(worker._drain(), 5)  # the delivery never comes: given up after the grace
    await worker._commit(consumer)  # type: ignore[arg-type]
    assert consumer.commits == [], "an outcome Kafka never acknowledged was committed"
    worker.runner.threads.shutdown(wait=False)
