"""An activity outcome too large to record never stalls the worker (issue 12), on a real broker.

Before, a failure over Kafka's record limit was refused and sent again forever (the run
hung until its timeout), and a result between ``max_payload_bytes`` and the worker's old
900 kB cap failed the whole run at the engine without naming the activity. Now the worker
measures each outcome as the engine will: a result over the limit fails the activity with a
non-retryable ``PayloadTooLarge`` naming it, and a failure over it is cut to fit, then
retried as its policy says.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from ledgerflow import Client, WorkflowFailedError
from ledgerflow.local.processes import Cluster, NodeProcess
from ledgerflow.schemas import events as ev
from ledgerflow.schemas.common import Failure
from tests.executors.test_worker_delivery import APPS, SEND_FAILED, runs_of
from tests.fixtures import FLOWS, assert_invariants_with

pytestmark = pytest.mark.kafka


def failure_of(client: Client, workflow_id: str) -> Failure:
    """The activity failure the run of ``workflow_id`` ended with (it must fail by letting it
    escape: an ActivityError caused by it)."""
    with pytest.raises(WorkflowFailedError) as ended:
        client.result(workflow_id, timeout=90)
    failure = ended.value.failure
    assert failure.type == "ActivityError" and failure.cause is not None, failure
    return failure.cause


def serves_on(client: Client, worker: NodeProcess) -> None:
    """The worker runs the next activity, and never had to send an outcome twice."""
    client.start_workflow("Sized", 1000, id="after")
    assert client.result("after", timeout=60) == 1000
    log = worker.log_path.read_text(errors="replace")
    assert SEND_FAILED not in log, "the worker sent an outcome Kafka refused"


def test_a_result_over_the_payload_limit_fails_the_activity_by_name_and_the_worker_serves_on(
    cluster: Cluster, client: Client
) -> None:
    engine = cluster.engine([FLOWS, APPS])
    worker = cluster.worker([APPS])
    engine.wait_ready()
    # Over Kafka's record limit, and over max_payload_bytes (256 KiB) but under Kafka's.
    client.start_workflow("Sized", 2_000_000, id="over-kafka")
    client.start_workflow("Sized", 600_000, id="over-payload")
    for workflow_id in ("over-kafka", "over-payload"):
        failure = failure_of(client, workflow_id)
        assert failure.type == "PayloadTooLarge" and failure.non_retryable, failure
        named = re.search(
            r"the result of activity 'sized' \(attempt 1\) is [\d.]+ [KM]iB, limit 256.0 KiB "
            r"\(max_payload_bytes, env LEDGERFLOW_MAX_PAYLOAD_BYTES\)",
            failure.message,
        )
        assert named, failure.message
        history = client.history(workflow_id)
        attempts = [(e.kind, getattr(e, "attempt", None)) for e in history if "activity_" in e.kind]
        assert attempts == [("activity_scheduled", None), ("activity_failed", 1)], attempts
        assert_invariants_with(client, workflow_id, [APPS])
    serves_on(client, worker)
    assert_invariants_with(client, "after", [APPS])


def test_a_failure_over_the_payload_limit_is_cut_and_retried_as_its_policy_says(
    cluster: Cluster, client: Client, tmp_path: Path
) -> None:
    engine = cluster.engine([FLOWS, APPS])
    worker = cluster.worker([APPS])
    engine.wait_ready()
    markers = tmp_path / "m"
    markers.mkdir()
    client.start_workflow("Raises", [str(markers), 2_000_000], id="raises-large")
    recorded = failure_of(client, "raises-large")
    assert recorded.type == "ValueError" and recorded.message.startswith("y" * 50_000), recorded.type
    history = client.history("raises-large")
    failure = next(e for e in history if isinstance(e, ev.ActivityFailed)).failure
    assert failure.type == "ValueError" and not failure.non_retryable, failure.type
    kept = re.fullmatch(r"(y+)… \[(\d+) bytes cut\]", failure.message)
    assert kept, failure.message[-100:]
    assert len(kept[1]) + int(kept[2]) == 2_000_000 and len(kept[1]) > 50_000
    assert failure.stack is not None and failure.stack.startswith("Traceback"), failure.stack
    failed = [e for e in history if isinstance(e, ev.ActivityAttemptFailed | ev.ActivityFailed)]
    assert [(type(e).__name__, e.attempt) for e in failed] == [
        ("ActivityAttemptFailed", 1),
        ("ActivityAttemptFailed", 2),
        ("ActivityFailed", 3),
    ]
    assert all(e.failure.message == failure.message for e in failed)
    assert len(runs_of(markers)) == 3, "each attempt runs once"
    assert_invariants_with(client, "raises-large", [APPS])
    serves_on(client, worker)
