"""The README's first command: `ledgerflow dev` runs the whole stack and a sample end to end."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from ledgerflow.local.kafka import LocalKafka


def test_dev_once_runs_kafka_engine_worker_gateway_and_the_samples(tmp_path: Path) -> None:
    data = tmp_path / "dev"
    result = subprocess.run(
        [sys.executable, "-m", "ledgerflow.cli", "dev", "--once", "--data-dir", str(data)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "gateway at http://127.0.0.1:" in output and "the gateway is OPEN" in output
    assert "ProcessOrder" in output and "completed in" in output
    assert "'shipment': 'shipped-order-" in output
    assert "DAG sample-fan-out" in output and "{'sum': 305}" in output  # squares of 0..9 + evens of 0..9
    assert not LocalKafka(data / "kafka").status().running, "dev --once left Kafka running"
