"""Cluster events an engine publishes: joining and leaving, partitions assigned, revoked and lost
(``ledgerflow.cluster`` reads them back)."""

from __future__ import annotations

import json
import time
from typing import Any

from confluent_kafka import Producer

from ledgerflow.config import Settings


class ClusterEventPublisher:
    """Fire-and-forget cluster events of one node (they are observability, not state)."""

    def __init__(self, producer: Producer, settings: Settings, node: str, url: str) -> None:
        self.producer = producer
        self.topic = settings.topic("cluster")
        self.node = node
        self.url = url

    def __call__(self, event: dict[str, Any]) -> None:
        record = {"node": self.node, "url": self.url, "time": time.time(), **event}
        self.producer.produce(self.topic, key=self.node.encode(), value=json.dumps(record).encode())
        self.producer.poll(0)
