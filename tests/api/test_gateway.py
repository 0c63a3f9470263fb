"""The REST gateway against a real broker, engine and worker, as a user drives it."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from ledgerflow.partitioning import partition_for
from ledgerflow.samples.dags import FAN_OUT_FAN_IN
from tests.api.conftest import Stack, unique, wait_status
from tests.waits import wait_until

pytestmark = pytest.mark.kafka


def fan_out(dag_id: str) -> dict[str, Any]:
    dag = copy.deepcopy(FAN_OUT_FAN_IN)
    dag["id"] = dag_id
    return dag


def test_dag_register_execute_status_and_paged_history(api: httpx.Client) -> None:
    dag_id = unique("fan")
    registered = api.post("/api/v1/workflows", json=fan_out(dag_id))
    assert registered.status_code == 201, registered.text
    assert registered.json() == {"id": dag_id, "name": "fan out, fan in", "nodes": 4, "edges": 4}

    run = unique("run")
    started = api.post(
        f"/api/v1/workflows/{dag_id}/execute", json={"workflowId": run, "input": {"count": 10}}
    )
    assert started.status_code == 202, started.text
    body = started.json()
    assert body["workflowId"] == run and body["runId"] and body["workflowType"] == dag_id
    assert body["partition"] == partition_for(run, 4)

    state = wait_status(api, run, ("COMPLETED", "FAILED"))
    assert state["status"] == "COMPLETED", state
    assert state["runId"] == body["runId"] and state["isDag"]
    assert state["result"]["total"]["sum"] == sum(i * i for i in range(10)) + sum(range(0, 10, 2))

    # page through the history three events at a time
    events: list[dict[str, Any]] = []
    offset: int | None = 0
    while offset is not None:
        page = api.get(f"/api/v1/workflows/{run}/history", params={"offset": offset, "limit": 3})
        assert page.status_code == 200, page.text
        data = page.json()
        assert len(data["events"]) <= 3 and data["runId"] == body["runId"]
        events += data["events"]
        offset = data["nextOffset"]
    assert [e["index"] for e in events] == list(range(1, data["total"] + 1))
    assert events[0]["kind"] == "workflow_started" and events[-1]["kind"] == "workflow_completed"

    assert data["timeline"] is None  # asked for: it reads the whole history
    timeline = api.get(f"/api/v1/workflows/{run}/history", params={"timeline": "true"}).json()["timeline"]
    assert {t["node"] for t in timeline} == {"numbers", "squares", "evens", "total"}
    for entry in timeline:
        assert entry["status"] == "completed" and entry["attempts"] == 1
        assert entry["scheduledAt"] <= entry["completedAt"]
    by_node = {t["node"]: t for t in timeline}
    assert by_node["numbers"]["completedAt"] <= by_node["squares"]["scheduledAt"]
    assert by_node["total"]["scheduledAt"] >= max(
        by_node["squares"]["completedAt"], by_node["evens"]["completedAt"]
    )

    with_page = api.get(f"/api/v1/workflows/{run}/history", params={"timeline": "true", "limit": 2})
    assert with_page.json()["timeline"] == timeline and len(with_page.json()["events"]) == 2

    # no body: a workflow id is generated
    anonymous = api.post(f"/api/v1/workflows/{dag_id}/execute")
    assert anonymous.status_code == 202, anonymous.text
    assert anonymous.json()["workflowId"].startswith(dag_id)
    # without input the template {{ input.count }} cannot render: the run fails, naming why
    ended = wait_status(api, anonymous.json()["workflowId"], ("COMPLETED", "FAILED"))
    assert ended["status"] == "FAILED", ended
    assert ended["failure"]["type"] == "ExpressionError", ended
    assert ended["failure"]["message"] == "'.count' on a NoneType", ended


def test_a_history_longer_than_a_page_is_paged_and_its_timeline_read_whole(
    api: httpx.Client, api_stack: Stack
) -> None:
    """600 parallel nodes: 1,202 events, over one page (1,000). The timeline needs them all: the
    gateway reads the owner page by page; the last 200 nodes complete past the first page."""
    dag_id = unique("wide")
    nodes = [{"id": f"n{i}", "type": "echo", "input": {"i": i}} for i in range(600)]
    assert api.post("/api/v1/workflows", json={"id": dag_id, "nodes": nodes}).status_code == 201
    run = unique("wide-run")
    assert api.post(f"/api/v1/workflows/{dag_id}/execute", json={"workflowId": run}).status_code == 202
    state = wait_status(api, run, ("COMPLETED", "FAILED"), timeout=120)
    assert state["status"] == "COMPLETED", state
    total = state["historyLength"]
    assert total > 1000, total

    first = api.get(f"/api/v1/workflows/{run}/history", params={"limit": 1000, "timeline": "true"}).json()
    assert first["total"] == total and len(first["events"]) == 1000 and first["nextOffset"] == 1000
    assert len(first["timeline"]) == 600
    assert {t["status"] for t in first["timeline"]} == {"completed"}, "the timeline missed later pages"
    rest = api.get(f"/api/v1/workflows/{run}/history", params={"offset": 1000, "limit": 1000}).json()
    assert rest["nextOffset"] is None
    assert [e["index"] for e in first["events"] + rest["events"]] == list(range(1, total + 1))

    engine = api_stack.cluster.nodes[0]
    over = engine.get(f"/internal/workflows/{run}/history", params={"limit": 1001}, timeout=10)
    assert over.status_code == 422 and over.json()["detail"][0]["loc"] == ["query", "limit"], over.text
    over = engine.get("/internal/workflows", params={"limit": 1001}, timeout=10)
    assert over.status_code == 422 and over.json()["detail"][0]["loc"] == ["query", "limit"], over.text
    with api_stack.cluster.client() as client:
        assert [e.index for e in client.history(run)] == list(range(1, total + 1))


def test_listing_pages_follow_the_cursor_to_the_end(api: httpx.Client) -> None:
    prefix = unique("listed")
    ids = [f"{prefix}-{i:02d}" for i in range(10)]
    for workflow_id in ids:
        assert (
            api.post("/api/v1/workflows", json={"id": workflow_id, "type": "SignalCounter"}).status_code
            == 202
        )
    for workflow_id in ids:
        wait_status(api, workflow_id, ("RUNNING",))
    whole = api.get("/api/v1/workflows", params={"limit": 1000, "type": "SignalCounter"}).json()
    assert whole["nextCursor"] is None, "the shared stack holds under a page of runs"
    pages: list[list[str]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {
            "limit": 3,
            "type": "SignalCounter",
            **({"cursor": cursor} if cursor else {}),
        }
        page = api.get("/api/v1/workflows", params=params).json()
        pages.append([w["workflowId"] for w in page["workflows"]])
        cursor = page["nextCursor"]
        if cursor is None:
            break
    listed = [w["workflowId"] for w in whole["workflows"]]
    assert [w for page in pages for w in page] == listed and set(ids) <= set(listed)
    assert all(len(page) == 3 for page in pages[:-1]) and len(pages) >= 4, pages


def test_retries_show_in_the_timeline(api: httpx.Client) -> None:
    wid = unique("flaky")
    started = api.post("/api/v1/workflows", json={"id": wid, "type": "Flaky", "input": ["k", 2]})
    assert started.status_code == 202, started.text
    # a list input is spread over the workflow's parameters: Flaky.run(key, failures)
    state = wait_status(api, wid, ("COMPLETED", "FAILED"))
    assert state["status"] == "COMPLETED", state
    [entry] = api.get(f"/api/v1/workflows/{wid}/history", params={"timeline": "true"}).json()["timeline"]
    assert entry["name"] == "fail_times" and entry["attempts"] == 3 and entry["status"] == "completed"
    assert entry["lastFailure"] and "planned failure on attempt 2" in entry["lastFailure"]


def test_a_dag_run_is_reset_to_an_event_and_runs_on_from_it(api: httpx.Client) -> None:
    dag_id = unique("resettable")
    assert api.post("/api/v1/workflows", json=fan_out(dag_id)).status_code == 201
    run = unique("run")
    started = api.post(f"/api/v1/workflows/{dag_id}/execute", json={"workflowId": run, "input": {"count": 4}})
    assert started.status_code == 202, started.text
    first = wait_status(api, run, ("COMPLETED", "FAILED"))
    assert first["status"] == "COMPLETED", first
    events = api.get(f"/api/v1/workflows/{run}/history", params={"limit": 1000}).json()["events"]
    kinds = [e["kind"] for e in events]
    point = kinds.index("activity_completed", kinds.index("activity_completed") + 1) + 1  # the 2nd result

    for to_event, named in ((1, "greater_than_equal"), (2, "reset_point"), (999, "reset_point")):
        refused = api.post(f"/api/v1/workflows/{run}/reset", json={"toEvent": to_event})
        assert refused.status_code == 422, refused.text
        assert [(e["field"], e["type"]) for e in refused.json()["errors"]] == [("toEvent", named)], (
            refused.text
        )

    reset = api.post(f"/api/v1/workflows/{run}/reset", json={"toEvent": point, "reason": "rerun the rest"})
    assert reset.status_code == 202, reset.text
    assert reset.json()["command"] == "reset"
    again = wait_until(
        lambda: (
            (s := api.get(f"/api/v1/workflows/{run}/status").json())["runId"] != first["runId"]
            and s["status"] == "COMPLETED"
            and s
        ),
        "the reset run to complete",
        30,
    )
    assert again["result"] == first["result"]
    history = api.get(f"/api/v1/workflows/{run}/history", params={"limit": 1000}).json()["events"]
    assert history[: point - 1] == events[: point - 1]
    marker = history[point - 1]
    assert (marker["kind"], marker["reset_run_id"], marker["reason"]) == (
        "workflow_reset",
        first["runId"],
        "rerun the rest",
    )


def test_code_workflow_start_signal_query_cancel_terminate(api: httpx.Client) -> None:
    wid = unique("counter")
    first = api.post("/api/v1/workflows", json={"id": wid, "type": "SignalCounter"})
    assert first.status_code == 202, first.text
    run_id = first.json()["runId"]
    wait_status(api, wid, ("RUNNING",))

    again = api.post("/api/v1/workflows", json={"id": wid, "type": "SignalCounter"})
    assert again.status_code == 409, again.text
    assert again.json()["code"] == "already_started" and again.json()["runId"] == run_id
    via_execute = api.post("/api/v1/workflows/SignalCounter/execute", json={"workflowId": wid})
    assert via_execute.status_code == 409 and via_execute.json()["runId"] == run_id

    for value in (1, 2):
        sent = api.post(f"/api/v1/workflows/{wid}/signal", json={"name": "add", "payload": value})
        assert sent.status_code == 202, sent.text
        assert sent.json() == {"workflowId": wid, "command": "signal", "partition": partition_for(wid, 4)}
    for _ in range(2):  # the same idempotency key twice counts once
        dup = {"name": "add", "payload": "dup", "requestId": "same"}
        assert api.post(f"/api/v1/workflows/{wid}/signal", json=dup).status_code == 202

    deadline = time.monotonic() + 20
    received: Any = None
    while time.monotonic() < deadline:
        answer = api.post(f"/api/v1/workflows/{wid}/query", json={"name": "received"})
        assert answer.status_code == 200, answer.text
        received = answer.json()["result"]
        if len(received) >= 3:
            break
        time.sleep(0.1)
    assert received == [1, 2, "dup"]

    for name in ("nope", "no/such/"):  # a '/' in a query name reaches the owner whole
        unknown = api.post(f"/api/v1/workflows/{wid}/query", json={"name": name})
        assert unknown.status_code == 400 and name in unknown.json()["detail"], unknown.text

    canceled = api.post(f"/api/v1/workflows/{wid}/cancel", json={"reason": "test"})
    assert canceled.status_code == 202 and canceled.json()["command"] == "cancel"
    assert wait_status(api, wid, ("CANCELED", "COMPLETED", "FAILED"))["status"] == "CANCELED"

    other = unique("doomed")
    assert api.post("/api/v1/workflows", json={"id": other, "type": "SignalCounter"}).status_code == 202
    wait_status(api, other, ("RUNNING",))
    assert api.post(f"/api/v1/workflows/{other}/terminate").status_code == 202
    assert wait_status(api, other, ("TERMINATED",))["status"] == "TERMINATED"
    kinds = [e["kind"] for e in api.get(f"/api/v1/workflows/{other}/history").json()["events"]]
    assert kinds[-1] == "workflow_terminated"

    # the run that was canceled is listed with its final status
    listed = api.get("/api/v1/workflows", params={"type": "SignalCounter", "status": "CANCELED"}).json()
    assert wid in [w["workflowId"] for w in listed["workflows"]] and not listed["partial"]


def _dag(nodes: list[tuple[str, str]], edges: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "id": unique("bad"),
        "name": "bad",
        "nodes": [{"id": i, "type": t} for i, t in nodes],
        "edges": [{"source": s, "target": t} for s, t in edges],
    }


def test_updates_run_validated_answer_their_outcome_and_run_once_per_id(api: httpx.Client) -> None:
    wid = unique("account")
    assert api.post("/api/v1/workflows", json={"id": wid, "type": "Account"}).status_code == 202
    wait_status(api, wid, ("RUNNING",))
    url = f"/api/v1/workflows/{wid}/updates"
    done = api.post(url, json={"name": "deposit", "args": [5], "updateId": "d-1"})
    assert done.status_code == 200, done.text
    expected = {"workflowId": wid, "updateId": "d-1", "status": "completed", "result": 5, "failure": None}
    assert done.json() == expected
    again = api.post(url, json={"name": "deposit", "args": [5], "updateId": "d-1"})  # the same id
    assert (again.status_code, again.json()["result"]) == (200, 5)
    refused = api.post(url, json={"name": "deposit", "args": [-3]})
    assert refused.status_code == 200 and refused.json()["status"] == "rejected", refused.text
    assert "more than 0, not -3" in refused.json()["failure"]["message"]
    unknown = api.post(url, json={"name": "withdraw", "args": [1]})
    assert unknown.json()["failure"]["type"] == "UnknownUpdate"
    pending = api.post(url, json={"name": "close", "updateId": "c-1", "waitSeconds": 0})
    assert pending.status_code == 202 and pending.json()["status"] in ("sent", "accepted"), pending.text
    closed = wait_status(api, wid, ("COMPLETED",))
    assert closed["result"] == 5  # one deposit, applied once
    outcome = api.get(f"/api/v1/workflows/{wid}/updates/c-1")
    assert (outcome.status_code, outcome.json()["status"], outcome.json()["result"]) == (200, "completed", 5)
    late = api.post(url, json={"name": "deposit", "args": [1]})
    assert late.status_code == 409 and late.json()["code"] == "not_running", late.text
    missing = api.post(f"/api/v1/workflows/{unique('nobody')}/updates", json={"name": "deposit", "args": [1]})
    assert missing.status_code == 404


def test_activities_are_completed_by_task_token(api: httpx.Client, tmp_path: Path) -> None:
    wid = unique("approval")
    started = api.post("/api/v1/workflows", json={"id": wid, "type": "Approval", "input": str(tmp_path)})
    assert started.status_code == 202, started.text

    def token(attempt: int) -> str | None:
        found = tmp_path / f"attempt-{attempt}"
        return found.read_text() if found.exists() else None

    first = wait_until(lambda: token(1), "attempt 1's task token", 20)
    beat = api.post("/api/v1/activities/heartbeat", json={"taskToken": first, "details": 1})
    assert beat.status_code == 202 and beat.json()["command"] == "heartbeat", beat.text
    failed = api.post("/api/v1/activities/fail", json={"taskToken": first, "message": "not yet"})
    assert failed.status_code == 202 and failed.json()["workflowId"] == wid, failed.text
    second = wait_until(lambda: token(2), "the retry's task token", 20)  # the policy retried it
    done = api.post("/api/v1/activities/complete", json={"taskToken": second, "result": {"by": "ann"}})
    assert done.status_code == 202, done.text
    assert wait_status(api, wid, ("COMPLETED",))["result"] == {"by": "ann"}
    bad = api.post("/api/v1/activities/complete", json={"taskToken": "lft1.bm9wZQ", "result": 1})
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "taskToken", bad.text


def test_a_start_retried_with_its_request_id_answers_its_first_run(api: httpx.Client) -> None:
    """An idempotent retry: the same requestId answers the run the first start led to, while it
    runs (202, not 409) and after it closed (not a new run)."""
    wid = unique("retried")
    body = {"id": wid, "type": "SignalCounter", "requestId": "client-attempt-1"}
    first = api.post("/api/v1/workflows", json=body)
    assert first.status_code == 202, first.text
    run_id = first.json()["runId"]
    wait_status(api, wid, ("RUNNING",), run_id=run_id)
    while_open = api.post("/api/v1/workflows", json=body)
    assert (while_open.status_code, while_open.json()["runId"]) == (202, run_id), while_open.text
    assert api.post(f"/api/v1/workflows/{wid}/terminate", json={"reason": "done"}).status_code == 202
    wait_status(api, wid, ("TERMINATED",))
    after_close = api.post("/api/v1/workflows", json=body)
    assert (after_close.status_code, after_close.json()["runId"]) == (202, run_id), after_close.text
    time.sleep(0.5)
    status = api.get(f"/api/v1/workflows/{wid}/status").json()
    assert (status["runId"], status["status"], status["previousRuns"]) == (run_id, "TERMINATED", [])


@pytest.mark.parametrize(
    ("body", "field", "expected"),
    [
        pytest.param(
            _dag([("a", "echo"), ("b", "echo")], [("a", "b"), ("b", "a")]),
            "body",
            "cycle: a -> b -> a",
            id="cycle",
        ),
        pytest.param(
            _dag([("a", "echo")], [("a", "ghost")]),
            "body",
            "edge a->ghost: target 'ghost' is not a node",
            id="dangling",
        ),
        pytest.param(
            _dag([("a", "echo"), ("a", "echo")], []), "body", "duplicate node id 'a'", id="duplicate"
        ),
        pytest.param(
            _dag([("a", "echo"), ("b", "no.such.type")], [("a", "b")]),
            "nodes[1].type",
            "node 'b': unknown node type 'no.such.type'",
            id="unknown-type",
        ),
        pytest.param({"id": "x", "name": "no nodes", "edges": []}, "nodes", "Field required", id="no-nodes"),
        pytest.param(
            {"id": "x", "nodes": [{"id": "a", "type": "echo", "timeoutSeconds": -1}]},
            "nodes[0].timeoutSeconds",
            "greater than 0",
            id="negative-timeout",
        ),
        pytest.param(
            {"id": "x", "nodes": [{"id": f"n{i}", "type": "echo"} for i in range(1001)]},
            "nodes",
            "nodes: 1,001 nodes, limit 1,000 (max_dag_nodes)",
            id="too-many-nodes",
        ),
        pytest.param(
            {
                "id": "x",
                "nodes": [{"id": "a", "type": "echo"}, {"id": "b", "type": "echo"}],
                "edges": [{"source": "a", "target": "b"}] * 5001,
            },
            "edges",
            "edges: 5,001 edges, limit 5,000 (max_dag_edges)",
            id="too-many-edges",
        ),
        pytest.param(
            _dag([(f"n{i}", "echo") for i in range(501)], [(f"n{i}", f"n{i + 1}") for i in range(500)]),
            "edges",
            "the longest path (n0 -> ... -> n500) has 501 nodes, limit 500 (max_dag_depth)",
            id="too-deep",
        ),
        pytest.param(
            {"id": "x", "nodes": [{"id": "a", "type": "echo", "input": {"text": "x" * 140_000}}]},
            "body",
            "limit 131,072 (max_dag_bytes)",
            id="too-large",
        ),
        pytest.param(
            {"id": "x", "nodes": [{"id": "a", "type": "echo", "input": {"to": ["ok", "{{ input.to >}}"]}}]},
            "nodes[0].input.to[1]",
            "nodes[0].input.to[1] (node 'a'): cannot parse 'input.to >'",
            id="expression-syntax",
        ),
        pytest.param(
            {"id": "x", "nodes": [{"id": "a", "type": "echo", "input": {"v": "id-{{ os.environ }}"}}]},
            "nodes[0].input.v",
            "unknown name 'os' in 'os.environ' (known: input, nodes)",
            id="expression-unknown-name",
        ),
        pytest.param(
            {"id": "x", "nodes": [{"id": "a", "type": "echo", "input": {"v": "{{ " + "-" * 101 + "1 }}"}}]},
            "nodes[0].input.v",
            "nests more than 100 levels deep, limit 100",
            id="expression-too-deep",
        ),
        pytest.param(
            {
                "id": "x",
                "nodes": [{"id": "a", "type": "echo"}, {"id": "b", "type": "echo"}],
                "edges": [{"source": "a", "target": "b", "condition": "nodes.a.output.count()"}],
            },
            "edges[0].condition",
            "edges[0].condition (edge a->b): 'nodes.a.output.count()' is not allowed",
            id="condition-call",
        ),
        pytest.param({"id": "x", "input": 1}, "type", "Field required", id="start-without-type"),
        pytest.param({"id": "", "type": "T"}, "id", "an id is 1 to 256 characters", id="empty-workflow-id"),
    ],
)
def test_bad_registrations_are_422_naming_the_problem(
    api: httpx.Client, body: dict[str, Any], field: str, expected: str
) -> None:
    answer = api.post("/api/v1/workflows", json=body)
    assert answer.status_code == 422, answer.text
    data = answer.json()
    assert data["code"] == "invalid_request"
    assert any(e["field"] == field and expected in e["message"] for e in data["errors"]), data
    assert expected in data["detail"]


def test_a_queue_whose_topic_collides_with_an_existing_one_is_422(
    api: httpx.Client, api_stack: Stack
) -> None:
    queue = unique("pay")
    topic = f"{api_stack.cluster.prefix}tasks.{queue}.eu"
    admin = AdminClient({"bootstrap.servers": api_stack.cluster.bootstrap})
    admin.create_topics([NewTopic(topic, 1, 1)])[topic].result(30)
    body = {"id": unique("clash"), "nodes": [{"id": "n", "type": "echo", "queue": f"{queue}_eu"}]}
    answer = api.post("/api/v1/workflows", json=body)
    assert answer.status_code == 422, answer.text
    [error] = answer.json()["errors"]
    assert error["field"] == "nodes[0].queue" and f"collides with topic '{topic}'" in error["message"]
    body["nodes"][0]["queue"] = f"{queue}.eu"  # the existing topic's own queue is fine
    assert api.post("/api/v1/workflows", json=body).status_code == 201


def test_activity_types_of_the_gateways_modules_are_known(api: httpx.Client) -> None:
    # the gateway was started with --activities tests.testapps.acts
    dag = _dag([("a", "echo"), ("b", "add_one"), ("c", "sleep"), ("d", "wait-signal")], [("a", "b")])
    assert api.post("/api/v1/workflows", json=dag).status_code == 201


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "field"),
    [
        ("POST", "/api/v1/workflows/w/signal", {"json": {"payload": 1}}, "name"),
        ("POST", "/api/v1/workflows/w/signal", {"json": {"name": "s", "extra": 1}}, "extra"),
        ("POST", "/api/v1/workflows/T/execute", {"json": {"workflowId": ""}}, "workflowId"),
        (
            "POST",
            "/api/v1/workflows/T/execute",
            {"content": b"{not json", "headers": {"content-type": "application/json"}},
            "body",
        ),
        (
            "POST",
            "/api/v1/workflows",
            {"content": b"[1,", "headers": {"content-type": "application/json"}},
            "body",
        ),
        ("POST", "/api/v1/workflows/w/query", {"json": {"name": "q", "args": "notalist"}}, "args"),
        ("GET", "/api/v1/workflows", {"params": {"limit": 0}}, "limit"),
        ("GET", "/api/v1/workflows", {"params": {"status": "SLEEPY"}}, "status"),
        ("GET", "/api/v1/workflows/w/history", {"params": {"offset": -1}}, "offset"),
        ("GET", "/api/v1/workflows", {"params": {"limit": 1001}}, "limit"),
        ("GET", "/api/v1/workflows/w/history", {"params": {"limit": 1001}}, "limit"),
        ("GET", "/api/v1/events", {"params": {"limit": 1001}}, "limit"),
        ("GET", "/api/v1/cluster/events", {"params": {"limit": 1001}}, "limit"),
    ],
)
def test_bad_bodies_and_parameters_are_422_naming_the_field(
    api: httpx.Client, method: str, path: str, kwargs: dict[str, Any], field: str
) -> None:
    answer = api.request(method, path, **kwargs)
    assert answer.status_code == 422, answer.text
    assert field in [e["field"] for e in answer.json()["errors"]], answer.json()


ID_RULE = "an id is 1 to 256 characters, none of them a control character (\\x00-\\x1f, \\x7f) or '/'"
START = {"type": "SignalCounter"}


@pytest.mark.parametrize(
    ("method", "path", "body", "field"),
    [
        pytest.param("POST", "/api/v1/workflows", {**START, "id": "team/a"}, "id", id="start-slash"),
        pytest.param("POST", "/api/v1/workflows", {**START, "id": "a\x00b"}, "id", id="start-nul"),
        pytest.param("POST", "/api/v1/workflows", {**START, "id": "x" * 257}, "id", id="start-long"),
        pytest.param(
            "POST",
            "/api/v1/workflows",
            {**START, "id": "ok", "requestId": "r\n"},
            "requestId",
            id="start-request",
        ),
        pytest.param(
            "POST",
            "/api/v1/workflows",
            {"id": "etl/v1", "nodes": [{"id": "n", "type": "echo"}]},
            "id",
            id="dag-definition",
        ),
        pytest.param(
            "POST",
            "/api/v1/workflows/SignalCounter/execute",
            {"workflowId": "a/b"},
            "workflowId",
            id="execute",
        ),
        pytest.param(
            "POST",
            "/api/v1/workflows/SignalCounter/execute",
            {"requestId": "\x7f"},
            "requestId",
            id="execute-request",
        ),
        pytest.param("POST", "/api/v1/workflows/Signal%01Counter/execute", {}, "id", id="execute-type-path"),
        pytest.param(
            "POST",
            "/api/v1/workflows/w/signal",
            {"name": "s", "requestId": "q/1"},
            "requestId",
            id="signal-request",
        ),
        pytest.param("POST", "/api/v1/workflows/a%1Fb/cancel", None, "id", id="cancel-path"),
        pytest.param("GET", "/api/v1/workflows/a%00b/status", None, "id", id="status-path"),
        pytest.param("GET", "/api/v1/workflows/w/history?runId=r%0A", None, "runId", id="history-run-id"),
    ],
)
def test_ids_breaking_the_id_rule_are_422_naming_the_field(
    api: httpx.Client, method: str, path: str, body: dict[str, Any] | None, field: str
) -> None:
    answer = api.request(method, path, json=body)
    assert answer.status_code == 422, answer.text
    problems = answer.json()["errors"]
    assert [(p["field"], p["type"]) for p in problems] == [(field, "invalid_id")], problems
    assert problems[0]["message"] == f"{field}: {ID_RULE}"


def test_oversized_bodies_get_413(api: httpx.Client) -> None:
    big = {"id": "big", "type": "T", "input": "x" * (1024 * 1024 + 10)}
    answer = api.post("/api/v1/workflows", json=big)
    assert answer.status_code == 413 and answer.json()["code"] == "payload_too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: read up to the limit, then refused
        yield b'{"id": "big", "type": "T", "input": "'
        for _ in range(20):
            yield b"x" * 65536
        yield b'"}'

    chunked = api.post("/api/v1/workflows", content=chunks(), headers={"content-type": "application/json"})
    assert chunked.status_code == 413
    # under the body limit but over the payload a run may record (max_payload_bytes, 256 KiB)
    payload = api.post("/api/v1/workflows", json={"id": "big", "type": "T", "input": "x" * 300_000})
    assert payload.status_code == 413 and "max_payload_bytes" in payload.json()["detail"], payload.text
    signal = api.post("/api/v1/workflows/w/signal", json={"name": "s", "payload": "x" * 300_000})
    assert signal.status_code == 413 and "SignalWorkflow" in signal.json()["detail"], signal.text
    small = api.post(
        "/api/v1/workflows/w/signal", content=b'{"name": "s"}', headers={"content-type": "application/json"}
    )
    assert small.status_code == 202


def test_dot_only_workflow_ids_reach_their_own_run(api: httpx.Client) -> None:
    """'.' and '..' are workflow ids like any other: the gateway forwards reads about them
    escaped (%2E), never as path segments that a URL library would collapse."""
    for wid in (".", ".."):
        escaped = wid.replace(".", "%2E")
        started = api.post("/api/v1/workflows", json={"id": wid, "type": "SignalCounter"})
        assert started.status_code == 202, started.text
        assert wait_status(api, escaped, ("RUNNING",))["workflowId"] == wid
        again = api.post("/api/v1/workflows", json={"id": wid, "type": "SignalCounter"})
        assert again.status_code == 409, again.text  # the start check found the open run


def test_unknown_workflows_are_404(api: httpx.Client) -> None:
    for path in ("status", "history"):
        answer = api.get(f"/api/v1/workflows/{unique('nobody')}/{path}")
        assert answer.status_code == 404 and answer.json()["code"] == "workflow_not_found"
    answer = api.post(f"/api/v1/workflows/{unique('nobody')}/query", json={"name": "q"})
    assert answer.status_code == 404
    odd = api.get("/api/v1/workflows/a%20b%3Fc%25/status")  # ' ', '?' and '%' reach the owner intact
    assert odd.status_code == 404 and odd.json()["workflowId"] == "a b?c%"


def test_cluster_views(api: httpx.Client, api_stack: Stack) -> None:
    engine_url = api_stack.cluster.nodes[0].url
    shards = api.get("/api/v1/cluster/shards").json()
    assert shards["partitions"] == 4
    assert [s["partition"] for s in shards["shards"]] == [0, 1, 2, 3]
    assert {s["owner"] for s in shards["shards"]} == {engine_url}

    stats = api.get("/api/v1/cluster/stats").json()
    [member] = stats["members"]
    assert member["url"] == engine_url and member["reachable"] and member["partitions"] == [0, 1, 2, 3]
    assert stats["unassignedPartitions"] == []

    wid = unique("where")
    location = api.get(f"/api/v1/cluster/workflows/{wid}/location").json()
    assert location["partition"] == partition_for(wid, 4) and location["owner"] == engine_url

    assert (
        api.post("/api/v1/workflows", json={"id": wid, "type": "ThreeSteps", "input": 1}).status_code == 202
    )
    wait_status(api, wid, ("COMPLETED",))
    events = api.get("/api/v1/events", params={"workflowId": wid, "limit": 50}).json()["events"]
    types = [e["type"] for e in events]
    assert types[0] == "WORKFLOW_STARTED" and types[-1] == "WORKFLOW_COMPLETED"
    assert all(e["workflow_id"] == wid for e in events)
    assert len(api.get("/api/v1/events", params={"limit": 2}).json()["events"]) == 2


def test_probes_metrics_and_docs(api: httpx.Client) -> None:
    assert api.get("/health").json() == {"status": "ok"}
    assert api.get("/ready").status_code == 200
    api.get(f"/api/v1/workflows/{unique('m')}/status")
    metrics = api.get("/metrics").text
    assert 'workflow_routing_latency_seconds_bucket{le="0.005",operation="status"' in metrics
    assert (
        'ledgerflow_gateway_requests_total{method="GET",route="/api/v1/workflows/{id}/status",status="404"}'
        in metrics
    )
    schema = api.get("/openapi.json").json()
    for path in ("/api/v1/workflows", "/api/v1/workflows/{id}/execute", "/api/v1/workflows/{id}/status"):
        assert path in schema["paths"]
    body = schema["paths"]["/api/v1/workflows"]["post"]["requestBody"]["content"]["application/json"]
    assert set(body["examples"]) == {"dag", "code"}
    assert api.get("/docs").status_code == 200
    assert set(schema["components"]["securitySchemes"]) == {"ApiKey", "Bearer"}
    assert schema["paths"]["/health"]["get"]["security"] == []
