"""Low-water-mark offset tracking: commit only below the oldest task still running.

Tasks of one partition finish out of order; committing the highest finished
offset would lose the slow ones on a crash. The committable offset of a
partition is its oldest in-flight offset, or one past the highest seen.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PartitionOffsets:
    in_flight: set[int] = field(default_factory=set)
    highest_seen: int = -1
    committed: int = -1

    def started(self, offset: int) -> None:
        self.in_flight.add(offset)
        self.highest_seen = max(self.highest_seen, offset)

    def finished(self, offset: int) -> None:
        self.in_flight.discard(offset)

    def committable(self) -> int | None:
        """The offset to commit now, or None when nothing new is safe to commit."""
        low = min(self.in_flight) if self.in_flight else self.highest_seen + 1
        if low <= self.committed or low <= 0:
            return None
        return low
