"""When is a freshly started Kafka usable by Ledgerflow?

An open port is not enough: the broker must answer metadata with every node
registered, and the transaction coordinator must accept a transactional
producer (right after start the first ``init_transactions()`` can fail with
"Coordinator load in progress"). The consumer-offsets coordinator is warmed
too, so the first test's consumer group does not pay for it.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Callable, Mapping

from confluent_kafka import KafkaException, Producer
from confluent_kafka.admin import AdminClient

Props = Mapping[str, str]
"""Client properties to reach a secure cluster (its admin's); empty for a plaintext one."""


def _quiet_conf(bootstrap: str, props: Props) -> dict[str, str | int | float | bool]:
    # librdkafka logs every refused connection while the broker starts; the
    # launcher reports failures itself.
    return {"bootstrap.servers": bootstrap, "log_level": 0, **props}


def port_open(address: str, timeout: float = 0.5) -> bool:
    """True when a TCP connection to ``host:port`` succeeds."""
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except OSError:
        return False


def metadata_brokers(bootstrap: str, timeout: float, props: Props) -> int:
    """How many brokers a metadata request reports (raises KafkaException on failure)."""
    admin = AdminClient(_quiet_conf(bootstrap, props))
    return len(admin.list_topics(timeout=timeout).brokers)


def responds(bootstrap: str, expected_brokers: int, props: Props, timeout: float = 5.0) -> bool:
    """True when metadata is answered within ``timeout`` and lists every broker."""
    try:
        return metadata_brokers(bootstrap, timeout, props) >= expected_brokers
    except KafkaException:
        return False


def _init_transactions(bootstrap: str, timeout: float, props: Props) -> None:
    producer = Producer(
        {
            **_quiet_conf(bootstrap, props),
            "transactional.id": f"ledgerflow-localkafka-ready-{uuid.uuid4().hex[:8]}",
            "enable.idempotence": True,
        }
    )
    producer.init_transactions(timeout)


def _warm_group_coordinator(bootstrap: str, timeout: float, props: Props) -> None:
    # DescribeConsumerGroups makes the broker create __consumer_offsets and
    # load its coordinator. (Not list_consumer_group_offsets: with
    # confluent-kafka 2.16.1 it segfaults librdkafka while the coordinator is
    # still loading.)
    admin = AdminClient(_quiet_conf(bootstrap, props))
    group = f"ledgerflow-localkafka-ready-{uuid.uuid4().hex[:8]}"
    for future in admin.describe_consumer_groups([group], request_timeout=timeout).values():
        future.result(timeout=timeout)


def wait_ready(
    bootstrap: str,
    expected_brokers: int,
    deadline: float,
    check_alive: Callable[[], None],
    props: Props,
) -> None:
    """Block until Kafka at ``bootstrap`` is usable, or raise TimeoutError at ``deadline``.

    ``check_alive`` is called between attempts and raises when a broker process
    died, so a failed start is reported at once rather than at the timeout.
    """
    steps: list[tuple[str, float, Callable[[float], None]]] = [
        # a cheap local check first, so a JVM that died is noticed within ~0.1 s
        ("listening", 0.2, lambda t: _require_listening(bootstrap, t)),
        ("metadata", 2.0, lambda t: _require_brokers(bootstrap, expected_brokers, t, props)),
        ("init_transactions", 10.0, lambda t: _init_transactions(bootstrap, t, props)),
        ("group coordinator", 10.0, lambda t: _warm_group_coordinator(bootstrap, t, props)),
    ]
    for name, step_timeout, step in steps:
        last_error: Exception | None = None
        while True:
            check_alive()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{name} not ready: {last_error}")
            try:
                step(min(step_timeout, max(remaining, 0.1)))
                break
            except (KafkaException, RuntimeError, TimeoutError) as exc:
                last_error = exc
                time.sleep(0.1)


def _require_listening(bootstrap: str, timeout: float) -> None:
    closed = [a for a in bootstrap.split(",") if not port_open(a, timeout)]
    if closed:
        raise RuntimeError(f"not listening yet: {', '.join(closed)}")


def _require_brokers(bootstrap: str, expected: int, timeout: float, props: Props) -> None:
    seen = metadata_brokers(bootstrap, timeout, props)
    if seen < expected:
        raise RuntimeError(f"{seen} of {expected} brokers registered")
