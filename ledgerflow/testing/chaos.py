"""A chaos run: workflows started and signalled on three Kafka brokers while an engine, a worker
and a broker are killed with -9 and restarted on a schedule; then every run is judged.

The stack is real: :class:`~ledgerflow.local.kafka.LocalKafka` with three brokers, every topic
replicated 3 times with ``min.insync.replicas`` 2, two ``ledgerflow engine`` and two
``ledgerflow worker`` processes. The workload is a list of :class:`Plan`: what to start and
when, which signals to send after it (the runs wait for them, so they are sent while nodes are
down), and the result the run must end with. :func:`run_chaos` returns a :class:`ChaosReport`
whose ``findings`` are empty when no workflow was lost, none completed twice, every result is
right, the public events topic (read_committed) holds exactly one closing event per run, and
every run, children included, keeps the engine's invariants
(:func:`ledgerflow.testing.invariants.check_workflow`).

Used by tests/engine/test_chaos.py (the short form) and bench/chaos.py (the long form).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition
from confluent_kafka.admin import AdminClient
from pydantic import BaseModel

from ledgerflow.client import Client
from ledgerflow.config import Settings
from ledgerflow.errors import WorkflowNotFoundError
from ledgerflow.kafkaclients import producer_config
from ledgerflow.local.kafka import LocalKafka, LocalKafkaError
from ledgerflow.local.processes import Cluster, NodeProcess
from ledgerflow.schemas.commands import SignalWorkflow, StartWorkflow
from ledgerflow.sdk.definition import WorkflowRegistry
from ledgerflow.testing.invariants import check_workflow

Kind = Literal["engine", "worker", "broker"]
COUNTS: dict[Kind, int] = {"engine": 2, "worker": 2, "broker": 3}
"""How many of each kind the stack runs."""
CLOSING = frozenset(
    {
        "WORKFLOW_COMPLETED",
        "WORKFLOW_FAILED",
        "WORKFLOW_CANCELED",
        "WORKFLOW_TERMINATED",
        "WORKFLOW_CONTINUED_AS_NEW",
    }
)
"""Lifecycle events that close a run: each run must have exactly one."""


class ChaosError(Exception):
    """The chaos run itself could not go on (a write Kafka never acknowledged, a node that did
    not come back); distinct from a finding about the engine."""


@dataclass(frozen=True)
class SignalPlan:
    """A signal the driver sends ``delay`` seconds after the run's start was sent."""

    name: str
    payload: Any = None
    delay: float = 0.0


@dataclass(frozen=True)
class Plan:
    """One workflow of the workload: started ``at`` seconds into the chaos, then signalled."""

    workflow_id: str
    workflow_type: str
    input: Any
    expected: Any
    """The result the run must complete with (compared as JSON)."""
    at: float
    signals: tuple[SignalPlan, ...] = ()


@dataclass(frozen=True)
class Action:
    """kill -9 node ``index`` of a kind ``at`` seconds into the chaos (or as soon as the action
    before it is done), and start it again ``down`` seconds after the kill."""

    at: float
    kind: Kind
    index: int | None
    """None for a broker: the one coordinating the engines' consumer group at that moment, whose
    loss moves every engine's group membership and transactional offset commits."""
    down: float


def kill_schedule(cycles: int, period: float = 60.0, first: float = 10.0, down: float = 12.0) -> list[Action]:
    """``cycles`` rounds, each ``period`` s: kill -9 an engine, a third of a period later a worker,
    another third later a broker, each down ``down`` s. Engines and workers rotate; the broker is
    the engine group's coordinator (it moves with each kill)."""
    return [
        Action(
            first + cycle * period + slot * period / len(COUNTS),
            kind,
            None if kind == "broker" else cycle % COUNTS[kind],
            down,
        )
        for cycle in range(cycles)
        for slot, kind in enumerate(COUNTS)
    ]


