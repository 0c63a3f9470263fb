"""RetryPolicy.delay_after: the backoff the owner waits between activity attempts."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import ValidationError

from ledgerflow.schemas.common import RetryPolicy


def test_default_backoff_doubles_from_one_second_up_to_the_cap() -> None:
    policy = RetryPolicy()
    assert [policy.delay_after(n) for n in range(1, 10)] == [1, 2, 4, 8, 16, 32, 64, 100, 100]


def test_custom_backoff_sequence() -> None:
    policy = RetryPolicy(initial_interval=0.5, backoff_coefficient=3.0, maximum_interval=10.0)
    assert [policy.delay_after(n) for n in range(1, 6)] == [0.5, 1.5, 4.5, 10.0, 10.0]


def test_coefficient_one_is_a_constant_delay() -> None:
    policy = RetryPolicy(initial_interval=2.0, backoff_coefficient=1.0)
    assert {policy.delay_after(n) for n in range(1, 50)} == {2.0}


def test_no_cap_keeps_growing() -> None:
    policy = RetryPolicy(maximum_interval=None)
    assert policy.delay_after(11) == 1024.0


def test_maximum_attempts_counts_the_first_attempt() -> None:
    policy = RetryPolicy(maximum_attempts=3)
    assert policy.delay_after(1) == 1.0
    assert policy.delay_after(2) == 2.0
    assert policy.delay_after(3) is None  # the third attempt was the last
    assert policy.delay_after(4) is None


def test_a_single_attempt_never_retries() -> None:
    assert RetryPolicy(maximum_attempts=1).delay_after(1) is None


def test_unlimited_attempts_never_run_out() -> None:
    policy = RetryPolicy(maximum_attempts=0)
    assert policy.delay_after(500) == 100.0


def test_capped_delay_survives_a_day_of_retries() -> None:
    # 2.0 ** 1025 overflows a float: after ~28 h of capped retries the owner must
    # still get the cap back, not an OverflowError.
    policy = RetryPolicy()
    assert policy.delay_after(1026) == 100.0
    assert policy.delay_after(100_000) == 100.0


def test_invalid_policies_are_rejected_naming_the_field() -> None:
    for field, value in [
        ("initial_interval", 0),
        ("backoff_coefficient", 0.5),
        ("maximum_interval", 0),
        ("maximum_attempts", -1),
    ]:
        with pytest.raises(ValidationError) as caught:
            RetryPolicy.model_validate({field: value})
        assert caught.value.errors()[0]["loc"] == (field,)


def test_seconds_normalises_durations() -> None:
    assert RetryPolicy.seconds(timedelta(minutes=2)) == 120.0
    assert RetryPolicy.seconds(3) == 3.0
    assert RetryPolicy.seconds(None) is None


def test_intervals_may_be_timedeltas_as_in_temporalio() -> None:
    given = RetryPolicy(initial_interval=timedelta(milliseconds=200), maximum_interval=timedelta(minutes=1))
    assert (given.initial_interval, given.maximum_interval) == (0.2, 60.0)
    assert given == RetryPolicy(initial_interval=0.2, maximum_interval=60.0)  # and they travel as seconds
    with pytest.raises(ValidationError, match="initial_interval"):
        RetryPolicy(initial_interval=timedelta(0))
