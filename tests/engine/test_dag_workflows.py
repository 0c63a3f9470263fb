"""DAG workflows: registration, fan-out/fan-in, conditions, built-in nodes."""

from __future__ import annotations

import http.server
import json
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from ledgerflow import Client
from ledgerflow.local.processes import Cluster
from ledgerflow.schemas import events as ev
from tests.fixtures import ACTS, FLOWS, assert_invariants
from tests.waits import wait_until

pytestmark = pytest.mark.kafka


def fan_out_fan_in(definition_id: str) -> dict[str, object]:
    return {
        "id": definition_id,
        "name": "fan out, fan in",
        "nodes": [
            {"id": "start", "type": "echo", "input": {"n": "{{ input.n }}"}},
            {"id": "left", "type": "map.transform", "input": {"items": [1, 2, 3], "expression": "item * 10"}},
            {"id": "right", "type": "sequence.numbers", "input": {"stop": "{{ nodes.start.output.n }}"}},
            {"id": "big", "type": "echo", "input": {"msg": "big"}},
            {"id": "small", "type": "echo", "input": {"msg": "small"}},
            {
                "id": "join",
                "type": "aggregate.sum",
                "input": {"items": "{{ nodes.left.output['items'] + nodes.right.output.numbers }}"},
            },
        ],
        "edges": [
            {"source": "start", "target": "left"},
            {"source": "start", "target": "right"},
            {"source": "start", "target": "big", "condition": "nodes.start.output.n > 3"},
            {"source": "start", "target": "small", "condition": "nodes.start.output.n <= 3"},
            {"source": "left", "target": "join"},
            {"source": "right", "target": "join"},
        ],
    }


def test_fan_out_fan_in_with_conditions(running: Cluster, client: Client) -> None:
    client.register_dag(fan_out_fan_in("fan"))
    client.start_workflow("fan", {"n": 5}, id="dag-1")
    result = client.result("dag-1", timeout=30)
    assert result["join"] == {"sum": 10 + 20 + 30 + 0 + 1 + 2 + 3 + 4}
    assert result["big"] == {"msg": "big"}
    assert "small" not in result  # its edge condition was false: skipped
    scheduled = [e.activity_type for e in client.history("dag-1") if e.kind == "activity_scheduled"]
    assert sorted(scheduled[1:3]) == ["map.transform", "sequence.numbers"]  # both branches in flight together
    assert_invariants(client, "dag-1")


def test_durable_sleep_and_signal_nodes(running: Cluster, client: Client) -> None:
    client.register_dag(
        {
            "id": "approve",
            "nodes": [
                {"id": "nap", "type": "sleep", "input": {"seconds": 1}},
                {"id": "ok", "type": "wait-signal", "input": {"name": "ok", "timeout": 30}},
                {"id": "done", "type": "echo", "input": {"who": "{{ nodes.ok.output }}"}},
            ],
            "edges": [{"source": "nap", "target": "ok"}, {"source": "ok", "target": "done"}],
        }
    )
    client.start_workflow("approve", None, id="dag-2")
    wait_until(lambda: client.describe("dag-2")["timers"], "the nap's timer to be started")
    # Sent while the nap is (most likely) still pending: an early signal must not cut the sleep short.
    client.signal("dag-2", "ok", "alice")
    assert client.result("dag-2", timeout=30)["done"] == {"who": "alice"}

    history = client.history("dag-2")
    nap = next(e for e in history if isinstance(e, ev.TimerStarted))
    asked = nap.fire_at - nap.time
    assert asked >= 1.0 - 1e-3, f"a 1 s sleep asked to fire {asked:.3f} s on"
    fired = next(e for e in history if isinstance(e, ev.TimerFired) and e.seq == nap.seq)
    assert fired.time >= nap.fire_at, f"the nap fired {nap.fire_at - fired.time:.3f} s before its fire_at"
    after_nap = [e for e in history if e.index > fired.index]
    done = next(e for e in after_nap if isinstance(e, ev.ActivityScheduled))
    assert done.activity_type == "echo", done
    assert not [e for e in history if isinstance(e, ev.ActivityScheduled) and e.index < fired.index], (
        "a node after the sleep ran before the sleep's timer fired"
    )
    assert all(e.time >= fired.time for e in after_nap), [(e.kind, e.time - fired.time) for e in after_nap]
    assert isinstance(history[-1], ev.WorkflowCompleted) and history[-1].time >= nap.fire_at
    print(f"nap: asked {asked:.3f} s, fired {fired.time - nap.time:.3f} s after it started")


