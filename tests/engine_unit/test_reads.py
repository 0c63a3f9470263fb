"""Reads beside the owner loop cost what they return, on a real RocksDB store.

What a read cost is measured by RocksDB itself (its statistics: keys stepped over by
iterators, bytes they read), not by counting calls in Python.
"""

from __future__ import annotations

import asyncio
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from rocksdict import Options, Rdict

from ledgerflow import workflow
from ledgerflow.config import Settings
from ledgerflow.engine import metrics, reads
from ledgerflow.engine.context import EngineContext
from ledgerflow.engine.outbox import Outbox
from ledgerflow.engine.ownerlock import OwnerLock
from ledgerflow.engine.processor import PartitionProcessor
from ledgerflow.engine.reads import RunFilter, cached_copy, list_runs, replayed
from ledgerflow.engine.state.committed import read_history, read_history_page, read_run
from ledgerflow.engine.state.store import PartitionStore
from ledgerflow.schemas.commands import SignalWorkflow, StartWorkflow, TerminateWorkflow
from ledgerflow.sdk.definition import WorkflowRegistry
from tests.engine_unit.test_processor import FLOWS, batch

SIGNALS = 49_999
"""With its WorkflowStarted, the long run holds 50,000 events."""


@workflow.defn
class HoldsItsWait:
    """Keeps the future it waits on as an attribute: its state cannot be copied."""

    def __init__(self) -> None:
        self.got: list[Any] = []
        self.waiting: asyncio.Future[Any] | None = None

    @workflow.run
    async def run(self) -> None:
        while True:
            self.waiting = asyncio.ensure_future(workflow.wait_signal("add"))
            self.got.append(await self.waiting)

    @workflow.query
    def received(self) -> list[Any]:
        return list(self.got)


@dataclass
class Reads:
    """What reads cost RocksDB."""

    keys: int = 0
    """Keys its iterators stepped to (seeks and nexts)."""
    bytes: int = 0
    """Bytes of keys and values its iterators read."""


class MeteredStore(PartitionStore):
    """The real partition store, opened with RocksDB's statistics on."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._db.close()
        self.options = Options(raw_mode=True)
        self.options.enable_statistics()
        self._db = Rdict(str(path), options=self.options)

    def reads(self) -> Reads:
        """Reads so far (an iterator adds its own when it is dropped)."""
        statistics = self.options.get_statistics()

        def ticker(name: str) -> int:
            found = re.search(rf"^{re.escape(name)} COUNT : (\d+)$", statistics, re.M)
            assert found is not None, f"no ticker {name}"
            return int(found.group(1))

        steps = ticker("rocksdb.number.db.seek") + ticker("rocksdb.number.db.next")
        return Reads(steps, ticker("rocksdb.db.iter.bytes.read"))


@contextmanager
def measured(*processors: PartitionProcessor) -> Iterator[Reads]:
    """The reads of the block, over the processors' stores."""

    def total() -> Reads:
        found = [p.store.reads() for p in processors if isinstance(p.store, MeteredStore)]
        assert len(found) == len(processors), "not a metered store"
        return Reads(sum(r.keys for r in found), sum(r.bytes for r in found))

    before, cost = total(), Reads()
    yield cost
    after = total()
    cost.keys, cost.bytes = after.keys - before.keys, after.bytes - before.bytes


def metered_processor(path: Path, partition: int = 0, **context: Any) -> PartitionProcessor:
    registry = WorkflowRegistry.from_modules([FLOWS, __name__])
    ctx = EngineContext(Settings(), registry, lambda _id: None, **context)
    return PartitionProcessor(partition, MeteredStore(path), ctx)


@pytest.fixture(scope="module")
def long_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PartitionProcessor]:
    """'long': a SignalCounter run of 50,000 events, its instance in the owner's cache."""
    processor = metered_processor(tmp_path_factory.mktemp("long") / "p0")
    batch(processor, 1.0, StartWorkflow(workflow_id="long", workflow_type="SignalCounter", run_id="r"))
    for first in range(0, SIGNALS, 5000):
        signals = [
            SignalWorkflow(workflow_id="long", name="add", payload=i)
            for i in range(first, min(first + 5000, SIGNALS))
        ]
        batch(processor, 2.0 + first, *signals)
    yield processor
    processor.store.close()


