"""Find the engine node that owns a workflow's partition.

Consumer-group membership is the routing table: each engine joins the
``<prefix>engine`` group with its HTTP address in its ``client.id``, and the
group's assignment says which member owns which inbox partition.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from urllib.parse import quote

from ledgerflow import kafkaclients as clients
from ledgerflow.config import Settings

CLIENT_ID_PREFIX = "ledgerflow-engine "


def path_segment(value: str) -> str:
    """``value`` as one URL path segment (``/``, ``%`` and dot-only names escaped)."""
    quoted = quote(value, safe="")
    if quoted.strip(".") == "":
        quoted = quoted.replace(".", "%2E")
    return quoted


@dataclass(frozen=True)
class DirectorySnapshot:
    """One consistent view of the group: who owns what, when it was read."""

    owners: dict[int, str] = field(default_factory=dict)
    """partition -> owner URL (partitions without an owner are absent)."""
    members: list[dict[str, object]] = field(default_factory=list)
    state: str = "Unknown"
    """The group's state (``Stable``, ``PreparingRebalance``, ...) or ``Unreachable``."""
    fetched_at: float = 0.0
    """``time.monotonic()`` of the read."""


class OwnerDirectory:
    """partition -> owner URL, refreshed from the group's membership at most every ``ttl`` s."""

    def __init__(self, settings: Settings, ttl: float = 1.0) -> None:
        self.settings = settings
        self.ttl = ttl
        self._groups = clients.GroupDescriber(settings)
        self._owners: dict[int, str] = {}
        self._members: list[dict[str, object]] = []
        self._state = "Unknown"
        self._fetched = 0.0
        self._lock = threading.Lock()

    @property
    def group_id(self) -> str:
        return f"{self.settings.prefix}engine"

    def snapshot(self, refresh: bool = False) -> DirectorySnapshot:
        """Owners, members and group state read together (``refresh`` forces a new read)."""
        self._maybe_refresh(force=refresh)
        with self._lock:
            return DirectorySnapshot(dict(self._owners), list(self._members), self._state, self._fetched)

    def _maybe_refresh(self, force: bool) -> None:
        with self._lock:
            if not force and time.monotonic() - self._fetched < self.ttl:
                return
            self._fetched = time.monotonic()
            try:
                description = self._groups.describe(self.group_id, 2)
            except Exception:
                # Keep the last known owners: a node that no longer owns a partition
                # answers 421, so stale routing is safe, and reads survive a Kafka blip.
                self._state = "Unreachable"
                return
            inbox = self.settings.topic("inbox")
            owners: dict[int, str] = {}
            members: list[dict[str, object]] = []
            for member in description.members:
                url = (
                    member.client_id[len(CLIENT_ID_PREFIX) :].split(" ")[0]
                    if member.client_id.startswith(CLIENT_ID_PREFIX)
                    else ""
                )
                partitions = sorted(
                    tp.partition
                    for tp in (member.assignment.topic_partitions if member.assignment else [])
                    if tp.topic == inbox
                )
                for p in partitions:
                    owners[p] = url
                members.append(
                    {"member_id": member.member_id, "url": url, "host": member.host, "partitions": partitions}
                )
            self._owners = owners
            self._members = members
            self._state = str(getattr(description.state, "name", description.state))
