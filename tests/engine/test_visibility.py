"""Visibility on a real broker, engine, worker and gateway: runs started with search attributes
and memo, upserted by their code, found by Temporal's list filter through the Python clients,
the gateway and the CLI, paged and counted; after a kill -9 and a restore from the changelog,
the index each partition keeps is still exactly what its runs say."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import httpx
import pytest

from ledgerflow import SearchAttributeKey, TypedSearchAttributes, VisibilityQueryError
from ledgerflow.engine.state import visibility
from ledgerflow.engine.state.store import PartitionStore
from ledgerflow.local.processes import Cluster
from tests.cli.test_cli import cli, cli_json
from tests.fixtures import ACTS, FLOWS, assert_invariants
from tests.testapps.flows import CUSTOMER

pytestmark = pytest.mark.kafka

AMOUNT = SearchAttributeKey.for_int("Amount")
ORDERS = 20


def attributes(i: int) -> TypedSearchAttributes:
    return TypedSearchAttributes([CUSTOMER.value_set(f"c-{i % 4}"), AMOUNT.value_set(i * 10)])


async def test_runs_are_found_by_their_search_attributes_through_every_way_in(running: Cluster) -> None:
    gateway = running.gateway([ACTS])
    async with running.async_client() as client:
        for i in range(ORDERS):  # one after another: each run its own start time
            await client.start_workflow(
                "TrackedOrder", 0, id=f"order-{i}", search_attributes=attributes(i), memo={"note": f"n{i}"}
            )
        assert await client.count_workflows("WorkflowType = 'TrackedOrder'") == ORDERS

        rows = await client.list_workflows(
            query="CustomerId = 'c-1' AND Amount < 150 ORDER BY StartTime DESC"
        )
        assert [r["workflow_id"] for r in rows] == ["order-13", "order-9", "order-5", "order-1"]
        assert [r["started_at"] for r in rows] == sorted((r["started_at"] for r in rows), reverse=True)
        assert rows[0]["memo"] == {"note": "n13"}
        assert rows[0]["search_attributes"]["Stage"] == {"type": "keyword", "value": "received-0"}

        paged, after = [], None
        while True:  # pages of 3 across four partitions: no gap, no repeat, in order
            page, after = await client.list_page(limit=3, after=after, query="ORDER BY StartTime ASC")
            paged += [r["workflow_id"] for r in page]
            if after is None:
                break
        assert paged == [f"order-{i}" for i in range(ORDERS)]

        await client.signal("order-1", "ship")
        assert await client.result("order-1", timeout=30) == {
            "customer": "c-1",
            "stage": "shipped",
            "priority": None,
            "memo": "n1",
        }
        shipped = await client.list_workflows(query="Stage = 'shipped' AND ExecutionStatus = 'Completed'")
        assert [r["workflow_id"] for r in shipped] == ["order-1"]
        described = await client.describe("order-1")
        assert described["search_attributes"]["Stage"]["value"] == "shipped"
        assert described["memo"] == {"note": "n1"}
        with pytest.raises(VisibilityQueryError, match="unexpected 'AND' at column 24"):
            await client.list_workflows(query="CustomerId = 'c-1' AND AND Amount = 1")

        gateway.wait_ready()
        api = f"{gateway.url}/api/v1"
        async with httpx.AsyncClient(headers=gateway.headers, timeout=10) as http:
            found = await http.get(f"{api}/workflows", params={"query": "CustomerId = 'c-2'"})
            assert found.status_code == 200, found.text
            listed = found.json()["workflows"]
            assert [w["workflowId"] for w in listed] == [
                "order-18",
                "order-14",
                "order-10",
                "order-6",
                "order-2",
            ]
            assert listed[0]["searchAttributes"]["Amount"] == {"type": "int", "value": 180}
            counted = await http.get(f"{api}/workflow-count", params={"query": "Amount >= 100"})
            assert counted.json() == {"count": 10, "partial": False, "missingPartitions": []}
            bad = await http.get(f"{api}/workflows", params={"query": "Amount >= "})
            assert bad.status_code == 422
            assert "query: the query ends too early" in bad.text
            refused = await http.post(
                f"{api}/workflows",
                json={
                    "id": "bad-attr",
                    "type": "TrackedOrder",
                    "searchAttributes": {"Amount": {"type": "int", "value": "x"}},
                },
            )
            assert refused.status_code == 422 and "searchAttributes" in refused.text, refused.text
            started = await http.post(
                f"{api}/workflows",
                json={
                    "id": "rest-order",
                    "type": "TrackedOrder",
                    "input": 0,
                    "searchAttributes": {"CustomerId": {"type": "keyword", "value": "c-rest"}},
                    "memo": {"channel": "api"},
                },
            )
            assert started.status_code == 202, started.text
        deadline = time.monotonic() + 30
        while await client.count_workflows("CustomerId = 'c-rest'") != 1:  # the gateway's start applied
            assert time.monotonic() < deadline, "the run the gateway started is not found"
            await asyncio.sleep(0.2)

    listed_by_cli = cli_json(running, "list", "--query", "CustomerId = 'c-3'")
    assert [r["workflow_id"] for r in listed_by_cli] == [
        "order-19",
        "order-15",
        "order-11",
        "order-7",
        "order-3",
    ]
    started_by_cli = cli(
        running, "start", "TrackedOrder", "--id", "cli-order", "--input", "0",
        "--search-attribute", 'CustomerId="c-cli"', "--search-attribute", "Notes:text=\"left by the door\"",
        "--memo", 'channel="cli"',
    )  # fmt: skip
    assert started_by_cli.returncode == 0, started_by_cli.stderr
    counted_by_cli = cli(running, "count", "CustomerId = 'c-cli' AND Notes = 'door'")
    assert counted_by_cli.stdout.strip() == "1", counted_by_cli.stderr
    with running.client() as sync_client:
        for workflow_id in ("order-1", "order-2", "rest-order", "cli-order"):
            assert_invariants(sync_client, workflow_id)


def stores_of(data_dir: Path) -> list[Path]:
    return sorted(data_dir.glob("*/partition-*"))


def test_the_index_is_exact_after_a_kill_and_a_restore_from_the_changelog(cluster: Cluster) -> None:
    engine = cluster.engine([FLOWS])
    cluster.worker([ACTS])
    engine.wait_ready()

    async def start_and_ship() -> None:
        async with cluster.async_client() as client:
            await asyncio.gather(
                *(
                    client.start_workflow("TrackedOrder", 0, id=f"k-{i}", search_attributes=attributes(i))
                    for i in range(60)
                )
            )
            await asyncio.gather(
                *(client.signal(f"k-{i}", "ship" if i % 2 else "continue") for i in range(60))
            )

    asyncio.run(start_and_ship())
    engine.kill()  # some signals are applied, some not: the next owner takes them from the inbox
    data_dir = cluster.base_dir / "engine-0"
    for folder in stores_of(data_dir):
        PartitionStore.wipe(folder)  # restored from the changelog alone
    engine = cluster.restart(engine)
    engine.wait_ready()
    with cluster.client() as client:
        deadline = time.time() + 60
        while time.time() < deadline and client.count_workflows("Stage = 'shipped'") < 30:
            time.sleep(0.5)
        assert client.count_workflows("Stage = 'shipped' AND ExecutionStatus = 'Completed'") == 30
        assert client.count_workflows("Stage = 'received-1' AND ExecutionStatus = 'Running'") == 30
        assert client.count_workflows("") == 60
        for i in (0, 1, 2, 3):
            assert_invariants(client, f"k-{i}")
    engine.stop()
    stores = stores_of(data_dir)
    assert len(stores) == cluster.partitions
    for folder in stores:
        store = PartitionStore(folder)
        try:
            assert visibility.index_problems(store) == [], folder
        finally:
            store.close()
