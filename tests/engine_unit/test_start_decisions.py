"""What the engine records of each start under its request id: what a client that sent the start
reads back (``GET /internal/started/{id}``) instead of asking first what the start would meet."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ledgerflow.config import Settings
from ledgerflow.engine.context import Admission, EngineContext
from ledgerflow.engine.outbox import Outbox
from ledgerflow.engine.processor import PartitionProcessor
from ledgerflow.engine.reads import start_outcome_json
from ledgerflow.engine.starts import UNKNOWN_TYPE_GRACE
from ledgerflow.engine.state import keys
from ledgerflow.engine.state.committed import read_run
from ledgerflow.engine.state.requests import REFUSAL_KEPT
from ledgerflow.engine.state.store import PartitionStore
from ledgerflow.schemas.commands import StartSignal, StartWorkflow, TerminateWorkflow
from ledgerflow.schemas.owner import StartOutcomeJson
from ledgerflow.sdk.definition import WorkflowRegistry
from tests.engine_unit.test_processor import FLOWS, batch, processor_at


def send(
    processor: PartitionProcessor, workflow_id: str, run_id: str, request_id: str, **options: Any
) -> None:
    """Apply one start in a batch of its own, whatever the engine decides."""
    fields: dict[str, Any] = {"workflow_type": "SignalCounter", **options}
    command = StartWorkflow(workflow_id=workflow_id, run_id=run_id, request_id=request_id, **fields)
    processor.begin(1.0, Outbox(processor.ctx.settings))
    processor.handle(command)
    processor.store.write(dict(processor.finish()), None)


def outcome(processor: PartitionProcessor, workflow_id: str, request_id: str) -> StartOutcomeJson:
    return start_outcome_json(processor.store, processor.partition, workflow_id, request_id)


def test_an_applied_start_names_the_run_it_led_to(tmp_path: Path) -> None:
    processor = processor_at(tmp_path)
    assert outcome(processor, "w", "q1") == {
        "partition": 0,
        "applied": False,
        "run_id": None,
        "refusal": None,
    }
    send(processor, "w", "r1", "q1")
    assert outcome(processor, "w", "q1")["run_id"] == "r1"
    # use_existing: nothing starts; the request names the open run it found
    send(processor, "w", "r2", "q2")
    assert (outcome(processor, "w", "q2")["applied"], outcome(processor, "w", "q2")["run_id"]) == (True, "r1")
    # signal-with-start of an open run: the run that took the signal
    send(processor, "w", "r3", "q3", start_signal=StartSignal(name="add", payload=[1]))
    assert outcome(processor, "w", "q3")["run_id"] == "r1"
    # the same request sent again (a retry, with a new run id) starts nothing and keeps its record
    send(processor, "w", "r4", "q1")
    assert outcome(processor, "w", "q1")["run_id"] == "r1"
    run = read_run(processor.store, "w")
    assert run is not None and run.run_id == "r1" and run.previous_runs == []


def test_a_start_refused_by_an_id_policy_says_which_run_holds_the_id(tmp_path: Path) -> None:
    processor = processor_at(tmp_path)
    send(processor, "w", "r1", "q1")
    send(processor, "w", "r2", "q2", id_conflict_policy="fail")
    refused = outcome(processor, "w", "q2")
    assert refused["applied"] is False and refused["run_id"] is None
    assert refused["refusal"] is not None
    assert (refused["refusal"]["kind"], refused["refusal"]["run_id"], refused["refusal"]["status"]) == (
        "already_started",
        "r1",
        "RUNNING",
    )
    assert (
        refused["refusal"]["start_run_id"] == "r2"
        and "id_conflict_policy fail" in refused["refusal"]["message"]
    )
    batch(processor, 2.0, TerminateWorkflow(workflow_id="w"))
    send(processor, "w", "r3", "q3", id_reuse_policy="reject_duplicate")
    refusal = outcome(processor, "w", "q3")["refusal"]
    assert refusal is not None and (refusal["kind"], refusal["status"]) == ("already_started", "TERMINATED")


def test_a_capacity_refusal_is_told_and_the_same_request_is_decided_afresh_when_sent_again(
    tmp_path: Path,
) -> None:
    processor = processor_at(tmp_path, limits=Admission(max_per_partition=1))
    send(processor, "a", "ra", "qa")
    send(processor, "b", "rb1", "once")
    refusal = outcome(processor, "b", "once")["refusal"]
    assert refusal is not None and refusal["kind"] == "capacity" and refusal["start_run_id"] == "rb1"
    assert read_run(processor.store, "b") is None
    batch(processor, 3.0, TerminateWorkflow(workflow_id="a"))
    send(processor, "b", "rb2", "once")  # the caller's retry: the refusal did not use up the key
    decided = outcome(processor, "b", "once")
    assert (decided["applied"], decided["run_id"], decided["refusal"]) == (True, "rb2", None)


def test_a_start_waiting_for_its_type_is_pending_until_it_is_decided(tmp_path: Path) -> None:
    processor = processor_at(tmp_path)
    send(processor, "w", "r1", "q1", workflow_type="NotLoadedYet")
    pending = outcome(processor, "w", "q1")
    assert (pending["applied"], pending["run_id"], pending["refusal"]) == (False, None, None)
    send(processor, "w", "r2", "q1", workflow_type="NotLoadedYet")  # a repeat is still a duplicate
    # the grace for the type to appear ends: the run opens (and fails for the unknown type)
    processor.begin(1.0 + UNKNOWN_TYPE_GRACE + 1, Outbox(processor.ctx.settings))
    processor.fire_timers()
    processor.store.write(dict(processor.finish()), None)
    decided = outcome(processor, "w", "q1")
    assert (decided["applied"], decided["run_id"]) == (True, "r1")
    run = read_run(processor.store, "w")
    assert run is not None and run.run_id == "r1"


def test_a_start_over_a_limit_is_told_why(tmp_path: Path) -> None:
    settings = Settings(max_payload_bytes=1024)
    ctx = EngineContext(settings, WorkflowRegistry.from_modules([FLOWS]), lambda _id: None)
    processor = PartitionProcessor(0, PartitionStore(tmp_path / "p0"), ctx)
    send(processor, "w", "r1", "q1", input="x" * 4096)
    refusal = outcome(processor, "w", "q1")["refusal"]
    assert refusal is not None and (refusal["kind"], refusal["error"]) == ("limit", "PayloadTooLarge")
    assert read_run(processor.store, "w") is None


def test_a_refusal_is_forgotten_after_a_while_and_an_applied_record_is_kept(tmp_path: Path) -> None:
    processor = processor_at(tmp_path, limits=Admission(max_per_partition=1))
    send(processor, "a", "ra", "qa")
    send(processor, "b", "rb", "qb")
    assert outcome(processor, "b", "qb")["refusal"] is not None
    processor.begin(1.0 + REFUSAL_KEPT + 1, Outbox(processor.ctx.settings))
    processor.fire_timers()
    processor.store.write(dict(processor.finish()), None)
    assert processor.store.get(keys.request_key("b", "qb")) is None
    assert outcome(processor, "a", "qa")["run_id"] == "ra"


def test_a_refusal_sent_again_is_kept_for_its_own_while(tmp_path: Path) -> None:
    processor = processor_at(tmp_path, limits=Admission(max_per_partition=1))
    send(processor, "a", "ra", "qa")
    send(processor, "b", "rb1", "qb")  # refused at 1.0

    def at(now: float, command: object | None = None) -> None:
        processor.begin(now, Outbox(processor.ctx.settings))
        if command is not None:
            processor.handle(command)  # type: ignore[arg-type]
        processor.fire_timers()
        processor.store.write(dict(processor.finish()), None)

    again = StartWorkflow(workflow_id="b", workflow_type="SignalCounter", run_id="rb2", request_id="qb")
    at(300.0, again)  # refused again
    at(1.0 + REFUSAL_KEPT + 1)  # the first refusal's timer: the second one stays
    refusal = outcome(processor, "b", "qb")["refusal"]
    assert refusal is not None and refusal["start_run_id"] == "rb2"
    at(300.0 + REFUSAL_KEPT + 1)
    assert processor.store.get(keys.request_key("b", "qb")) is None
