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

    def rebase(self, committed: int) -> None:
        """Another worker committed up to ``committed`` meanwhile: the offsets below it are done
        as far as Kafka knows; what this worker still runs from there on stays in flight."""
        self.in_flight = {o for o in self.in_flight if o >= committed}
        self.committed = committed
        self.highest_seen = max(committed - 1, max(self.in_flight, default=-1))

    def committable(self) -> int | None:
        """The offset to commit now, or None when nothing new is safe to commit."""
        low = min(self.in_flight) if self.in_flight else self.highest_seen + 1
        if low <= self.committed or low <= 0:
            return None
        return low
