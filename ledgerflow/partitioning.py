"""Which shard (partition) a workflow id belongs to.

The default is murmur2, exactly as Kafka's Java client computes it, so records keyed by
workflow id from any producer agree. A custom partitioner (``LEDGERFLOW_PARTITIONER=
"package.module:function"``, a ``function(workflow_id, partitions) -> int``) can keep, for
example, a tenant's workflows on one shard; every Ledgerflow process then produces inbox
records to the partition it names, and external producers must do the same.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable

from aiokafka.partitioner import murmur2

from ledgerflow.errors import LedgerflowError

PartitionFunction = Callable[[str, int], int]


@functools.lru_cache(maxsize=1 << 16)
def partition_for(workflow_id: str, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for key ``workflow_id``.

    Remembered for the last 65,536 ids: murmur2 is pure Python here, and the engine asks again
    for each record and each read of a workflow (py-spy: 5 % of an engine serving a client's
    batched waits)."""
    hashed: int = murmur2(workflow_id.encode())
    return (hashed & 0x7FFFFFFF) % partitions


class PartitionerError(LedgerflowError):
    """The configured partitioner cannot be loaded or returned an invalid partition."""


@functools.lru_cache(maxsize=8)
def load_partitioner(path: str | None) -> PartitionFunction:
    """The function named by ``"module:function"``, or murmur2 when ``path`` is empty."""
    if not path:
        return partition_for
    module_name, _, attribute = path.partition(":")
    if not attribute:
        raise PartitionerError(f"partitioner {path!r} must look like 'package.module:function'")
    try:
        function = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise PartitionerError(f"cannot load partitioner {path!r}: {exc}") from exc
    if not callable(function):
        raise PartitionerError(f"partitioner {path!r} is not callable")

    def checked(workflow_id: str, partitions: int) -> int:
        partition = function(workflow_id, partitions)
        if not isinstance(partition, int) or not 0 <= partition < partitions:
            raise PartitionerError(
                f"partitioner {path!r} returned {partition!r} for {workflow_id!r}; "
                f"expected an int in [0, {partitions})"
            )
        return partition

    return checked
