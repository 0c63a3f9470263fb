"""A namespace's own ingress topic (ledgerflow/engine/ingress.py) on a real broker: its commands run in that
namespace and no other, what it may not send is dead-lettered with the reason, and each record
is forwarded exactly once though the engine forwarding it is killed with -9."""

from __future__ import annotations

import json
import threading
import time
import uuid

import pytest
from confluent_kafka import Producer

from ledgerflow import (
    Client,
    Schedule,
    ScheduleAction,
    ScheduleNotFoundError,
    ScheduleSpec,
    WorkflowNotFoundError,
)
from ledgerflow.config import Settings
from ledgerflow.engine.kafka.admin import ensure_topics
from ledgerflow.local.processes import Cluster
from ledgerflow.schemas import commands as c
from tests.fixtures import ACTS, FLOWS, assert_invariants, dead_letters, lifecycle_counts
from tests.waits import wait_until

pytestmark = pytest.mark.kafka


def _ingress(cluster: Cluster, namespace: str) -> tuple[Producer, str]:
    """A producer and the ingress topic of ``namespace`` (created as ``topics create --namespace``)."""
    settings = Settings(bootstrap=cluster.bootstrap, prefix=cluster.prefix, partitions=cluster.partitions)
    ensure_topics(settings, namespaces=(namespace,))
    # any partitioner: records of one workflow id only need to share a partition
    return Producer({"bootstrap.servers": cluster.bootstrap}), settings.ingress_topic(namespace)


def _send(producer: Producer, topic: str, key: str, value: bytes | c.InboxCommand) -> None:
    raw = value if isinstance(value, bytes) else value.model_dump_json().encode()
    producer.produce(topic, key=key.encode(), value=raw)


def test_commands_on_a_namespaces_topic_run_in_that_namespace(running: Cluster) -> None:
    producer, topic = _ingress(running, "acme")
    order = f"order-{uuid.uuid4().hex[:6]}"
    collector = f"collect-{uuid.uuid4().hex[:6]}"
    _send(producer, topic, order, c.StartWorkflow(workflow_id=order, workflow_type="ThreeSteps", input=1))
    # its own namespace named in the id is the same workflow's namespace
    _send(
        producer,
        topic,
        collector,
        c.StartWorkflow(workflow_id=f"acme/{collector}", workflow_type="SignalCounter"),
    )
    _send(producer, topic, collector, c.SignalWorkflow(workflow_id=collector, name="add", payload="first"))
    _send(producer, topic, collector, c.SignalWorkflow(workflow_id=collector, name="done"))
    assert producer.flush(30) == 0

    with running.client(namespace="acme") as acme, running.client() as default:
        assert acme.result(order, timeout=60) == 4
        assert acme.result(collector, timeout=60) == ["first"]
        assert_invariants(acme, order)
        with pytest.raises(WorkflowNotFoundError):
            default.describe(order)  # the default namespace has no such run
        assert lifecycle_counts(running, "WORKFLOW_COMPLETED", {f"acme/{order}"})[f"acme/{order}"] == 1


def test_what_a_namespace_may_not_send_is_dead_lettered_with_the_reason(running: Cluster) -> None:
    producer, topic = _ingress(running, "acme")
    tag = uuid.uuid4().hex[:6]
    refused: dict[str, tuple[bytes | c.InboxCommand, str]] = {
        f"other-{tag}": (
            c.StartWorkflow(workflow_id=f"globex/other-{tag}", workflow_type="ThreeSteps", input=1),
            "names namespace 'globex'",
        ),
        f"child-{tag}": (
            c.StartWorkflow(
                workflow_id=f"child-{tag}", workflow_type="ThreeSteps", parent_workflow_id="p", parent_seq=1
            ),
            "parent_workflow_id",
        ),
        f"result-{tag}": (
            c.TaskCompleted(workflow_id=f"result-{tag}", run_id="r", seq=1, attempt=1),
            "task_completed is written by Ledgerflow",
        ),
        f"junk-{tag}": (b"{not json", "invalid ingress record"),
    }
    for key, (value, _) in refused.items():
        _send(producer, topic, key, value)
    # and the records after them are forwarded still
    after = f"after-{tag}"
    _send(producer, topic, after, c.StartWorkflow(workflow_id=after, workflow_type="ThreeSteps", input=2))
    assert producer.flush(30) == 0

    letters = dead_letters(running, {k.encode() for k in refused})
    for key, (_, reason) in refused.items():
        headers = letters[key.encode()]
        assert reason in headers["ledgerflow.dlq.reason"].decode(), headers
        assert headers["ledgerflow.dlq.source"].decode().startswith(f"{topic}/")
    with running.client(namespace="acme") as acme:
        assert acme.result(after, timeout=60) == 5
    with running.client(namespace="globex") as globex, pytest.raises(WorkflowNotFoundError):
        globex.describe(f"other-{tag}")


