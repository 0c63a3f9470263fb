"""Payload encryption end to end on the real broker (issue 13, part 5).

With the codec key on the Client, the gateway, the engine and the worker, a code workflow (an
activity with arguments and a result, a failure's details, a signal, a child, a query) and a
DAG run; every record of every topic of the deployment is then read raw, with a plain consumer
(read_uncommitted: aborted writes too), and none holds a secret in clear; the Client and the
gateway (with a read-only API key) show them in clear. A component without the key fails by
name, and payloads encoded before a key rotation still decode after it.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import Consumer, TopicPartition

from ledgerflow.api.keys import entry_line, new_key
from ledgerflow.api.scopes import Scope
from ledgerflow.codec import CodecKeyNeeded
from ledgerflow.codec.keyfile import read_key_file, rotate_key_file, write_new_key_file
from ledgerflow.engine_token import bearer
from ledgerflow.errors import StartRejectedError
from ledgerflow.local.processes import Cluster
from ledgerflow.sdk.definition import WorkflowRegistry
from ledgerflow.secretfiles import write_private
from ledgerflow.testing.invariants import check_workflow
from tests.fixtures import ROOT, dead_letters
from tests.testapps.sealed import sealed_dag
from tests.waits import wait_until

pytestmark = [pytest.mark.kafka]

SEALED = "tests.testapps.sealed"


def secret(name: str) -> str:
    return f"SECRET-{name}-{uuid.uuid4().hex}"


def codec_env(keys: Path) -> dict[str, str]:
    return {"LEDGERFLOW_CODEC_KEYS_FILE": str(keys)}


def raw_records(cluster: Cluster) -> dict[str, list[bytes]]:
    """Every record (key, value and headers as bytes) of every topic under the cluster's prefix,
    aborted transactions' writes included."""
    consumer = Consumer(
        {
            "bootstrap.servers": cluster.bootstrap,
            "group.id": f"raw-{uuid.uuid4().hex}",
            "isolation.level": "read_uncommitted",
            "enable.auto.commit": False,
        }
    )
    topics = {
        name: sorted(meta.partitions)
        for name, meta in consumer.list_topics(timeout=10).topics.items()
        if name.startswith(cluster.prefix)
    }
    ends = {
        (topic, p): consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
        for topic, partitions in topics.items()
        for p in partitions
    }
    assigned = [TopicPartition(topic, p, 0) for (topic, p), end in ends.items() if end > 0]
    consumer.assign(assigned)
    found: dict[str, list[bytes]] = {topic: [] for topic in topics}
    deadline = time.monotonic() + 60
    while True:
        message = consumer.poll(0.5)
        if message is None:
            # Transaction markers are never delivered: a partition is read once its position
            # (which steps over them) is at its end.
            behind = [tp for tp in consumer.position(assigned) if tp.offset < ends[(tp.topic, tp.partition)]]
            if not behind:
                break
            assert time.monotonic() < deadline, f"still to read: {behind}"
            continue
        if message.error():
            continue
        headers = b"".join(k.encode() + (v or b"") for k, v in message.headers() or [])
        found[message.topic()].append((message.key() or b"") + (message.value() or b"") + headers)
    consumer.close()
    return found


def reader_and_writer_keys(cluster: Cluster) -> tuple[Path, str, str]:
    """A gateway keys file with a read-only key and a write key; the file and both keys."""
    reader, reader_entry = new_key("reader", [Scope.READ])
    writer, writer_entry = new_key("writer", [Scope.READ, Scope.WRITE])
    path = cluster.secrets_dir / "codec-api-keys.jsonl"
    write_private(path, f"{entry_line(reader_entry)}\n{entry_line(writer_entry)}\n")
    return path, reader, writer


