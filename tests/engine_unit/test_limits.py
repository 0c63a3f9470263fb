"""What a caller sends can fail its own run or be refused, never the batch (issue 12).

The partition processor over a real RocksDB store: each oversized payload is named in
the failure or the refusal, and the other run in the same batch carries on.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path
from typing import Any

import prometheus_client
import pytest

from ledgerflow import PayloadTooLarge, activity, workflow
from ledgerflow.config import Settings
from ledgerflow.engine.context import EngineContext
from ledgerflow.engine.outbox import Outbox
from ledgerflow.engine.processor import PartitionProcessor
from ledgerflow.engine.starts import UNKNOWN_TYPE_GRACE
from ledgerflow.engine.state.committed import read_history, read_run
from ledgerflow.engine.state.store import PartitionStore
from ledgerflow.schemas.commands import (
    InboxCommand,
    SignalWorkflow,
    StartWorkflow,
    TaskCompleted,
    inbox_command_adapter,
)
from ledgerflow.schemas.dag import DagDefinition, dag_from_json
from ledgerflow.schemas.tasks import ActivityTask, task_message_adapter
from ledgerflow.sdk.definition import WorkflowRegistry, definition_of
from ledgerflow.testing.invariants import check_run

SMALL = Settings(max_payload_bytes=4096, max_record_bytes=16_384, max_previous_runs=3)


@activity.defn
def echo_size(blob: str) -> int:
    raise NotImplementedError  # runs on a worker; only its name matters here


@workflow.defn
class Echo:
    """Passes its input to one activity and returns the result."""

    @workflow.run
    async def run(self, blob: str) -> int:
        return await workflow.execute_activity(echo_size, blob, start_to_close_timeout=10)


@workflow.defn
class FanOut:
    """Holds ``n`` activities of ``size`` characters each in flight at once."""

    @workflow.run
    async def run(self, n: int, size: int) -> list[int]:
        calls = [
            workflow.execute_activity(echo_size, "x" * size, start_to_close_timeout=10) for _ in range(n)
        ]
        return list(await asyncio.gather(*calls))


@workflow.defn
class Waiter:
    @workflow.run
    async def run(self) -> Any:
        return await workflow.wait_signal("go")


@workflow.defn
class Listener:
    """Takes ``tick`` signals forever; ``other`` signals are never taken."""

    @workflow.run
    async def run(self) -> None:
        while True:
            await workflow.wait_signal("tick")


@workflow.defn
class Sleeper:
    @workflow.run
    async def run(self, n: int) -> None:
        await asyncio.gather(*(workflow.sleep(60) for _ in range(n)))


@workflow.defn
class Parent:
    @workflow.run
    async def run(self, n: int) -> None:
        await asyncio.gather(*(workflow.execute_child_workflow("Waiter", id=f"child-{i}") for i in range(n)))


@workflow.defn
class OnQueue:
    @workflow.run
    async def run(self, queue: str) -> int:
        return await workflow.execute_activity(echo_size, "x", start_to_close_timeout=10, queue=queue)


REGISTRY = WorkflowRegistry(
    [definition_of(kind) for kind in (Echo, FanOut, Waiter, OnQueue, Listener, Sleeper, Parent)]
)


class Partition:
    def __init__(
        self, tmp_path: Path, unusable_queues: dict[str, str] | None = None, settings: Settings = SMALL
    ) -> None:
        self.settings = settings
        self.definitions: dict[str, DagDefinition] = {}
        """What the engine's definition table has read so far."""
        ctx = EngineContext(settings, REGISTRY, self.definitions.get, unusable_queues=unusable_queues or {})
        self.processor = PartitionProcessor(0, PartitionStore(tmp_path / "p0"), ctx)
        self.now = 1.0

    def batch(self, *commands: InboxCommand) -> tuple[Outbox, list[str | None]]:
        """Apply ``commands`` in one batch; the outbox and each command's dead-letter reason."""
        self.now += 1
        out = Outbox(self.settings)
        self.processor.begin(self.now, out)
        reasons = [self.processor.handle(command) for command in commands]
        self.processor.fire_timers()
        self.processor.store.write(dict(self.processor.finish()), None)
        return out, reasons

    def run(self, workflow_id: str) -> Any:
        return read_run(self.processor.store, workflow_id)

    def checked(self, workflow_id: str) -> Any:
        run = self.run(workflow_id)
        history = read_history(self.processor.store, workflow_id, run.run_id)
        assert check_run(run, history, REGISTRY) == []
        return run


