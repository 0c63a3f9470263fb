"""The ``ledgerflow`` CLI against a real engine, and Kafka-native ingress with Kafka's own tools."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, Message, TopicPartition

from ledgerflow import Client
from ledgerflow.local.kafka.libs import java_tool_command
from ledgerflow.local.processes import Cluster
from ledgerflow.schemas.commands import StartWorkflow
from tests.fixtures import FLOWS, ROOT, assert_invariants
from tests.waits import wait_until

pytestmark = pytest.mark.kafka


def cli(
    cluster: Cluster, command: str, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``ledgerflow COMMAND --bootstrap ... ARGS`` (COMMAND may be two words)."""
    token = {"LEDGERFLOW_ENGINE_TOKEN_FILE": str(cluster.engine_token_file)}
    full_env = {**os.environ, "PYTHONPATH": ROOT, **token, **(env or {})}
    kafka = [
        "--bootstrap",
        cluster.bootstrap,
        "--prefix",
        cluster.prefix,
        "--partitions",
        str(cluster.partitions),
    ]
    argv = [sys.executable, "-m", "ledgerflow.cli", *command.split(), *kafka, *args]
    return subprocess.run(argv, capture_output=True, text=True, env=full_env, timeout=120, check=False)


def cli_json(cluster: Cluster, command: str, *args: str) -> Any:
    result = cli(cluster, command, *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_start_describe_history_list_and_cluster(running: Cluster, client: Client) -> None:
    started = cli(running, "start", "ThreeSteps", "--id", "cli-1", "--input", "5", "--wait", "--json")
    assert started.returncode == 0, started.stderr
    assert json.loads(started.stdout)["result"] == 8
    described = cli_json(running, "describe", "cli-1")
    assert described["status"] == "COMPLETED" and described["history_length"] == 8
    history = cli_json(running, "history", "cli-1")
    assert [e["kind"] for e in history][-1] == "workflow_completed"
    plain = cli(running, "history", "cli-1")  # piped: plain tab-separated text, no box drawing
    assert "activity_scheduled" in plain.stdout and "┃" not in plain.stdout
    listed = cli_json(running, "list", "--status", "COMPLETED")
    assert [r["workflow_id"] for r in listed] == ["cli-1"]
    shards = cli_json(running, "cluster shards")
    assert sorted(r["partition"] for r in shards) == list(range(running.partitions))
    bad = cli(running, "start", "ThreeSteps", "--id", "x", "--input", "{nope")
    assert bad.returncode != 0 and "--input" in bad.stderr


def test_list_reads_past_one_page(running: Cluster, client: Client) -> None:
    """A page holds 1,000 runs (PAGE_LIMIT); ``list --limit`` over it reads page after page."""
    ids = [f"many-{i:04d}" for i in range(1010)]
    for workflow_id in ids:
        client.send(workflow_id, StartWorkflow(workflow_id=workflow_id, workflow_type="SignalCounter"))
    wait_until(
        lambda: len(client.list_workflows(workflow_type="SignalCounter", limit=1000, after="many-1000")) == 9,
        "the last of 1,010 starts to be applied",
    )
    listed = cli_json(running, "list", "--type", "SignalCounter", "--limit", "1005")
    assert [r["workflow_id"] for r in listed] == ids[:1005]
    rest = cli_json(running, "list", "--type", "SignalCounter", "--limit", "1005", "--after", ids[1004])
    assert [r["workflow_id"] for r in rest] == ids[1005:]
    zero = cli(running, "list", "--limit", "0")
    assert zero.returncode != 0 and "--limit" in zero.stderr, zero.stderr


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["start", "ThreeSteps", "--id", "team/a/b"], "workflow id 'team/a/b'"),
        (["signal", "a\x01b", "go"], "workflow id 'a\\x01b'"),
        (["cancel", "w" * 257, "--terminate"], "workflow id 'wwww"),
        (["history", "ok", "--run-id", "R/1"], "run id 'R/1'"),
    ],
)
def test_ids_breaking_the_id_rule_are_refused_before_anything_is_sent(
    cluster: Cluster, args: list[str], named: str
) -> None:
    refused = cli(cluster, args[0], *args[1:])
    assert refused.returncode == 1, refused.stdout
    assert f"Error: {named}" in refused.stderr and "an id is 1 to 256 characters" in refused.stderr
    assert "Traceback" not in refused.stderr, refused.stderr


