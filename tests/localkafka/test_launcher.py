"""The local Kafka launcher: idempotent up, truthful status, down leaves nothing behind.

These tests start brokers of their own (not the session's); conftest runs them
before the session broker starts.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from ledgerflow.local.kafka import KafkaStartError, LocalKafka, LocalKafkaError

LEDGERFLOW = str(Path(sys.executable).with_name("ledgerflow"))


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # still in the process table: only acceptable as a zombie
    stat = Path(f"/proc/{pid}/stat")
    return stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [LEDGERFLOW, "kafka", *args],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        env=env,
    )


def test_up_is_idempotent_and_down_stops_exactly_its_pids(tmp_path: Path) -> None:
    kafka = LocalKafka(tmp_path / "kafka")
    assert kafka.status().state == "absent"
    try:
        bootstrap = kafka.up()
        pids = kafka.broker_pids()
        assert len(pids) == 1

        assert kafka.up() == bootstrap  # harmless when already running
        assert kafka.broker_pids() == pids

        # a second handle on the same folder sees the same cluster
        other = LocalKafka(tmp_path / "kafka")
        assert other.up() == bootstrap
        status = other.status()
        assert status.running and status.state == "running"
        assert status.bootstrap == bootstrap
        assert [b.pid for b in status.brokers] == pids
        assert all(b.alive for b in status.brokers)
        assert status.brokers[0].log_path.is_file()

        metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
        assert len(metadata.brokers) == 1
    finally:
        kafka.down()

    status = kafka.status()
    assert not status.running
    assert status.state == "stopped"
    assert status.bootstrap is None
    assert kafka.broker_pids() == []
    assert all(_gone(pid) for pid in pids)
    assert not list((tmp_path / "kafka").glob("*.pid"))


def test_status_and_down_are_not_fooled_by_pid_reuse(tmp_path: Path) -> None:
    """A PID file naming some other live process (here: this test) is not a broker."""
    data_dir = tmp_path / "kafka"
    data_dir.mkdir()
    (data_dir / "ledgerflow-kafka.json").write_text(
        json.dumps(
            {
                "cluster_id": "AAAAAAAAAAAAAAAAAAAAAA",
                "nodes": [{"index": 0, "port": 1, "controller_port": 2}],
            }
        )
    )
    (data_dir / "broker-1.pid").write_text(f"{os.getpid()}\n")
    kafka = LocalKafka(data_dir)
    status = kafka.status()
    assert status.state == "stopped"
    assert status.brokers[0].pid == os.getpid()
    assert not status.brokers[0].alive
    kafka.down()  # must not signal us
    assert not (data_dir / "broker-1.pid").exists()


def test_cli_up_status_down(tmp_path: Path) -> None:
    data_dir = str(tmp_path / "kafka")
    try:
        up = _cli("up", "--data-dir", data_dir)
        assert up.returncode == 0, up.stderr
        bootstrap = up.stdout.strip().splitlines()[-1]
        assert bootstrap.startswith("127.0.0.1:")
        assert f"export LEDGERFLOW_BOOTSTRAP={bootstrap}" in up.stderr

        again = _cli("up", "--data-dir", data_dir)
        assert again.returncode == 0, again.stderr
        assert again.stdout.strip().splitlines()[-1] == bootstrap

        status = _cli("status", "--data-dir", data_dir, "--json")
        assert status.returncode == 0, status.stderr
        report = json.loads(status.stdout)
        assert report["running"] is True
        assert report["bootstrap"] == bootstrap
        assert report["brokers"][0]["alive"] is True

        human = _cli("status", "--data-dir", data_dir)
        assert "running" in human.stdout
    finally:
        down = _cli("down", "--data-dir", data_dir)
    assert down.returncode == 0, down.stderr
    report = json.loads(_cli("status", "--data-dir", data_dir, "--json").stdout)
    assert report["running"] is False
    assert report["state"] == "stopped"
    assert LocalKafka(data_dir).broker_pids() == []


def _env_with_path(path: str, tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in {"JAVA_HOME", "KAFKA_HOME"}}
    env["PATH"] = path
    env["LEDGERFLOW_LOCAL_KAFKA_CACHE"] = str(tmp_path / "empty-cache")  # force a download
    return env


def test_missing_java_is_one_clear_line(tmp_path: Path) -> None:
    result = _cli("up", "--data-dir", str(tmp_path / "k"), env=_env_with_path("", tmp_path))
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: java not found")
    assert "install" in lines[0]


def test_missing_maven_is_one_clear_line(tmp_path: Path) -> None:
    java = subprocess.run(["which", "java"], capture_output=True, text=True, check=False)
    if java.returncode != 0:
        pytest.skip("no java on this machine")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "java").symlink_to(java.stdout.strip())
    env = _env_with_path(str(bin_dir), tmp_path)
    result = _cli("up", "--data-dir", str(tmp_path / "k"), env=env)
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: mvn not found")
    assert "KAFKA_HOME" in last


def test_failed_start_is_one_line_and_leaves_no_process(tmp_path: Path) -> None:
    kafka = LocalKafka(tmp_path / "kafka", heap="not-a-size")  # the JVM refuses to start
    with pytest.raises(KafkaStartError) as caught:
        kafka.up()
    message = str(caught.value)
    assert "\n" not in message
    assert "broker 1 exited during start" in message
    assert "Invalid maximum heap size" in message
    assert str(kafka.log_path(0).parent) in message
    assert kafka.status().state == "stopped"
    assert not list((tmp_path / "kafka").glob("*.pid"))


def test_port_in_use_is_refused_up_front(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(LocalKafkaError, match=f"port {port} is in use"):
            LocalKafka(tmp_path / "kafka", port=port).up()
