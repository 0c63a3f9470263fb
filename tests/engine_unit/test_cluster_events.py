"""Failover detection over the cluster event log (pure logic)."""

from __future__ import annotations

from ledgerflow.cluster import mark_failovers


def event(kind: str, node: str, partitions: list[int] | None = None) -> dict[str, object]:
    return {"type": kind, "node": node, "partitions": partitions or []}


def test_an_assignment_from_a_node_that_never_gave_up_its_partitions_is_a_failover() -> None:
    events = mark_failovers(
        [
            event("PARTITIONS_ASSIGNED", "a", [0, 1]),
            event("PARTITIONS_ASSIGNED", "b", [2, 3]),
            event("PARTITIONS_ASSIGNED", "b", [0, 1]),  # a was kill -9'd: it revoked nothing
        ]
    )
    assert events[2]["failover_from"] == ["a"] and events[2]["failover_partitions"] == [0, 1]
    assert "failover_from" not in events[1]


def test_a_rebalance_after_a_revoke_or_a_clean_leave_is_not_a_failover() -> None:
    events = mark_failovers(
        [
            event("PARTITIONS_ASSIGNED", "a", [0, 1]),
            event("PARTITIONS_REVOKED", "a", [1]),
            event("PARTITIONS_ASSIGNED", "b", [1]),
            event("PARTITIONS_CLOSED", "a", [0]),
            event("NODE_LEFT", "a"),
            event("PARTITIONS_ASSIGNED", "b", [0]),
        ]
    )
    assert not any("failover_from" in e for e in events)
