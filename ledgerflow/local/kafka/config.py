"""``server.properties`` of one combined broker+controller node, tuned for tests.

Every setting that differs from Kafka's default is here with the reason; the
launcher writes the rendered file into the node's folder.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"


@dataclass(frozen=True)
class NodeSpec:
    """Where one node listens; ``index`` is 0-based, ``node_id`` = index + 1."""

    index: int
    port: int
    controller_port: int
    mtls_port: int | None = None
    """Secure clusters: the mutual-TLS listener (``port`` is then SASL_SSL)."""

    @property
    def node_id(self) -> int:
        return self.index + 1

    @property
    def address(self) -> str:
        return f"{HOST}:{self.port}"

    @property
    def mtls_address(self) -> str | None:
        return None if self.mtls_port is None else f"{HOST}:{self.mtls_port}"


def voters(nodes: list[NodeSpec]) -> str:
    """``controller.quorum.voters``: static voters, so storage is formatted without --standalone."""
    return ",".join(f"{n.node_id}@{HOST}:{n.controller_port}" for n in nodes)


def _listeners(node: NodeSpec, security: dict[str, str | int] | None) -> dict[str, str | int]:
    if security is None:
        return {
            "listeners": f"PLAINTEXT://{HOST}:{node.port},CONTROLLER://{HOST}:{node.controller_port}",
            "advertised.listeners": f"PLAINTEXT://{HOST}:{node.port}",
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        }
    # Secure: clients over SASL_SSL or mutual TLS; nodes talk to each other (and to the
    # controllers) over mutual TLS with the broker certificate. Nothing in clear text.
    client, mtls = f"CLIENT://{HOST}:{node.port}", f"MTLS://{HOST}:{node.mtls_port}"
    return {
        "listeners": f"{client},{mtls},CONTROLLER://{HOST}:{node.controller_port}",
        "advertised.listeners": f"{client},{mtls}",
        "inter.broker.listener.name": "MTLS",
        "controller.listener.names": "CONTROLLER",
        "listener.security.protocol.map": "CLIENT:SASL_SSL,MTLS:SSL,CONTROLLER:SSL",
        **security,
    }


def server_properties(
    node: NodeSpec, nodes: list[NodeSpec], log_dir: Path, security: dict[str, str | int] | None = None
) -> str:
    """The properties text for ``node`` of the cluster ``nodes``; ``security`` (from
    ``secure.SecureFiles.broker_settings``) makes it a secure node."""
    n = len(nodes)
    # One broker: internal topics cannot have more replicas than brokers.
    # Three: RF 3 with min.insync.replicas 2 so one node may die without losing
    # acks=all writes or transactions.
    rf = 3 if n >= 3 else 1
    min_isr = 2 if n >= 3 else 1
    settings: dict[str, str | int] = {
        "process.roles": "broker,controller",
        "node.id": node.node_id,
        "controller.quorum.voters": voters(nodes),
        **_listeners(node, security),
        "log.dirs": str(log_dir),
        # Topics are created explicitly (ledgerflow topics create / the tests),
        # so a typo'd topic name fails instead of silently appearing.
        "auto.create.topics.enable": "false",
        "num.partitions": 1,
        "default.replication.factor": rf,
        "min.insync.replicas": min_isr,
        "offsets.topic.replication.factor": rf,
        "transaction.state.log.replication.factor": rf,
        "transaction.state.log.min.isr": min_isr,
        "share.coordinator.state.topic.replication.factor": rf,
        "share.coordinator.state.topic.min.isr": min_isr,
        # Fewer internal partitions than the 50 default: they are created on the
        # first group/transaction use, and loading 50 coordinators per broker
        # on 2 cores is what makes the first init_transactions() slow.
        "offsets.topic.num.partitions": 10,
        "transaction.state.log.num.partitions": 10,
        # Tests: the first consumer of every group would otherwise wait 3 s.
        "group.initial.rebalance.delay.ms": 0,
        # Let engines choose consumer session timeouts below the 6 s default minimum,
        # so a kill -9'd engine's partitions move in ~3 s (see `engine --session-timeout-ms`).
        "group.min.session.timeout.ms": 1000,
        # The same for engines on the consumer group protocol (KIP-848), which set their
        # session timeout and heartbeat as group configs within these bounds (45 s and 5 s
        # by default: a kill -9'd engine's partitions would wait 45 s).
        "group.consumer.min.session.timeout.ms": 1000,
        "group.consumer.min.heartbeat.interval.ms": 100,
        # Tests: notice a kill -9'd broker in ~3 s instead of the 9 s default,
        # so leaders move and acks=all producers carry on quickly.
        "broker.session.timeout.ms": 3000,
        "broker.heartbeat.interval.ms": 500,
        # Tests: elect a new active controller quickly when it is the one killed.
        "controller.quorum.election.timeout.ms": 1000,
        "controller.quorum.fetch.timeout.ms": 2000,
        "controller.quorum.election.backoff.max.ms": 500,
        # Tests: a stopped follower leaves the ISR sooner (default 30 s).
        "replica.lag.time.max.ms": 10000,
        # Small machine (2 cores, up to 3 brokers): fewer threads than the defaults.
        "num.network.threads": 2,
        "num.io.threads": 4,
        "num.recovery.threads.per.data.dir": 1,
        "background.threads": 4,
        "log.retention.check.interval.ms": 60000,
    }
    lines = [
        "# Written by ledgerflow's local Kafka launcher (ledgerflow/local/kafka); tuned for tests.",
        *(f"{key}={value}" for key, value in settings.items()),
    ]
    return "\n".join(lines) + "\n"
