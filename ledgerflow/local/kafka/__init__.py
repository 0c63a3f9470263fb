"""A local Apache Kafka (KRaft) on loopback for development and tests, without Docker.

::

    from ledgerflow.local.kafka import LocalKafka

    kafka = LocalKafka(".ledgerflow/kafka", brokers=1)
    bootstrap = kafka.up()      # "127.0.0.1:PORT"; idempotent
    kafka.status().running      # True
    kafka.down()                # stops exactly the PIDs it started

The broker is the real ``org.apache.kafka:kafka_2.13`` (version pinned in
:data:`KAFKA_VERSION`), resolved once with Maven into a shared cache, or taken
from ``$KAFKA_HOME/libs``. Settings are tuned for tests; see ``config.py``.
"""

from ledgerflow.local.kafka.errors import (
    DataDirConflictError,
    KafkaStartError,
    LocalKafkaError,
    ToolMissingError,
)
from ledgerflow.local.kafka.launcher import BrokerStatus, KafkaStatus, LocalKafka
from ledgerflow.local.kafka.libs import (
    KAFKA_VERSION,
    cached_libs_dir,
    ensure_libs,
    java_tool_command,
)

__all__ = [
    "KAFKA_VERSION",
    "BrokerStatus",
    "DataDirConflictError",
    "KafkaStartError",
    "KafkaStatus",
    "LocalKafka",
    "LocalKafkaError",
    "ToolMissingError",
    "cached_libs_dir",
    "ensure_libs",
    "java_tool_command",
]