def test_every_topic_holds_ciphertext_and_key_holders_see_clear_text(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    keys = tmp_path / "codec-keys.json"
    write_new_key_file(keys)
    cluster = Cluster(
        kafka_bootstrap, topic_prefix, tmp_path, partitions=4, pythonpath=[ROOT], env=codec_env(keys)
    )
    api_keys, reader, writer = reader_and_writer_keys(cluster)
    try:
        engine = cluster.engine([SEALED])
        cluster.worker([SEALED])
        gateway = cluster.gateway(env={"LEDGERFLOW_API_KEYS_FILE": str(api_keys)})
        engine.wait_ready()
        gateway.wait_ready()
        secrets = {
            name: secret(name) for name in ("input", "signal", "query", "dag", "rest-input", "rest-signal")
        }
        api = httpx.Client(base_url=f"{gateway.url}/api/v1", timeout=10)
        with cluster.client(codec=read_key_file(keys)) as client:
            # A code workflow through the Client.
            client.start_workflow("SealedOrder", {"secret": secrets["input"]}, id="sealed-1")
            client.signal("sealed-1", "approve", {"ok": secrets["signal"]})
            assert client.result("sealed-1", timeout=60) == {
                "sealed": f"sealed:{secrets['input']}",
                "refused": {"secret": secrets["input"]},
                "approval": {"ok": secrets["signal"]},
                "child": f"child saw {secrets['input']}",
            }
            expected = f"{secrets['query']}{ {'ok': secrets['signal']} }"
            assert client.query("sealed-1", "approval_seen", secrets["query"]) == expected
            assert not check_workflow(client, "sealed-1", WorkflowRegistry.from_modules([SEALED]))

            # A code workflow and a DAG through the gateway's REST API.
            client.register_dag(sealed_dag("sealed-dag"))
            started = api.post(
                "/workflows/sealed-dag/execute",
                json={"workflowId": "dag-1", "input": {"secret": secrets["dag"]}},
                headers=bearer(writer),
            )
            assert started.status_code == 202, started.text
            assert client.result("dag-1", timeout=60) == {
                "a": {"text": f"sealed:{secrets['dag']}"},
                "b": {"again": f"sealed:sealed:{secrets['dag']}"},
            }
            body = {"workflowId": "sealed-2", "input": {"secret": secrets["rest-input"]}}
            started = api.post("/workflows/SealedOrder/execute", json=body, headers=bearer(writer))
            assert started.status_code == 202, started.text
            signal = {"name": "approve", "payload": secrets["rest-signal"]}
            assert (
                api.post("/workflows/sealed-2/signal", json=signal, headers=bearer(writer)).status_code == 202
            )
            assert client.result("sealed-2", timeout=60)["approval"] == secrets["rest-signal"]

            # Without the key, the Client refuses to pass ciphertext on as values.
            with cluster.client(codec=None) as keyless:
                with pytest.raises(CodecKeyNeeded, match="needs a codec key"):
                    keyless.result("sealed-1", timeout=5)
                with pytest.raises(CodecKeyNeeded):
                    keyless.history("dag-1")

        # The gateway, with a read-only key, shows clear text.
        status = api.get("/workflows/sealed-1/status", headers=bearer(reader))
        assert status.status_code == 200, status.text
        assert status.json()["result"]["approval"] == {"ok": secrets["signal"]}
        history = api.get("/workflows/dag-1/history", headers=bearer(reader)).json()
        assert history["events"][0]["input"] == {"secret": secrets["dag"]}
        assert api.get("/workflows/sealed-2/status", headers=bearer(reader)).json()["input"] == {
            "secret": secrets["rest-input"]
        }
        # ... while the engine that owns them holds envelopes.
        owned = engine.get("/internal/workflows/sealed-1").text
        assert "_ledgerflow_codec" in owned and secrets["input"] not in owned

        records = raw_records(cluster)
        for name in ("inbox", "changelog", "events", "tasks.default"):
            assert records[f"{topic_prefix}{name}"], f"nothing read from {name}"
        everything = b"\n".join(b"\n".join(values) for values in records.values())
        # The read sees the records' contents: ids, signal names and envelopes are there.
        assert b'"name":"approve"' in everything and b"_ledgerflow_codec" in everything
        for name, value in secrets.items():
            leaks = [topic for topic, values in records.items() if any(value.encode() in v for v in values)]
            assert not leaks, f"the {name} secret is in clear text on {leaks}"
    finally:
        cluster.stop_all()


def test_a_worker_without_the_key_fails_attempts_by_name_until_one_with_it_runs_them(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    keys = tmp_path / "codec-keys.json"
    write_new_key_file(keys)
    cluster = Cluster(kafka_bootstrap, topic_prefix, tmp_path, partitions=4, pythonpath=[ROOT])
    try:
        engine = cluster.engine([SEALED], env=codec_env(keys))
        keyless = cluster.worker([SEALED], name="keyless")
        engine.wait_ready()
        with cluster.client(codec=read_key_file(keys)) as client:
            client.start_workflow("SealedOrder", {"secret": secret("input")}, id="w-1")

            def failure_of_first_activity() -> dict[str, Any] | None:
                pending = client.describe("w-1")["activities"].get("1") or {}
                return pending.get("last_failure")

            failure = wait_until(failure_of_first_activity, "the keyless worker's failed attempt")
            assert failure["type"] == "CodecKeyNeeded"
            assert "LEDGERFLOW_CODEC_KEYS_FILE" in failure["message"]
            keyless.stop()
            cluster.worker([SEALED], name="keyed", env=codec_env(keys))
            client.signal("w-1", "approve", "yes")
            assert client.result("w-1", timeout=60)["approval"] == "yes"
    finally:
        cluster.stop_all()


def test_an_engine_without_the_key_refuses_an_encoded_start_by_name(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    keys = tmp_path / "codec-keys.json"
    write_new_key_file(keys)
    cluster = Cluster(kafka_bootstrap, topic_prefix, tmp_path, partitions=4, pythonpath=[ROOT])
    try:
        cluster.engine([SEALED]).wait_ready()
        rejected = pytest.raises(StartRejectedError, match=r"CodecKeyNeeded: .*needs a codec key")
        with cluster.client(codec=read_key_file(keys)) as client, rejected:
            client.start_workflow("SealedOrder", {"secret": secret("input")}, id="e-1")
        reason = dead_letters(cluster, {b"e-1"})[b"e-1"]["ledgerflow.dlq.reason"].decode()
        assert reason.startswith("CodecKeyNeeded: ") and "needs a codec key" in reason
    finally:
        cluster.stop_all()


def test_payloads_encoded_before_a_key_rotation_decode_after_it(
    kafka_bootstrap: str, topic_prefix: str, tmp_path: Path
) -> None:
    keys = tmp_path / "codec-keys.json"
    old_key = write_new_key_file(keys)
    cluster = Cluster(
        kafka_bootstrap, topic_prefix, tmp_path, partitions=4, pythonpath=[ROOT], env=codec_env(keys)
    )
    try:
        engine = cluster.engine([SEALED])
        worker = cluster.worker([SEALED])
        engine.wait_ready()
        value = secret("input")
        with cluster.client(codec=read_key_file(keys)) as client:
            client.start_workflow("SealedOrder", {"secret": value}, id="r-1")
            wait_until(
                lambda: any(e.kind == "activity_failed" for e in client.history("r-1")),
                "the run to wait for its signal",
            )
        new_key = rotate_key_file(keys)
        # Restarted on the rotated file: the engine rebuilds the run from its old-key history.
        cluster.restart(engine).wait_ready()
        cluster.restart(worker)
        with cluster.client(codec=read_key_file(keys)) as client:
            client.signal("r-1", "approve", "after rotation")
            result = client.result("r-1", timeout=60)
        assert result["sealed"] == f"sealed:{value}" and result["approval"] == "after rotation"
        events = engine.get("/internal/workflows/r-1/history", params={"limit": 1000}).json()["events"]
        started, completed = events[0], events[-1]
        assert started["input"]["kid"] == old_key and completed["result"]["kid"] == new_key
    finally:
        cluster.stop_all()