@dataclass
class Outage:
    """One kill -9 and its restart, as they happened (times in seconds into the chaos)."""

    kind: Kind
    index: int
    pid: int
    killed_at: float
    partitions: list[int] = field(default_factory=list)
    """An engine's partitions when it was killed."""
    restarted_at: float | None = None
    recovered_s: float | None = None
    """Restart to usable again: an engine's /ready, a broker back in a cluster that answers
    (None for a worker, which has no readiness signal)."""
    starts_sent: int = 0
    """Starts sent while it was down."""
    signals_sent: int = 0
    """Signals sent while it was down (for an engine: to workflows on its partitions)."""
    problem: str | None = None
    """Why the node did not come back, when it did not."""


@dataclass
class ChaosConfig:
    """Where and how the stack runs; ``workflows`` and ``activities`` are module names."""

    base_dir: Path
    workflows: list[str]
    activities: list[str]
    schedule: list[Action]
    partitions: int = 4
    pythonpath: list[str] = field(default_factory=list)
    drain_timeout: float = 120.0
    """Seconds after the last send and the last restart for every run to close."""
    log: Callable[[str], None] = lambda _line: None


@dataclass
class ChaosReport:
    """What the run did and everything it found wrong; ``findings`` empty means all held."""

    workflows: int
    runs: int
    """Runs seen on the events topic, children included."""
    completed: int
    """Workflows completed once, with the right result."""
    lost: list[str]
    completed_twice: list[str]
    wrong_results: list[str]
    closing_events: list[str]
    """Runs without exactly one closing event on the events topic."""
    invariant_findings: list[str]
    outages: list[Outage]
    schedule: list[Action]
    elapsed_s: float
    """From the first send until every run closed."""
    longest_stall_s: float
    """The longest time between two runs closing (as the events topic was read)."""
    stall_from: float
    """When that stretch began, in seconds into the chaos."""

    @property
    def findings(self) -> list[str]:
        groups = {
            "lost": self.lost,
            "completed twice": self.completed_twice,
            "wrong result": self.wrong_results,
            "closing events": self.closing_events,
            "invariants": self.invariant_findings,
            "restart": [
                f"{o.kind} {o.index} restarted at {o.restarted_at:.1f} s: {o.problem}"
                for o in self.outages
                if o.problem
            ],
        }
        return [f"{name}: {item}" for name, items in groups.items() for item in items]

    def kills(self, kind: Kind) -> int:
        """Kills of ``kind`` the node came back from."""
        return sum(o.kind == kind and o.restarted_at is not None and not o.problem for o in self.outages)


def owned(engine: NodeProcess) -> list[int]:
    """Partitions an engine owns now (its /internal/partitions)."""
    rows = engine.get("/internal/partitions").json()["partitions"]
    return sorted(int(row["partition"]) for row in rows)


