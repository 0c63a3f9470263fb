"""The benchmark's workload for 60 s through real Kafka, then every invariant on every run."""

from __future__ import annotations

import json
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from ledgerflow.engine.state.committed import read_history, scan_runs
from ledgerflow.engine.state.store import PartitionStore, store_path
from ledgerflow.local.processes import Cluster
from ledgerflow.schemas.commands import StartWorkflow
from ledgerflow.sdk.definition import WorkflowRegistry
from ledgerflow.testing.invariants import check_run

SAMPLES = "ledgerflow.samples.orders"
SECONDS = 60.0
IN_FLIGHT = 200

pytestmark = pytest.mark.kafka


# 60 s of load, the drain and a replay of every run: on a busy 2-core machine that is close to the
# suite's 300 s per-test limit, so this test gets twice that. Its assertions are about correctness.
@pytest.mark.timeout(600)
def test_sixty_seconds_of_load_keeps_every_invariant(cluster: Cluster) -> None:
    engine = cluster.engine([SAMPLES])
    cluster.worker([SAMPLES], concurrency=200)
    engine.wait_ready()
    producer = Producer(
        {"bootstrap.servers": cluster.bootstrap, "partitioner": "murmur2_random", "linger.ms": 2}
    )
    events = Consumer(
        {"bootstrap.servers": cluster.bootstrap, "group.id": "load", "isolation.level": "read_committed"}
    )
    events.assign([TopicPartition(f"{cluster.prefix}events", p, 0) for p in range(cluster.partitions)])
    started: set[str] = set()
    completed: Counter[str] = Counter()
    tag = uuid.uuid4().hex[:6]
    end = time.monotonic() + SECONDS
    while time.monotonic() < end:
        while len(started) - len(completed) < IN_FLIGHT:
            wid = f"load-{tag}-{len(started)}"
            start = StartWorkflow(
                workflow_id=wid, workflow_type="ProcessOrder", input={"order_id": wid, "amount": 2}
            )
            producer.produce(
                f"{cluster.prefix}inbox", key=wid.encode(), value=start.model_dump_json().encode()
            )
            started.add(wid)
        producer.poll(0)
        for message in events.consume(1000, 0.01):
            if not message.error() and (event := json.loads(message.value()))["type"] == "WORKFLOW_COMPLETED":
                completed[event["workflow_id"]] += 1
    producer.flush(30)
    load_end = time.monotonic()
    deadline = load_end + 120
    while set(completed) != started and time.monotonic() < deadline:
        for message in events.consume(1000, 0.2):
            if not message.error() and (event := json.loads(message.value()))["type"] == "WORKFLOW_COMPLETED":
                completed[event["workflow_id"]] += 1
    events.close()
    print(
        f"{len(started)} runs started in {SECONDS:.0f} s ({len(started) / SECONDS:.0f}/s), "
        f"the last completed {time.monotonic() - load_end:.1f} s after the load stopped"
    )
    assert set(completed) == started, f"{len(started - set(completed))} of {len(started)} never completed"
    assert set(completed.values()) == {1}, "a workflow completed more than once"
    # Throughput is machine-dependent (bench/ measures it); here only that the in-flight window
    # turned over many times, i.e. runs kept completing for the whole minute.
    assert len(started) >= 5 * IN_FLIGHT, f"only {len(started)} runs in {SECONDS} s"

    engine.stop()  # releases its RocksDB; the stores are read directly below
    registry = WorkflowRegistry.from_modules([SAMPLES])
    checked = 0
    for p in range(cluster.partitions):
        store = PartitionStore(
            store_path(Path(cluster.base_dir) / "engine-0", f"{cluster.prefix}changelog", p)
        )
        try:
            for run in scan_runs(store):
                history = read_history(store, run.workflow_id, run.run_id)
                assert check_run(run.model_dump(mode="json"), history, registry) == []
                assert run.status == "COMPLETED" and run.result["shipment"].startswith("shipped-")
                checked += 1
        finally:
            store.close()
    assert checked == len(started)
    print(
        f"the invariants of {checked} runs held; {time.monotonic() - load_end:.1f} s since the load stopped"
    )