def tasks(out: Outbox) -> list[ActivityTask]:
    found = [task_message_adapter.validate_json(r.value or b"") for r in out.records if ".tasks." in r.topic]
    return [t for t in found if isinstance(t, ActivityTask)]


def start(workflow_id: str, workflow_type: str, input: Any) -> StartWorkflow:
    return StartWorkflow(
        workflow_id=workflow_id, workflow_type=workflow_type, input=input, run_id=f"{workflow_id}-r"
    )


def test_a_start_with_an_oversized_input_is_refused_and_the_batch_goes_on(tmp_path: Path) -> None:
    p = Partition(tmp_path)
    out, reasons = p.batch(start("big", "Echo", "x" * 5000), start("ok", "Echo", "fine"))
    assert reasons[0] is not None and "PayloadTooLarge: WorkflowStarted" in reasons[0]
    assert "limit 4.0 KiB (max_payload_bytes, env LEDGERFLOW_MAX_PAYLOAD_BYTES)" in reasons[0]
    assert reasons[1] is None
    assert p.run("big") is None, "a refused start left state behind"
    assert [t.workflow_id for t in tasks(out)] == ["ok"]
    assert p.checked("ok").status == "RUNNING"


def test_an_oversized_activity_result_fails_its_run_by_name(tmp_path: Path) -> None:
    p = Partition(tmp_path)
    out, _ = p.batch(start("a", "Echo", "hi"), start("b", "Echo", "hi"))
    results = [
        TaskCompleted(workflow_id=t.workflow_id, run_id=t.run_id, seq=t.seq, attempt=t.attempt, result=r)
        for t, r in zip(tasks(out), ["y" * 5000, 2], strict=True)
    ]
    _, reasons = p.batch(*results)
    assert reasons[0] is not None and "PayloadTooLarge: ActivityCompleted" in reasons[0]
    failed = p.checked("a")
    assert failed.status == "FAILED" and failed.failure.type == "PayloadTooLarge"
    assert "ActivityCompleted (event #3" in failed.failure.message and failed.failure.non_retryable
    assert p.checked("b").status == "COMPLETED" and p.run("b").result == 2


def test_an_oversized_signal_is_refused_and_the_run_waits_on(tmp_path: Path) -> None:
    p = Partition(tmp_path)
    p.batch(start("w", "Waiter", None))
    _, reasons = p.batch(SignalWorkflow(workflow_id="w", name="go", payload="z" * 5000))
    assert reasons[0] is not None and "SignalReceived" in reasons[0]
    assert p.checked("w").status == "RUNNING"
    p.batch(SignalWorkflow(workflow_id="w", name="go", payload="small"))
    assert p.checked("w").result == "small"


def test_oversized_activity_arguments_fail_the_run_that_scheduled_them(tmp_path: Path) -> None:
    p = Partition(tmp_path)
    out, reasons = p.batch(start("fan", "FanOut", [1, 5000]), start("ok", "Echo", "fine"))
    assert reasons == [None, None]
    run = p.checked("fan")
    assert run.status == "FAILED" and "PayloadTooLarge: ActivityScheduled" in run.failure.message
    assert [t.workflow_id for t in tasks(out)] == ["ok"], "a task of the failed run was sent"


def test_a_run_state_over_the_record_limit_fails_the_run_not_the_batch(tmp_path: Path) -> None:
    """Each argument fits (3 KB), but five of them pending at once do not fit in one record."""
    p = Partition(tmp_path)
    _, reasons = p.batch(start("fan", "FanOut", [5, 3000]), start("ok", "Echo", "fine"))
    assert reasons == [None, None]
    run = p.checked("fan")
    assert run.status == "FAILED" and run.failure.type == "PayloadTooLarge"
    assert "the state of run fan-r" in run.failure.message and "max_record_bytes" in run.failure.message
    assert len(run.model_dump_json()) < SMALL.max_record_bytes
    assert p.checked("ok").status == "RUNNING"


