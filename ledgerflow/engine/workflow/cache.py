"""A bounded LRU of live workflow instances; a miss is rebuilt by replay.

An instance leaving the cache is disposed of (``WorkflowInstance.dispose``): the cache
holds the only reference the owner keeps, so it is freed at once.
"""

from __future__ import annotations

from collections import OrderedDict

from ledgerflow.engine.workflow.instance import WorkflowInstance


class InstanceCache:
    def __init__(self, max_size: int = 10_000) -> None:
        self.max_size = max_size
        self._items: OrderedDict[tuple[str, str], WorkflowInstance] = OrderedDict()

    def get(self, workflow_id: str, run_id: str) -> WorkflowInstance | None:
        instance = self._items.get((workflow_id, run_id))
        if instance is None:
            return None
        self._items.move_to_end((workflow_id, run_id))
        return instance

    def peek(self, workflow_id: str, run_id: str) -> WorkflowInstance | None:
        """The cached instance, without counting a hit or refreshing its place."""
        return self._items.get((workflow_id, run_id))

    def put(self, workflow_id: str, run_id: str, instance: WorkflowInstance) -> None:
        replaced = self._items.get((workflow_id, run_id))
        if replaced is not None and replaced is not instance:
            replaced.dispose()
        self._items[(workflow_id, run_id)] = instance
        self._items.move_to_end((workflow_id, run_id))
        while len(self._items) > self.max_size:
            _, evicted = self._items.popitem(last=False)
            if evicted is not instance:  # with no room at all, the caller still runs it
                evicted.dispose()

    def evict(self, workflow_id: str, run_id: str) -> None:
        evicted = self._items.pop((workflow_id, run_id), None)
        if evicted is not None:
            evicted.dispose()

    def evict_workflow(self, workflow_id: str) -> None:
        """Every cached run of one workflow id (after a rolled-back command)."""
        for key in [k for k in self._items if k[0] == workflow_id]:
            self._items.pop(key).dispose()

    def clear(self) -> None:
        """Drop every instance (the partition is given up)."""
        while self._items:
            _, instance = self._items.popitem()
            instance.dispose()

    def __len__(self) -> int:
        return len(self._items)
