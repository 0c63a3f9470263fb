"""Fixtures that run real engines and workers against the session's broker (loaded by tests/conftest.py)."""

from __future__ import annotations

import json
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from ledgerflow import Client
from ledgerflow.local.kafka import KafkaStartError, LocalKafka
from ledgerflow.local.processes import Cluster, NodeProcess
from ledgerflow.sdk.definition import WorkflowRegistry
from ledgerflow.testing.invariants import check_workflow

ROOT = str(Path(__file__).resolve().parents[1])
FLOWS = "tests.testapps.flows"
ACTS = "tests.testapps.acts"


def started_kafka(folder: Path, brokers: int) -> LocalKafka:
    """A running local cluster of ``brokers`` nodes in ``folder``.

    A start that fails is reported (a warning carrying every node's state, last log lines and
    main-thread stack) and tried once more in a fresh folder: in CI a 3-node start on the loaded
    2-core box failed now and then (one node exited with nothing logged) with no cause found
    yet. The tests using this prove what runs on such a cluster; tests/localkafka/
    test_launcher.py proves the start itself, without a second try.
    """
    kafka = LocalKafka(folder, brokers=brokers)
    try:
        kafka.up()
    except KafkaStartError as exc:
        warnings.warn(f"local Kafka start failed, trying once more: {exc}\n{exc.report}", stacklevel=2)
        kafka.down()
        kafka = LocalKafka(folder.with_name(f"{folder.name}-again"), brokers=brokers)
        kafka.up()
    return kafka


@pytest.fixture
def cluster(kafka_bootstrap: str, topic_prefix: str, tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(kafka_bootstrap, topic_prefix, tmp_path, partitions=4, pythonpath=[ROOT])
    yield c
    c.stop_all()


@pytest.fixture
def client(cluster: Cluster) -> Iterator[Client]:
    with cluster.client() as c:
        yield c


@pytest.fixture
def running(cluster: Cluster) -> Cluster:
    """One engine (ready) and one worker, serving the test apps."""
    engine = cluster.engine([FLOWS])
    cluster.worker([ACTS])
    engine.wait_ready()
    return cluster


def owned(engine: NodeProcess) -> list[int]:
    """Partitions an engine owns now (its /internal/partitions)."""
    return [int(r["partition"]) for r in engine.get("/internal/partitions").json()["partitions"]]


def settled_shares(engines: list[NodeProcess], partitions: int, timeout: float = 30.0) -> list[list[int]]:
    """Each engine's partitions once every partition has one owner and every engine has some.

    ``wait_ready`` returns at an engine's first assignment; a cooperative rebalance may go
    on handing partitions over after that.
    """
    deadline = time.time() + timeout
    while True:
        shares = [owned(e) for e in engines]
        if sorted(p for share in shares for p in share) == list(range(partitions)) and all(shares):
            return shares
        assert time.time() < deadline, f"assignment did not settle: {shares}"
        time.sleep(0.2)


def slept(result: dict[str, float]) -> float:
    """Seconds a Sleeper-style result (``before``/``after`` from ``workflow.now()``) shows slept,
    give or take the one microsecond their rounding may take off.

    ``workflow.now()`` is a datetime: ``before`` and ``after`` are each rounded to the
    microsecond on their own, from epoch floats only about that precise, so a timer that fired
    exactly on time can show 0.099999 for a 0.1 s sleep (CI saw it). That microsecond is given
    back; a timer early by more still fails the caller's ``>=``."""
    return round(result["after"] - result["before"] + 1e-6, 6)


def assert_invariants(client: Client, workflow_id: str, workflows: str = FLOWS) -> None:
    """Every run of ``workflow_id`` (its continue-as-new chain) and of its children holds the
    engine's invariants, replayed against the workflows of module ``workflows`` (the test
    workflows unless given; ledgerflow.testing.invariants)."""
    problems = check_workflow(client, workflow_id, WorkflowRegistry.from_modules([workflows]))
    assert not problems, problems


def lifecycle_events(cluster: Cluster, kind: str, expected: set[str]) -> list[dict[str, Any]]:
    """The events of type ``kind`` on the cluster's public events topic.

    Reads until every expected id was seen and every partition was read to its high
    watermark: a read_committed consumer stops at the last stable offset, which a killed
    engine's open transaction holds back until it is aborted or fenced.
    """
    topic = f"{cluster.prefix}events"
    consumer = Consumer(
        {"bootstrap.servers": cluster.bootstrap, "group.id": "counter", "isolation.level": "read_committed"}
    )
    partitions = [TopicPartition(topic, p, 0) for p in range(cluster.partitions)]
    ends = {tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in partitions}
    consumer.assign(partitions)
    found: list[dict[str, Any]] = []
    deadline = time.time() + 60
    while time.time() < deadline:
        message = consumer.poll(0.2)
        if message is not None and not message.error():
            event = json.loads(message.value())
            if event["type"] == kind:
                found.append(event)
        positions = consumer.position([TopicPartition(topic, p) for p in ends])
        read_all = all(ends[tp.partition] == 0 or tp.offset >= ends[tp.partition] for tp in positions)
        if read_all and expected <= {event["workflow_id"] for event in found}:
            break
    consumer.close()
    return found


def lifecycle_counts(cluster: Cluster, kind: str, expected: set[str]) -> Counter[str]:
    """How often each workflow id appears with ``kind`` on the public events topic."""
    return Counter(event["workflow_id"] for event in lifecycle_events(cluster, kind, expected))


def assert_invariants_with(client: Client, workflow_id: str, modules: list[str]) -> None:
    """``assert_invariants`` for runs of workflows defined in ``modules`` besides the test workflows."""
    problems = check_workflow(client, workflow_id, WorkflowRegistry.from_modules([FLOWS, *modules]))
    assert not problems, problems


def dead_letters(cluster: Cluster, keys: set[bytes], timeout: float = 30.0) -> dict[bytes, dict[str, bytes]]:
    """Headers of the dead letters with ``keys``, read from the DLQ topic."""
    consumer = Consumer(
        {
            "bootstrap.servers": cluster.bootstrap,
            "group.id": "dlq-reader",
            "isolation.level": "read_committed",
        }
    )
    consumer.assign([TopicPartition(f"{cluster.prefix}inbox.dlq", p, 0) for p in range(cluster.partitions)])
    found: dict[bytes, dict[str, bytes]] = {}
    deadline = time.monotonic() + timeout
    while not keys <= set(found) and time.monotonic() < deadline:
        message = consumer.poll(0.2)
        if message is not None and not message.error() and message.key() in keys:
            found[message.key()] = dict(message.headers() or [])
    consumer.close()
    assert keys <= set(found), f"dead letters missing: {keys - set(found)}"
    return found
