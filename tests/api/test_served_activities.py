"""Workers advertise what they serve: a gateway started without any ``--activities`` lists the
activities of the live workers (with their queues and argument schemas) and accepts them as DAG
node types; once a worker stops, what only it served is neither listed nor accepted."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from ledgerflow.api.served import CACHE_SECONDS
from ledgerflow.local.processes import Cluster
from tests.api.conftest import ACTS, FLOWS, ROOT

pytestmark = pytest.mark.kafka


def node_types(api: httpx.Client) -> dict[str, Any]:
    answer = api.get("/api/v1/node-types")
    assert answer.status_code == 200, answer.text
    return {t["name"]: t for t in answer.json()["nodeTypes"]}


def dag(dag_id: str, node_type: str) -> dict[str, Any]:
    return {"id": dag_id, "nodes": [{"id": "a", "type": node_type, "input": {}}]}


def test_a_gateway_offers_what_live_workers_serve(kafka_bootstrap: str, tmp_path: Path) -> None:
    cluster = Cluster(
        kafka_bootstrap, f"served-{uuid.uuid4().hex[:8]}.", tmp_path, partitions=2, pythonpath=[ROOT]
    )
    try:
        engine = cluster.engine([FLOWS])  # creates the deployment's topics, <prefix>workers among them
        engine.wait_ready()
        worker = cluster.worker([ACTS], queue="gpu")
        gateway = cluster.gateway()  # no --activities: it imports no worker code
        gateway.wait_ready()
        with httpx.Client(base_url=gateway.url or "", headers=gateway.headers, timeout=10) as api:
            deadline = time.monotonic() + 30
            while "tally" not in node_types(api) and time.monotonic() < deadline:
                time.sleep(0.5)
            listed = node_types(api)
            tally = listed["tally"]
            assert tally["kind"] == "activity" and tally["queues"] == ["gpu"] and tally["dagNode"]
            assert tally["inputSchema"]["type"] == "object"
            # served to code workflows, but a DAG node's one argument is its input object
            assert (
                listed["add_one"]["inputSchema"] == {"type": "integer"} and not listed["add_one"]["dagNode"]
            )
            two = listed["fail_times"]["inputSchema"]  # two parameters: an array of their schemas
            assert two["prefixItems"] == [{"type": "string"}, {"type": "integer"}]
            assert "kafka.consumer.commit" not in listed  # the interpreter's, never a palette's

            accepted = api.post("/api/v1/workflows", json=dag(f"served-{uuid.uuid4().hex[:6]}", "tally"))
            assert accepted.status_code == 201, accepted.text
            not_a_node = api.post("/api/v1/workflows", json=dag(f"int-{uuid.uuid4().hex[:6]}", "add_one"))
            assert not_a_node.status_code == 422, not_a_node.text
            nobody = dag(f"unknown-{uuid.uuid4().hex[:6]}", "nobody_serves")
            unknown = api.post("/api/v1/workflows", json=nobody)
            assert unknown.status_code == 422 and "live worker" in unknown.text

            worker.stop()  # a clean stop writes its tombstone
            time.sleep(CACHE_SECONDS + 0.5)
            assert "tally" not in node_types(api)
            gone = api.post("/api/v1/workflows", json=dag(f"gone-{uuid.uuid4().hex[:6]}", "tally"))
            assert gone.status_code == 422, gone.text
    finally:
        cluster.stop_all()
