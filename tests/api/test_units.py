"""Gateway pieces that need no Kafka: settings, error shapes, timelines, middleware, paging,
the events ring."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from ledgerflow.api.app import GatewaySettings, create_app
from ledgerflow.api.errors import problems_from_validation
from ledgerflow.api.keys import ApiKeyEntry, entry_line, key_hash
from ledgerflow.api.scopes import Scope
from ledgerflow.api.tail import Ring
from ledgerflow.api.timeline import build_timeline
from ledgerflow.api.workflows import _status_from
from ledgerflow.paging import merge_listings
from ledgerflow.routing import path_segment
from ledgerflow.schemas import events as ev
from ledgerflow.schemas.common import ActivityOptions, Failure
from ledgerflow.schemas.dag import DagDefinition


def test_list_settings_read_comma_separated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGERFLOW_JWT_ALGORITHMS", "RS256, ES256,,EdDSA ")
    monkeypatch.setenv("LEDGERFLOW_ACTIVITY_TYPES", "charge")
    monkeypatch.setenv("LEDGERFLOW_MAX_BODY_BYTES", "2048")
    settings = GatewaySettings()
    assert settings.jwt_algorithms == ["RS256", "ES256", "EdDSA"] and not settings.auth_enabled
    assert settings.activity_types == ["charge"] and settings.max_body_bytes == 2048
    with pytest.raises(ValueError, match="frozen"):
        settings.owner_timeout = 5  # type: ignore[misc]


def test_path_segments_survive_forwarding() -> None:
    assert path_segment("a/b c?") == "a%2Fb%20c%3F"
    assert path_segment("..") == "%2E%2E" and path_segment("a.b") == "a.b"


def test_validation_problems_name_the_field() -> None:
    problems = problems_from_validation(
        [
            {"loc": ("body", "dag", "nodes", 2, "type"), "msg": "Field required", "type": "missing"},
            {"loc": ("body",), "msg": "Value error, cycle: a -> b -> a", "type": "value_error"},
            {"loc": ("body", 7), "msg": "JSON decode error", "type": "json_invalid"},
            {"loc": ("query", "limit"), "msg": "Input should be greater than 0", "type": "greater_than"},
        ]
    )
    assert [(p.field, p.type) for p in problems] == [
        ("nodes[2].type", "missing"),
        ("body", "dag_invalid"),
        ("body", "json_invalid"),
        ("limit", "greater_than"),
    ]
    assert problems[1].message == "cycle: a -> b -> a"
    assert problems[2].message == "body is not valid JSON at position 7"
    assert problems[0].loc == ["body", "nodes", 2, "type"]


def on(node: str) -> ActivityOptions:
    return ActivityOptions(node=node)


def test_timeline_names_dag_nodes_and_counts_attempts() -> None:
    dag = DagDefinition.model_validate(
        {
            "id": "d",
            "nodes": [
                {"id": "first", "type": "echo", "input": {"x": "{{ input.x }}"}},
                {"id": "second", "type": "echo", "input": {"y": 1}},
                {"id": "sum", "type": "aggregate.sum", "input": {"items": [1]}},
                {"id": "nap", "type": "sleep", "input": {"seconds": 1}},
            ],
            "edges": [{"source": "first", "target": "second"}],
        }
    )
    oops = Failure(type="RuntimeError", message="boom")
    history: list[ev.HistoryEvent] = [
        ev.WorkflowStarted(index=1, time=10, workflow_type="d", dag=dag),
        ev.ActivityScheduled(
            index=2, time=11, seq=1, activity_type="echo", args=[{"x": 5}], options=on("first")
        ),
        ev.ActivityScheduled(
            index=3, time=11, seq=2, activity_type="aggregate.sum", args=[{"items": [1]}], options=on("sum")
        ),
        ev.TimerStarted(index=4, time=11, seq=3, fire_at=12),
        ev.ActivityAttemptFailed(index=5, time=12, seq=2, attempt=1, failure=oops, retry_in=1),
        ev.ActivityCompleted(index=6, time=12, seq=1, attempt=1, result={"x": 5}),
        ev.ActivityScheduled(
            index=7, time=12.5, seq=4, activity_type="echo", args=[{"y": 1}], options=on("second")
        ),
        ev.TimerFired(index=8, time=13, seq=3),
        ev.ActivityAttemptRetried(index=9, time=13, seq=2, attempt=2),
        ev.ActivityFailed(index=10, time=14, seq=2, attempt=2, failure=oops),
    ]
    timeline = {t.seq: t for t in build_timeline(history)}
    assert timeline[1].node == "first" and timeline[1].status == "completed" and timeline[1].attempts == 1
    assert timeline[4].node == "second" and timeline[4].status == "scheduled"
    assert timeline[2].node == "sum" and timeline[2].status == "failed" and timeline[2].attempts == 2
    assert timeline[2].last_failure == "RuntimeError: boom" and timeline[2].duration_seconds == 3
    assert timeline[3].kind == "timer" and timeline[3].completed_at == 13


@pytest.fixture
def offline(tmp_path: Path) -> TestClient:
    """The app without its lifespan: only what answers before Kafka is needed (key ``secret``)."""
    keys = tmp_path / "keys.jsonl"
    entry = ApiKeyEntry(name="t", sha256=key_hash("secret"), scopes=[Scope.WRITE, Scope.ADMIN])
    keys.write_text(entry_line(entry) + "\n")
    token = tmp_path / "engine-token"
    token.write_text("t" * 32)
    settings = GatewaySettings(api_keys_file=keys, engine_token_file=token, max_body_bytes=100)
    return TestClient(create_app(settings))


def test_auth_and_body_limit_answer_before_anything_else(offline: TestClient) -> None:
    assert offline.get("/health").status_code == 200
    assert offline.get("/api/v1/workflows").status_code == 401
    assert offline.post("/api/v1/workflows", content=b"x" * 200).status_code == 401
    key = {"X-API-Key": "secret"}
    too_big = offline.post("/api/v1/workflows", content=b"x" * 200, headers=key)
    assert too_big.status_code == 413 and too_big.json()["code"] == "payload_too_large"
    unknown = offline.post(
        "/api/v1/workflows", json={"id": "d", "nodes": [{"id": "a", "type": "nope"}]}, headers=key
    )
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "nodes[0].type"


def test_a_status_names_each_pending_activitys_queue_and_its_workers() -> None:
    engine_describe = {
        "workflow_id": "w",
        "run_id": "r",
        "workflow_type": "t",
        "status": "RUNNING",
        "started_at": 1.0,
        "partition": 0,
        "activities": {
            "2": {"activity_type": "b", "attempt": 1, "state": "running", "options": {"queue": "nobody"}},
            "1": {"activity_type": "a", "attempt": 1, "state": "running", "options": {"queue": "default"}},
        },
        "queue_workers": {"nobody": 0, "default": 2},
    }
    pending = _status_from(engine_describe).pending_activities
    assert [(p.seq, p.queue, p.queue_workers) for p in pending] == [(1, "default", 2), (2, "nobody", 0)]


def rows(*ids: str) -> list[dict[str, str]]:
    return [{"workflow_id": i} for i in ids]


def test_a_listing_page_ends_where_the_engine_that_stopped_first_stopped() -> None:
    """An engine that hit its scan limit at 'k' has not looked past it: the page ends there,
    and the next one starts after 'k' (so 'm', past it, comes again then, once)."""
    scanned = {"runs": rows("c"), "next_after": "k"}
    full = {"runs": rows("a", "b", "d", "m"), "next_after": "m"}
    page, cursor = merge_listings([scanned, full], 4)
    assert [r["workflow_id"] for r in page] == ["a", "b", "c", "d"] and cursor == "k"
    page, cursor = merge_listings([scanned, full], 2)
    assert [r["workflow_id"] for r in page] == ["a", "b"] and cursor == "b"
    page, cursor = merge_listings([{"runs": [], "next_after": "k"}, {"runs": [], "next_after": None}], 5)
    assert page == [] and cursor == "k", "a page emptied by the filter still goes on"
    page, cursor = merge_listings([{"runs": rows("b"), "next_after": None}, {"runs": rows("a")}], 5)
    assert [r["workflow_id"] for r in page] == ["a", "b"] and cursor is None


def test_an_event_ring_is_bounded_by_count_and_bytes_and_says_when_it_cut() -> None:
    ring = Ring(max_records=3, max_bytes=100)
    for n in range(5):
        ring.add(n, 10)
    assert list(ring.records) == [2, 3, 4] and ring.size == 30
    assert ring.holds(3) and ring.holds(1000), "dropped for count only: it holds the window"
    ring.add("big", 90)
    assert list(ring.records) == [4, "big"] and ring.size == 100
    assert not ring.holds(3) and ring.holds(2), "dropped for bytes: fewer than the window"
    ring.add("huge", 500)  # one record over the bound is still kept: the latest
    assert list(ring.records) == ["huge"] and ring.size == 500


def test_an_accepted_start_links_to_the_operations_on_its_workflow_id() -> None:
    spec = create_app(GatewaySettings(insecure=True)).openapi()
    starts = [("/api/v1/workflows", "post"), ("/api/v1/workflows/{id}/execute", "post")]
    for path, method in starts:
        links = spec["paths"][path][method]["responses"]["202"]["links"]
        assert set(links) == {"GetStatus", "GetHistory", "Signal", "Query", "Cancel", "Terminate"}
        for link in links.values():
            pointer = link["operationRef"].removeprefix("#/paths/")
            target_path, target_method = pointer.rsplit("/", 1)
            operation = spec["paths"][target_path.replace("~1", "/")][target_method]
            assert [p["name"] for p in operation["parameters"] if p["in"] == "path"] == ["id"]
            assert link["parameters"] == {"id": "$response.body#/workflowId"}
