"""Paged reads through the gateway on a real stack: history pages, listings that stop at
the engine's scan limit, and the events endpoints answered by one shared reader."""

from __future__ import annotations

import concurrent.futures
import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.api.conftest import Stack, running_stack, unique, wait_status

pytestmark = pytest.mark.kafka

SCAN_LIMIT = 4
"""Runs the engine examines per listing page: small, so filtered pages come back short."""


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = {"LEDGERFLOW_LIST_SCAN_LIMIT": str(SCAN_LIMIT)}
    with running_stack(kafka_bootstrap, "paging", tmp_path_factory.mktemp("paging"), env) as running:
        yield running


@pytest.fixture
def api(stack: Stack) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=stack.url, headers=stack.gateway.headers, timeout=10) as client:
        yield client


def counted(api: httpx.Client, workflow_id: str, values: int) -> str:
    """A SignalCounter run that received ``values`` 'add' signals and closed; its run id."""
    started = api.post("/api/v1/workflows", json={"id": workflow_id, "type": "SignalCounter"})
    assert started.status_code == 202, started.text
    for value in range(values):
        sent = api.post(f"/api/v1/workflows/{workflow_id}/signal", json={"name": "add", "payload": value})
        assert sent.status_code == 202, sent.text
    api.post(f"/api/v1/workflows/{workflow_id}/signal", json={"name": "done"})
    run_id = str(started.json()["runId"])
    assert wait_status(api, workflow_id, ("COMPLETED",), run_id=run_id)["result"] == list(range(values))
    return run_id


def all_pages(api: httpx.Client, workflow_id: str, limit: int, **params: Any) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    offset: int | None = 0
    while offset is not None:
        page = api.get(
            f"/api/v1/workflows/{workflow_id}/history", params={"offset": offset, "limit": limit, **params}
        )
        assert page.status_code == 200, page.text
        data = page.json()
        assert len(data["events"]) <= limit and data["timeline"] is None
        events += data["events"]
        offset = data["nextOffset"]
    return events


def test_history_pages_of_the_latest_and_an_earlier_run(api: httpx.Client, stack: Stack) -> None:
    wid = unique("paged")
    first = counted(api, wid, 25)  # 1 start + 26 signals + the close: 28 events
    events = all_pages(api, wid, 6)
    assert [e["index"] for e in events] == list(range(1, 29))
    assert events[0]["kind"] == "workflow_started" and events[-1]["kind"] == "workflow_completed"
    assert [e["payload"] for e in events[1:26]] == list(range(25))

    second = counted(api, wid, 2)  # the id runs again: the first run is now an earlier one
    assert second != first
    earlier = all_pages(api, wid, 10, runId=first)
    assert earlier == events
    last = api.get(f"/api/v1/workflows/{wid}/history", params={"runId": first, "offset": 27, "limit": 5})
    assert last.json()["total"] == 28 and last.json()["nextOffset"] is None
    assert [e["kind"] for e in last.json()["events"]] == ["workflow_completed"]
    latest = api.get(f"/api/v1/workflows/{wid}/history", params={"limit": 1}).json()
    assert latest["runId"] == second and latest["total"] == 5 and latest["nextOffset"] == 1

    client = stack.cluster.client()
    with client:
        assert [e.index for e in client.history(wid, first)] == list(range(1, 29))
        assert [e.index for e in client.history(wid, first, offset=20)] == list(range(21, 29))
        assert client.result(wid, run_id=first) == list(range(25))


def test_a_filtered_listing_pages_past_the_engines_scan_limit(api: httpx.Client, stack: Stack) -> None:
    tag = uuid.uuid4().hex[:6]
    ids = [f"{tag}-{n:02d}" for n in range(16)]
    terminated = ids[::3]
    for wid in ids:
        assert api.post("/api/v1/workflows", json={"id": wid, "type": "SignalCounter"}).status_code == 202
    for wid in terminated:
        wait_status(api, wid, ("RUNNING",))
        assert api.post(f"/api/v1/workflows/{wid}/terminate", json={"reason": "paging"}).status_code == 202
    for wid in ids:
        wait_status(api, wid, ("TERMINATED",) if wid in terminated else ("RUNNING",))

    listed: list[str] = []
    cursor: str | None = tag  # every id of this test sorts after its tag
    pages = short = 0
    while cursor is not None and cursor < f"{tag}-~":
        params = {"status": "TERMINATED", "type": "SignalCounter", "limit": 3, "cursor": cursor}
        page = api.get("/api/v1/workflows", params=params).json()
        assert not page["partial"] and len(page["workflows"]) <= 3
        assert all(w["status"] == "TERMINATED" for w in page["workflows"])
        listed += [w["workflowId"] for w in page["workflows"] if w["workflowId"].startswith(tag)]
        pages += 1
        short += len(page["workflows"]) < 3 and page["nextCursor"] is not None
        cursor = page["nextCursor"]
    print(f"{len(listed)} terminated runs in {pages} pages, {short} short")
    assert listed == terminated
    assert short, f"no page stopped at the scan limit ({SCAN_LIMIT}) before it was full"

    client = stack.cluster.client()
    with client:
        rows = client.list_workflows(status="RUNNING", workflow_type="SignalCounter", limit=5, after=tag)
    assert [r["workflow_id"] for r in rows] == [w for w in ids if w not in terminated][:5]


def tail_starts(api: httpx.Client) -> float:
    found = re.search(r"^ledgerflow_gateway_event_tail_starts_total (\S+)$", api.get("/metrics").text, re.M)
    return float(found.group(1)) if found else 0.0


def test_concurrent_event_reads_share_one_reader_and_see_what_just_committed(
    api: httpx.Client, stack: Stack
) -> None:
    before = tail_starts(api)
    wids = [unique("evt") for _ in range(4)]

    def events_of(workflow_id: str) -> list[str]:
        answer = api.get("/api/v1/events", params={"workflowId": workflow_id, "limit": 50})
        assert answer.status_code == 200, answer.text
        assert not answer.json()["partial"]
        return [e["type"] for e in answer.json()["events"]]

    for wid in wids:
        counted(api, wid, 1)
    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(events_of, wids * 8))
        clusters = list(pool.map(lambda _: api.get("/api/v1/cluster/events").json()["events"], range(8)))
    for types in answers:
        assert types[0] == "WORKFLOW_STARTED" and types[-1] == "WORKFLOW_COMPLETED", types
    assert all(any(e["type"] == "NODE_JOINED" for e in found) for found in clusters)
    latest = api.get("/api/v1/events", params={"limit": 3}).json()["events"]
    assert len(latest) == 3 and latest[-1]["type"] == "WORKFLOW_COMPLETED"
    assert tail_starts(api) - before <= 1, "the gateway opened more than one events reader"

    later = unique("evt")  # started after the reader caught up: read-your-writes still holds
    counted(api, later, 0)
    assert events_of(later)[-1] == "WORKFLOW_COMPLETED"
