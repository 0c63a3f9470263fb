"""The engine's own cost per workflow, without Kafka: one partition processor over RocksDB.

Runs ``--runs`` three-activity ``ProcessOrder`` workflows through a
``PartitionProcessor`` the way the owner loop does (inbox records parsed from
JSON, ``--batch`` commands per batch, store writes after each batch) and answers
every task it emits at once, as a worker would. What is left out is Kafka: the
records are built but not produced. A figure to compare versions of the hot
path with, steadier than the whole-stack ``bench/core.py``.

With ``--codec`` the engine holds an AES-256-GCM payload codec: inputs and results
arrive encoded (as a Client and a worker with the key send them; made once, before
the clock starts), and the engine decodes and encodes as it would in production.

    python -m bench.processor --runs 5000 [--codec]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

from ledgerflow.codec import AesGcmCodec, encode
from ledgerflow.config import Settings
from ledgerflow.engine.context import EngineContext
from ledgerflow.engine.outbox import Outbox
from ledgerflow.engine.processor import PartitionProcessor
from ledgerflow.engine.state.store import PartitionStore
from ledgerflow.schemas.commands import StartWorkflow, TaskCompleted, inbox_command_adapter
from ledgerflow.schemas.tasks import ActivityTask, task_message_adapter
from ledgerflow.sdk.definition import WorkflowRegistry

SAMPLES = "ledgerflow.samples.orders"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=500, help="Inbox records per batch.")
    parser.add_argument("--in-flight", type=int, default=1000, help="Open runs kept (as bench/core.py).")
    parser.add_argument("--codec", action="store_true", help="Payloads encrypted (AES-256-GCM).")
    args = parser.parse_args()
    settings = Settings()
    codec = AesGcmCodec({"bench": os.urandom(32)}, "bench") if args.codec else None
    registry = WorkflowRegistry.from_modules([SAMPLES])
    ctx = EngineContext(settings, registry, lambda _id: None, codec=codec)
    order = encode(codec, {"order_id": "bench", "amount": 1.0})
    done = encode(codec, "done")
    starts = [
        StartWorkflow(workflow_id=f"w{i}", workflow_type="ProcessOrder", input=order)
        .model_dump_json()
        .encode()
        for i in range(args.runs)
    ]
    results: list[bytes] = []
    completed = 0
    with tempfile.TemporaryDirectory(prefix="ledgerflow-bench-") as scratch:
        processor = PartitionProcessor(0, PartitionStore(Path(scratch) / "p0"), ctx)
        began = time.perf_counter()
        now = time.time()
        while starts or results:
            # Results first, then new starts while fewer than --in-flight runs are open.
            room = max(0, min(args.batch - len(results), args.in_flight - processor.open_runs))
            work, results = results[: args.batch], results[args.batch :]
            work, starts = work + starts[:room], starts[room:]
            out = Outbox(settings)
            processor.begin(now, out)
            for raw in work:
                assert processor.handle(inbox_command_adapter.validate_json(raw)) is None
            processor.store.write(dict(processor.finish()), None)
            for record in out.records:
                if record.value is None:
                    continue
                if ".tasks." in record.topic:
                    task = task_message_adapter.validate_json(record.value)
                    assert isinstance(task, ActivityTask)
                    results.append(_result(task, done).model_dump_json().encode())
                elif b'"WORKFLOW_COMPLETED"' in record.value:
                    completed += 1
            now += 0.001
        seconds = time.perf_counter() - began
        processor.store.close()
    assert completed == args.runs, f"{completed} of {args.runs} completed"
    print(
        json.dumps(
            {
                "runs": args.runs,
                "codec": args.codec,
                "seconds": round(seconds, 3),
                "workflows_per_s": round(args.runs / seconds),
            }
        )
    )


def _result(task: ActivityTask, result: object) -> TaskCompleted:
    return TaskCompleted(
        workflow_id=task.workflow_id, run_id=task.run_id, seq=task.seq, attempt=task.attempt, result=result
    )


if __name__ == "__main__":
    main()