class ChaosStack:
    """Three brokers, two engines and two workers, each killable with -9 and restartable."""

    def __init__(self, config: ChaosConfig) -> None:
        self.config = config
        self.kafka = LocalKafka(config.base_dir / "kafka", brokers=COUNTS["broker"])
        self.cluster: Cluster | None = None
        self.nodes: dict[Kind, list[NodeProcess]] = {"engine": [], "worker": []}

    def start(self) -> Cluster:
        """Brokers up, then engines and workers; returns once every engine owns partitions."""
        config = self.config
        config.log("starting 3 brokers")
        bootstrap = self.kafka.up()
        self.cluster = Cluster(
            bootstrap,
            f"chaos-{uuid.uuid4().hex[:6]}.",
            config.base_dir,
            partitions=config.partitions,
            pythonpath=config.pythonpath,
            env={"LEDGERFLOW_REPLICATION_FACTOR": "3", "LEDGERFLOW_MIN_INSYNC_REPLICAS": "2"},
        )
        engines = [self.cluster.engine(config.workflows, name=f"engine-{i}") for i in range(COUNTS["engine"])]
        workers = [
            self.cluster.worker(config.activities, name=f"worker-{i}") for i in range(COUNTS["worker"])
        ]
        self.nodes = {"engine": engines, "worker": workers}
        for engine in engines:
            engine.wait_ready(timeout=120)
        self._wait_shared(timeout=60)
        return self.cluster

    def _wait_shared(self, timeout: float) -> None:
        """Until every partition has one owner and each engine some (so a killed engine owned work)."""
        deadline = time.monotonic() + timeout
        while True:
            shares = [owned(engine) for engine in self.nodes["engine"]]
            every = sorted(p for share in shares for p in share) == list(range(self.config.partitions))
            if every and all(shares):
                return
            if time.monotonic() > deadline:
                raise ChaosError(f"partitions never shared between the engines: {shares}")
            time.sleep(0.2)

    def victim(self, kind: Kind, index: int | None) -> int:
        """``index``, or for a broker given as None the one coordinating the engines' group."""
        if index is not None:
            return index
        assert kind == "broker" and self.cluster is not None, (kind, index)
        group = f"{self.cluster.prefix}engine"  # the engines' consumer group (Engine.group_id)
        admin = AdminClient({"bootstrap.servers": self.cluster.bootstrap})
        coordinator = admin.describe_consumer_groups([group])[group].result(30).coordinator
        return int(coordinator.id) - 1  # the launcher's node ids are index + 1

    def kill(self, kind: Kind, index: int) -> tuple[int, list[int]]:
        """kill -9 one node; returns its pid and, for an engine, the partitions it owned."""
        if kind == "broker":
            return self.kafka.kill_broker(index), []
        node = self.nodes[kind][index]
        partitions = self._owned_soon(node) if kind == "engine" else []
        pid = node.pid
        node.kill()
        return pid, partitions

    @staticmethod
    def _owned_soon(engine: NodeProcess, timeout: float = 30.0) -> list[int]:
        """The engine's partitions, after waiting a little for a rebalance to hand it some (an
        engine killed while it owns nothing tests nothing)."""
        deadline = time.monotonic() + timeout
        while not (partitions := owned(engine)) and time.monotonic() < deadline:
            time.sleep(0.2)
        return partitions

    def restart(self, kind: Kind, index: int) -> float | None:
        """Start the killed node again (same data, ports and command); return the seconds until it
        was usable (None for a worker, which has no readiness signal)."""
        began = time.monotonic()
        if kind == "broker":
            self.kafka.up()  # starts exactly the nodes found dead, with their ports and data
        else:
            node = self.nodes[kind][index].start()
            if kind == "worker":
                return None
            node.wait_ready(timeout=120)
        return time.monotonic() - began

    def dump_engine_stacks(self) -> Path | None:
        """``py-spy dump`` of every live engine into the run's folder, for a node that did not come
        back (where the others are stuck says why); None without py-spy."""
        py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
        if py_spy is None:
            return None
        path = self.config.base_dir / f"stacks-{time.strftime('%H%M%S')}.txt"
        with path.open("w") as out:
            for index, engine in enumerate(self.nodes["engine"]):
                if engine.alive():
                    out.write(f"== engine {index} (pid {engine.pid})\n")
                    out.flush()
                    command = [py_spy, "dump", "--pid", str(engine.pid)]
                    subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, timeout=60, check=False)
        return path

    def stop(self) -> None:
        if self.cluster is not None:
            self.cluster.stop_all()
        self.kafka.down()


