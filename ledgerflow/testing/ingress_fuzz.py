"""Kafka ingress fuzzing against a running engine: generated inbox records (``ledgerflow.testing.fuzz``)
produced straight to the inbox, interleaved with real workflows started through the ``Client``.

Afterwards every record is judged by where it ended (the dead-letter topic, the public events
topic) against what the engine must do with it, and every real workflow must have completed
exactly once with the right result and with its invariants holding. No engine batch may have
failed (aborted, or its owner session restarted), and its memory is read before and after.

Used by tests/engine/test_ingress_fuzz.py (short form) and bench/fuzz_ingress.py (long form).
"""

from __future__ import annotations

import hashlib
import json
import resource
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import zip_longest
from typing import Any

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from ledgerflow.client import Client
from ledgerflow.local.processes import NodeProcess, failed_batches
from ledgerflow.samples.dags import FAN_OUT_FAN_IN
from ledgerflow.sdk.definition import WorkflowRegistry
from ledgerflow.testing.fuzz import Expectation, FuzzRecord, Outcome
from ledgerflow.testing.invariants import check_workflow

SAMPLES = "ledgerflow.samples.orders"
"""The real workflows' module (engine ``--workflows`` and worker ``--activities``)."""
REASON = "ledgerflow.dlq.reason"
SOURCE = "ledgerflow.dlq.source"
ORIGINAL_SIZE = "ledgerflow.dlq.original-size"
ORIGINAL_SHA256 = "ledgerflow.dlq.original-sha256"
ENGINE_ADDRESS_SPACE_MB = 4096
"""The address-space cap ``limit_memory`` puts on the fuzzed engine (an idle one maps ~1.4 GB)."""
"""What ledgerflow/engine/loop.py logs each time it drops its consumer session and starts another."""
NO_OPEN_RUN = Expectation(Outcome.DEAD_LETTER, "no open run")
CLOSING = ("WORKFLOW_COMPLETED", "WORKFLOW_FAILED", "WORKFLOW_CANCELED", "WORKFLOW_TERMINATED")


@dataclass(frozen=True)
class RealRun:
    """A workflow started through the Client while the fuzz runs, and the result it must return."""

    workflow_id: str
    workflow_type: str
    input: Any
    expected: Any


def real_runs(count: int, tag: str) -> list[RealRun]:
    """Three activities (``ProcessOrder``), a durable timer (``Approval`` timing out), and the
    sample fan-out/fan-in DAG, in turn."""
    runs = []
    for i in range(count):
        workflow_id = f"real-{tag}-{i}"
        if i % 3 == 0:
            order = {"order_id": f"o{i}", "amount": i + 0.25}
            expected: Any = {
                "reservation": f"reserved-o{i}",
                "payment": f"charged-{i + 0.25:.2f}",
                "shipment": f"shipped-o{i}-reserved-o{i}",
            }
            runs.append(RealRun(workflow_id, "ProcessOrder", order, expected))
        elif i % 3 == 1:
            runs.append(RealRun(workflow_id, "Approval", 0.2, "timed out"))
        else:
            runs.append(RealRun(workflow_id, FAN_OUT_FAN_IN["id"], {"count": i % 7 + 1}, _fan_out(i % 7 + 1)))
    return runs


def _fan_out(count: int) -> dict[str, Any]:
    """What the sample DAG returns for ``{"count": count}``."""
    numbers = list(range(count))
    squares = [n * n for n in numbers]
    evens = [n for n in numbers if n % 2 == 0]
    return {
        "numbers": {"numbers": numbers},
        "squares": {"items": squares},
        "evens": {"items": evens},
        "total": {"sum": sum(squares) + sum(evens)},
    }


@dataclass
class CategoryFigures:
    """What happened to one category's records."""

    produced: int = 0
    dead_lettered: int = 0
    by_outcome: dict[str, int] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Letter:
    """A record of the dead-letter topic."""

    key: bytes | None
    value: bytes | None
    headers: dict[str, bytes]


