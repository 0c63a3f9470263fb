"""Shared fixtures: one Kafka per test session, a unique topic prefix per test.

Kafka comes from ``LEDGERFLOW_BOOTSTRAP`` when set, else testcontainers when a
Docker engine answers, else the local launcher (real Kafka jars via Maven),
started lazily by the first test that asks and stopped at session end.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from ledgerflow.testing.kafka import kafka_for_tests

pytest_plugins = ["tests.fixtures"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the tests that do not use the session's Kafka first.

    Some of them start brokers of their own (launcher and ``cluster`` tests);
    running them before the session broker exists keeps the 2-core machine to
    one Kafka at a time. The sort is stable: file order is kept otherwise.
    """
    items.sort(key=_uses_session_kafka)


def _uses_session_kafka(item: pytest.Item) -> bool:
    """A test that asks for the session's Kafka: by a fixture, or by a fixture parameter
    named ``kafka`` that requests it when run (tests/sdk's ``hello``: a real stack, or the
    in-process environment)."""
    callspec = getattr(item, "callspec", None)
    by_parameter = callspec is not None and "kafka" in callspec.params.values()
    return by_parameter or "kafka_bootstrap" in getattr(item, "fixturenames", ())


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Bootstrap servers of the session's Kafka (see the module docstring)."""
    with kafka_for_tests(tmp_path_factory.mktemp("kafka")) as bootstrap:
        yield bootstrap


@pytest.fixture
def topic_prefix() -> str:
    """A prefix no other test uses, e.g. ``t-1a2b3c4d.``, so tests share one broker safely."""
    return f"t-{uuid.uuid4().hex[:8]}."
