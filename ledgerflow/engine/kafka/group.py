"""The engine group's membership settings, for either of Kafka's group protocols.

``classic``: the client-side cooperative-sticky assignor; each member sends its own session
timeout and heartbeat interval (within the broker's ``group.min/max.session.timeout.ms``).

``consumer`` (KIP-848, Kafka 4.0+): the broker assigns, incrementally, with no group-wide
barrier. Session timeout and heartbeat interval are the broker's (``group.consumer.*``, 45 s
and 5 s by default) unless the group has its own ``consumer.session.timeout.ms`` and
``consumer.heartbeat.interval.ms`` configs, which the engine sets at start. The broker refuses
values outside its ``group.consumer.min/max.*`` bounds; a managed Kafka rarely lets you change
those, so there the failover time is the provider's. See docs/decisions/ for the measurement.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, ResourceType

log = logging.getLogger("ledgerflow.engine.kafka")

GroupProtocol = Literal["classic", "consumer"]
GROUP_PROTOCOLS: tuple[GroupProtocol, ...] = ("classic", "consumer")


def heartbeat_ms(session_timeout_ms: int) -> int:
    """A sixth of the session timeout: a member misses five heartbeats before it is dropped."""
    return max(100, session_timeout_ms // 6)


def member_config(protocol: GroupProtocol, session_timeout_ms: int) -> dict[str, Any]:
    """Consumer settings of an engine group member (librdkafka refuses the classic ones under
    the consumer protocol)."""
    if protocol == "consumer":
        return {"group.protocol": "consumer"}
    return {
        "group.protocol": "classic",
        "partition.assignment.strategy": "cooperative-sticky",
        "session.timeout.ms": session_timeout_ms,
        "heartbeat.interval.ms": heartbeat_ms(session_timeout_ms),
    }


def set_group_timeouts(admin: AdminClient, group: str, session_timeout_ms: int) -> str | None:
    """Give a consumer-protocol group this session timeout (and its heartbeat interval) as group
    configs; the broker's reason when it refuses them (its bounds), None when they are set."""
    resource = ConfigResource(
        ResourceType.GROUP,
        group,
        incremental_configs=[
            ConfigEntry(
                "consumer.session.timeout.ms",
                str(session_timeout_ms),
                incremental_operation=AlterConfigOpType.SET,
            ),
            ConfigEntry(
                "consumer.heartbeat.interval.ms",
                str(heartbeat_ms(session_timeout_ms)),
                incremental_operation=AlterConfigOpType.SET,
            ),
        ],
    )
    try:
        admin.incremental_alter_configs([resource], request_timeout=10)[resource].result(15)
    except (KafkaException, TimeoutError) as exc:
        reason = str(exc.args[0].str()) if isinstance(exc, KafkaException) else "no answer in 15 s"
        log.warning(
            "the broker refused session timeout %d ms for group %s (%s): the broker's "
            "group.consumer.session.timeout.ms applies, and with it the failover time",
            session_timeout_ms,
            group,
            reason,
        )
        return reason
    return None
