"""The seed system's REST flow, exactly as its 002 document gives it, against a real gateway:
register a DAG under an id, execute it by that id, read its status, history and events by that
id, signal and cancel it by that id, and read the cluster's stats, shards and events."""

from __future__ import annotations

import itertools
import time
from typing import Any

import httpx
import pytest

from tests.api.conftest import unique

pytestmark = pytest.mark.kafka


def seed_dag(dag_id: str) -> dict[str, Any]:
    """A DAG as the seed's users write one: ``id``, ``name``, ``nodes`` and ``edges``."""
    return {
        "id": dag_id,
        "name": "seed flow",
        "nodes": [
            {"id": "a", "type": "echo", "input": {"n": 1}},
            {"id": "b", "type": "echo", "input": {"n": 2}},
        ],
        "edges": [{"source": "a", "target": "b"}],
    }


def status_of(api: httpx.Client, workflow_id: str, until: tuple[str, ...], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        answer = api.get(f"/api/v1/workflows/{workflow_id}/status")
        if (answer.status_code == 200 and answer.json()["status"] in until) or time.monotonic() > deadline:
            return answer
        time.sleep(0.2)


def test_create_execute_and_status_on_one_id(api: httpx.Client) -> None:
    dag_id = unique("workflow")
    created = api.post("/api/v1/workflows", json=seed_dag(dag_id))
    assert created.status_code == 201, created.text
    executed = api.post(f"/api/v1/workflows/{dag_id}/execute")
    assert executed.status_code == 202, executed.text
    run_id, own_id = executed.json()["runId"], executed.json()["workflowId"]
    assert own_id != dag_id  # a run has its own workflow id: the DAG may run many times

    # the seed's client reads the status by the DAG's id: it answers for the latest run
    status = status_of(api, dag_id, ("COMPLETED", "FAILED"))
    assert status.status_code == 200, status.text
    assert status.json()["status"] == "COMPLETED" and status.json()["runId"] == run_id
    assert status.json()["workflowId"] == own_id
    history = api.get(f"/api/v1/workflows/{dag_id}/history").json()
    assert history["workflowId"] == own_id and history["runId"] == run_id
    events = api.get("/api/v1/events", params={"workflowId": own_id, "limit": 50}).json()["events"]
    assert events and events[0]["kind"] == "workflow_started"

    # a second run is the one the DAG's id names from then on
    second = api.post(f"/api/v1/workflows/{dag_id}/execute").json()
    deadline = time.monotonic() + 30
    while status_of(api, dag_id, ("COMPLETED",)).json()["runId"] != second["runId"]:
        assert time.monotonic() < deadline, "the DAG's id never named its second run"
        time.sleep(0.2)

    # the documented way to run under a chosen id stays
    chosen = unique("chosen")
    started = api.post(f"/api/v1/workflows/{dag_id}/execute", json={"workflowId": chosen})
    assert started.json()["workflowId"] == chosen
    assert status_of(api, chosen, ("COMPLETED",)).json()["workflowId"] == chosen

    # an id that is neither a workflow nor a type is still a 404
    assert api.get(f"/api/v1/workflows/{unique('nothing')}/status").status_code == 404


def test_signal_and_cancel_by_the_dag_id_reach_its_latest_run(api: httpx.Client) -> None:
    dag_id = unique("approval")
    waiting = {
        "id": dag_id,
        "nodes": [{"id": "wait", "type": "wait-signal", "input": {"name": "go", "timeout": 600}}],
    }
    assert api.post("/api/v1/workflows", json=waiting).status_code == 201
    first = api.post(f"/api/v1/workflows/{dag_id}/execute").json()
    status_of(api, first["workflowId"], ("RUNNING",))
    sent = api.post(f"/api/v1/workflows/{dag_id}/signal", json={"name": "go", "payload": {"ok": True}})
    assert sent.status_code == 202 and sent.json()["workflowId"] == first["workflowId"]
    assert status_of(api, first["workflowId"], ("COMPLETED",)).json()["status"] == "COMPLETED"

    second = api.post(f"/api/v1/workflows/{dag_id}/execute").json()
    deadline = time.monotonic() + 30
    while api.get(f"/api/v1/workflows/{dag_id}/status").json()["runId"] != second["runId"]:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    canceled = api.post(f"/api/v1/workflows/{dag_id}/cancel", json={"reason": "seed"})
    assert canceled.status_code == 202 and canceled.json()["workflowId"] == second["workflowId"]
    assert status_of(api, second["workflowId"], ("CANCELED",)).json()["status"] == "CANCELED"

    # a code workflow's name is not a DAG id: it does not stand for its runs
    run = api.post("/api/v1/workflows/SignalCounter/execute").json()
    status_of(api, run["workflowId"], ("RUNNING",))
    assert api.get("/api/v1/workflows/SignalCounter/status").status_code == 404
    api.post(f"/api/v1/workflows/{run['workflowId']}/terminate", json={"reason": "done"})


def test_the_cluster_routes_and_events_of_the_seed(api: httpx.Client) -> None:
    stats = api.get("/api/v1/cluster/stats")
    assert stats.status_code == 200 and stats.json()["members"]
    shards = api.get("/api/v1/cluster/shards")
    assert shards.status_code == 200 and len(shards.json()["shards"]) == shards.json()["partitions"]
    events = api.get("/api/v1/events", params={"limit": 100}).json()["events"]
    assert events and all(e["time"] <= f["time"] for e, f in itertools.pairwise(events))
    assert all(e["kind"] for e in events)
    # the engine joining the group (the admin key sees cluster events), however many runs since
    members = api.get("/api/v1/events", params={"kind": "member_event"}).json()["events"]
    assert members and {e["type"] for e in members} <= {"NODE_JOINED", "NODE_LEFT"}
    only = api.get("/api/v1/events", params={"kind": "member_event,shard_rebalance"}).json()["events"]
    assert only and {e["kind"] for e in only} <= {"member_event", "shard_rebalance"}
    assert api.get("/api/v1/events", params={"kind": "Bad Kind"}).status_code == 422


def test_a_seed_pipeline_with_the_seeds_node_names_runs_unchanged(api: httpx.Client) -> None:
    dag_id = unique("pipeline")
    pipeline = {
        "id": dag_id,
        "name": "source, two transforms, a sink",
        "nodes": [
            {
                "id": "source",
                "type": "memory.collection",
                "input": {
                    "items": [
                        {"sku": " a ", "qty": "2", "price": 5},
                        {"sku": "b", "qty": "oops", "price": 1},
                        {"sku": "a", "qty": "2", "price": 5},
                        {"sku": "c", "qty": "4", "price": 3},
                    ]
                },
            },
            {
                "id": "clean",
                "type": "data.clean",
                "input": {"items": "{{ nodes.source.output.items }}", "types": {"qty": "int"}},
            },
            {
                "id": "price",
                "type": "data.transform",
                "input": {
                    "items": "{{ nodes.clean.output.items }}",
                    "compute": {"total": "item['qty'] * item['price']"},
                    "select": ["sku", "total"],
                },
            },
            {
                "id": "count",
                "type": "aggregate.count",
                "input": {"items": "{{ nodes.price.output.items }}", "condition": "item['total'] > 10"},
            },
        ],
        "edges": [
            {"source": "source", "target": "clean"},
            {"source": "clean", "target": "price"},
            {"source": "price", "target": "count"},
        ],
    }
    assert api.post("/api/v1/workflows", json=pipeline).status_code == 201
    assert api.post(f"/api/v1/workflows/{dag_id}/execute").status_code == 202
    done = status_of(api, dag_id, ("COMPLETED", "FAILED")).json()
    assert done["status"] == "COMPLETED", done.get("failure")
    assert done["result"]["price"]["items"] == [{"sku": "a", "total": 10}, {"sku": "c", "total": 12}]
    assert done["result"]["count"] == {"count": 1}

    broken = {**pipeline, "id": unique("broken")}
    broken["nodes"] = [{"id": "source", "type": "random.numbers", "input": {"count": "many"}}]
    broken["edges"] = []
    refused = api.post("/api/v1/workflows", json=broken)
    assert refused.status_code == 422 and "nodes[0].input.count" in refused.text, refused.text
    published = api.get("/api/v1/node-types").json()["nodeTypes"]
    by_name = {t["name"]: t for t in published}
    assert by_name["data.clean"]["inputSchema"]["properties"]["types"]
    assert by_name["csv.read"]["aliasOf"] == "file.csv" and by_name["sleep"]["kind"] == "in_workflow"
