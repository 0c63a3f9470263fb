"""A Kafka for a test session: the one named by ``LEDGERFLOW_BOOTSTRAP``, else a
testcontainers Kafka when a Docker engine answers, else the local launcher.

::

    with kafka_for_tests(tmp_dir) as bootstrap:
        ...

Whichever route was taken, the Kafka accepts transactional producers and
read_committed consumers before the bootstrap address is handed out.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ledgerflow.local.kafka import LocalKafka, readiness

# Single-broker settings a transactional test needs, plus no 3 s wait before
# the first rebalance of every group.
_CONTAINER_ENV = {
    "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": "1",
    "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": "1",
    "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": "1",
    "KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS": "0",
    "KAFKA_AUTO_CREATE_TOPICS_ENABLE": "false",
}
CONTAINER_IMAGE = "confluentinc/cp-kafka:7.9.0"


def docker_available(timeout: float = 2.0) -> bool:
    """True when a Docker engine answers a ping within ``timeout`` seconds."""
    try:
        import docker  # type: ignore[import-untyped]
    except ImportError:
        return False
    try:
        client = docker.from_env(timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception:  # the docker SDK raises many kinds when no engine is there
        return False


@contextlib.contextmanager
def _container() -> Iterator[str]:
    try:  # testcontainers >= 4.14 moved the module
        from testcontainers.community.kafka import KafkaContainer
    except ImportError:
        from testcontainers.kafka import KafkaContainer

    container: Any = KafkaContainer(CONTAINER_IMAGE).with_kraft()
    for key, value in _CONTAINER_ENV.items():
        container = container.with_env(key, value)
    with container as kafka:
        bootstrap = str(kafka.get_bootstrap_server())
        readiness.wait_ready(bootstrap, 1, time.monotonic() + 120, lambda: None, {})
        yield bootstrap


@contextlib.contextmanager
def kafka_for_tests(data_dir: Path, *, use_docker: bool | None = None) -> Iterator[str]:
    """Yield a bootstrap address for a test session; tear down what was started.

    ``use_docker`` None means: when a Docker engine answers.
    """
    if bootstrap := os.environ.get("LEDGERFLOW_BOOTSTRAP"):
        yield bootstrap
        return
    if use_docker is None:
        use_docker = docker_available()
    if use_docker:
        with _container() as bootstrap:
            yield bootstrap
        return
    kafka = LocalKafka(data_dir, brokers=1)
    try:
        yield kafka.up()
    finally:
        kafka.down()