@dataclass
class Lifecycle:
    """What the public events topic said, per workflow (or definition) id."""

    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(event type, workflow id) -> how many."""
    failures: defaultdict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    """Workflow id -> the failure types of its failed runs."""

    def add(self, event: dict[str, Any]) -> None:
        kind, workflow_id = event["type"], event["workflow_id"]
        self.counts[kind, workflow_id] += 1
        if kind == "WORKFLOW_FAILED":
            self.failures[workflow_id].add(str((event.get("data") or {}).get("failure", {}).get("type")))

    def closed(self, workflow_id: str) -> int:
        return sum(self.counts[kind, workflow_id] for kind in CLOSING)


@dataclass
class Memory:
    """An engine process's memory (Linux /proc/<pid>/status), in MiB."""

    rss: float
    peak: float
    """VmHWM: the most resident memory the process ever had."""

    @classmethod
    def of(cls, pid: int) -> Memory | None:
        """None when the process is gone."""
        fields = {}
        try:
            with open(f"/proc/{pid}/status") as status:
                for line in status:
                    name, _, value = line.partition(":")
                    fields[name] = value.strip()
        except FileNotFoundError:
            return None
        return cls(int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024)


@dataclass
class FuzzReport:
    """The figures of one run and every problem found."""

    seed: int
    categories: dict[str, CategoryFigures]
    workflows: int
    completed_once: int = 0
    lost: list[str] = field(default_factory=list)
    duplicated: list[str] = field(default_factory=list)
    run_problems: list[str] = field(default_factory=list)
    """Wrong results and broken invariants of the real workflows."""
    unexpected_letters: list[str] = field(default_factory=list)
    """Dead letters of records the fuzz did not write (the real workflows' own)."""
    session_restarts: int = 0
    engine_alive: bool = True
    memory_before: Memory | None = None
    memory_after: Memory | None = None
    elapsed: float = 0.0

    @property
    def records(self) -> int:
        return sum(f.produced for f in self.categories.values())

    @property
    def dead_lettered(self) -> int:
        return sum(f.dead_lettered for f in self.categories.values())

    def problems(self) -> list[str]:
        """Everything that broke a promise, each naming the record or workflow."""
        found = [p for f in self.categories.values() for p in f.problems]
        found += [f"lost: {w}" for w in self.lost] + [f"duplicated: {w}" for w in self.duplicated]
        found += self.run_problems + self.unexpected_letters
        if self.session_restarts:
            found.append(f"{self.session_restarts} engine batches failed (aborted or session restarted)")
        if not self.engine_alive:
            found.append("the engine process died")
        return found

    def figures(self) -> dict[str, Any]:
        """The report as JSON."""
        before, after = self.memory_before, self.memory_after
        return {
            "seed": self.seed,
            "records": self.records,
            "categories": {
                name: {"produced": f.produced, "dead_lettered": f.dead_lettered, "by_outcome": f.by_outcome}
                for name, f in self.categories.items()
            },
            "workflows": self.workflows,
            "completed_once": self.completed_once,
            "lost": len(self.lost),
            "duplicated": len(self.duplicated),
            "dead_lettered": self.dead_lettered,
            "session_restarts": self.session_restarts,
            "rss_before_mb": before.rss if before else None,
            "rss_after_mb": after.rss if after else None,
            "rss_peak_mb": after.peak if after else None,
            "elapsed_s": self.elapsed,
            "problems": self.problems(),
        }

    def markdown(self) -> list[str]:
        """The report as Markdown lines: per category, then the real workflows and the engine."""
        lines = [
            "| category | records | dead-lettered | outcomes | problems |",
            "|---|---|---|---|---|",
        ]
        for name, f in self.categories.items():
            outcomes = ", ".join(f"{k} {v}" for k, v in sorted(f.by_outcome.items()))
            lines.append(f"| {name} | {f.produced} | {f.dead_lettered} | {outcomes} | {len(f.problems)} |")
        before, after = self.memory_before, self.memory_after
        memory = (
            f"{before.rss:.0f} MiB before, {after.rss:.0f} MiB after, {after.peak:.0f} MiB peak (VmHWM)"
            if before and after
            else "not read"
        )
        lines += [
            "",
            "| figure | value |",
            "|---|---|",
            f"| records fuzzed | {self.records:,} (seed {self.seed}) |",
            f"| dead-lettered | {self.dead_lettered:,} |",
            f"| real workflows checked | {self.workflows:,} |",
            f"| completed exactly once, right result, invariants hold | {self.completed_once:,} |",
            f"| lost | {len(self.lost)} |",
            f"| duplicated | {len(self.duplicated)} |",
            f"| dead letters of the real workflows' records | {len(self.unexpected_letters)} |",
            f"| engine batches failed (aborted, or owner session restarted) | {self.session_restarts} |",
            f"| engine RSS | {memory} |",
            f"| elapsed | {self.elapsed:.1f} s |",
        ]
        return lines


