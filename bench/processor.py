"""The engine's own cost per workflow, without Kafka: one partition processor over RocksDB.

Runs ``--runs`` three-activity ``ProcessOrder`` workflows through a
``PartitionProcessor`` the way the owner loop does (inbox records parsed from
JSON, ``--batch`` commands per batch, store writes after each batch) and answers
every task it emits at once, as a worker would. What is left out is Kafka: the
records are built but not produced. A figure to compare versions of the hot
path with, steadier than the whole-stack ``bench/core.py``.

    python -m bench.processor --runs 5000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from ledgerflow.config import Settings
from ledgerflow.engine.outbox import Outbox
from ledgerflow.engine.processor import EngineContext, PartitionProcessor
from ledgerflow.engine.state.store import PartitionStore
from ledgerflow.engine.workflow.definition import WorkflowRegistry
from ledgerflow.schemas.commands import StartWorkflow, TaskCompleted, inbox_command_adapter
from ledgerflow.schemas.tasks import ActivityTask, task_message_adapter

SAMPLES = "ledgerflow.samples.orders"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=500, help="Inbox records per batch.")
    parser.add_argument("--in-flight", type=int, default=1000, help="Open runs kept (as bench/core.py).")
    args = parser.parse_args()
    settings = Settings()
    ctx = EngineContext(settings, WorkflowRegistry.from_modules([SAMPLES]), lambda _id: None)
    order = {"order_id": "bench", "amount": 1.0}
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
                    results.append(_result(task).model_dump_json().encode())
                elif b'"WORKFLOW_COMPLETED"' in record.value:
                    completed += 1
            now += 0.001
        seconds = time.perf_counter() - began
        processor.store.close()
    assert completed == args.runs, f"{completed} of {args.runs} completed"
    print(
        json.dumps(
            {"runs": args.runs, "seconds": round(seconds, 3), "workflows_per_s": round(args.runs / seconds)}
        )
    )


def _result(task: ActivityTask) -> TaskCompleted:
    return TaskCompleted(
        workflow_id=task.workflow_id, run_id=task.run_id, seq=task.seq, attempt=task.attempt, result="done"
    )


if __name__ == "__main__":
    main()