# ------------------------------------------------------------------- history
def test_a_one_event_page_of_a_50000_event_history_reads_one_event(long_run: PartitionProcessor) -> None:
    with measured(long_run) as cost:
        page, total = read_history_page(long_run.store, "long", "r", 0, 1)
    assert total == SIGNALS + 1 and [e.kind for e in page] == ["workflow_started"]
    print(f"history?limit=1 of {total} events: {cost.keys} keys, {cost.bytes} bytes read")
    assert cost.keys <= 4 and cost.bytes < 1_000, "the page read more than its event and the last key"

    with measured(long_run) as cost:
        page, _ = read_history_page(long_run.store, "long", "r", 30_000, 5)
    assert [e.index for e in page] == list(range(30_001, 30_006))
    assert [e.payload for e in page] == [29_999, 30_000, 30_001, 30_002, 30_003]  # type: ignore[union-attr]
    assert cost.keys <= 8, f"a page of 5 from the middle stepped over {cost.keys} keys"

    with measured(long_run) as cost:
        everything = read_history(long_run.store, "long", "r")
    print(f"the whole history: {cost.keys} keys, {cost.bytes} bytes read")
    assert len(everything) == SIGNALS + 1 and cost.bytes > 1000 * 1_000  # what the page saved


# ------------------------------------------------------------------ listings
@pytest.fixture
def partitions(tmp_path: Path) -> list[PartitionProcessor]:
    """Three partitions of 120 runs each: 'r-000' ... in workflow-id order across them;
    every 10th is a TERMINATED ThreeSteps, the rest are RUNNING SignalCounters."""
    processors = [metered_processor(tmp_path / f"p{p}", partition=p) for p in range(3)]
    for number in range(360):
        processor = processors[number % 3]
        workflow_id = f"r-{number:03d}"
        workflow_type = "ThreeSteps" if number % 10 == 0 else "SignalCounter"
        batch(processor, 1.0, StartWorkflow(workflow_id=workflow_id, workflow_type=workflow_type, input=1))
        if number % 10 == 0:
            batch(processor, 2.0, TerminateWorkflow(workflow_id=workflow_id))
    return processors


def stores(processors: list[PartitionProcessor]) -> list[tuple[int, PartitionStore]]:
    return [(p.partition, p.store) for p in processors]


def test_a_listing_page_reads_its_runs_and_not_the_rest(partitions: list[PartitionProcessor]) -> None:
    with measured(*partitions) as cost:
        listing = list_runs(stores(partitions), RunFilter(), None, None, 10, 10_000)
    assert [r["workflow_id"] for r in listing.runs] == [f"r-{n:03d}" for n in range(10)]
    assert [r["partition"] for r in listing.runs] == [n % 3 for n in range(10)]
    assert listing.next_after == "r-009" and listing.partitions == [0, 1, 2]
    print(f"list?limit=10 over 360 runs in 3 partitions: {cost.keys} keys read")
    assert cost.keys <= 10 + 2 * 3, f"{cost.keys} keys read for a page of 10"


def test_a_filtered_listing_pages_through_every_match_in_order(partitions: list[PartitionProcessor]) -> None:
    wanted = RunFilter(status="TERMINATED", workflow_type="ThreeSteps")
    listed: list[str] = []
    after: str | None = None
    pages = 0
    while True:
        with measured(*partitions) as cost:
            listing = list_runs(stores(partitions), wanted, after, None, 5, 40)
        assert cost.keys <= 40 + 2 * 3, f"a page examined {cost.keys} keys, over its scan limit of 40"
        assert all(r["status"] == "TERMINATED" and r["workflow_type"] == "ThreeSteps" for r in listing.runs)
        listed += [r["workflow_id"] for r in listing.runs]
        pages += 1
        if listing.next_after is None:
            break
        assert after is None or listing.next_after > after, "the cursor did not move on"
        after = listing.next_after
    assert listed == [f"r-{n:03d}" for n in range(0, 360, 10)]
    assert pages >= 360 // 40, "pages stopped at the scan limit: some must be short"

    only_running = list_runs(stores(partitions), RunFilter(status="RUNNING"), "r-005", None, 3, 10_000)
    assert [r["workflow_id"] for r in only_running.runs] == ["r-006", "r-007", "r-008"]
    nothing = list_runs(stores(partitions), RunFilter(workflow_type="Unknown"), None, None, 5, 10_000)
    assert nothing.runs == [] and nothing.next_after is None