def test_a_workflow_remembers_a_bounded_number_of_earlier_runs(tmp_path: Path) -> None:
    p = Partition(tmp_path)
    for i in range(6):
        p.batch(StartWorkflow(workflow_id="w", workflow_type="Waiter", run_id=f"r{i}"))
        p.batch(SignalWorkflow(workflow_id="w", name="go", payload=i))
    run = p.run("w")
    assert run.run_id == "r5" and run.previous_runs == ["r2", "r3", "r4"]


def test_a_dead_letter_over_the_record_limit_keeps_its_size_and_hash() -> None:
    out = Outbox(SMALL)
    value = b"v" * 50_000
    out.dead_letter(b"k", value, "too big", "inbox", 3, 7)
    (record,) = out.records
    headers = dict(record.headers or [])
    assert record.value is not None and len(record.value) + 8192 <= SMALL.max_record_bytes
    assert headers["ledgerflow.dlq.original-size"] == b"50000"
    assert headers["ledgerflow.dlq.original-sha256"] == hashlib.sha256(value).hexdigest().encode()
    assert headers["ledgerflow.dlq.reason"] == b"too big"


def test_a_long_dead_letter_reason_keeps_its_end() -> None:
    """A reason quoting a huge id still says why: its middle is cut, not its end."""
    out = Outbox(SMALL)
    huge_id = "é" * 100_000
    out.dead_letter(b"k", b"{}", f"signal 's': workflow {huge_id!r} has no open run", "inbox", 0, 1)
    reason = dict(out.records[0].headers or [])["ledgerflow.dlq.reason"]
    assert isinstance(reason, bytes) and len(reason) <= 4000
    assert reason.startswith(b"signal 's': workflow '") and reason.endswith(b"' has no open run")
    reason.decode()  # the cut falls between characters


def test_an_outbox_record_over_the_limit_raises_before_it_is_produced() -> None:
    out = Outbox(SMALL)
    with pytest.raises(PayloadTooLarge, match=r"lifecycle event is 19\.5 KiB, limit 16\.0 KiB"):
        out.event("w", b"e" * 20_000)
    assert out.records == []


def test_payloads_must_fit_several_times_in_a_record() -> None:
    with pytest.raises(ValueError, match="at most a third of max_record_bytes"):
        Settings(max_payload_bytes=500_000, max_record_bytes=1_000_000)


def test_a_chain_of_thousands_of_nodes_validates_without_recursion() -> None:
    n = 5000
    nodes = [{"id": f"n{i}", "type": "echo"} for i in range(n)]
    edges = [{"source": f"n{i}", "target": f"n{i + 1}"} for i in range(n - 1)]
    assert len(dag_from_json({"id": "chain", "nodes": nodes, "edges": edges}).nodes) == n
    cyclic = [*edges, {"source": f"n{n - 1}", "target": "n0"}]
    with pytest.raises(ValueError, match="cycle: n0 -> n1 -> "):
        dag_from_json({"id": "chain", "nodes": nodes, "edges": cyclic})


@pytest.mark.parametrize("queue", ["", "has space", "a/b", "x" * 129, "tab\tbed"])
def test_a_queue_must_be_a_valid_topic_name(queue: str) -> None:
    with pytest.raises(ValueError, match="queue"):
        dag_from_json({"id": "d", "nodes": [{"id": "n", "type": "echo", "queue": queue}]})


def test_an_activity_on_a_queue_without_a_possible_topic_fails_its_run(tmp_path: Path) -> None:
    p = Partition(tmp_path, {"pay_eu": "collides with existing topic 'pay.eu'"})
    out, reasons = p.batch(start("clash", "OnQueue", "pay_eu"), start("ok", "Echo", "fine"))
    assert reasons == [None, None]
    run = p.checked("clash")
    assert run.status == "FAILED" and run.failure.type == "QueueUnavailable"
    assert "'pay_eu'" in run.failure.message and "collides" in run.failure.message
    assert [t.workflow_id for t in tasks(out)] == ["ok"]


