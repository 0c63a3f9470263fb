"""One consumer-group description in flight per group, each given librdkafka's long operation
timeout, whatever its callers give up after (ledgerflow.kafkaclients.GroupDescriber, decision 0009)."""

from __future__ import annotations

from concurrent.futures import Future, TimeoutError
from typing import Any

import pytest

from ledgerflow import kafkaclients
from ledgerflow.config import Settings


class CountingAdmin:
    """Stands in for librdkafka's AdminClient: records each operation and its timeout."""

    def __init__(self) -> None:
        self.operations: list[tuple[list[str], float]] = []
        self.futures: list[Future[Any]] = []

    def describe_consumer_groups(self, groups: list[str], request_timeout: float) -> dict[str, Future[Any]]:
        self.operations.append((groups, request_timeout))
        future: Future[Any] = Future()
        self.futures.append(future)
        return {groups[0]: future}


def test_callers_that_give_up_share_one_pending_description() -> None:
    describer = kafkaclients.GroupDescriber(Settings(bootstrap="127.0.0.1:1"))
    admin = CountingAdmin()
    describer.admin = admin  # type: ignore[assignment]
    for _ in range(3):
        with pytest.raises(TimeoutError):
            describer.describe("engines", 0.01)
    assert admin.operations == [(["engines"], kafkaclients.GROUP_OPERATION_TIMEOUT)]
    admin.futures[0].set_result("described")
    assert describer.describe("engines", 0.01) == "described"
    # once answered, the next call asks again; another group has its own operation
    with pytest.raises(TimeoutError):
        describer.describe("engines", 0.01)
    with pytest.raises(TimeoutError):
        describer.describe("workers", 0.01)
    assert [groups for groups, _ in admin.operations] == [["engines"], ["engines"], ["workers"]]