class Chaos(threading.Thread):
    """Plays a kill schedule against the stack; every outage is recorded in ``outages``."""

    def __init__(self, stack: ChaosStack, schedule: list[Action], t0: float) -> None:
        super().__init__(name="chaos", daemon=True)
        self.stack = stack
        self.schedule = sorted(schedule, key=lambda action: action.at)
        self.t0 = t0
        self.outages: list[Outage] = []
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for action in self.schedule:
                self._sleep_until(action.at)
                index = self.stack.victim(action.kind, action.index)
                pid, partitions = self.stack.kill(action.kind, index)
                outage = Outage(action.kind, index, pid, self._now(), partitions)
                self.outages.append(outage)
                self._log(outage, f"kill -9 {action.kind} {index} (pid {pid})")
                self._sleep_until(outage.killed_at + action.down)
                outage.restarted_at = self._now()
                try:
                    outage.recovered_s = self.stack.restart(action.kind, index)
                except (TimeoutError, RuntimeError, LocalKafkaError) as exc:
                    # a finding, not the end of the run: the judge says what it cost
                    stacks = self.stack.dump_engine_stacks()
                    outage.problem = f"{str(exc).splitlines()[0]} (engine stacks: {stacks})"
                usable = "" if outage.recovered_s is None else f" (usable after {outage.recovered_s:.1f} s)"
                self._log(outage, f"restarted {action.kind} {index}{usable}")
        except BaseException as exc:  # handed to the driver, which raises it
            self.error = exc

    def _now(self) -> float:
        return time.monotonic() - self.t0

    def _sleep_until(self, at: float) -> None:
        time.sleep(max(0.0, at - self._now()))

    def _log(self, outage: Outage, what: str) -> None:
        at = outage.killed_at if outage.restarted_at is None else outage.restarted_at
        self.stack.config.log(f"{at:6.1f} s  {what}")


@dataclass(frozen=True)
class Sent:
    """A start or signal the driver sent, ``at`` seconds into the chaos."""

    at: float
    workflow_id: str
    what: Literal["start", "signal"]


class Load:
    """Sends each plan's start and signals at their times; Kafka's acknowledgements are collected
    as they come (an idempotent acks=all producer retries through a broker's death)."""

    def __init__(self, settings: Settings, plans: list[Plan]) -> None:
        self.settings = settings
        self.producer = Producer(producer_config(settings, **{"message.timeout.ms": 300_000}))
        # a stable sort: sends due at the same time go in plan order (a start before its signals)
        self.due = deque(sorted(_sends(plans), key=lambda item: item[0]))
        self.sent: list[Sent] = []
        self.errors: list[str] = []

    @property
    def done(self) -> bool:
        return not self.due

    def send_due(self, now: float) -> None:
        while self.due and self.due[0][0] <= now:
            _, workflow_id, command = self.due.popleft()
            self.producer.produce(
                self.settings.topic("inbox"),
                key=workflow_id.encode(),
                value=command.model_dump_json(by_alias=True).encode(),
                on_delivery=self._delivered,
            )
            what: Literal["start", "signal"] = "start" if isinstance(command, StartWorkflow) else "signal"
            self.sent.append(Sent(now, workflow_id, what))
        self.producer.poll(0)

    def _delivered(self, error: KafkaError | None, message: Message) -> None:
        if error is not None:
            self.errors.append(f"{message.key()!r}: {error}")

    def flush(self, timeout: float) -> None:
        """Wait for every acknowledgement; a write Kafka refused stops the run (the workload would
        be wrong, not the engine)."""
        left = self.producer.flush(timeout)
        if left or self.errors:
            raise ChaosError(f"{left} writes unacknowledged after {timeout} s; refused: {self.errors[:5]}")


def _sends(plans: list[Plan]) -> Iterable[tuple[float, str, BaseModel]]:
    """(time, workflow id, command) of every start and signal of the plans."""
    for plan in plans:
        run_id = str(uuid.uuid4())
        yield (
            plan.at,
            plan.workflow_id,
            StartWorkflow(
                workflow_id=plan.workflow_id,
                workflow_type=plan.workflow_type,
                input=plan.input,
                run_id=run_id,
                request_id=run_id,
            ),
        )
        for number, signal in enumerate(plan.signals):
            command = SignalWorkflow(
                workflow_id=plan.workflow_id,
                name=signal.name,
                payload=signal.payload,
                request_id=f"{run_id}-signal-{number}",
            )
            yield plan.at + signal.delay, plan.workflow_id, command


@dataclass
class RunTally:
    """One run as the events topic tells it."""

    workflow_id: str
    started: int = 0
    closings: list[str] = field(default_factory=list)
    result: Any = None