def warnings_so_far() -> float:
    return prometheus_client.REGISTRY.get_sample_value("ledgerflow_history_limit_warnings_total") or 0.0


def test_a_history_at_its_event_limit_fails_the_run_and_says_to_continue_as_new(tmp_path: Path) -> None:
    limits = SMALL.model_copy(update={"history_warn_events": 10, "max_history_events": 20})
    p = Partition(tmp_path, settings=limits)
    p.batch(start("loop", "Listener", None), start("ok", "Echo", "fine"))
    warned = warnings_so_far()
    reasons = [p.batch(SignalWorkflow(workflow_id="loop", name="tick", payload=i))[1][0] for i in range(25)]
    assert reasons[:18] == [None] * 18, "signals under the limit were refused"
    assert reasons[18] is not None and "HistoryTooLarge" in reasons[18]
    assert all(r is not None and "no open run" in r for r in reasons[19:])
    run = p.checked("loop")
    assert run.status == "FAILED" and run.failure.type == "HistoryTooLarge"
    assert run.history_length == 20, "the close must fit within the limit"
    assert "20 events (limit max_history_events)" in run.failure.message
    assert "continue-as-new" in run.failure.message
    assert warnings_so_far() - warned == 1, "the warning is logged once, at history_warn_events"
    assert p.checked("ok").status == "RUNNING"


def test_a_history_at_its_byte_limit_fails_the_run(tmp_path: Path) -> None:
    limits = SMALL.model_copy(update={"history_warn_bytes": 5_000, "max_history_bytes": 20_000})
    p = Partition(tmp_path, settings=limits)
    p.batch(start("loop", "Listener", None))
    for _ in range(8):
        p.batch(SignalWorkflow(workflow_id="loop", name="tick", payload="p" * 3000))
    run = p.checked("loop")
    assert run.status == "FAILED" and run.failure.type == "HistoryTooLarge"
    assert "would pass 19.5 KiB of events (limit max_history_bytes)" in run.failure.message
    assert run.history_bytes <= 20_000 + len(run.failure.model_dump_json()) + 200


@pytest.mark.parametrize(
    ("workflow_type", "setting", "what"),
    [
        ("FanOut", "max_pending_activities", "activities pending"),
        ("Sleeper", "max_pending_timers", "timers open"),
        ("Parent", "max_pending_children", "child workflows open"),
    ],
)
def test_a_run_past_its_pending_limit_fails_by_name(
    tmp_path: Path, workflow_type: str, setting: str, what: str
) -> None:
    p = Partition(tmp_path, settings=SMALL.model_copy(update={setting: 3}))
    n = [4, 10] if workflow_type == "FanOut" else 4
    _, reasons = p.batch(start("many", workflow_type, n), start("ok", "Echo", "fine"))
    assert reasons == [None, None]
    run = p.checked("many")
    assert run.status == "FAILED" and run.failure.type == "TooManyPending"
    assert f"already has 3 {what} (limit {setting})" in run.failure.message
    assert p.checked("ok").status == "RUNNING"


def test_a_run_under_its_pending_limit_holds_them_all(tmp_path: Path) -> None:
    p = Partition(tmp_path, settings=SMALL.model_copy(update={"max_pending_timers": 3}))
    p.batch(start("three", "Sleeper", 3))
    run = p.checked("three")
    assert run.status == "RUNNING" and len(run.timers) == 3


def test_signals_nobody_takes_are_refused_past_the_buffer_limit_and_the_run_goes_on(tmp_path: Path) -> None:
    p = Partition(tmp_path, settings=SMALL.model_copy(update={"max_buffered_signals": 3}))
    p.batch(start("w", "Waiter", None))
    reasons = [p.batch(SignalWorkflow(workflow_id="w", name="other", payload=i))[1][0] for i in range(5)]
    assert reasons[:3] == [None] * 3
    for reason in reasons[3:]:
        assert reason is not None and "already has 3 signals its code has not taken" in reason
        assert "max_buffered_signals" in reason
    assert p.checked("w").status == "RUNNING" and p.run("w").history_length == 4
    p.batch(SignalWorkflow(workflow_id="w", name="go", payload="done"))
    assert p.checked("w").result == "done", "a signal the code waits for is never refused"


