"""The engine with a codec, on a real RocksDB store without Kafka: it decodes where payloads
enter workflow code, encodes what the code produced once as it records it, and replays from
the recorded ciphertext."""

from __future__ import annotations

from pathlib import Path

from ledgerflow.codec import AesGcmCodec, decode, encode, is_encoded
from ledgerflow.engine.outbox import Outbox
from ledgerflow.engine.state.committed import read_history, read_run
from ledgerflow.engine.workflow.replayer import replay_run
from ledgerflow.schemas import events as ev
from ledgerflow.schemas.commands import SignalWorkflow, StartWorkflow, TaskCompleted
from ledgerflow.sdk.definition import WorkflowRegistry
from tests.engine_unit.test_processor import FLOWS, batch, processor_at, tasks

CODEC = AesGcmCodec({"k1": bytes(32)}, active="k1")
PAYLOAD_FIELDS = ("input", "args", "result", "payload")


def test_history_state_and_tasks_hold_ciphertext_and_replays_decode_it(tmp_path: Path) -> None:
    """cache_size=0: every activation rebuilds the instance by replaying the recorded history."""
    processor = processor_at(tmp_path, cache_size=0, codec=CODEC)
    out = batch(
        processor,
        1.0,
        StartWorkflow(workflow_id="w", workflow_type="ThreeSteps", input=encode(CODEC, 1), run_id="r"),
    )
    sent_args = []
    for step in range(3):
        (task,) = tasks(out)
        sent_args.append(task.args)
        assert all(is_encoded(arg) for arg in task.args)
        (n,) = (decode(CODEC, arg) for arg in task.args)
        done = TaskCompleted(
            workflow_id="w", run_id="r", seq=task.seq, attempt=1, result=encode(CODEC, n + 1)
        )
        out = batch(processor, 2.0 + step, done)
    run = read_run(processor.store, "w")
    assert run is not None and run.status == "COMPLETED"
    assert is_encoded(run.result) and decode(CODEC, run.result) == 4
    history = read_history(processor.store, "w", "r")
    for event in history:
        for name in PAYLOAD_FIELDS:
            value = getattr(event, name, None)
            values = value if isinstance(value, list) else [value]
            assert all(is_encoded(v) for v in values if v is not None), (event.kind, name, value)
    # Recorded once: the tasks carried the very envelopes history holds (replays did not re-encode).
    assert [e.args for e in history if isinstance(e, ev.ActivityScheduled)] == sent_args
    registry = WorkflowRegistry.from_modules([FLOWS])
    assert replay_run(registry, "w", "r", history, CODEC).deterministic  # strict: decoded payloads compared


def test_an_engine_without_the_key_refuses_the_record_and_leaves_the_run_as_it_was(tmp_path: Path) -> None:
    processor = processor_at(tmp_path)
    encoded = StartWorkflow(workflow_id="e", workflow_type="ThreeSteps", input=encode(CODEC, 1), run_id="r")
    processor.begin(1.0, Outbox(processor.ctx.settings))
    reason = processor.handle(encoded)
    assert reason is not None and reason.startswith("CodecKeyNeeded: ") and "'k1'" in reason
    assert processor.run("e") is None  # nothing was started
    # An open run (started in clear) meets an encoded signal: refused, the run stays open.
    batch(processor, 2.0, StartWorkflow(workflow_id="s", workflow_type="SignalCounter", run_id="rs"))
    processor.begin(3.0, Outbox(processor.ctx.settings))
    reason = processor.handle(SignalWorkflow(workflow_id="s", name="add", payload=encode(CODEC, 5)))
    assert reason is not None and "needs a codec key" in reason
    processor.store.write(dict(processor.finish()), None)
    run = read_run(processor.store, "s")
    assert run is not None and run.status == "RUNNING"
    assert [e.kind for e in read_history(processor.store, "s", "rs")] == ["workflow_started"]