@pytest.fixture
def http_server() -> Iterator[str]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = json.dumps({"path": self.path}).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def test_builtin_io_nodes(cluster: Cluster, client: Client, tmp_path: Path, http_server: str) -> None:
    """Every I/O built-in, enabled on the worker and given its sandbox."""
    out_topic = f"out-{cluster.prefix}"  # not under the deployment's prefix: kafka.produce refuses those
    engine = cluster.engine([FLOWS])
    sandbox = {
        "LEDGERFLOW_BUILTINS": "console.log,csv.read,csv.write,file.write_text,http.request,kafka.produce",
        "LEDGERFLOW_FILE_ROOTS": str(tmp_path),
        "LEDGERFLOW_HTTP_ALLOWED_HOSTS": "127.0.0.1",
        "LEDGERFLOW_HTTP_ALLOWED_NETWORKS": "127.0.0.1/32",
        "LEDGERFLOW_PRODUCE_TOPICS": out_topic,
    }
    cluster.worker([ACTS], env=sandbox)
    engine.wait_ready()
    csv_in = tmp_path / "in.csv"
    csv_in.write_text("name,qty\napple,3\npear,5\n")
    client.register_dag(
        {
            "id": "io",
            "nodes": [
                {"id": "read", "type": "csv.read", "input": {"path": str(csv_in)}},
                {
                    "id": "write",
                    "type": "csv.write",
                    "input": {"path": str(tmp_path / "out.csv"), "rows": "{{ nodes.read.output.rows }}"},
                },
                {
                    "id": "text",
                    "type": "file.write_text",
                    "input": {
                        "path": str(tmp_path / "note.txt"),
                        "text": "rows: {{ nodes.read.output.rows[0].name }}",
                    },
                },
                {"id": "get", "type": "http.request", "input": {"url": f"{http_server}/hello", "timeout": 5}},
                {
                    "id": "publish",
                    "type": "kafka.produce",
                    "input": {
                        "topic": out_topic,
                        "key": "k",
                        "value": {"status": "{{ nodes.get.output.status }}"},
                    },
                },
                {"id": "log", "type": "console.log", "input": {"message": "done"}},
            ],
            "edges": [
                {"source": "read", "target": "write"},
                {"source": "read", "target": "text"},
                {"source": "get", "target": "publish"},
            ],
        }
    )
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    admin.create_topics([NewTopic(out_topic, 1, 1)])[out_topic].result(10)
    client.start_workflow("io", None, id="dag-io")
    result = client.result("dag-io", timeout=30)
    assert result["write"]["rows"] == 2
    assert (tmp_path / "out.csv").read_text().splitlines() == ["name,qty", "apple,3", "pear,5"]
    assert (tmp_path / "note.txt").read_text() == "rows: apple"
    assert result["get"]["status"] == 200 and result["get"]["body"] == {"path": "/hello"}
    consumer = Consumer(
        {"bootstrap.servers": cluster.bootstrap, "group.id": "t", "auto.offset.reset": "earliest"}
    )
    consumer.assign([TopicPartition(out_topic, 0, 0)])
    message = consumer.poll(10)
    consumer.close()
    assert message is not None and json.loads(message.value()) == {"status": 200}


