"""A bounded LRU of live workflow instances; a miss is rebuilt by replay."""

from __future__ import annotations

from collections import OrderedDict

from ledgerflow.engine.workflow.instance import WorkflowInstance


class InstanceCache:
    def __init__(self, max_size: int = 10_000) -> None:
        self.max_size = max_size
        self._items: OrderedDict[tuple[str, str], WorkflowInstance] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, workflow_id: str, run_id: str) -> WorkflowInstance | None:
        instance = self._items.get((workflow_id, run_id))
        if instance is None:
            self.misses += 1
            return None
        self.hits += 1
        self._items.move_to_end((workflow_id, run_id))
        return instance

    def peek(self, workflow_id: str, run_id: str) -> WorkflowInstance | None:
        """The cached instance, without counting a hit or refreshing its place."""
        return self._items.get((workflow_id, run_id))

    def put(self, workflow_id: str, run_id: str, instance: WorkflowInstance) -> None:
        self._items[(workflow_id, run_id)] = instance
        self._items.move_to_end((workflow_id, run_id))
        while len(self._items) > self.max_size:
            self._items.popitem(last=False)

    def evict(self, workflow_id: str, run_id: str) -> None:
        self._items.pop((workflow_id, run_id), None)

    def evict_workflow(self, workflow_id: str) -> None:
        """Every cached run of one workflow id (after a rolled-back command)."""
        for key in [k for k in self._items if k[0] == workflow_id]:
            del self._items[key]

    def __len__(self) -> int:
        return len(self._items)
