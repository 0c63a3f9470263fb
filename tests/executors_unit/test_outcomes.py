"""A worker never sends an outcome the engine or Kafka would refuse (ledgerflow/executors/outcomes.py).

A result over ``max_payload_bytes`` becomes a non-retryable ``PayloadTooLarge`` failure; a
failure over it is cut (message and stack marked with the bytes cut, details dropped when
they leave no room). Pure logic: tests/executors runs it through a real broker.
"""

from __future__ import annotations

import json
import re
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic_core import to_json

from ledgerflow.config import Settings
from ledgerflow.executors.outcomes import heartbeat_record, outcome_record
from ledgerflow.failures import TEXT_ROOM, fit_failure
from ledgerflow.schemas import events as ev
from ledgerflow.schemas.commands import TaskCompleted, TaskFailed, TaskHeartbeat, inbox_command_adapter
from ledgerflow.schemas.common import Failure

SMALL = Settings(max_payload_bytes=4096, max_record_bytes=16_384)
IDS = st.text(
    st.characters(exclude_characters="/\x7f", exclude_categories=("Cc", "Cs")), min_size=1, max_size=256
)
"""Workflow ids as the id rule allows them (up to 4 bytes a character)."""
WORST_INDEX, WORST_TIME = 9_999_999_999, 1_764_450_000.123_456_7
"""An event index and time with as many digits as the engine ever writes."""


def completed(result: Any, workflow_id: str = "w") -> TaskCompleted:
    return TaskCompleted(workflow_id=workflow_id, run_id="r", seq=3, attempt=2, result=result)


def failed(failure: Failure, workflow_id: str = "w") -> TaskFailed:
    return TaskFailed(workflow_id=workflow_id, run_id="r", seq=3, attempt=2, failure=failure)


def sent(value: bytes) -> TaskCompleted | TaskFailed:
    command = inbox_command_adapter.validate_json(value)
    assert isinstance(command, TaskCompleted | TaskFailed)
    return command


def engine_accepts(outcome: TaskCompleted | TaskFailed, settings: Settings) -> bool:
    """Whether the engine could record ``outcome``: each history event it may write for it,
    with the longest index, time and backoff, is within ``max_payload_bytes``."""
    if isinstance(outcome, TaskCompleted):
        fields: list[tuple[type[Any], dict[str, Any]]] = [(ev.ActivityCompleted, {"result": outcome.result})]
    else:
        fields = [
            (ev.ActivityAttemptFailed, {"failure": outcome.failure, "retry_in": 1 / 3 * 1e-300}),
            (ev.ActivityFailed, {"failure": outcome.failure}),
        ]
    return all(
        len(ev.history_event_json(kind, WORST_INDEX, WORST_TIME, {"seq": 2**31, "attempt": 2**31, **more}))
        <= settings.max_payload_bytes
        for kind, more in fields
    )


def test_a_result_over_the_payload_limit_is_sent_as_a_non_retryable_failure_naming_it() -> None:
    value = outcome_record(completed("x" * 5000), "report.build", SMALL)
    outcome = sent(value)
    assert isinstance(outcome, TaskFailed) and (outcome.seq, outcome.attempt) == (3, 2)
    failure = outcome.failure
    assert failure.type == "PayloadTooLarge" and failure.non_retryable
    assert "the result of activity 'report.build' (attempt 2) is 5.1 KiB, limit 4.0 KiB" in failure.message
    assert "LEDGERFLOW_MAX_PAYLOAD_BYTES" in failure.message
    assert engine_accepts(outcome, SMALL)


def test_a_result_that_fits_is_sent_unchanged() -> None:
    outcome = completed({"total": 42, "items": list(range(100))})
    assert outcome_record(outcome, "sum", SMALL) == outcome.model_dump_json().encode()