def test_seed_io_nodes_under_the_seeds_names(cluster: Cluster, client: Client, tmp_path: Path) -> None:
    """The seed's node types by its own names, on a worker that enables them: kafka.consumer
    → data.transform → kafka.producer, file.csv → file.transfer and file.text, sql.query
    (SQLite), random.numbers → filter.condition.
    The consumer node's group commits once its result is recorded: a second run reads only what
    came after the first."""
    tag = cluster.prefix.rstrip(".")
    feed, out = f"seed-in-{tag}", f"seed-out-{tag}"  # outside the deployment's prefix
    database = tmp_path / "shop.db"
    with sqlite3.connect(database) as db:
        db.execute("CREATE TABLE orders (id INTEGER, total REAL)")
        db.executemany("INSERT INTO orders VALUES (?, ?)", [(1, 5.0), (2, 50.0), (3, 500.0)])
    engine = cluster.engine([FLOWS])
    cluster.worker(
        [ACTS],
        env={
            "LEDGERFLOW_BUILTINS": "kafka.consumer,kafka.producer,file.csv,file.transfer,file.text,sql.query,"
            "data.transform,random.numbers,filter.condition",
            "LEDGERFLOW_CONSUME_TOPICS": feed,
            "LEDGERFLOW_PRODUCE_TOPICS": out,
            "LEDGERFLOW_FILE_ROOTS": str(tmp_path),
            "LEDGERFLOW_SQL_DATABASES": json.dumps({"shop": f"sqlite:///{database}"}),
        },
    )
    engine.wait_ready()
    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    for future in admin.create_topics([NewTopic(feed, 2, 1), NewTopic(out, 1, 1)]).values():
        future.result(10)
    producer = Producer({"bootstrap.servers": cluster.bootstrap})
    for n in range(3):
        producer.produce(feed, json.dumps({"sku": f"s{n}", "qty": n}).encode(), key=f"s{n}".encode())
    assert producer.flush(10) == 0
    (tmp_path / "stock.csv").write_text("sku,qty\ns0,1\ns1,2\n")
    client.register_dag(
        {
            "id": "seed-io",
            "nodes": [
                {
                    "id": "read",
                    "type": "kafka.consumer",
                    "input": {"topic": feed, "max_records": 10, "timeout": 3},
                },
                {
                    "id": "double",
                    "type": "data.transform",
                    "input": {
                        "items": "{{ nodes.read.output.items }}",
                        "compute": {"qty": "item['qty'] * 2"},
                    },
                },
                {
                    "id": "publish",
                    "type": "kafka.producer",
                    "input": {"topic": out, "key": "batch", "value": "{{ nodes.double.output.items }}"},
                },
                {"id": "stock", "type": "file.csv", "input": {"path": str(tmp_path / "stock.csv")}},
                {
                    "id": "archive",
                    "type": "file.transfer",
                    "input": {"source": str(tmp_path / "stock.csv"), "target": str(tmp_path / "archive.csv")},
                },
                {
                    "id": "note",
                    "type": "file.text",
                    "input": {
                        "path": str(tmp_path / "note.txt"),
                        "text": "{{ nodes.stock.output.items[1].sku }}",
                    },
                },
                {"id": "dice", "type": "random.numbers", "input": {"count": 20, "low": 1, "high": 6}},
                {
                    "id": "evens",
                    "type": "filter.condition",
                    "input": {"items": "{{ nodes.dice.output.numbers }}", "condition": "item % 2 == 0"},
                },
                {
                    "id": "big",
                    "type": "sql.query",
                    "input": {
                        "database": "shop",
                        "query": "SELECT id FROM orders WHERE total > :least ORDER BY id",
                        "parameters": {"least": 10},
                    },
                },
            ],
            "edges": [
                {"source": "dice", "target": "evens"},
                {"source": "read", "target": "double"},
                {"source": "double", "target": "publish"},
                {"source": "stock", "target": "archive"},
                {"source": "stock", "target": "note"},
            ],
        }
    )
    client.start_workflow("seed-io", None, id="seed-io-1")
    first = client.result("seed-io-1", timeout=60)
    assert sorted(item["qty"] for item in first["double"]["items"]) == [0, 2, 4]
    assert first["read"]["count"] == 3 and first["read"]["group"] == "dag.seed-io.read"
    assert first["stock"]["items"] == [{"sku": "s0", "qty": "1"}, {"sku": "s1", "qty": "2"}]
    assert (tmp_path / "archive.csv").read_text() == (tmp_path / "stock.csv").read_text()
    assert first["archive"]["sha256"] and (tmp_path / "note.txt").read_text() == "s1"
    assert first["big"]["items"] == [{"id": 2}, {"id": 3}]
    dice = first["dice"]["numbers"]
    assert len(dice) == 20 and set(dice) <= set(range(1, 7))
    assert first["evens"]["items"] == [n for n in dice if n % 2 == 0]
    history = client.history("seed-io-1")
    scheduled = {e.activity_type: e for e in history if isinstance(e, ev.ActivityScheduled)}
    done = next(
        e for e in history if isinstance(e, ev.ActivityCompleted) and e.seq == scheduled["kafka.consumer"].seq
    )
    commit = scheduled["kafka.consumer.commit"]
    assert commit.index > done.index, "the group committed before the batch was recorded"
    assert_invariants(client, "seed-io-1")

    group = f"{cluster.prefix}consumer.dag.seed-io.read"  # the node's own, one of the deployment's
    consumer = Consumer({"bootstrap.servers": cluster.bootstrap, "group.id": group})
    committed = consumer.committed([TopicPartition(feed, 0), TopicPartition(feed, 1)], timeout=10)
    assert sum(tp.offset for tp in committed if tp.offset >= 0) == 3
    consumer.assign([TopicPartition(out, 0, 0)])
    message = consumer.poll(10)
    consumer.close()
    assert message is not None and sorted(i["qty"] for i in json.loads(message.value())) == [0, 2, 4]

    producer.produce(feed, json.dumps({"sku": "late", "qty": 10}).encode(), key=b"late")
    assert producer.flush(10) == 0
    client.start_workflow("seed-io", None, id="seed-io-2")
    second = client.result("seed-io-2", timeout=60)
    assert second["read"]["items"] == [{"sku": "late", "qty": 10}]


def test_large_node_results_travel_by_claim_check(running: Cluster, client: Client) -> None:
    """100,000 numbers (about 600 KB, over the 256 KiB payload limit) pass from node to node
    through the claims topic: the history holds references, each node sees the numbers."""
    client.register_dag(
        {
            "id": "big-numbers",
            "nodes": [
                {"id": "seq", "type": "sequence.numbers", "input": {"stop": 100_000}},
                {
                    "id": "double",
                    "type": "map.transform",
                    "input": {"items": "{{ nodes.seq.output.numbers }}", "expression": "item * 2"},
                },
                {
                    "id": "sum",
                    "type": "aggregate.sum",
                    "input": {"items": "{{ nodes.double.output['items'] }}"},
                },
            ],
            "edges": [{"source": "seq", "target": "double"}, {"source": "double", "target": "sum"}],
        }
    )
    client.start_workflow("big-numbers", None, id="dag-big")
    result = client.result("dag-big", timeout=60)
    assert result["sum"] == {"sum": 2 * sum(range(100_000))}
    assert set(result["seq"]["numbers"]) == {"$claim"} and set(result["double"]["items"]) == {"$claim"}
    history = client.history("dag-big")
    largest = max(len(e.model_dump_json()) for e in history)
    assert largest < 64 * 1024, f"a history event of {largest} bytes"
    assert_invariants(client, "dag-big")
