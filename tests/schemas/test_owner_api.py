"""The internal API's declared answers (``ledgerflow.schemas.owner``) match what the engine
answers: a field renamed in the stored state or a listing row must be renamed there too."""

from __future__ import annotations

from typing import get_type_hints

from ledgerflow.engine.reads import summary
from ledgerflow.engine.state.models import PendingActivity, RunState, UpdateOutcome
from ledgerflow.schemas.common import ActivityOptions, Failure
from ledgerflow.schemas.owner import (
    FailureJson,
    PendingActivityJson,
    RunJson,
    RunSummaryJson,
    UpdateOutcomeJson,
)


def keys(typed: type) -> set[str]:
    return set(get_type_hints(typed))


def test_a_runs_json_declares_every_field_of_its_stored_state() -> None:
    assert keys(RunJson) == set(RunState.model_fields)
    assert keys(PendingActivityJson) == set(PendingActivity.model_fields)
    assert keys(FailureJson) == set(Failure.model_fields)
    assert keys(UpdateOutcomeJson) == set(UpdateOutcome.model_fields)


def test_a_listing_row_has_exactly_the_declared_fields() -> None:
    run = RunState(workflow_id="w", run_id="r", workflow_type="T", started_at=1.0)
    run.activities[1] = PendingActivity(
        activity_type="a", args=[], options=ActivityOptions(), scheduled_at=1.0, attempt_started_at=1.0
    )
    row = summary(run, partition=3)
    assert set(row) == keys(RunSummaryJson)
    assert row["partition"] == 3
    assert set(row["pending_activities"][0]) == {"seq", "activity", "attempt", "state", "last_failure"}
