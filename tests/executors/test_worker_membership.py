"""A worker whose every slot is busy stays a live member of its queue's group, on a real broker.

aiokafka's group coordinator, after a group error, waits for the consumer's next ``getmany``
before it goes on, and after some errors (a heartbeat answered with a code it does not expect)
it never heartbeats again until the member rejoins. A worker that stopped calling ``getmany``
while its slots were full fell out of its group after the session timeout (its partitions, and
the tasks it was still running, went to another worker), and once it called again the error
ended its fetch loop. The chaos run's worker group that never settled may have been this.

The group error is injected where aiokafka meets one: a heartbeat answered with an error code
it does not expect (e.g. COORDINATOR_LOAD_IN_PROGRESS while a coordinator moves).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest
from aiokafka import errors as kafka_errors
from aiokafka.consumer.group_coordinator import GroupCoordinator
from confluent_kafka import ConsumerGroupState, Producer
from confluent_kafka.admin import AdminClient

from ledgerflow import activity
from ledgerflow.config import Settings
from ledgerflow.engine.kafka.admin import ensure_topics
from ledgerflow.executors.worker import Worker
from ledgerflow.schemas.tasks import ActivityTask

pytestmark = pytest.mark.kafka

SESSION_TIMEOUT = 6.0
"""The worker consumer's session timeout (executors/worker.py)."""
released = threading.Event()
started = threading.Event()
holds: list[float] = []


@activity.defn
def hold() -> str:
    holds.append(time.time())
    started.set()
    released.wait(60)
    return "released"


@activity.defn
def quick(n: int) -> int:
    return n


@pytest.fixture
def failing_heartbeat(monkeypatch: pytest.MonkeyPatch) -> Iterator[threading.Event]:
    """Set it, and the next heartbeat of any aiokafka consumer fails with an error aiokafka
    does not expect (its heartbeat task ends and the coordinator hands the error to the user)."""
    fail = threading.Event()
    real = GroupCoordinator._do_heartbeat

    async def heartbeat(self: GroupCoordinator) -> bool:
        if fail.is_set():
            fail.clear()
            raise kafka_errors.KafkaError("injected: Unexpected exception in heartbeat task")
        return await real(self)

    monkeypatch.setattr(GroupCoordinator, "_do_heartbeat", heartbeat)
    yield fail


def _group(settings: Settings, queue: str) -> tuple[ConsumerGroupState, int]:
    admin = AdminClient({"bootstrap.servers": settings.bootstrap})
    group = f"{settings.prefix}workers.{queue}"
    described = admin.describe_consumer_groups([group])[group].result(10)
    return described.state, len(described.members)


async def test_a_full_worker_survives_a_group_error_and_keeps_its_membership(
    kafka_bootstrap: str, topic_prefix: str, failing_heartbeat: threading.Event
) -> None:
    released.clear()
    started.clear()
    holds.clear()
    settings = Settings(bootstrap=kafka_bootstrap, prefix=topic_prefix, partitions=2)
    ensure_topics(settings, ("q",))
    producer = Producer({"bootstrap.servers": kafka_bootstrap})

    def send(seq: int, activity_type: str, args: list[int]) -> None:
        task = ActivityTask(
            workflow_id=f"w{seq}", run_id="r", seq=seq, attempt=1, activity_type=activity_type,
            args=args, scheduled_at=time.time(), partition=0,
        )  # fmt: skip
        producer.produce(
            settings.task_topic("q"), key=task.workflow_id.encode(), value=task.model_dump_json()
        )
        assert producer.flush(10) == 0

    activities = {"hold": activity.definition_of(hold), "quick": activity.definition_of(quick)}
    worker = Worker(settings, activities, queue="q", concurrency=1, shutdown_grace=1.0)
    async with worker:
        send(1, "hold", [])
        while not started.is_set():
            await asyncio.sleep(0.05)
        # every slot busy; now the group errs
        failing_heartbeat.set()
        await asyncio.sleep(SESSION_TIMEOUT * 2.5)
        state, members = await asyncio.to_thread(_group, settings, "q")
        assert (state, members) == (ConsumerGroupState.STABLE, 1), f"the full worker left: {state}, {members}"
        # and it takes tasks again once a slot is free
        released.set()
        send(2, "quick", [5])
        deadline = time.monotonic() + 30
        while worker.completed < 2:
            assert time.monotonic() < deadline, (
                f"the worker took no task after the error ({worker.completed})"
            )
            await asyncio.sleep(0.05)
        assert not worker._task.done(), "the worker's fetch loop ended"
    # rejoining read the held task again from the last commit: it still ran once here
    assert len(holds) == 1, f"the held activity ran {len(holds)} times"
    assert worker.completed == 2