class IngressFuzz:
    """One fuzz run against ``engine`` (started with ``--workflows ledgerflow.samples.orders``,
    a worker serving the same module)."""

    def __init__(self, client: Client, engine: NodeProcess) -> None:
        self.client = client
        self.engine = engine
        self.settings = client.settings
        self.inbox = self.settings.topic("inbox")
        self.registry = WorkflowRegistry.from_modules([SAMPLES])
        self.lifecycle = Lifecycle()
        self.letters: dict[tuple[int, int], Letter] = {}
        """Dead letters by the (partition, offset) of the inbox record they copy."""

    def run(self, records: list[FuzzRecord], runs: list[RealRun], seed: int, timeout: float) -> FuzzReport:
        """Produce ``records`` while ``runs`` start, wait for the engine to settle (at most
        ``timeout`` seconds), and judge everything."""
        began = time.monotonic()
        report = FuzzReport(seed, {}, len(runs), memory_before=Memory.of(self.engine.pid))
        log_start = self.engine.log_path.stat().st_size
        self.client.register_dag(FAN_OUT_FAN_IN)
        placed = self._produce(records, runs)
        sentinels = self._produce_sentinels(f"fz-sentinel-{runs[0].workflow_id if runs else seed}")
        self._settle(placed, runs, sentinels, began + timeout)
        report.memory_after = Memory.of(self.engine.pid)
        report.categories = self._judge_records(placed)
        self._check_runs(runs, report)
        report.unexpected_letters = [
            f"dead letter of a record the fuzz did not write: {position}: {letter.headers.get(REASON)!r}"
            for position, letter in self.letters.items()
            if position not in placed and position not in sentinels
        ]
        log = self.engine.log_path.read_text(errors="replace")[log_start:]
        report.session_restarts = len(failed_batches(log))
        report.engine_alive = self.engine.alive()
        report.elapsed = time.monotonic() - began
        return report

    # ----------------------------------------------------------------------- producing
    def _produce(self, records: list[FuzzRecord], runs: list[RealRun]) -> dict[tuple[int, int], FuzzRecord]:
        """Start each real workflow, then produce an equal share of the records after it.
        Returns each record by where it landed (partition, offset)."""
        producer = self._producer()
        placed: dict[tuple[int, int], FuzzRecord] = {}
        errors: list[str] = []
        for run, share in zip_longest(runs, _shares(records, len(runs))):
            if run is not None:
                self._start(run)
            for record in share or []:
                on_delivery = _placer(record, placed, errors)
                producer.produce(self.inbox, key=record.key, value=record.value, on_delivery=on_delivery)
                producer.poll(0)
        remaining = producer.flush(120)
        if remaining or errors:
            raise RuntimeError(f"{remaining} fuzz records not delivered; errors: {errors[:5]}")
        return placed

    def _producer(self) -> Producer:
        return Producer(
            {
                "bootstrap.servers": self.settings.bootstrap,
                "partitioner": "murmur2_random",
                "linger.ms": 5,
                "message.max.bytes": self.settings.max_record_bytes,
            }
        )

    def _start(self, run: RealRun) -> None:
        self.client.start_workflow(run.workflow_type, run.input, id=run.workflow_id)

    def _produce_sentinels(self, prefix: str) -> set[tuple[int, int]]:
        """A signal to a workflow that does not exist, on every partition, after everything else:
        once each is dead-lettered, every record before it on its partition was applied."""
        producer = self._producer()
        placed: dict[tuple[int, int], FuzzRecord] = {}
        errors: list[str] = []
        missing = set(range(self.settings.partitions))
        number = 0
        while missing:
            workflow_id = f"{prefix}-{number}"
            number += 1
            partition = self.settings.partition_of(workflow_id)
            if partition not in missing:
                continue
            missing.discard(partition)
            value = json.dumps({"kind": "signal_workflow", "workflow_id": workflow_id, "name": "sentinel"})
            record = FuzzRecord("sentinel", workflow_id.encode(), value.encode(), NO_OPEN_RUN)
            producer.produce(
                self.inbox, key=record.key, value=record.value, on_delivery=_placer(record, placed, errors)
            )
        if producer.flush(30) or errors:
            raise RuntimeError(f"sentinels not delivered: {errors}")
        return set(placed)

    # ------------------------------------------------------------------------- waiting
    def _settle(
        self,
        placed: dict[tuple[int, int], FuzzRecord],
        runs: list[RealRun],
        sentinels: set[tuple[int, int]],
        deadline: float,
    ) -> None:
        """Read the events and dead-letter topics until every sentinel is dead-lettered, every real
        run closed and every run that must fail failed (or the deadline passed), then to their ends."""
        events, dlq = self._reader("events"), self._reader("inbox.dlq")
        must_fail = {
            record.workflow_id
            for (partition, _), record in placed.items()
            if record.workflow_id
            and record.expected_on(partition, self.settings).outcome in (Outcome.FAILED_RUN, Outcome.REFUSED)
        }
        try:
            while time.monotonic() < deadline and self.engine.alive():
                self._pump(events, dlq)
                refused = {placed[p].workflow_id for p in self.letters if p in placed}
                if (
                    sentinels <= set(self.letters)
                    and all(self.lifecycle.closed(r.workflow_id) for r in runs)
                    and all(self.lifecycle.failures.get(w) or w in refused for w in must_fail)
                ):
                    break
            self._read_to_end(events, dlq)
        finally:
            events.close()
            dlq.close()

    def _reader(self, topic: str) -> Consumer:
        consumer = Consumer(
            {
                "bootstrap.servers": self.settings.bootstrap,
                "group.id": f"fuzz-reader-{topic}",
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
                "fetch.wait.max.ms": 50,
            }
        )
        name = self.settings.topic(topic)
        consumer.assign([TopicPartition(name, p, 0) for p in range(self.settings.partitions)])
        return consumer

    def _pump(self, events: Consumer, dlq: Consumer) -> None:
        for message in _messages(events.consume(1000, 0.1)):
            self.lifecycle.add(json.loads(message.value() or b"{}"))
        for message in _messages(dlq.consume(1000, 0.1)):
            headers = _headers(message)
            _, partition, offset = headers.get(SOURCE, b"?/-1/-1").decode().rsplit("/", 2)
            self.letters[int(partition), int(offset)] = Letter(message.key(), message.value(), headers)

    def _read_to_end(self, events: Consumer, dlq: Consumer, timeout: float = 60.0) -> None:
        """Read both topics up to the ends they have now (the last stable offsets)."""
        deadline = time.monotonic() + timeout
        consumers = (events, dlq)
        ends = [_ends(consumer) for consumer in consumers]
        while time.monotonic() < deadline:
            self._pump(events, dlq)
            if all(_reached(c, e) for c, e in zip(consumers, ends, strict=True)):
                return

    # ------------------------------------------------------------------------- judging
    def _judge_records(self, placed: dict[tuple[int, int], FuzzRecord]) -> dict[str, CategoryFigures]:
        categories: dict[str, CategoryFigures] = defaultdict(CategoryFigures)
        for (partition, offset), record in sorted(placed.items()):
            figures = categories[record.category]
            figures.produced += 1
            expected = record.expected_on(partition, self.settings)
            figures.by_outcome[expected.outcome.value] = figures.by_outcome.get(expected.outcome.value, 0) + 1
            letter = self.letters.get((partition, offset))
            figures.dead_lettered += letter is not None
            problem = self._problem(record, expected, letter)
            if problem:
                figures.problems.append(
                    f"{record.category}: record {partition}/{offset} (key {_clip(record.key)}, value "
                    f"{_clip(record.value)}) must be {expected.outcome.value}: {problem}"
                )
        return dict(sorted(categories.items()))

    def _problem(self, record: FuzzRecord, expected: Expectation, letter: Letter | None) -> str | None:
        """What is wrong with where ``record`` ended, or None."""
        failures = self.lifecycle.failures.get(record.workflow_id or "", set())
        registered = self.lifecycle.counts["DEFINITION_REGISTERED", record.definition_id or ""] > 0
        reason = letter.headers.get(REASON, b"").decode(errors="replace") if letter else ""
        match expected.outcome:
            case Outcome.DEAD_LETTER:
                if letter is None:
                    return "it is not in the dead-letter topic"
                if (expected.reason or "") not in reason:
                    said = _clip(reason.encode(), 300)
                    return f"its dead letter's reason {said} does not say {expected.reason!r}"
                return _copy_problem(record, letter)
            case Outcome.REFUSED if letter is None and not failures:
                return "it was neither dead-lettered nor did its run fail"
            case Outcome.VETTED if letter is None and not registered:
                return "it was neither dead-lettered nor registered"
            case Outcome.IGNORED | Outcome.REGISTERED | Outcome.FAILED_RUN if letter is not None:
                return f"it was dead-lettered: {_clip(reason.encode(), 300)}"
            case Outcome.REGISTERED if not registered:
                return "no DEFINITION_REGISTERED event for it"
            case Outcome.FAILED_RUN if expected.failure not in failures:
                return f"its run's failures are {sorted(failures)}, not {expected.failure}"
        return None

    def _check_runs(self, runs: list[RealRun], report: FuzzReport) -> None:
        """Each real run: started and closed once, completed with its result, invariants hold."""
        for run in runs:
            workflow_id = run.workflow_id
            starts = self.lifecycle.counts["WORKFLOW_STARTED", workflow_id]
            closes = self.lifecycle.closed(workflow_id)
            completions = self.lifecycle.counts["WORKFLOW_COMPLETED", workflow_id]
            if starts > 1 or closes > 1:
                report.duplicated.append(f"{workflow_id}: started {starts} times, closed {closes} times")
            if completions == 0:
                report.lost.append(f"{workflow_id}: no WORKFLOW_COMPLETED ({closes} other closing events)")
                continue
            problems = self._run_problems(run)
            report.run_problems += problems
            report.completed_once += starts == closes == completions == 1 and not problems

    def _run_problems(self, run: RealRun) -> list[str]:
        state = self.client.describe(run.workflow_id)
        problems = check_workflow(self.client, run.workflow_id, self.registry)
        if state["status"] != "COMPLETED" or state["result"] != run.expected:
            problems.append(f"{state['status']} with {state.get('result')!r}, expected {run.expected!r}")
        return [f"{run.workflow_id}: {p}" for p in problems]


