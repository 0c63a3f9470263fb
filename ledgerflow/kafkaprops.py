"""Kafka client properties a deployment adds to every client: TLS, SASL, and any other
librdkafka property, read the way Kafka users already know.

- ``LEDGERFLOW_KAFKA_<PROPERTY>`` environment variables: the property name upper case with
  dots as ``_`` and underscores as ``__`` (``LEDGERFLOW_KAFKA_SECURITY_PROTOCOL=SASL_SSL``,
  ``LEDGERFLOW_KAFKA_SASL_MECHANISM=SCRAM-SHA-512``,
  ``LEDGERFLOW_KAFKA_SSL_CA_LOCATION=/etc/kafka/ca.pem``);
- a file of ``name=value`` lines (``#`` comments), named by ``LEDGERFLOW_KAFKA_CONFIG`` or
  ``--kafka-config FILE``; the environment wins over the file.

The properties Ledgerflow sets itself for correctness (transactions, isolation, idempotence,
partitioner, group ids) cannot be overridden: they are refused with the reason. The
confluent-kafka clients take the properties as they are; the aiokafka clients (workers) take
the security ones through ``executors.aiokafka_config``. Values never reach a log: see
:func:`redacted`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

ENV_PREFIX = "LEDGERFLOW_KAFKA_"
FILE_ENV = "LEDGERFLOW_KAFKA_CONFIG"
"""Names the properties file; not a property itself (librdkafka has no ``config``)."""

OWNED = {
    "bootstrap.servers": "set LEDGERFLOW_BOOTSTRAP (or --bootstrap) instead",
    "transactional.id": "engines derive it from their node id to fence zombies",
    "enable.idempotence": "exactly-once and ordered retries rely on it",
    "isolation.level": "readers must not see aborted transactions",
    "enable.auto.commit": "offsets are committed with the work they record",
    "enable.auto.offset.store": "offsets are committed with the work they record",
    "group.id": "each component names its own group",
    "partitioner": "every writer must place a workflow id on the same partition",
    "acks": "records are acknowledged by every in-sync replica",
    "message.max.bytes": "set LEDGERFLOW_MAX_RECORD_BYTES instead",
    "metadata.broker.list": "set LEDGERFLOW_BOOTSTRAP (or --bootstrap) instead",
    "group.instance.id": "engine replicas would share one static member id and fence each other",
    "group.protocol": "set `engine --group-protocol` instead",
    "group.remote.assignor": "set `engine --group-protocol` instead",
    "partition.assignment.strategy": "each component picks its own",
    "session.timeout.ms": "set `engine --session-timeout-ms` instead",
    "heartbeat.interval.ms": "follows the session timeout",
    "max.poll.interval.ms": "each component sets its own",
    "transaction.timeout.ms": "bounds how long a dead engine's transaction blocks readers",
    "auto.offset.reset": "a reader without offsets starts from the beginning, or misses work",
    "enable.partition.eof": "each reader sets its own",
}
"""Properties Ledgerflow sets itself, with why a deployment may not change them."""

_SECRET_WORDS = ("password", "secret", "key", "token", "jaas")


class KafkaPropertiesError(ValueError):
    """A property that cannot be used; the message names it and says why."""


def env_name(prop: str) -> str:
    """The environment variable of a property: ``sasl.username`` → ``LEDGERFLOW_KAFKA_SASL_USERNAME``."""
    return ENV_PREFIX + prop.replace("_", "__").replace(".", "_").upper()


def _prop_name(env: str) -> str:
    return env[len(ENV_PREFIX) :].lower().replace("__", "\0").replace("_", ".").replace("\0", "_")


_SERVICE_LINK = re.compile(
    r"_(SERVICE_HOST|SERVICE_PORT(_\w+)?|PORT(_\d+_(TCP|UDP|SCTP)(_PROTO|_PORT|_ADDR)?)?)$"
)
"""Variables kubelet adds for every Service (``<NAME>_SERVICE_HOST``, ``<NAME>_PORT_9092_TCP``...):
one named ``ledgerflow-kafka`` would otherwise read as Kafka properties."""


def from_env(environ: Mapping[str, str]) -> dict[str, str]:
    """The properties set as ``LEDGERFLOW_KAFKA_*`` variables (``LEDGERFLOW_KAFKA_CONFIG`` and
    Kubernetes service links aside)."""
    return {
        _prop_name(name): value
        for name, value in environ.items()
        if name.startswith(ENV_PREFIX)
        and name != FILE_ENV
        and len(name) > len(ENV_PREFIX)
        and not _SERVICE_LINK.search(name)
    }


def from_file(path: Path) -> dict[str, str]:
    """``name=value`` lines of ``path``; blank lines and ``#`` comments are skipped."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise KafkaPropertiesError(f"cannot read Kafka properties file {path}: {exc.strerror}") from exc
    props: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, value = line.partition("=")
        if not sep or not name.strip():
            raise KafkaPropertiesError(f"{path}:{number}: expected name=value")
        props[name.strip()] = value.strip()
    return props


def check(props: Mapping[str, str]) -> dict[str, str]:
    """``props`` when none of them is one Ledgerflow owns; else KafkaPropertiesError naming each."""
    refused = [f"{name} ({OWNED[name]})" for name in props if name in OWNED]
    if refused:
        raise KafkaPropertiesError("Kafka properties Ledgerflow sets itself: " + "; ".join(refused))
    return dict(props)


def load(file: Path | None, environ: Mapping[str, str]) -> dict[str, str]:
    """The deployment's properties: the file's (``file``, else ``$LEDGERFLOW_KAFKA_CONFIG``), then
    the environment's on top, checked."""
    named = file or (Path(environ[FILE_ENV]) if environ.get(FILE_ENV) else None)
    props = from_file(named) if named else {}
    props.update(from_env(environ))
    return check(props)


def is_secret(name: str) -> bool:
    return any(word in name for word in _SECRET_WORDS) and not name.endswith(".location")


def redacted(props: Mapping[str, str]) -> dict[str, str]:
    """``props`` fit for a log line: secret values replaced."""
    return {name: "<redacted>" if is_secret(name) else value for name, value in props.items()}
