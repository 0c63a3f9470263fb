"""The whole stack on three brokers: topics replicated 3 times (min.insync.replicas 2), an
engine and a worker run workflows to completion, also after one broker is killed with -9."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

from ledgerflow import Client
from ledgerflow.localkafka import LocalKafka
from ledgerflow.testing.processes import Cluster
from tests.fixtures import ACTS, FLOWS, ROOT, assert_invariants

pytestmark = [pytest.mark.kafka, pytest.mark.cluster]

RUNS = 20


def test_engine_and_worker_on_three_brokers_with_replication_3(tmp_path: Path, topic_prefix: str) -> None:
    kafka = LocalKafka(tmp_path / "kafka", brokers=3)
    started = time.monotonic()
    try:
        bootstrap = kafka.up()
        up_seconds = time.monotonic() - started
        cluster = Cluster(
            bootstrap,
            topic_prefix,
            tmp_path,
            partitions=4,
            pythonpath=[ROOT],
            env={"LEDGERFLOW_REPLICATION_FACTOR": "3", "LEDGERFLOW_MIN_INSYNC_REPLICAS": "2"},
        )
        try:
            engine = cluster.engine([FLOWS])
            cluster.worker([ACTS])
            engine.wait_ready(timeout=120)
            with Client(bootstrap, topic_prefix, partitions=cluster.partitions) as client:
                t0 = time.monotonic()
                for i in range(RUNS):
                    client.start_workflow("ThreeSteps", i, id=f"rf3-{i}")
                for i in range(RUNS):
                    assert client.result(f"rf3-{i}", timeout=60) == i + 3
                healthy_seconds = time.monotonic() - t0

                admin = AdminClient({"bootstrap.servers": bootstrap})
                topics = {
                    n: t
                    for n, t in admin.list_topics(timeout=10).topics.items()
                    if n.startswith(topic_prefix)
                }
                assert f"{topic_prefix}inbox" in topics and f"{topic_prefix}changelog" in topics, sorted(
                    topics
                )
                for name, topic in topics.items():
                    for partition in topic.partitions.values():
                        assert len(partition.replicas) == 3, (name, partition.id, partition.replicas)
                        assert len(partition.isrs) == 3, (name, partition.id, partition.isrs)
                resources = [ConfigResource(ResourceType.TOPIC, name) for name in topics]
                for resource, future in admin.describe_configs(resources).items():
                    assert future.result(30)["min.insync.replicas"].value == "2", resource

                # What replication is for: one broker dies, the next runs still complete.
                kafka.kill_broker(2)
                t1 = time.monotonic()
                for i in range(RUNS, 2 * RUNS):
                    client.start_workflow("ThreeSteps", i, id=f"rf3-{i}")
                for i in range(RUNS, 2 * RUNS):
                    assert client.result(f"rf3-{i}", timeout=90) == i + 3
                degraded_seconds = time.monotonic() - t1
                for i in range(2 * RUNS):
                    assert_invariants(client, f"rf3-{i}")
        finally:
            cluster.stop_all()
    finally:
        kafka.down()
    print(
        f"3 brokers up in {up_seconds:.1f} s; {RUNS} runs in {healthy_seconds:.1f} s; {len(topics)} topics "
        f"with RF 3, min.insync.replicas 2; {RUNS} more after kill -9 of a broker: {degraded_seconds:.1f} s"
    )
