"""The restore's watermark query waits out a leader election instead of failing the assignment.

A stand-in consumer answers with the errors a real broker gave (CI saw OFFSET_NOT_AVAILABLE from
a newly elected leader whose high watermark had not caught up); the real-broker case is
tests/engine/test_replicated.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from ledgerflow.engine.state import recovery


class _ElectingConsumer:
    """Raises the queued errors, then answers (low, high); records metadata refreshes."""

    def __init__(self, errors: list[int]) -> None:
        self.errors = list(errors)
        self.metadata_refreshes = 0

    def get_watermark_offsets(self, tp: TopicPartition, timeout: float, cached: bool) -> tuple[int, int]:
        if self.errors:
            raise KafkaException(KafkaError(self.errors.pop(0)))
        return 3, 17

    def list_topics(self, topic: str, timeout: float) -> Any:
        self.metadata_refreshes += 1
        return None


@pytest.mark.parametrize(
    "code",
    [KafkaError.OFFSET_NOT_AVAILABLE, KafkaError.NOT_LEADER_FOR_PARTITION, KafkaError.LEADER_NOT_AVAILABLE],
)
def test_a_leader_election_is_waited_out(code: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recovery.time, "sleep", lambda _s: None)
    consumer = _ElectingConsumer([code, code])
    assert recovery._watermarks(consumer, TopicPartition("t", 0), timeout=30) == (3, 17)  # type: ignore[arg-type]
    assert consumer.metadata_refreshes == 2


def test_an_error_that_will_not_pass_is_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recovery.time, "sleep", lambda _s: None)
    consumer = _ElectingConsumer([KafkaError.TOPIC_AUTHORIZATION_FAILED])
    with pytest.raises(KafkaException):
        recovery._watermarks(consumer, TopicPartition("t", 0), timeout=30)  # type: ignore[arg-type]
