"""Built-ins through a real engine and real workers: a worker runs only those it enables.

Two workers: one on the default queue with the default built-ins (the pure ones), one on the
``io`` queue with ``file.write_text`` enabled and a file root. The same DAG node fails on the
first, once and for good, with the reason naming the setting; the engine goes on, and the node
routed to the second worker writes its file.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ledgerflow import Client, WorkflowFailedError
from ledgerflow.local.processes import Cluster
from ledgerflow.schemas import events as ev
from tests.fixtures import FLOWS

pytestmark = pytest.mark.kafka


def writing_dag(definition_id: str, path: Path, queue: str) -> dict[str, Any]:
    return {
        "id": definition_id,
        "nodes": [
            {"id": "count", "type": "sequence.numbers", "input": {"stop": 3}},
            {
                "id": "write",
                "type": "file.write_text",
                "queue": queue,
                "retry": {"maximum_attempts": 5, "initial_interval": 0.1},
                "input": {"path": str(path), "text": "{{ nodes.count.output.numbers }}"},
            },
        ],
        "edges": [{"source": "count", "target": "write"}],
    }


def test_a_disabled_builtin_fails_its_node_and_an_enabled_one_runs(
    cluster: Cluster, client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "files"
    root.mkdir()
    for name in ("LEDGERFLOW_BUILTINS", "LEDGERFLOW_FILE_ROOTS"):
        monkeypatch.delenv(name, raising=False)  # the default worker gets the defaults
    engine = cluster.engine([FLOWS])
    cluster.worker([], name="default")
    io_env = {"LEDGERFLOW_BUILTINS": "sequence.numbers,file.write_text", "LEDGERFLOW_FILE_ROOTS": str(root)}
    cluster.worker([], queue="io", env=io_env, name="io")
    engine.wait_ready()

    client.register_dag(writing_dag("refused", root / "refused.txt", "default"))
    client.start_workflow("refused", None, id="refused-1")
    with pytest.raises(WorkflowFailedError) as ended:
        client.result("refused-1", timeout=60)
    assert ended.value.failure.type == "ActivityError", ended.value.failure
    failure = ended.value.failure.cause  # the node's activity failure, which the run let escape
    assert failure is not None and failure.type == "BuiltinDisabled" and failure.non_retryable, failure
    assert "file.write_text refused: not enabled on this worker" in failure.message
    assert "LEDGERFLOW_BUILTINS" in failure.message
    history = client.history("refused-1")
    scheduled = [e.activity_type for e in history if isinstance(e, ev.ActivityScheduled)]
    assert scheduled == ["sequence.numbers", "file.write_text"]
    [failed] = [e for e in history if isinstance(e, ev.ActivityFailed)]
    assert failed.attempt == 1, "a disabled built-in was retried"
    assert not (root / "refused.txt").exists()

    client.register_dag(writing_dag("allowed", root / "allowed.txt", "io"))
    client.start_workflow("allowed", None, id="allowed-1")
    assert client.result("allowed-1", timeout=60)["write"] == {"path": str(root / "allowed.txt"), "bytes": 9}
    assert (root / "allowed.txt").read_text() == "[0, 1, 2]"
