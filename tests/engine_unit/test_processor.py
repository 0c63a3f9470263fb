"""The partition state machine on a real RocksDB store, without Kafka."""

from __future__ import annotations

from pathlib import Path

from ledgerflow.config import Settings
from ledgerflow.engine import metrics
from ledgerflow.engine.outbox import Outbox
from ledgerflow.engine.processor import EngineContext, PartitionProcessor, read_history, read_run
from ledgerflow.engine.state.store import PartitionStore
from ledgerflow.engine.workflow.definition import WorkflowRegistry
from ledgerflow.schemas.commands import StartWorkflow, TaskCompleted
from ledgerflow.schemas.tasks import ActivityTask, task_message_adapter
from ledgerflow.testing.invariants import check_run

FLOWS = "tests.testapps.flows"


def batch(processor: PartitionProcessor, now: float, *commands: object) -> Outbox:
    out = Outbox(processor.ctx.settings)
    processor.begin(now, out)
    for command in commands:
        assert processor.handle(command) is None  # type: ignore[arg-type]
    processor.store.write(dict(processor.finish()), None)
    return out


def start(n: int) -> StartWorkflow:
    return StartWorkflow(workflow_id="w", workflow_type="ThreeSteps", input=n, run_id="r")


def tasks(out: Outbox) -> list[ActivityTask]:
    found = [task_message_adapter.validate_json(r.value or b"") for r in out.records if ".tasks." in r.topic]
    return [t for t in found if isinstance(t, ActivityTask)]


def test_a_cached_instance_is_reused_across_activations(tmp_path: Path) -> None:
    ctx = EngineContext(Settings(), WorkflowRegistry.from_modules([FLOWS]), lambda _id: None)
    processor = PartitionProcessor(0, PartitionStore(tmp_path / "p0"), ctx)
    out = batch(
        processor, 1.0, StartWorkflow(workflow_id="w", workflow_type="ThreeSteps", input=1, run_id="r")
    )
    replays_before = metrics.REPLAYS._value.get()
    value = 1
    for step in range(3):
        (task,) = tasks(out)
        value += 1
        done = TaskCompleted(workflow_id="w", run_id="r", seq=task.seq, attempt=task.attempt, result=value)
        out = batch(processor, 2.0 + step, done)
    assert metrics.REPLAYS._value.get() == replays_before, "an activation replayed history despite the cache"
    run = read_run(processor.store, "w")
    assert run is not None and run.status == "COMPLETED" and run.result == 4
    registry = WorkflowRegistry.from_modules([FLOWS])
    history = read_history(processor.store, "w", "r")
    assert check_run(run.model_dump(mode="json"), history, registry) == []


def test_a_cache_miss_rebuilds_by_replay_and_carries_on(tmp_path: Path) -> None:
    ctx = EngineContext(Settings(), WorkflowRegistry.from_modules([FLOWS]), lambda _id: None, cache_size=0)
    processor = PartitionProcessor(0, PartitionStore(tmp_path / "p0"), ctx)
    out = batch(
        processor, 1.0, StartWorkflow(workflow_id="w", workflow_type="ThreeSteps", input=10, run_id="r")
    )
    replays_before = metrics.REPLAYS._value.get()
    value = 10
    for step in range(3):
        (task,) = tasks(out)
        value += 1
        done = TaskCompleted(workflow_id="w", run_id="r", seq=task.seq, attempt=task.attempt, result=value)
        out = batch(processor, 2.0 + step, done)
    assert metrics.REPLAYS._value.get() == replays_before + 3
    run = read_run(processor.store, "w")
    assert run is not None and run.result == 13