class EventTally:
    """The public events topic, read_committed from its start, folded per run."""

    def __init__(self, settings: Settings) -> None:
        self.topic = settings.topic("events")
        self.partitions = settings.partitions
        self.consumer = Consumer(
            {
                "bootstrap.servers": settings.bootstrap,
                "group.id": f"chaos-{uuid.uuid4().hex[:6]}",
                "isolation.level": "read_committed",
                "enable.auto.commit": False,
            }
        )
        self.consumer.assign([TopicPartition(self.topic, p, 0) for p in range(self.partitions)])
        self.runs: dict[str, RunTally] = {}
        self.by_workflow: dict[str, list[str]] = {}
        self.closed_at: list[float] = []
        """``time.monotonic()`` when each closing event was read."""

    def pump(self, timeout: float) -> None:
        for message in self.consumer.consume(1000, timeout):
            value = message.value()
            if message.error() is None and value is not None:
                self._fold(json.loads(value))

    def _fold(self, event: dict[str, Any]) -> None:
        kind, run_id = event["type"], event.get("run_id")
        if run_id is None or (kind != "WORKFLOW_STARTED" and kind not in CLOSING):
            return
        run = self.runs.get(run_id)
        if run is None:
            run = self.runs[run_id] = RunTally(event["workflow_id"])
            self.by_workflow.setdefault(run.workflow_id, []).append(run_id)
        if kind == "WORKFLOW_STARTED":
            run.started += 1
            return
        run.closings.append(kind)
        self.closed_at.append(time.monotonic())
        if kind == "WORKFLOW_COMPLETED":
            run.result = (event.get("data") or {}).get("result")

    def all_closed(self, workflow_ids: Iterable[str]) -> bool:
        """Every run seen is closed, and each of ``workflow_ids`` has a run."""
        started = all(w in self.by_workflow for w in workflow_ids)
        return started and all(run.closings for run in self.runs.values())

    def read_to_end(self, timeout: float = 60.0) -> None:
        """Read until every partition's position reached its high watermark of now (a killed
        engine's open transaction holds read_committed readers back until it is aborted)."""
        ends = {
            p: self.consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=10)[1]
            for p in range(self.partitions)
        }
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.pump(0.2)
            positions = self.consumer.position([TopicPartition(self.topic, p) for p in ends])
            if all(tp.offset >= ends[tp.partition] or ends[tp.partition] == 0 for tp in positions):
                return
        raise ChaosError(f"events topic not read to its end in {timeout} s (ends {ends})")

    def close(self) -> None:
        self.consumer.close()


def run_chaos(config: ChaosConfig, plans: list[Plan]) -> ChaosReport:
    """Start the stack, play ``plans`` and ``config.schedule`` at once, judge every run, stop."""
    stack = ChaosStack(config)
    try:
        cluster = stack.start()
        settings = Settings(
            bootstrap=cluster.bootstrap,
            prefix=cluster.prefix,
            partitions=cluster.partitions,
            engine_token_file=cluster.engine_token_file,
        )
        tally = EventTally(settings)
        try:
            played = _play(config, stack, Load(settings, plans), tally, plans)
            tally.read_to_end()
            findings = _invariant_findings(settings, config, plans)
        finally:
            tally.close()
    finally:
        stack.stop()
    return _report(plans, tally, findings, played, config.schedule)


@dataclass(frozen=True)
class Played:
    """What happened while the workload ran (times in seconds into the chaos)."""

    outages: list[Outage]
    elapsed_s: float
    stall_s: float
    """The longest time between two runs closing: how long progress stopped at worst."""
    stall_from: float