def test_a_partition_closed_under_a_listing_is_left_out(partitions: list[PartitionProcessor]) -> None:
    partitions[1].store.close()  # revoked while listing
    listing = list_runs(stores(partitions), RunFilter(), None, None, 1000, 10_000)
    assert listing.partitions == [0, 2]
    assert [r["workflow_id"] for r in listing.runs] == [f"r-{n:03d}" for n in range(360) if n % 3 != 1]


# ------------------------------------------------------------------- queries
def test_a_query_on_a_cached_run_copies_it_instead_of_replaying(long_run: PartitionProcessor) -> None:
    lock = OwnerLock()
    replays = metrics.REPLAYS._value.get()
    run = read_run(long_run.store, "long")
    assert run is not None
    with measured(long_run) as cost:
        copy = cached_copy(long_run, lock, run)
    assert copy is not None, "the cached instance was not used"
    assert copy.query("received", []) == list(range(SIGNALS))
    print(f"query of a cached 50,000-event run: {cost.keys} history keys read")
    assert cost.keys == 0 and metrics.REPLAYS._value.get() == replays

    # the copy holds the state it was taken at; the live instance carries on
    batch(long_run, 99_000.0, SignalWorkflow(workflow_id="long", name="add", payload="more"))
    assert copy.query("received", [])[-1] == SIGNALS - 1
    later = cached_copy(long_run, lock, read_run(long_run.store, "long"))  # type: ignore[arg-type]
    assert later is not None and later.query("received", [])[-1] == "more"
    for instance in (copy, later):
        instance.dispose()


def test_a_query_never_sees_a_batch_that_is_not_committed(tmp_path: Path) -> None:
    processor = metered_processor(tmp_path / "p0")
    lock = OwnerLock()
    batch(processor, 1.0, StartWorkflow(workflow_id="w", workflow_type="SignalCounter", run_id="r"))
    batch(processor, 2.0, SignalWorkflow(workflow_id="w", name="add", payload=1))
    processor.begin(3.0, Outbox(processor.ctx.settings))  # a batch in progress, not committed
    assert processor.handle(SignalWorkflow(workflow_id="w", name="add", payload=2)) is None
    run = read_run(processor.store, "w")
    assert run is not None
    assert cached_copy(processor, lock, run) is None, "the query saw an uncommitted signal"
    answer = replayed(processor.ctx.registry, run, read_history(processor.store, "w", "r"))
    assert answer.query("received", []) == [1]