def test_history_warnings_must_be_below_their_limits() -> None:
    with pytest.raises(ValueError, match="history_warn_events must be below max_history_events"):
        Settings(history_warn_events=100, max_history_events=100)


def test_a_start_of_an_unknown_type_waits_a_grace_then_fails_without_holding_the_batch(
    tmp_path: Path,
) -> None:
    p = Partition(tmp_path)
    out, reasons = p.batch(start("lost", "NoSuchType", None), start("ok", "Echo", "fine"))
    assert reasons == [None, None] and p.run("lost") is None, "the start must wait, not fail at once"
    assert [t.workflow_id for t in tasks(out)] == ["ok"], "the other start in the batch was held up"
    for _ in range(int(UNKNOWN_TYPE_GRACE) - 1):
        p.batch()
        assert p.run("lost") is None
    p.batch()
    run = p.checked("lost")
    assert run.status == "FAILED" and run.failure.type == "UnknownWorkflowType"
    assert "'NoSuchType'" in run.failure.message


def test_of_two_waiting_starts_of_one_id_the_first_wins(tmp_path: Path) -> None:
    """Both wait for their type in one batch (one fire time, no run id): the first is not
    overwritten by the second, as the first start of an id wins once its type is known."""
    p = Partition(tmp_path)
    first = StartWorkflow(workflow_id="twice", workflow_type="late-dag", input={"v": 1})
    second = StartWorkflow(workflow_id="twice", workflow_type="other-late-dag", input={"v": 2})
    assert p.batch(first, second)[1] == [None, None]
    for name in ("late-dag", "other-late-dag"):
        p.definitions[name] = dag_from_json({"id": name, "nodes": [{"id": "n", "type": "echo"}]})
    p.batch()
    run = p.checked("twice")
    assert run.workflow_type == "late-dag" and run.input == {"v": 1}


def test_a_start_of_an_unknown_type_with_an_oversized_input_is_refused_at_once(tmp_path: Path) -> None:
    """Its dead letter is the record itself (the engine writes it with the record's source), not a
    copy made when the grace ends; and nothing of it waits in the timer index meanwhile."""
    p = Partition(tmp_path)
    _, reasons = p.batch(start("big", "NoSuchType", "x" * 5000))
    assert reasons[0] is not None and "PayloadTooLarge: the input of the start of 'big'" in reasons[0]
    for _ in range(int(UNKNOWN_TYPE_GRACE) + 1):
        out, _ = p.batch()
        assert out.records == [], "a deferred copy of the refused start came back"
    assert p.run("big") is None


def test_a_start_of_an_unknown_type_nested_to_the_parsers_limit_is_refused_not_kept(tmp_path: Path) -> None:
    """Its input is 200 deep, as deep as an inbox record may be; wrapped in a timer it is one level
    deeper than the parser reads, so it is refused at once rather than kept and unreadable."""
    p = Partition(tmp_path)
    deep = inbox_command_adapter.validate_json(
        '{"kind": "start_workflow", "workflow_id": "deep", "workflow_type": "NoSuchType", "input": '
        + "[" * 200
        + "]" * 200
        + "}"
    )
    _, reasons = p.batch(deep, start("ok", "Echo", "fine"))
    assert reasons[0] is not None and "cannot wait for its workflow type" in reasons[0]
    assert reasons[1] is None
    for _ in range(int(UNKNOWN_TYPE_GRACE) + 1):
        p.batch()
    assert p.run("deep") is None and p.checked("ok").status == "RUNNING"


def test_a_start_whose_dag_is_read_a_moment_later_runs_it(tmp_path: Path) -> None:
    p = Partition(tmp_path)
    p.batch(start("d-1", "late-dag", {"v": 1}))
    assert p.run("d-1") is None
    p.definitions["late-dag"] = dag_from_json({"id": "late-dag", "nodes": [{"id": "n", "type": "echo"}]})
    out, _ = p.batch()
    assert [(t.workflow_id, t.activity_type) for t in tasks(out)] == [("d-1", "echo")]
    assert p.checked("d-1").status == "RUNNING"
