"""Who serves the task queues this engine writes to: the workers in each queue's group.

A task for a queue with no worker waits in its topic until one starts; that is by design
(DAGs are deployed before their workers), but a person looking at a stuck run must see
why. The owner loop never asks Kafka this itself: a thread asks every few seconds, and a
describe of a run names each pending activity's queue with the workers last seen on it.
"""

from __future__ import annotations

import logging
import threading

from ledgerflow import kafkaclients as clients
from ledgerflow.config import Settings
from ledgerflow.engine import metrics

log = logging.getLogger("ledgerflow.engine.queues")
REFRESH_INTERVAL = 5.0
"""Seconds between two looks at the workers of every queue."""


class QueueWatch:
    """Workers per task queue, as the queue's consumer group last showed them."""

    def __init__(self, settings: Settings, interval: float = REFRESH_INTERVAL) -> None:
        self.settings = settings
        self.interval = interval
        self._groups = clients.GroupDescriber(settings)
        self._workers: dict[str, int] = {}
        self._watched: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def watch(self, queues: set[str]) -> None:
        """Keep an eye on these queues from now on (the engine wrote tasks there)."""
        with self._lock:
            self._watched |= queues

    def workers(self, queue: str) -> int | None:
        """Workers last seen on ``queue``; asks Kafka now if it was never looked at (None: unknown)."""
        with self._lock:
            known = self._workers.get(queue)
        if known is not None:
            return known
        self.watch({queue})
        return self._look(queue)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="queue-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            with self._lock:
                queues = sorted(self._watched)
            for queue in queues:
                self._look(queue)

    def _look(self, queue: str) -> int | None:
        group = f"{self.settings.prefix}workers.{queue}"
        try:
            described = self._groups.describe(group, 6)
        except Exception as exc:  # the broker is away: keep what was last seen
            log.warning("cannot describe the workers of task queue %r: %s", queue, exc)
            return None
        count = len(described.members)
        with self._lock:
            seen_before = self._workers.get(queue)
            self._workers[queue] = count
        metrics.QUEUE_WORKERS.labels(queue=queue).set(count)
        if count == 0 and seen_before != 0:
            log.warning(
                "task queue %r has no worker: its tasks wait until one starts (ledgerflow worker --queue %s)",
                queue,
                queue,
            )
        return count