def test_replay_passes_unchanged_code_and_names_the_divergence_of_changed_code(
    running: Cluster, client: Client, tmp_path: Path
) -> None:
    client.start_workflow("Versioned", 1, id="replay-me")
    client.signal("replay-me", "go")
    assert client.result("replay-me", timeout=30) == 3
    same = cli(running, "replay", "replay-me", "--workflows", FLOWS)
    assert same.returncode == 0, same.stderr
    assert "deterministic" in same.stdout
    export = tmp_path / "history.json"
    assert cli(running, "history", "replay-me", "--export", str(export)).returncode == 0
    changed = cli(
        running, "replay", "--file", str(export), "--workflows", FLOWS, env={"LEDGERFLOW_TEST_VERSION": "2"}
    )
    assert changed.returncode == 1
    assert "NOT deterministic" in changed.stdout
    assert "'add_one'" in changed.stdout and "'double'" in changed.stdout  # both sides shown


def test_reset_takes_a_run_back_to_an_event_and_refuses_a_point_it_cannot_go_back_to(
    running: Cluster, client: Client
) -> None:
    client.start_workflow("ThreeSteps", 1, id="reset-me")
    assert client.result("reset-me", timeout=30) == 4
    old_run = client.describe("reset-me")["run_id"]
    refused = cli(running, "reset", "reset-me", "--to", "4")
    assert refused.returncode == 1 and "event #4 is activity_scheduled" in refused.stderr, refused.stderr
    done = cli(running, "reset", "reset-me", "--to", "5", "--reason", "rerun step 2")
    assert done.returncode == 0, done.stderr
    new_run = client.describe("reset-me")["run_id"]
    assert f"reset-me reset to event #5: new run {new_run}" in done.stdout and new_run != old_run
    assert client.result("reset-me", timeout=30) == 4
    assert_invariants(client, "reset-me")


def test_workflow_started_by_kafkas_console_producer(running: Cluster, client: Client) -> None:
    record = json.dumps(
        {"kind": "start_workflow", "workflow_id": "from-java", "workflow_type": "ThreeSteps", "input": 40}
    )
    argv = java_tool_command(
        "org.apache.kafka.tools.ConsoleProducer",
        "--bootstrap-server", running.bootstrap,
        "--topic", f"{running.prefix}inbox",
        "--property", "parse.key=true",
        "--property", "key.separator=|",
    )  # fmt: skip
    lines = f"from-java|{record}\nbad-java|this is not json\n"
    result = subprocess.run(argv, input=lines.encode(), capture_output=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    assert client.result("from-java", timeout=30) == 43
    # the line that is not a command went to the dead-letter topic, with the reason
    bad = dead_letter(running, b"bad-java")
    assert bad.value() == b"this is not json"
    headers = dict(bad.headers() or [])
    assert b"invalid inbox record" in headers["ledgerflow.dlq.reason"], headers
    assert headers["ledgerflow.dlq.source"].startswith(f"{running.prefix}inbox/".encode()), headers


def dead_letter(cluster: Cluster, key: bytes, timeout: float = 30.0) -> Message:
    """The record with ``key`` on the cluster's dead-letter topic; fails if none comes in time."""
    consumer = Consumer(
        {"bootstrap.servers": cluster.bootstrap, "group.id": "dlq", "isolation.level": "read_committed"}
    )
    consumer.assign([TopicPartition(f"{cluster.prefix}inbox.dlq", p, 0) for p in range(cluster.partitions)])
    seen: list[bytes | None] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            message = consumer.poll(0.2)
            if message is None or message.error():
                continue
            if message.key() == key:
                return message
            seen.append(message.key())
    finally:
        consumer.close()
    raise AssertionError(f"no dead letter with key {key!r} within {timeout} s (saw keys {seen})")
