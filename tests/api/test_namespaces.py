"""Namespaces at the gateway (issue 13): each credential acts in its namespaces only, and one
namespace can neither see nor touch another's runs, listings, events or DAG definitions.

A real engine, worker and gateway on the session's broker; three keys: team A's, team B's and an
operator's that may read every namespace.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ledgerflow import Client
from ledgerflow.api.cluster import SEED_KINDS
from ledgerflow.api.keys import entry_line, new_key
from ledgerflow.api.scopes import Scope
from ledgerflow.local.processes import Cluster
from ledgerflow.samples.dags import FAN_OUT_FAN_IN
from ledgerflow.secretfiles import write_private
from tests.fixtures import ACTS, FLOWS, ROOT
from tests.waits import wait_until

pytestmark = [pytest.mark.kafka]
EVERY = [Scope.READ, Scope.WRITE, Scope.ADMIN]


class Tenants:
    def __init__(self, cluster: Cluster, url: str, keys: dict[str, str], a: str, b: str) -> None:
        self.cluster, self.url, self.keys, self.a, self.b = cluster, url, keys, a, b

    def client(self, who: str, namespace: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.keys[who]}"}
        if namespace:
            headers["Ledgerflow-Namespace"] = namespace
        return httpx.Client(base_url=self.url, headers=headers, timeout=10)


@pytest.fixture(scope="module")
def tenants(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tenants]:
    base = tmp_path_factory.mktemp("namespaces")
    a, b = f"team-a-{uuid.uuid4().hex[:6]}", f"team-b-{uuid.uuid4().hex[:6]}"
    made = {
        "a": new_key("team-a", EVERY, [a]),
        "b": new_key("team-b", EVERY, [b]),
        "ops": new_key("operator", [Scope.READ], ["*"]),
        "default": new_key("default-team", EVERY),
    }
    keys_file = base / "keys.jsonl"
    write_private(keys_file, "".join(entry_line(entry) + "\n" for _key, entry in made.values()))
    cluster = Cluster(kafka_bootstrap, f"ns-{uuid.uuid4().hex[:8]}.", base, partitions=4, pythonpath=[ROOT])
    try:
        engine = cluster.engine([FLOWS])
        cluster.worker([ACTS])
        engine.wait_ready()
        gateway = cluster.gateway([ACTS], env={"LEDGERFLOW_API_KEYS_FILE": str(keys_file)})
        gateway.wait_ready()
        yield Tenants(cluster, gateway.url or "", {who: key for who, (key, _entry) in made.items()}, a, b)
    finally:
        cluster.stop_all()


def finished(api: httpx.Client, workflow_id: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        answer = api.get(f"/api/v1/workflows/{workflow_id}/status")
        body: dict[str, Any] = answer.json()
        return body if answer.status_code == 200 and body["status"] != "RUNNING" else None

    return wait_until(done, f"{workflow_id} to close", 60)


def running(api: httpx.Client, workflow_id: str) -> bool:
    answer = api.get(f"/api/v1/workflows/{workflow_id}/status")
    return answer.status_code == 200 and answer.json()["status"] == "RUNNING"


def dag(dag_id: str, count_expression: str) -> dict[str, Any]:
    """The sample fan-out DAG whose number count is ``count_expression``."""
    body = copy.deepcopy(FAN_OUT_FAN_IN)
    body["id"] = dag_id
    for node in body["nodes"]:
        if node["id"] == "numbers":
            node["input"]["stop"] = count_expression
    return body


def test_one_namespace_cannot_see_or_touch_anothers_runs(tenants: Tenants) -> None:
    with tenants.client("a") as a, tenants.client("b") as b, tenants.client("default") as plain:
        started = a.post("/api/v1/workflows", json={"id": "order-1", "type": "ThreeSteps", "input": 1})
        assert started.status_code == 202, started.text
        assert started.json()["workflowId"] == "order-1"
        status = finished(a, "order-1")
        assert status["workflowId"] == "order-1" and status["result"] == 4

        # B and the default namespace do not find it; an id of the same name is theirs alone
        assert b.get("/api/v1/workflows/order-1/status").status_code == 404
        assert plain.get("/api/v1/workflows/order-1/status").status_code == 404
        same_name = b.post("/api/v1/workflows", json={"id": "order-1", "type": "ThreeSteps", "input": 10})
        assert same_name.status_code == 202
        assert finished(b, "order-1")["result"] == 13
        assert finished(a, "order-1")["result"] == 4

        # nor list it, nor see its events
        listed = {w["workflowId"] for w in b.get("/api/v1/workflows").json()["workflows"]}
        assert listed == {"order-1"}  # B's own
        assert "order-1" not in {w["workflowId"] for w in plain.get("/api/v1/workflows").json()["workflows"]}
        a_events = a.get("/api/v1/events", params={"limit": 1000}).json()["events"]
        workflow_events = [e for e in a_events if e["workflow_id"] is not None]
        assert workflow_events and {e["workflow_id"] for e in workflow_events} == {"order-1"}
        # the cluster's events (its admin key sees them, as at /cluster/events) name no workflow
        assert all(e["kind"] in SEED_KINDS.values() for e in a_events if e["workflow_id"] is None)
        history = a.get("/api/v1/workflows/order-1/history").json()
        assert history["workflowId"] == "order-1" and history["total"] > 0

        # B's signal and cancel reach B's run of that name, never A's
        for api in (a, b):
            assert (
                api.post(
                    "/api/v1/workflows", json={"id": "waits", "type": "SignalCounter", "input": 3}
                ).status_code
                == 202
            )
            wait_until(lambda api=api: running(api, "waits"), "waits to run", 30)
        signal = {"name": "tick", "payload": 1}
        assert b.post("/api/v1/workflows/waits/signal", json=signal).status_code == 202
        assert b.post("/api/v1/workflows/waits/cancel").status_code == 202
        assert finished(b, "waits")["status"] == "CANCELED"
        assert a.get("/api/v1/workflows/waits/status").json()["status"] == "RUNNING"
        events = a.get("/api/v1/workflows/waits/history").json()["events"]
        assert not [e for e in events if e["kind"] in ("signal_received", "cancel_requested")], events

        # asking for another namespace is refused; a namespaced id in a body too
        with tenants.client("b", namespace=tenants.a) as b_in_a:
            refused = b_in_a.get("/api/v1/workflows/order-1/status")
            assert refused.status_code == 403 and refused.json()["code"] == "namespace_forbidden"
        smuggled = b.post(
            "/api/v1/workflows", json={"id": f"{tenants.a}/order-1", "type": "ThreeSteps", "input": 1}
        )
        assert smuggled.status_code == 422 and smuggled.json()["errors"][0]["field"] == "id"
        with tenants.client("a", namespace="Not A Name") as bad:
            assert bad.get("/api/v1/workflows").status_code == 400


def test_dag_definitions_are_per_namespace(tenants: Tenants) -> None:
    with tenants.client("a") as a, tenants.client("b") as b:
        assert a.post("/api/v1/workflows", json=dag("fan", "{{ input.count }}")).status_code == 201
        # B registers its own "fan" (a fixed count): A's stays A's
        assert b.post("/api/v1/workflows", json=dag("fan", "3")).status_code == 201
        run_a = a.post("/api/v1/workflows/fan/execute", json={"workflowId": "fan-a", "input": {"count": 5}})
        run_b = b.post("/api/v1/workflows/fan/execute", json={"workflowId": "fan-b", "input": {"count": 5}})
        assert run_a.status_code == run_b.status_code == 202
        assert finished(a, "fan-a")["result"]["numbers"] == {"numbers": [0, 1, 2, 3, 4]}
        assert finished(b, "fan-b")["result"]["numbers"] == {"numbers": [0, 1, 2]}
        # a DAG only B registered is unknown in A
        assert b.post("/api/v1/workflows", json=dag("only-b", "2")).status_code == 201
        assert a.post("/api/v1/workflows/only-b/execute", json={"workflowId": "x"}).status_code == 202
        failed = finished(a, "x")
        assert failed["status"] == "FAILED" and failed["failure"]["type"] == "UnknownWorkflowType"


def test_children_start_in_their_parents_namespace(tenants: Tenants) -> None:
    with tenants.client("a") as a, tenants.client("b") as b:
        assert a.post("/api/v1/workflows", json={"id": "p", "type": "Parent", "input": 1}).status_code == 202
        assert finished(a, "p")["result"] == [4, 5]
        assert finished(a, "p-child-0")["result"] == 4  # named after the parent's (namespaced) id
        assert (
            a.post("/api/v1/workflows", json={"id": "f", "type": "FixedChild", "input": 2}).status_code == 202
        )
        assert finished(a, "f")["result"] == 5
        assert finished(a, "fixed-child")["result"] == 5  # a bare id: the parent's namespace
        assert b.get("/api/v1/workflows/fixed-child/status").status_code == 404


def test_an_operator_reads_any_namespace_it_names(tenants: Tenants) -> None:
    with tenants.client("a") as a:
        assert (
            a.post("/api/v1/workflows", json={"id": "seen", "type": "ThreeSteps", "input": 0}).status_code
            == 202
        )
        finished(a, "seen")
    with tenants.client("ops", namespace=tenants.a) as ops:
        assert ops.get("/api/v1/workflows/seen/status").json()["result"] == 3
        refused = ops.post("/api/v1/workflows", json={"id": "no", "type": "ThreeSteps", "input": 0})
        assert refused.status_code == 403  # read-only, whatever the namespace
    with tenants.client("ops") as ops:  # several namespaces and no header: the default one
        assert ops.get("/api/v1/workflows/seen/status").status_code == 404


def test_the_sdk_client_acts_in_its_namespace(tenants: Tenants) -> None:
    cluster = tenants.cluster
    with Client(
        cluster.bootstrap, cluster.prefix, partitions=cluster.partitions, engine_token=cluster.engine_token,
        namespace=tenants.a,
    ) as client, tenants.client("a") as a, tenants.client("b") as b:  # fmt: skip
        handle = client.start_workflow("ThreeSteps", 7, id="sdk-1")
        assert handle.result(timeout=60) == 10
        assert finished(a, "sdk-1")["result"] == 10  # the gateway's team A sees it
        assert b.get("/api/v1/workflows/sdk-1/status").status_code == 404
        assert client.describe("sdk-1")["workflow_id"] == "sdk-1"
        assert "sdk-1" in {row["workflow_id"] for row in client.list_workflows(limit=1000)}
        client.register_dag(dag("sdk-dag", "2"))
        assert a.post("/api/v1/workflows/sdk-dag/execute", json={"workflowId": "d"}).status_code == 202
        assert finished(a, "d")["result"]["numbers"] == {"numbers": [0, 1]}
        # a run started through the gateway is the client's by its bare id
        assert (
            a.post("/api/v1/workflows", json={"id": "gw-1", "type": "ThreeSteps", "input": 0}).status_code
            == 202
        )
        assert client.result("gw-1", timeout=60) == 3
    with pytest.raises(ValueError, match="namespace"):
        Client(cluster.bootstrap, cluster.prefix, namespace="Team A")


def test_keys_file_namespaces_must_be_names(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from ledgerflow.api.keys import ApiKeyEntry

    with pytest.raises(ValidationError):
        ApiKeyEntry(name="x", sha256="0" * 64, scopes=[Scope.READ], namespaces=["Team A"])
    assert ApiKeyEntry(name="x", sha256="0" * 64, scopes=[Scope.READ], namespaces=["*"]).namespaces == ["*"]


def test_a_task_token_completes_only_in_its_own_namespace(tenants: Tenants, tmp_path: Path) -> None:
    """Team B holding team A's task token (leaked, guessed) cannot complete A's activity."""
    with tenants.client("a") as team_a, tenants.client("b") as team_b:
        started = team_a.post(
            "/api/v1/workflows", json={"id": "approval", "type": "Approval", "input": str(tmp_path)}
        )
        assert started.status_code == 202, started.text
        token = wait_until(
            lambda: (tmp_path / "attempt-1").exists() and (tmp_path / "attempt-1").read_text(),
            "the token",
            20,
        )
        stolen = team_b.post("/api/v1/activities/complete", json={"taskToken": token, "result": "b's"})
        assert stolen.status_code == 403 and tenants.a in stolen.json()["detail"], stolen.text
        assert running(team_a, "approval")
        own = team_a.post("/api/v1/activities/complete", json={"taskToken": token, "result": "a's"})
        assert own.status_code == 202 and own.json()["workflowId"] == "approval", own.text
        assert finished(team_a, "approval")["result"] == "a's"
