"""A failure keeps its chain of causes, as Temporal's do: an unhandled activity failure reaches
the caller as an ActivityError whose cause is the activity's own error.

Pure logic: exceptions to wire failures and back, the codec over a chain, and fitting a chain to
a byte budget. The same chain through a real broker is tests/sdk/test_hello_samples.py.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from pydantic import ValidationError
from pydantic_core import to_json

from ledgerflow.codec import AesGcmCodec, is_encoded
from ledgerflow.codec.envelope import decode_failure, encode_failure
from ledgerflow.errors import (
    ActivityError,
    ApplicationError,
    ChildWorkflowError,
    WorkflowFailedError,
    exception_from_failure,
    failure_from_exception,
)
from ledgerflow.failures import fit_failure
from ledgerflow.schemas.common import MAX_CAUSE_DEPTH, Failure

DECLINED = Failure(
    type="CardDeclined", message="insufficient funds", non_retryable=True, details={"code": 51}
)


def raised(exc: BaseException) -> BaseException:
    """``exc`` after a raise, so it has a traceback."""

    def throw() -> None:
        raise exc

    return raised_in(throw)


def raised_in(fn: Callable[[], None]) -> BaseException:
    """What ``fn`` raised, with its traceback and the ``from`` it gave."""
    try:
        fn()
    except BaseException as caught:
        return caught
    raise AssertionError("it did not raise")


def test_an_unhandled_activity_error_becomes_an_activity_error_failure_caused_by_the_activitys() -> None:
    failure = failure_from_exception(raised(ActivityError(DECLINED, "charge", 3)))
    assert (failure.type, failure.activity_type, failure.seq) == ("ActivityError", "charge", 3)
    assert failure.cause == DECLINED
    assert failure.stack and "ActivityError" in failure.stack


def test_the_caller_follows_the_chain_as_in_temporal() -> None:
    recorded = failure_from_exception(raised(ActivityError(DECLINED, "charge", 3)))
    error = WorkflowFailedError("order-1", "FAILED", recorded)
    assert str(error) == (
        "workflow 'order-1' ended FAILED: ActivityError: activity 'charge' (#3) failed; "
        "caused by CardDeclined: insufficient funds"
    )
    activity = error.cause
    assert isinstance(activity, ActivityError)
    assert (activity.activity_type, activity.seq) == ("charge", 3)
    application = activity.cause
    assert isinstance(application, ApplicationError)
    assert (application.type, application.message, application.non_retryable, application.details) == (
        "CardDeclined",
        "insufficient funds",
        True,
        {"code": 51},
    )
    assert application.cause is None


def test_a_child_failure_and_an_error_raised_from_another_keep_theirs() -> None:
    child = failure_from_exception(raised(ChildWorkflowError(DECLINED, 2)))
    assert (child.type, child.seq, child.cause) == ("ChildWorkflowError", 2, DECLINED)
    assert isinstance(exception_from_failure(child), ChildWorkflowError)

    def refund() -> None:
        try:
            raise KeyError("order-1")
        except KeyError as missing:
            raise ApplicationError("no such order", type="RefundRefused") from missing

    outer = failure_from_exception(raised_in(refund))
    assert outer.type == "RefundRefused" and outer.cause is not None
    assert (outer.cause.type, outer.cause.message) == ("KeyError", "'order-1'")
    assert outer.stack and "KeyError" not in outer.stack, "the cause is its own link, not repeated"
    back = exception_from_failure(outer)
    assert isinstance(back, ApplicationError) and isinstance(back.cause, ApplicationError)
    assert back.cause.type == "KeyError"


def test_a_chain_is_cut_at_its_depth_when_made_and_refused_deeper_when_received() -> None:
    exc: BaseException = ValueError("root")
    for i in range(MAX_CAUSE_DEPTH * 2):
        try:
            raise RuntimeError(f"level {i}") from exc
        except RuntimeError as caught:
            exc = caught
    failure = failure_from_exception(exc)
    depth, link = 0, failure
    while link is not None:
        depth, link = depth + 1, link.cause
    assert depth == MAX_CAUSE_DEPTH
    Failure.model_validate_json(failure.model_dump_json())  # what was made is readable

    deeper = failure.model_dump()
    deeper = {"type": "Outer", "message": "one more", "cause": deeper}
    with pytest.raises(ValidationError, match="cause chain may be at most"):
        Failure.model_validate(deeper)


def test_the_codec_encodes_the_details_of_every_link() -> None:
    codec = AesGcmCodec({"a": bytes(range(32))}, active="a")
    wrapped = Failure(type="ActivityError", message="m", cause=DECLINED, activity_type="charge", seq=1)
    encoded = encode_failure(codec, wrapped)
    assert encoded.cause is not None and is_encoded(encoded.cause.details)
    assert encoded.cause.message == "insufficient funds", "types and messages stay readable"
    assert decode_failure(codec, encoded) == wrapped


def test_fitting_a_chain_keeps_each_link_readable_within_the_room() -> None:
    big = Failure(type="E", message="m" * 50_000, stack="s" * 50_000, details="d" * 50_000)
    chain = Failure(type="ActivityError", message="w" * 50_000, stack="t" * 50_000, cause=big)
    fitted = fit_failure(chain, 8192)
    assert len(to_json(fitted)) <= 8192
    assert fitted.type == "ActivityError" and fitted.cause is not None and fitted.cause.type == "E"
    assert fitted.message.startswith("w" * 100) and fitted.cause.message.startswith("m" * 100)
    assert len(to_json(fit_failure(chain, 1024))) <= 1024