@settings(max_examples=200, deadline=None)
@given(size=st.integers(3000, 5000), workflow_id=IDS)
def test_a_result_near_the_limit_is_sent_as_is_only_when_the_engine_can_record_it(
    size: int, workflow_id: str
) -> None:
    outcome = sent(outcome_record(completed("é" * (size // 2), workflow_id), "a", SMALL))
    assert engine_accepts(outcome, SMALL), outcome.model_dump_json()[:200]


def test_a_failure_over_the_limit_is_cut_keeping_the_message_start_and_both_ends_of_the_stack() -> None:
    frames = "".join(f'  File "app.py", line {n}, in step\n' for n in range(500))
    stack = f"Traceback (most recent call last):\n{frames}ValueError: boom"
    failure = Failure(type="ValueError", message="m" * 10_000 + "TAIL", stack=stack, details={"k": 1})
    outcome = sent(outcome_record(failed(failure), "a", SMALL))
    assert isinstance(outcome, TaskFailed) and engine_accepts(outcome, SMALL)
    cut = outcome.failure
    assert (cut.type, cut.non_retryable, cut.details) == ("ValueError", False, {"k": 1})
    message = re.fullmatch(r"(m+)… \[(\d+) bytes cut\]", cut.message)
    assert message is not None, cut.message[-80:]
    assert len(message[1]) + int(message[2]) == len(failure.message)
    assert cut.stack is not None
    ends = re.fullmatch(
        r"(Traceback \(most recent call last\):\n.*)… \[(\d+) bytes cut\] …(.*ValueError: boom)",
        cut.stack,
        re.S,
    )
    assert ends is not None, cut.stack
    assert len(ends[1]) + int(ends[2]) + len(ends[3]) == len(stack)
    assert stack.startswith(ends[1]) and stack.endswith(ends[3])


def test_a_failure_that_fits_is_sent_unchanged() -> None:
    outcome = failed(Failure(type="ValueError", message="bad input", stack="Traceback ...", details=[1]))
    assert outcome_record(outcome, "a", SMALL) == outcome.model_dump_json().encode()


def test_details_are_dropped_only_when_they_leave_the_texts_too_little_room() -> None:
    kept = fit_failure(Failure(type="E", message="m" * 3000, details="d" * 1000), 2048)
    assert kept.details == "d" * 1000 and len(kept.message) < 3000
    dropped = fit_failure(Failure(type="E", message="m" * 3000, details="d" * 2000), 2048)
    assert dropped.details == "[2002 bytes of details dropped to fit the payload limit]"
    assert len(to_json(dropped)) <= 2048 and len(dropped.message) > TEXT_ROOM // 2


def test_a_huge_failure_type_is_cut_too() -> None:
    fitted = fit_failure(Failure(type="T" * 5000, message="m"), 1024)
    assert fitted.type.startswith("T") and "bytes cut" in fitted.type and fitted.message == "m"
    assert len(to_json(fitted)) <= 1024


failures = st.builds(
    Failure,
    type=st.text(min_size=1, max_size=300),
    message=st.text(max_size=6000),
    non_retryable=st.booleans(),
    details=st.none() | st.text(max_size=3000) | st.dictionaries(st.text(max_size=5), st.integers()),
    stack=st.none() | st.text(max_size=6000),
)


@settings(max_examples=300, deadline=None)
@given(failure=failures, room=st.integers(512, 8000))
def test_a_cut_failure_always_fits_its_room(failure: Failure, room: int) -> None:
    fitted = fit_failure(failure, room)
    assert len(to_json(fitted)) <= room
    if len(to_json(failure)) <= room:
        assert fitted == failure
    assert (fitted.non_retryable, fitted.stack is None) == (failure.non_retryable, failure.stack is None)


@settings(max_examples=100, deadline=None)
@given(failure=failures, workflow_id=IDS)
def test_every_failure_sent_fits_the_record_and_the_payload_limits(
    failure: Failure, workflow_id: str
) -> None:
    tight = Settings(max_payload_bytes=1024, max_record_bytes=4096)
    value = outcome_record(failed(failure, workflow_id), "a", tight)
    assert len(workflow_id.encode()) + len(value) <= tight.max_record_bytes
    assert engine_accepts(sent(value), tight)


def test_heartbeat_details_over_the_limit_are_left_out() -> None:
    beat = TaskHeartbeat(workflow_id="w", run_id="r", seq=1, attempt=1, details="p" * 5000)
    assert json.loads(heartbeat_record(beat, "a", SMALL))["details"] is None
    small = beat.model_copy(update={"details": {"done": 10}})
    assert heartbeat_record(small, "a", SMALL) == small.model_dump_json().encode()


def test_the_event_envelope_bound_holds_for_the_longest_outcome_events() -> None:
    failure = Failure(type="", message="")
    for kind, fields in (
        (ev.ActivityCompleted, {"result": None}),
        (ev.ActivityAttemptFailed, {"failure": failure, "retry_in": 1 / 3 * 1e-300}),
        (ev.ActivityFailed, {"failure": failure}),
    ):
        payload = fields.get("result", failure)
        event = ev.history_event_json(
            kind, WORST_INDEX, WORST_TIME, {"seq": 2**31, "attempt": 2**31, **fields}
        )
        assert len(event) - len(to_json(payload)) <= ev.EVENT_ENVELOPE_BYTES, event