def test_each_ingress_record_is_forwarded_once_though_the_forwarding_engine_is_killed(
    cluster: Cluster,
) -> None:
    engine = cluster.engine([FLOWS])
    cluster.worker([ACTS], concurrency=50)
    engine.wait_ready()
    producer, topic = _ingress(cluster, "acme")
    ids = [f"once-{i}-{uuid.uuid4().hex[:4]}" for i in range(300)]

    def produce_steadily() -> None:
        # over about 6 s, so the kill below lands while the engine forwards
        for i, workflow_id in enumerate(ids):
            _send(
                producer,
                topic,
                workflow_id,
                c.StartWorkflow(workflow_id=workflow_id, workflow_type="ThreeSteps", input=i),
            )
            producer.poll(0)
            time.sleep(0.02)
        producer.flush(30)

    feeder = threading.Thread(target=produce_steadily)
    feeder.start()
    with cluster.client(namespace="acme") as acme:
        wait_until(lambda: _exists(acme, ids[20]), "the first forwarded starts to run", 60, interval=0.05)
        engine.kill()
        time.sleep(1.0)  # records keep coming while no engine forwards them
        cluster.restart(engine).wait_ready()
        feeder.join()
        for i, workflow_id in enumerate(ids):
            assert acme.result(workflow_id, timeout=120) == i + 3, workflow_id
        for workflow_id in ids[::25]:
            assert_invariants(acme, workflow_id)
    # a start forwarded twice would have started a second run once the first completed
    started = lifecycle_counts(cluster, "WORKFLOW_STARTED", {f"acme/{w}" for w in ids})
    assert {f"acme/{w}" for w in ids} == set(started)
    twice = {w: n for w, n in started.items() if n != 1}
    assert not twice, f"runs started more than once: {json.dumps(twice)[:500]}"


def _exists(client: Client, workflow_id: str) -> bool:
    try:
        client.describe(workflow_id)
    except WorkflowNotFoundError:
        return False
    return True


def test_a_schedule_created_and_triggered_on_a_namespaces_topic_starts_runs_there(running: Cluster) -> None:
    producer, topic = _ingress(running, "acme")
    sid = f"nightly-{uuid.uuid4().hex[:6]}"
    schedule = Schedule(
        action=ScheduleAction(workflow_type="ThreeSteps", input=1),
        spec=ScheduleSpec(cron_expressions=["0 3 * * *"], time_zone="Europe/Paris"),
    )
    _send(producer, topic, sid, c.CreateSchedule(schedule_id=sid, schedule=schedule))
    _send(producer, topic, sid, c.TriggerSchedule(schedule_id=sid))
    _send(producer, topic, sid, c.PauseSchedule(schedule_id=sid, note="from kafka"))
    closed = c.ScheduledRunClosed(schedule_id=sid, scheduled_workflow_id="x", status="FAILED")
    _send(producer, topic, sid, closed)  # only engines tell a schedule its runs closed
    assert producer.flush(30) == 0

    with running.client(namespace="acme") as acme, running.client() as default:
        handle = acme.get_schedule_handle(sid)

        def paused() -> bool | None:
            try:
                return handle.describe().schedule.state.note == "from kafka" or None
            except ScheduleNotFoundError:
                return None  # not forwarded yet

        wait_until(paused, "the schedule, triggered and paused", 60)
        [action] = handle.describe().info.recent_actions
        assert action.workflow_id.startswith(f"{sid}-") and acme.result(action.workflow_id, timeout=60) == 4
        with pytest.raises(ScheduleNotFoundError):
            default.get_schedule_handle(sid).describe()  # the default namespace has no such schedule
    headers = dead_letters(running, {sid.encode()})[sid.encode()]
    assert "scheduled_run_closed is written by Ledgerflow" in headers["ledgerflow.dlq.reason"].decode()
