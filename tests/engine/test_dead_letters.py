"""Malformed inbox records go to the dead-letter topic with a reason; the engine keeps going.

That includes records whose ids break the id rule (schemas.common.ID_RULE): a ``/`` or a
control character in a workflow, run, request or definition id, or an id over 256
characters. Ids the rule allows, however odd, reach their runs through the client.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from ledgerflow import Client, WorkflowFailedError, WorkflowNotFoundError
from ledgerflow.local.processes import Cluster, failed_batches
from ledgerflow.schemas.dag import DagDefinitionError
from tests.fixtures import assert_invariants, dead_letters

pytestmark = pytest.mark.kafka


def test_malformed_records_are_dead_lettered_and_later_ones_processed(
    running: Cluster, client: Client
) -> None:
    inbox = f"{running.prefix}inbox"
    producer = Producer({"bootstrap.servers": running.bootstrap, "partitioner": "murmur2_random"})
    producer.produce(inbox, key=b"bad-1", value=b"{not json")
    producer.produce(
        inbox,
        key=b"bad-2",
        value=json.dumps({"kind": "start_workflow", "workflow_type": "ThreeSteps"}).encode(),
    )
    producer.produce(
        inbox,
        key=b"bad-3",
        value=json.dumps({"kind": "signal_workflow", "workflow_id": "nobody", "name": "x"}).encode(),
    )
    producer.flush(10)
    client.start_workflow("ThreeSteps", 1, id="after-bad")
    assert client.result("after-bad", timeout=30) == 4

    dlq = f"{running.prefix}inbox.dlq"
    consumer = Consumer(
        {
            "bootstrap.servers": running.bootstrap,
            "group.id": "dlq-reader",
            "isolation.level": "read_committed",
        }
    )
    consumer.assign([TopicPartition(dlq, p, 0) for p in range(running.partitions)])
    found: dict[bytes, dict[str, bytes]] = {}
    for _ in range(50):
        message = consumer.poll(0.2)
        if message is not None and not message.error():
            found[message.key()] = dict(message.headers() or [])
        if len(found) == 3:
            break
    consumer.close()
    assert set(found) == {b"bad-1", b"bad-2", b"bad-3"}
    assert b"invalid inbox record" in found[b"bad-1"]["ledgerflow.dlq.reason"]
    assert b"workflow_id" in found[b"bad-2"]["ledgerflow.dlq.reason"]  # names the missing field
    assert b"no open run" in found[b"bad-3"]["ledgerflow.dlq.reason"]
    assert found[b"bad-1"]["ledgerflow.dlq.source"].startswith(inbox.encode())


def register_record(definition: dict[str, Any]) -> bytes:
    return json.dumps({"kind": "register_definition", "definition": definition}).encode()


def chain(dag_id: str, n: int) -> dict[str, Any]:
    return {
        "id": dag_id,
        "nodes": [{"id": f"n{i}", "type": "echo"} for i in range(n)],
        "edges": [{"source": f"n{i}", "target": f"n{i + 1}"} for i in range(n - 1)],
    }


def test_registrations_over_a_limit_or_with_a_bad_expression_are_dead_lettered(
    running: Cluster, client: Client
) -> None:
    """Kafka ingress checks a DAG whole, as the gateway does: each refused registration is in
    the DLQ naming the field and the setting, none is registered, and the engine serves on."""
    inbox = f"{running.prefix}inbox"
    producer = Producer({"bootstrap.servers": running.bootstrap, "partitioner": "murmur2_random"})
    refused = {
        b"deep": chain("deep", 600),
        # issue 12's trigger: its recursive cycle check raised RecursionError, which skipped the DLQ
        b"long": chain("long", 1200),
        b"wide": {"id": "wide", "nodes": [{"id": f"n{i}", "type": "echo"} for i in range(1001)]},
        b"typo": {"id": "typo", "nodes": [{"id": "a", "type": "echo", "input": {"v": "{{ input. }}"}}]},
        b"reader": {"id": "reader", "nodes": [{"id": "a", "type": "echo", "input": {"v": "{{ env.HOME }}"}}]},
    }
    for key, definition in refused.items():
        producer.produce(inbox, key=key, value=register_record(definition))
    good = {"id": "good", "nodes": [{"id": "a", "type": "echo", "input": {"v": "{{ input.x * 2 }}"}}]}
    producer.produce(inbox, key=b"good", value=register_record(good))
    producer.flush(10)

    reasons = {
        key: headers["ledgerflow.dlq.reason"].decode()
        for key, headers in dead_letters(running, set(refused)).items()
    }
    assert reasons[b"deep"] == (
        "definition 'deep' refused: "
        "edges: the longest path (n0 -> ... -> n599) has 600 nodes, limit 500 (max_dag_depth)"
    )
    assert reasons[b"long"] == (
        "definition 'long' refused: nodes: 1,200 nodes, limit 1,000 (max_dag_nodes); "
        "definition: 171,863 bytes as JSON, limit 131,072 (max_dag_bytes)"
    )
    assert reasons[b"wide"] == "definition 'wide' refused: nodes: 1,001 nodes, limit 1,000 (max_dag_nodes)"
    assert reasons[b"typo"].startswith(
        "definition 'typo' refused: nodes[0].input.v (node 'a'): cannot parse 'input.'"
    ), reasons[b"typo"]
    assert "unknown name 'env' in 'env.HOME' (known: input, nodes)" in reasons[b"reader"], reasons[b"reader"]

    with pytest.raises(DagDefinitionError, match=r"limit 500 \(max_dag_depth\)"):
        client.register_dag(chain("deep-from-client", 600))  # the Client checks before it writes

    client.start_workflow("good", {"x": 21}, id="good-1")
    assert client.result("good-1", timeout=30) == {"a": {"v": 42}}
    client.start_workflow("typo", None, id="typo-1")
    with pytest.raises(WorkflowFailedError) as failed:
        client.result("typo-1", timeout=30)
    assert failed.value.failure.type == "UnknownWorkflowType", failed.value.failure
    client.start_workflow("ThreeSteps", 1, id="after-refusals")
    assert client.result("after-refusals", timeout=30) == 4
    log = running.nodes[0].log_path.read_text()
    assert not failed_batches(log), log[-3000:]


BAD_IDS: dict[bytes, tuple[dict[str, object], str]] = {
    b"slash": (
        {"kind": "start_workflow", "workflow_id": "team/a/b", "workflow_type": "ThreeSteps", "input": 1},
        "start_workflow.workflow_id",
    ),
    b"nul": (
        {"kind": "start_workflow", "workflow_id": "a\x00b", "workflow_type": "ThreeSteps", "input": 1},
        "start_workflow.workflow_id",
    ),
    b"run": (
        {
            "kind": "start_workflow",
            "workflow_id": "run-ctl",
            "workflow_type": "ThreeSteps",
            "run_id": "r\x01",
        },
        "start_workflow.run_id",
    ),
    b"request": (
        {"kind": "signal_workflow", "workflow_id": "any", "name": "go", "request_id": "q\n1"},
        "signal_workflow.request_id",
    ),
    b"long": ({"kind": "cancel_workflow", "workflow_id": "w" * 257}, "cancel_workflow.workflow_id"),
    b"definition": (
        {
            "kind": "register_definition",
            "definition": {"id": "etl/v1/2", "nodes": [{"id": "n", "type": "echo"}]},
        },
        "register_definition.definition.id",
    ),
    b"task": (
        {"kind": "task_completed", "workflow_id": "w\x7f", "run_id": "r", "seq": 1, "attempt": 1},
        "task_completed.workflow_id",
    ),
}


def test_records_with_ids_breaking_the_rule_are_dead_lettered_naming_the_field(
    running: Cluster, client: Client
) -> None:
    producer = Producer({"bootstrap.servers": running.bootstrap, "partitioner": "murmur2_random"})
    for key, (record, _) in BAD_IDS.items():
        producer.produce(f"{running.prefix}inbox", key=key, value=json.dumps(record).encode())
    producer.flush(10)
    client.start_workflow("ThreeSteps", 1, id="after-bad-ids")
    assert client.result("after-bad-ids", timeout=30) == 4

    letters = dead_letters(running, set(BAD_IDS))
    for key, (_, field) in BAD_IDS.items():
        reason = letters[key]["ledgerflow.dlq.reason"].decode()
        assert f"{field}: an id is 1 to 256 characters" in reason, (key, reason)
    with pytest.raises(WorkflowNotFoundError):
        client.describe("run-ctl")  # its start was refused whole, not started under another run id
    engine_log = running.nodes[0].log_path.read_text()
    assert not failed_batches(engine_log), engine_log[-3000:]


ODD_IDS = ["order 42?x#y%z&a=b", "..", "naïve ✓ 注文", "back\\slash", "x" * 256]


def test_ids_the_rule_allows_however_odd_reach_their_runs_through_the_client(
    running: Cluster, client: Client
) -> None:
    for n, workflow_id in enumerate(ODD_IDS):
        client.start_workflow("ThreeSteps", n, id=workflow_id, request_id=f"{workflow_id[:200]}?#%")
    for n, workflow_id in enumerate(ODD_IDS):
        assert client.result(workflow_id, timeout=30) == n + 3, workflow_id
        assert client.describe(workflow_id)["workflow_id"] == workflow_id
        assert client.history(workflow_id)[-1].kind == "workflow_completed"
        assert_invariants(client, workflow_id)