def _play(config: ChaosConfig, stack: ChaosStack, load: Load, tally: EventTally, plans: list[Plan]) -> Played:
    """Send the workload while the schedule kills and restarts nodes; return once every run
    closed (or the drain timed out)."""
    t0 = time.monotonic()
    chaos = Chaos(stack, config.schedule, t0)
    chaos.start()
    ids = [p.workflow_id for p in plans]
    drain_until: float | None = None
    while chaos.error is None:
        load.send_due(time.monotonic() - t0)
        tally.pump(0.05)
        if not load.done or chaos.is_alive():
            continue
        if tally.all_closed(ids):
            break
        drain_until = drain_until or time.monotonic() + config.drain_timeout
        if time.monotonic() > drain_until:
            stacks = stack.dump_engine_stacks()
            config.log(
                f"not every run closed {config.drain_timeout:.0f} s after the last send and restart "
                f"(engine stacks: {stacks})"
            )
            break
    elapsed = time.monotonic() - t0
    chaos.join()
    if chaos.error is not None:
        raise ChaosError(f"the kill schedule failed: {chaos.error!r}") from chaos.error
    load.flush(60)
    _count_sends(chaos.outages, load.sent, settings=load.settings)
    gaps = [(b - a, a) for a, b in zip(tally.closed_at, tally.closed_at[1:], strict=False)]
    stall, stall_from = max(gaps, default=(0.0, t0))
    return Played(chaos.outages, elapsed, stall, stall_from - t0)


def _count_sends(outages: list[Outage], sent: list[Sent], settings: Settings) -> None:
    """Note on each outage what was sent while its node was down."""
    for outage in outages:
        end = outage.restarted_at if outage.restarted_at is not None else float("inf")
        during = [s for s in sent if outage.killed_at <= s.at < end]
        outage.starts_sent = sum(s.what == "start" for s in during)
        outage.signals_sent = sum(
            s.what == "signal"
            and (outage.kind != "engine" or settings.partition_of(s.workflow_id) in outage.partitions)
            for s in during
        )


def _invariant_findings(settings: Settings, config: ChaosConfig, plans: list[Plan]) -> list[str]:
    """``check_workflow`` over every planned workflow and its children, a few at a time (most of
    the wait is the owners' HTTP answers)."""
    registry = WorkflowRegistry.from_modules(config.workflows)
    began = time.monotonic()
    with Client(settings=settings) as client, ThreadPoolExecutor(max_workers=4) as pool:
        found = pool.map(lambda plan: _check(client, plan.workflow_id, registry), plans)
        problems = [problem for problems in found for problem in problems]
    config.log(
        f"invariants of {len(plans)} workflows and their children checked in {time.monotonic() - began:.0f} s"
    )
    return problems


def _check(client: Client, workflow_id: str, registry: WorkflowRegistry) -> list[str]:
    """``check_workflow``; a workflow its owner does not know is a finding, not a crash."""
    try:
        return check_workflow(client, workflow_id, registry)
    except WorkflowNotFoundError as exc:
        return [f"{workflow_id}: {exc}"]


def _report(
    plans: list[Plan],
    tally: EventTally,
    invariant_findings: list[str],
    played: Played,
    schedule: list[Action],
) -> ChaosReport:
    lost, twice, wrong = [], [], []
    for plan in plans:
        runs = [tally.runs[r] for r in tally.by_workflow.get(plan.workflow_id, [])]
        completions = [r for r in runs for kind in r.closings if kind == "WORKFLOW_COMPLETED"]
        if len(runs) > 1 or len(completions) > 1:
            twice.append(f"{plan.workflow_id}: {len(runs)} runs, {len(completions)} completions")
        if not runs or not any(r.closings for r in runs):
            lost.append(plan.workflow_id)
        elif not completions:
            wrong.append(f"{plan.workflow_id}: closed with {runs[-1].closings}, expected a completion")
        elif _as_json(completions[0].result) != _as_json(plan.expected):
            wrong.append(f"{plan.workflow_id}: result {completions[0].result!r}, expected {plan.expected!r}")
    closing = [
        f"run {run_id} of {run.workflow_id}: {run.started} starts, closing events {run.closings}"
        for run_id, run in tally.runs.items()
        if run.started != 1 or len(run.closings) != 1
    ]
    return ChaosReport(
        workflows=len(plans),
        runs=len(tally.runs),
        completed=len(plans) - len(lost) - len(wrong),
        lost=lost,
        completed_twice=twice,
        wrong_results=wrong,
        closing_events=closing,
        invariant_findings=invariant_findings,
        outages=played.outages,
        schedule=schedule,
        elapsed_s=played.elapsed_s,
        longest_stall_s=played.stall_s,
        stall_from=played.stall_from,
    )


def _as_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True)
