"""The chaos run's workload over the test apps (``ledgerflow.testing.chaos`` plays it).

Every workflow knows the result it must end with. Half are ``ChaosMix`` (an activity retried
after planned failures, a timer, two signals it waits for, a child); the rest are ``Parent``
(two children at once), ``SignalCounter`` (signals only) and ``Mixed`` (activities around a
timer). Signals follow their start by a few seconds, so with starts spread over the whole
chaos, some are sent while each node is down.
"""

from __future__ import annotations

from collections.abc import Callable

from ledgerflow.testing.chaos import Plan, SignalPlan


def chaos_mix(workflow_id: str, i: int, at: float) -> Plan:
    payloads = [f"{workflow_id}-a", f"{workflow_id}-b"]
    return Plan(
        workflow_id,
        "ChaosMix",
        [i, i % 3, len(payloads)],
        {"first": i + 1, "signals": payloads, "child": i + 4},
        at,
        (SignalPlan("add", payloads[0], delay=1.5), SignalPlan("add", payloads[1], delay=4.0)),
    )


def parent(workflow_id: str, i: int, at: float) -> Plan:
    return Plan(workflow_id, "Parent", i, [i + 3, i + 4], at)


def signal_counter(workflow_id: str, i: int, at: float) -> Plan:
    # one 'add' then 'done': SignalCounter returns what it took before 'done', which with more
    # adds buffered at once would depend on timing
    return Plan(
        workflow_id,
        "SignalCounter",
        None,
        [i],
        at,
        (SignalPlan("add", i, delay=2.0), SignalPlan("done", delay=2.0)),
    )


def mixed(workflow_id: str, i: int, at: float) -> Plan:
    return Plan(workflow_id, "Mixed", i, i + 2, at)


MIX: list[Callable[[str, int, float], Plan]] = [
    *[chaos_mix] * 5,
    *[parent] * 2,
    *[signal_counter] * 2,
    mixed,
]
"""Kinds in proportion, dealt round-robin."""


def chaos_plans(count: int, seconds: float, tag: str) -> list[Plan]:
    """``count`` workflows with starts spread evenly over ``seconds``."""
    return [MIX[i % len(MIX)](f"chaos-{tag}-{i}", i, i * seconds / count) for i in range(count)]
