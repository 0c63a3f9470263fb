"""The engine's hot path serialises events and tasks without building models: same content."""

from __future__ import annotations

from typing import Any

import pytest

from ledgerflow.schemas import events as ev
from ledgerflow.schemas.common import ActivityOptions, Failure
from ledgerflow.schemas.lifecycle import LifecycleEvent, lifecycle_event_json
from ledgerflow.schemas.tasks import ActivityTask, activity_task_json, task_message_adapter

DATA: list[Any] = [None, {"seq": 2, "activity": "ship", "attempt": 1, "queue": "q"}, ["é", 1.5, True], "x"]


@pytest.mark.parametrize("data", DATA)
@pytest.mark.parametrize("run_id,workflow_type,index", [("r-1", "Order", 7), (None, None, None)])
def test_lifecycle_event_json_is_the_models_json(
    data: Any, run_id: str | None, workflow_type: str | None, index: int | None
) -> None:
    fields = {
        "type": "TASK_SCHEDULED",
        "workflow_id": "order:42",
        "run_id": run_id,
        "workflow_type": workflow_type,
        "time": 1_795_000_000.123456,
        "partition": 3,
        "history_index": index,
        "data": data,
    }
    fast = lifecycle_event_json(**fields)
    assert fast == LifecycleEvent(**fields).model_dump_json().encode()
    assert LifecycleEvent.model_validate_json(fast).workflow_id == "order:42"


@pytest.mark.parametrize("timeouts", [(10.0, None), (None, 2.5)])
@pytest.mark.parametrize("partition", [None, 5])
def test_activity_task_json_is_the_models_json(
    timeouts: tuple[float | None, float | None], partition: int | None
) -> None:
    fields = {
        "workflow_id": "order:42",
        "run_id": "r-1",
        "seq": 3,
        "attempt": 2,
        "activity_type": "charge_card",
        "args": [{"order_id": "o", "amount": 1.5}, "x"],
        "start_to_close_timeout": timeouts[0],
        "heartbeat_timeout": timeouts[1],
        "scheduled_at": 1_795_000_000.5,
        "partition": partition,
        "heartbeat_details": {"processed": 40} if partition else None,
    }
    fast = activity_task_json(**fields)
    assert fast == ActivityTask(**fields).model_dump_json().encode()
    assert task_message_adapter.validate_json(fast) == ActivityTask(**fields)


HISTORY_CASES: list[tuple[type[Any], dict[str, Any]]] = [
    (
        ev.ActivityScheduled,
        {"seq": 1, "activity_type": "ship", "args": [{"a": 1}], "options": ActivityOptions()},
    ),
    (ev.WorkflowCompleted, {"result": {"shipment": "s-1", "n": [1, 2.5]}}),
    (
        ev.WorkflowFailed,
        {"failure": Failure(type="Boom", message="no", non_retryable=True), "origin": "engine"},
    ),
    (ev.TimerStarted, {"seq": 4, "fire_at": 1_795_000_010.25}),
    (ev.ActivityCancelRequested, {"seq": 2}),
]


@pytest.mark.parametrize("event_type,fields", HISTORY_CASES)
def test_history_event_json_reads_back_as_the_model(event_type: type[Any], fields: dict[str, Any]) -> None:
    fast = ev.history_event_json(event_type, 7, 1_795_000_000.5, fields)
    assert ev.history_event_adapter.validate_json(fast) == event_type(index=7, time=1_795_000_000.5, **fields)
