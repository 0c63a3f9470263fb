"""Built-ins are opt-in per worker: the pure ones by default, the I/O ones once named."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import click
import pytest

from ledgerflow import activity
from ledgerflow.api.settings import GatewaySettings
from ledgerflow.api.state import known_node_types
from ledgerflow.cli.run import builtin_settings_from
from ledgerflow.config import Settings
from ledgerflow.dag.node_types import ALL_BUILTINS as NAMES
from ledgerflow.dag.node_types import IO_BUILTINS, PURE_BUILTINS
from ledgerflow.executors.builtins import worker_builtins
from ledgerflow.executors.claims import ClaimStore
from ledgerflow.executors.runner import AttemptRunner
from ledgerflow.executors.sandbox.settings import BuiltinSettings
from ledgerflow.schemas.commands import TaskCompleted, TaskFailed
from ledgerflow.schemas.tasks import ActivityTask


def attempt(
    definitions: dict[str, activity.ActivityDefinition], name: str, input: object
) -> TaskCompleted | TaskFailed:
    """The outcome a worker with ``definitions`` reports for one task of built-in ``name``."""
    task = ActivityTask(
        workflow_id="w", run_id="r", seq=1, attempt=1, activity_type=name, args=[input], scheduled_at=0.0
    )
    reported: list[TaskCompleted | TaskFailed] = []
    ctx = activity.AttemptContext(info=activity.Info("w", "r", name, 1, 1, None), heartbeat=lambda _: None)
    with ThreadPoolExecutor(1) as threads:
        asyncio.run(AttemptRunner(definitions, threads).run(task, ctx, reported.append))
    [outcome] = reported
    return outcome


def test_the_default_is_the_pure_builtins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEDGERFLOW_BUILTINS", raising=False)
    assert BuiltinSettings().builtins == PURE_BUILTINS
    assert not PURE_BUILTINS & IO_BUILTINS
    assert {
        "echo",
        "console.log",
        "sequence.numbers",
        "filter.condition",
        "map.transform",
        "aggregate.sum",
        "random.numbers",
        "memory.collection",
        "aggregate.count",
        "data.clean",
        "data.transform",
    } == (PURE_BUILTINS)


def test_a_worker_knows_every_builtin_enabled_or_not() -> None:
    # and the commit the DAG interpreter runs after a kafka.consumer node (no DAG may name it)
    known = set(worker_builtins(BuiltinSettings.model_validate({}), Settings()))
    assert known == NAMES | {"kafka.consumer.commit"}


def test_the_gateway_accepts_every_builtin_as_a_node_type() -> None:
    """A worker decides what it runs; the gateway only checks that a node names something real."""
    assert known_node_types(GatewaySettings.model_validate({})) >= NAMES


def test_a_disabled_builtin_fails_its_task_without_running(tmp_path: Path) -> None:
    sandbox = BuiltinSettings.model_validate({"file_roots": [tmp_path]})  # roots set, built-in not enabled
    outcome = attempt(
        worker_builtins(sandbox, Settings()), "file.write_text", {"path": f"{tmp_path}/a", "text": "x"}
    )
    assert isinstance(outcome, TaskFailed)
    assert outcome.failure.type == "BuiltinDisabled" and outcome.failure.non_retryable
    assert "file.write_text refused: not enabled on this worker" in outcome.failure.message
    assert "LEDGERFLOW_BUILTINS" in outcome.failure.message and "--builtins" in outcome.failure.message
    assert not (tmp_path / "a").exists()


def test_a_pure_builtin_can_be_disabled_too() -> None:
    sandbox = BuiltinSettings.model_validate({"builtins": "echo"})
    definitions = worker_builtins(sandbox, Settings())
    assert attempt(definitions, "echo", {"a": 1}) == TaskCompleted(
        workflow_id="w", run_id="r", seq=1, attempt=1, result={"a": 1}
    )
    failed = attempt(definitions, "map.transform", {"items": [1], "expression": "item"})
    assert isinstance(failed, TaskFailed) and failed.failure.type == "BuiltinDisabled"


def test_an_enabled_builtin_runs(tmp_path: Path) -> None:
    sandbox = BuiltinSettings.model_validate({"builtins": "file.write_text", "file_roots": str(tmp_path)})
    outcome = attempt(
        worker_builtins(sandbox, Settings()), "file.write_text", {"path": f"{tmp_path}/a", "text": "x"}
    )
    assert isinstance(outcome, TaskCompleted), outcome
    assert (tmp_path / "a").read_text() == "x"


def test_sequence_numbers_is_bounded() -> None:
    outcome = attempt(
        worker_builtins(BuiltinSettings.model_validate({}), Settings()), "sequence.numbers", {"stop": 10**12}
    )
    assert isinstance(outcome, TaskFailed) and outcome.failure.type == "InvalidInput"
    assert outcome.failure.non_retryable and "more than 100,000 numbers" in outcome.failure.message


def test_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGERFLOW_BUILTINS", " echo , http.request ")
    monkeypatch.setenv("LEDGERFLOW_HTTP_ALLOWED_HOSTS", "API.example.com,*.corp.example")
    monkeypatch.setenv("LEDGERFLOW_PRODUCE_TOPICS", "orders.*")
    settings = BuiltinSettings()
    assert settings.builtins == {"echo", "http.request"}
    assert settings.http_allowed_hosts == ("api.example.com", "*.corp.example")
    assert settings.produce_topics == ("orders.*",)
    monkeypatch.setenv("LEDGERFLOW_BUILTINS", "")
    assert BuiltinSettings().builtins == frozenset()


def test_the_worker_option_wins_over_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGERFLOW_BUILTINS", "echo")
    assert builtin_settings_from("csv.read,echo").builtins == {"csv.read", "echo"}
    assert builtin_settings_from(None).builtins == {"echo"}
    with pytest.raises(click.ClickException, match="unknown built-ins"):
        builtin_settings_from("file.delete")


def test_claim_checked_builtins_keep_their_signatures() -> None:
    """Wrapped to read claims back and write large results as claims, a built-in is called as
    before: ``echo`` with no argument, ``console.log`` with its input."""
    claims = ClaimStore(Settings(), None)  # small values: no Kafka is reached
    built = worker_builtins(BuiltinSettings.model_validate({}), Settings(), claims)
    assert built["echo"].fn() is None
    assert built["echo"].fn({"n": 1}) == {"n": 1}
    assert built["map.transform"].fn({"items": [1, 2], "expression": "item * 3"}) == {"items": [3, 6]}