def limit_memory(pid: int, megabytes: int = ENGINE_ADDRESS_SPACE_MB) -> None:
    """Cap a process's address space: if a hostile record makes the engine allocate without
    bound, it dies there (and the fuzz says so) instead of pushing a shared machine into the
    kernel's OOM killer."""
    limit = megabytes * 2**20
    resource.prlimit(pid, resource.RLIMIT_AS, (limit, limit))


def _shares(records: list[FuzzRecord], parts: int) -> list[list[FuzzRecord]]:
    """``records`` cut into ``parts`` runs of (nearly) equal length, in order."""
    size = -(-len(records) // max(1, parts))
    return [records[i : i + size] for i in range(0, len(records), max(1, size))]


def _placer(
    record: FuzzRecord, placed: dict[tuple[int, int], FuzzRecord], errors: list[str]
) -> Callable[[KafkaError | None, Message], None]:
    def on_delivery(error: KafkaError | None, message: Message) -> None:
        if error is not None:
            errors.append(f"{record.category}: {error} (key {_clip(record.key)})")
        else:
            partition, offset = message.partition(), message.offset()
            assert partition is not None and offset is not None  # set on every delivered record
            placed[partition, offset] = record

    return on_delivery


def _headers(message: Message) -> dict[str, bytes]:
    raw = message.headers() or []
    pairs = raw.items() if isinstance(raw, dict) else raw
    return {name: value.encode() if isinstance(value, str) else value or b"" for name, value in pairs}


def _messages(batch: list[Message]) -> list[Message]:
    return [m for m in batch if m.error() is None]


def _ends(consumer: Consumer) -> dict[int, int]:
    return {tp.partition: consumer.get_watermark_offsets(tp, timeout=10)[1] for tp in consumer.assignment()}


def _reached(consumer: Consumer, ends: dict[int, int]) -> bool:
    positions = consumer.position(consumer.assignment())
    return all(ends[tp.partition] == 0 or tp.offset >= ends[tp.partition] for tp in positions)


def _copy_problem(record: FuzzRecord, letter: Letter) -> str | None:
    """A dead letter holds the record as it came, or a prefix of it with the original size and hash."""
    original = record.value or b""
    copy = letter.value or b""
    if copy == original:
        return None
    size, sha = letter.headers.get(ORIGINAL_SIZE), letter.headers.get(ORIGINAL_SHA256)
    if not original.startswith(copy) or size is None or sha is None:
        return (
            f"its dead letter ({len(copy)} bytes) is neither the record ({len(original)} bytes) nor its cut"
        )
    if int(size) != len(original) or sha.decode() != hashlib.sha256(original).hexdigest():
        return f"its dead letter's original size {size!r} or sha256 {sha!r} is wrong"
    return None


def _clip(value: bytes | None, length: int = 80) -> str:
    if value is None:
        return "null"
    text = repr(value[:length])
    return text + (f"... ({len(value):,} bytes)" if len(value) > length else "")