def test_a_query_waits_out_a_batch_in_progress_then_replays(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    processor = metered_processor(tmp_path / "p0")
    batch(processor, 1.0, StartWorkflow(workflow_id="w", workflow_type="SignalCounter", run_id="r"))
    run = read_run(processor.store, "w")
    assert run is not None
    monkeypatch.setattr(reads, "QUERY_LOCK_WAIT", 0.05)
    lock = OwnerLock()
    with lock.owner():  # the owner loop is inside a batch
        assert cached_copy(processor, lock, run) is None
    assert cached_copy(processor, lock, run) is not None


def test_a_query_gets_a_turn_between_back_to_back_batches() -> None:
    """The owner loop takes its lock again as soon as it lets go; a waiting query still gets in."""
    lock = OwnerLock()
    stop = threading.Event()

    def owner_loop() -> None:
        while not stop.is_set():
            with lock.owner():
                time.sleep(0.002)  # a batch

    loop = threading.Thread(target=owner_loop)
    loop.start()
    try:
        waits = []
        for _ in range(20):
            asked = time.monotonic()
            with lock.reader(5.0) as held:
                assert held, "the query never got the lock between batches"
            waits.append(time.monotonic() - asked)
    finally:
        stop.set()
        loop.join()
    print(f"a query waited at most {max(waits) * 1000:.1f} ms for its turn")
    assert max(waits) < 1.0


def test_a_stream_of_queries_cannot_hold_up_the_owner_loop() -> None:
    lock = OwnerLock()
    stop = threading.Event()

    def query_stream() -> None:
        while not stop.is_set():
            with lock.reader(5.0):
                time.sleep(0.001)  # a copy

    waits: list[float] = []

    def owner_loop() -> None:
        for _ in range(20):
            asked = time.monotonic()
            with lock.owner():
                waits.append(time.monotonic() - asked)

    readers = [threading.Thread(target=query_stream, daemon=True) for _ in range(4)]
    for reader in readers:
        reader.start()
    loop = threading.Thread(target=owner_loop, daemon=True)
    loop.start()
    loop.join(10)
    stop.set()
    assert not loop.is_alive(), f"the owner loop got its lock {len(waits)} times of 20 in 10 s"
    print(f"the owner loop waited at most {max(waits) * 1000:.1f} ms for four query streams")
    assert max(waits) < 1.0


def test_a_query_replays_when_the_instance_is_gone_or_cannot_be_copied(tmp_path: Path) -> None:
    processor = metered_processor(tmp_path / "p0")
    lock = OwnerLock()
    batch(processor, 1.0, StartWorkflow(workflow_id="w", workflow_type="SignalCounter", run_id="r"))
    batch(processor, 1.0, StartWorkflow(workflow_id="held", workflow_type="HoldsItsWait", run_id="h"))
    signals = [SignalWorkflow(workflow_id=w, name="add", payload=i) for i in (1, 2) for w in ("w", "held")]
    batch(processor, 2.0, *signals)
    assert processor.cache.peek("held", "h") is not None
    runs = {w: read_run(processor.store, w) for w in ("w", "held")}
    assert cached_copy(processor, lock, runs["held"]) is None, "a future was copied"  # type: ignore[arg-type]
    processor.cache.clear()  # evicted, or a new owner after a failover
    assert cached_copy(processor, lock, runs["w"]) is None  # type: ignore[arg-type]
    for workflow_id, run_id in (("w", "r"), ("held", "h")):
        run = runs[workflow_id]
        assert run is not None
        history = read_history(processor.store, workflow_id, run_id)
        assert replayed(processor.ctx.registry, run, history).query("received", []) == [1, 2]


def test_a_namespace_lists_its_own_runs_and_no_neighbours(tmp_path: Path) -> None:
    """Ids of the default namespace sort among the others ("b-1" and "b.1" before "b/1"; "bb/1"
    after): a namespace's listing reads its range only, the default one skips namespaced ids."""
    processor = metered_processor(tmp_path / "p0", partition=0)
    ids = ["a", "b-1", "b.1", "b/1", "b/2", "b/3", "bb/1", "c", "team/x"]
    for workflow_id in ids:
        batch(processor, 1.0, StartWorkflow(workflow_id=workflow_id, workflow_type="SignalCounter", input=1))
    store = [(processor.partition, processor.store)]

    def listed(namespace: str | None, after: str | None = None, limit: int = 100) -> list[str]:
        return [r["workflow_id"] for r in list_runs(store, RunFilter(), after, namespace, limit, 10_000).runs]

    assert listed(None) == ids
    assert listed("b") == ["b/1", "b/2", "b/3"]
    assert listed("b", after="b/1") == ["b/2", "b/3"]
    assert listed("b", limit=2) == ["b/1", "b/2"]
    assert listed("bb") == ["bb/1"]
    assert listed("default") == ["a", "b-1", "b.1", "c"]
    assert listed("nobody") == []
    with measured(processor) as cost:
        listed("b")
    assert cost.keys <= 4, f"the namespace's 3 runs cost {cost.keys} keys"
