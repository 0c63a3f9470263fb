"""A batch is bounded by records and by bytes (its records and outputs are held until it commits)."""

from __future__ import annotations

from typing import Any

from ledgerflow.engine.loop import BATCH_CHUNK, fill_batch


class Record:
    def __init__(self, size: int) -> None:
        self._value = b"v" * size

    def value(self) -> bytes:
        return self._value


class Fetched:
    """What a consumer has fetched already: ``consume(n, timeout=0)`` hands out up to ``n``."""

    def __init__(self, sizes: list[int]) -> None:
        self.waiting = [Record(size) for size in sizes]

    def consume(self, num_messages: int, timeout: float) -> list[Any]:
        assert timeout == 0, "filling a batch must never wait"
        taken, self.waiting = self.waiting[:num_messages], self.waiting[num_messages:]
        return taken


def test_a_batch_of_small_records_stops_at_the_record_limit() -> None:
    fetched = Fetched([100] * 1000)
    batch = fill_batch(fetched, Record(100), 500, 16 * 1024 * 1024)  # type: ignore[arg-type]
    assert len(batch) == 500 and len(fetched.waiting) == 501


def test_a_batch_of_large_records_stops_near_the_byte_limit() -> None:
    fetched = Fetched([900_000] * 200)
    batch = fill_batch(fetched, Record(900_000), 500, 16 * 1024 * 1024)  # type: ignore[arg-type]
    total = sum(len(r.value()) for r in batch)
    assert 16 * 1024 * 1024 <= total <= 16 * 1024 * 1024 + BATCH_CHUNK * 900_000
    assert len(batch) == 1 + BATCH_CHUNK, f"took {len(batch)} records of 900 KB"


def test_a_batch_takes_what_is_fetched_and_no_more() -> None:
    fetched = Fetched([10] * 3)
    assert len(fill_batch(fetched, Record(10), 500, 1024)) == 4  # type: ignore[arg-type]
