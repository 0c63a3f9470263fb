"""A real Apache Kafka (KRaft, combined broker+controller nodes) on loopback, without Docker.

Layout of a data dir::

    <data_dir>/ledgerflow-kafka.json   cluster id, ports, bootstrap (kept across down/up)
    <data_dir>/broker-<id>.pid         PID of a running node (removed by down())
    <data_dir>/broker-<id>/server.properties
    <data_dir>/broker-<id>/data/       the node's log.dirs
    <data_dir>/broker-<id>/logs/server.log, stdout.log

``up()`` formats storage on first use, starts the nodes that are not running
and waits until Kafka is usable; ``down()`` stops exactly the PIDs it
recorded. Data survives ``down()``/``up()``; delete the folder to start over.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import shlex
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

from confluent_kafka.admin import (
    AdminClient,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialAlteration,
    UserScramCredentialUpsertion,
)

from ledgerflow import kafkaprops
from ledgerflow.local.kafka import libs, procs, readiness
from ledgerflow.local.kafka.config import NodeSpec, server_properties
from ledgerflow.local.kafka.errors import DataDirConflictError, KafkaStartError, LocalKafkaError
from ledgerflow.local.kafka.libs import KAFKA_VERSION, Progress
from ledgerflow.local.kafka.secure import SecureFiles
from ledgerflow.local.ports import free_ports, port_is_free

STATE_FILE = "ledgerflow-kafka.json"
DEFAULT_START_TIMEOUT = 120.0
DEFAULT_STOP_TIMEOUT = 30.0
DEFAULT_HEAP = "512m"


@dataclass(frozen=True)
class BrokerStatus:
    """One node as the OS sees it right now."""

    index: int
    node_id: int
    address: str
    controller_port: int
    pid: int | None
    alive: bool
    log_path: Path


@dataclass(frozen=True)
class KafkaStatus:
    """What :meth:`LocalKafka.status` found.

    ``running`` means every node is alive; ``bootstrap`` is None when none is.
    """

    data_dir: Path
    running: bool
    bootstrap: str | None
    brokers: list[BrokerStatus] = field(default_factory=list)

    @property
    def state(self) -> Literal["running", "degraded", "stopped", "absent"]:
        """``absent``: never started here; ``degraded``: some nodes alive."""
        if not self.brokers:
            return "absent"
        alive = sum(b.alive for b in self.brokers)
        if alive == len(self.brokers):
            return "running"
        return "degraded" if alive else "stopped"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (paths as strings), as printed by ``kafka status --json``."""
        data = asdict(self)
        data["state"] = self.state
        data["data_dir"] = str(self.data_dir)
        for broker in data["brokers"]:
            broker["log_path"] = str(broker["log_path"])
        return data


@dataclass
class _State:
    cluster_id: str
    nodes: list[NodeSpec]
    secure: bool = False

    @property
    def bootstrap(self) -> str:
        return ",".join(n.address for n in self.nodes)

    def dump(self) -> str:
        return json.dumps(
            {
                "kafka_version": KAFKA_VERSION,
                "cluster_id": self.cluster_id,
                "bootstrap": self.bootstrap,
                "secure": self.secure,
                "nodes": [asdict(n) for n in self.nodes],
            },
            indent=2,
        )

    @classmethod
    def load(cls, text: str) -> _State:
        raw = json.loads(text)
        return cls(raw["cluster_id"], [NodeSpec(**n) for n in raw["nodes"]], raw.get("secure", False))


def new_cluster_id() -> str:
    """A KRaft cluster id, as ``StorageTool random-uuid`` makes it (without starting a JVM)."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


class LocalKafka:
    """Start, stop and inspect a local KRaft Kafka of 1 or 3 nodes under ``data_dir``.

    ``brokers`` None means what ``data_dir`` already holds, else 1. ``port``
    fixes the first node's client port; every other port is picked free at run
    time and remembered in the state file. ``heap`` is the JVM's -Xmx per node.
    ``secure`` (None: what ``data_dir`` holds, else False) starts nodes with TLS, SCRAM
    users and ACLs enforced (see ``local.kafka.secure``): the bootstrap is then SASL_SSL,
    :attr:`mtls_bootstrap` mutual TLS, and :meth:`client_properties` the settings to use.
    ``oidc_jwks_url`` (secure only) also accepts OAUTHBEARER tokens an OIDC provider signed.
    """

    def __init__(
        self,
        data_dir: Path | str,
        brokers: int | None = None,
        port: int | None = None,
        *,
        heap: str = DEFAULT_HEAP,
        secure: bool | None = None,
        oidc_jwks_url: str | None = None,
        start_timeout: float = DEFAULT_START_TIMEOUT,
        progress: Progress | None = None,
    ) -> None:
        if brokers is not None and brokers < 1:
            raise ValueError("brokers must be >= 1")
        self.data_dir = Path(data_dir).expanduser().resolve()
        self._brokers = brokers
        self._port = port
        self._heap = heap
        self._secure = secure
        self._oidc_jwks_url = oidc_jwks_url
        self.secure_files = SecureFiles(self.data_dir / "secure")
        self._start_timeout = start_timeout
        self._progress: Progress = progress or (lambda _msg: None)

    # -- public API -----------------------------------------------------------------

    def up(self) -> str:
        """Make every node run and Kafka answer; return the bootstrap address.

        Idempotent: when everything already runs and answers, returns at once
        with the same bootstrap and PIDs. Nodes found dead (e.g. after
        :meth:`kill_broker`) are started again with their old ports and data.
        """
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self._locked():
            state = self._load_state()
            if state is not None:
                alive = self._alive_nodes(state)
                self._check_shape(state, running=bool(alive))
                address, admin = self._launcher_access(state)
                if len(alive) == len(state.nodes) and readiness.responds(address, len(state.nodes), admin):
                    return state.bootstrap
            java = libs.find_java()
            libs.check_java_version(java)
            self._progress("Resolving Kafka jars")
            libs_dir = libs.ensure_libs(self._progress)
            if state is None:
                state = self._new_state()
            else:
                self._repick_busy_ports(state)
            self._write_state(state)
            security = None
            if state.secure:
                self.secure_files.ensure()
                security = self.secure_files.broker_settings(self._oidc_jwks_url)
            for node in state.nodes:
                self._node_dir(node).mkdir(parents=True, exist_ok=True)
                self._properties(node).write_text(
                    server_properties(node, state.nodes, self._node_dir(node) / "data", security)
                )
            self._format(java, libs_dir, state)
            alive = self._alive_nodes(state)
            started: dict[int, int] = {}
            try:
                for node in state.nodes:
                    if node.index not in alive:
                        started[node.index] = self._spawn(java, libs_dir, node)
                self._wait_ready(state, started)
                if state.secure:
                    self._ensure_scram_users(state)
            except BaseException:
                # A failed or interrupted start leaves no JVM behind.
                self._stop_started(state, started)
                raise
            return state.bootstrap

    def down(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> None:
        """Stop the recorded nodes: SIGTERM, wait up to ``timeout`` s, then SIGKILL.

        Only PIDs from this data dir's PID files that are still our brokers are
        signalled; PID files are removed. Data and ports are kept.
        """
        if not self.data_dir.is_dir():
            return
        with self._locked():
            state = self._load_state()
            if state is None:
                return
            targets: dict[int, Path] = {}
            for node in state.nodes:
                pid = self._read_pid(node)
                if pid is not None and procs.is_broker(pid, self._properties(node)):
                    targets[pid] = self._properties(node)
            if targets:
                self._progress(f"Stopping {len(targets)} broker(s)")
            for pid in targets:
                procs.send(pid, signal.SIGTERM)
            left = procs.wait_gone(targets, timeout)
            for pid in left:
                procs.send(pid, signal.SIGKILL)
            left = procs.wait_gone(left, 10.0)
            if left:
                raise LocalKafkaError(f"brokers {sorted(left)} survived SIGKILL")
            for node in state.nodes:
                self._pid_file(node).unlink(missing_ok=True)

    def status(self) -> KafkaStatus:
        """The truth about every node: a PID counts only if it is our live ``kafka.Kafka``."""
        state = self._load_state()
        if state is None:
            return KafkaStatus(self.data_dir, running=False, bootstrap=None)
        brokers = []
        for node in state.nodes:
            pid = self._read_pid(node)
            alive = pid is not None and procs.is_broker(pid, self._properties(node))
            brokers.append(
                BrokerStatus(
                    index=node.index,
                    node_id=node.node_id,
                    address=node.address,
                    controller_port=node.controller_port,
                    pid=pid,
                    alive=alive,
                    log_path=self.log_path(node.index),
                )
            )
        alive_addresses = [b.address for b in brokers if b.alive]
        return KafkaStatus(
            self.data_dir,
            running=len(alive_addresses) == len(brokers),
            bootstrap=",".join(alive_addresses) or None,
            brokers=brokers,
        )

    @property
    def bootstrap(self) -> str | None:
        """Bootstrap of the recorded cluster (running or not); None before the first ``up``."""
        state = self._load_state()
        return state.bootstrap if state else None

    @property
    def mtls_bootstrap(self) -> str | None:
        """A secure cluster's mutual-TLS bootstrap; None for a plaintext one."""
        state = self._load_state()
        if state is None or not state.secure:
            return None
        return ",".join(n.mtls_address or "" for n in state.nodes)

    def client_properties(self, user: str, *, mtls: bool = False) -> Path:
        """A secure cluster's client settings file for ``user`` (``secure.USERS``): SCRAM over
        SASL_SSL (against :attr:`bootstrap`), or mutual TLS (against :attr:`mtls_bootstrap`)."""
        path = self.secure_files.properties(user, mtls)
        if not path.exists():
            raise LocalKafkaError(
                f"no client settings for {user!r} in {self.data_dir}: not a secure cluster?"
            )
        return path

    def broker_pids(self) -> list[int]:
        """PIDs of the nodes that are alive now, in node order."""
        return [b.pid for b in self.status().brokers if b.alive and b.pid is not None]

    def kill_broker(self, index: int) -> int:
        """SIGKILL node ``index`` (0-based) for failure tests; returns its PID.

        ``up()`` starts it again with its ports and data.
        """
        state = self._require_state()
        node = state.nodes[index]
        pid = self._read_pid(node)
        if pid is None or not procs.is_broker(pid, self._properties(node)):
            raise LocalKafkaError(f"broker {node.node_id} is not running")
        procs.send(pid, signal.SIGKILL)
        if procs.wait_gone({pid: self._properties(node)}, 10.0):
            raise LocalKafkaError(f"broker {node.node_id} (pid {pid}) survived SIGKILL")
        return pid

    def log_path(self, index: int = 0) -> Path:
        """``server.log`` of node ``index`` (0-based)."""
        return self.data_dir / f"broker-{index + 1}" / "logs" / "server.log"

    def __enter__(self) -> LocalKafka:
        self.up()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.down()

    # -- state ----------------------------------------------------------------------

    def _state_path(self) -> Path:
        return self.data_dir / STATE_FILE

    def _load_state(self) -> _State | None:
        try:
            return _State.load(self._state_path().read_text())
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError) as exc:
            raise LocalKafkaError(
                f"{self._state_path()} is unreadable ({exc}): remove {self.data_dir} to start over"
            ) from exc

    def _require_state(self) -> _State:
        state = self._load_state()
        if state is None:
            raise LocalKafkaError(f"no local Kafka in {self.data_dir}: run up() first")
        return state

    def _write_state(self, state: _State) -> None:
        tmp = self._state_path().with_suffix(".tmp")
        tmp.write_text(state.dump())
        tmp.replace(self._state_path())

    def _new_state(self) -> _State:
        count = self._brokers or 1
        secure = bool(self._secure)
        each = 3 if secure else 2
        ports = [p for p in free_ports(each * count + 1) if p != self._port][: each * count]
        if self._port is not None:
            if not port_is_free(self._port):
                raise LocalKafkaError(f"port {self._port} is in use by another program")
            ports[0] = self._port
        nodes = [
            NodeSpec(i, ports[each * i], ports[each * i + 1], ports[each * i + 2] if secure else None)
            for i in range(count)
        ]
        return _State(new_cluster_id(), nodes, secure)

    def _check_shape(self, state: _State, running: bool) -> None:
        if self._secure is not None and self._secure != state.secure:
            kind = "secure" if state.secure else "plaintext"
            raise DataDirConflictError(
                f"{self.data_dir} holds a {kind} Kafka: use another data dir, or `down` and remove this one"
            )
        count = len(state.nodes)
        if self._brokers is not None and self._brokers != count:
            raise DataDirConflictError(
                f"{self.data_dir} holds a {count}-broker Kafka, not {self._brokers}: "
                "use another data dir, or `down` and remove this one"
            )
        first = state.nodes[0].port
        if self._port is not None and self._port != first:
            if running:
                raise DataDirConflictError(
                    f"Kafka in {self.data_dir} already runs on port {first}, not {self._port}"
                )
            state.nodes[0] = NodeSpec(0, self._port, state.nodes[0].controller_port, state.nodes[0].mtls_port)

    def _repick_busy_ports(self, state: _State) -> None:
        """Before starting a stopped cluster again, move off ports another program took.

        Only when no node runs: the controller ports are in every node's
        ``controller.quorum.voters``, so a live cluster keeps its ports.
        """
        if self._alive_nodes(state):
            return
        for i, node in enumerate(state.nodes):
            port, cport = node.port, node.controller_port
            if not port_is_free(port):
                if self._port is not None and i == 0:
                    raise LocalKafkaError(f"port {port} is in use by another program")
                port = free_ports(1)[0]
            if not port_is_free(cport):
                cport = free_ports(1)[0]
            mport = node.mtls_port
            if mport is not None and not port_is_free(mport):
                mport = free_ports(1)[0]
            state.nodes[i] = NodeSpec(node.index, port, cport, mport)

    # -- processes ------------------------------------------------------------------

    def _node_dir(self, node: NodeSpec) -> Path:
        return self.data_dir / f"broker-{node.node_id}"

    def _properties(self, node: NodeSpec) -> Path:
        return self._node_dir(node) / "server.properties"

    def _pid_file(self, node: NodeSpec) -> Path:
        return self.data_dir / f"broker-{node.node_id}.pid"

    def _read_pid(self, node: NodeSpec) -> int | None:
        try:
            return int(self._pid_file(node).read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def _alive_nodes(self, state: _State) -> set[int]:
        alive = set()
        for node in state.nodes:
            pid = self._read_pid(node)
            if pid is not None and procs.is_broker(pid, self._properties(node)):
                alive.add(node.index)
        return alive

    def _launcher_access(self, state: _State) -> tuple[str, dict[str, str]]:
        """Where and how the launcher's own clients reach the cluster: a secure one as its admin
        over mutual TLS (SCRAM users exist only once the launcher made them)."""
        if not state.secure:
            return state.bootstrap, {}
        mtls = ",".join(n.mtls_address or "" for n in state.nodes)
        return mtls, kafkaprops.from_file(self.secure_files.properties("admin", mtls=True))

    def _ensure_scram_users(self, state: _State) -> None:
        """Create (or reset) every SCRAM user through the Admin API, so no password is ever on a
        command line, and wait until the admin can log in with its own."""
        address, props = self._launcher_access(state)
        admin = AdminClient({"bootstrap.servers": address, **props})
        for mechanism in (ScramMechanism.SCRAM_SHA_512, ScramMechanism.SCRAM_SHA_256):
            # one mechanism per request: the broker refuses a user altered twice in one
            upserts: list[UserScramCredentialAlteration] = [
                UserScramCredentialUpsertion(user, ScramCredentialInfo(mechanism, 8192), password.encode())
                for user, password in self.secure_files.passwords().items()
            ]
            for future in admin.alter_user_scram_credentials(upserts, request_timeout=30).values():
                future.result(30)
        scram = kafkaprops.from_file(self.secure_files.properties("admin"))
        deadline = time.monotonic() + 30
        while not readiness.responds(state.bootstrap, len(state.nodes), scram, timeout=2):
            if time.monotonic() > deadline:
                raise KafkaStartError(f"SCRAM users made, but the admin cannot log in at {state.bootstrap}")
            time.sleep(0.2)

    def _format(self, java: str, libs_dir: Path, state: _State) -> None:
        """Format each node's storage once (``meta.properties`` marks a formatted dir)."""
        todo = [n for n in state.nodes if not (self._node_dir(n) / "data" / "meta.properties").exists()]
        if not todo:
            return
        self._progress(f"Formatting KRaft storage of {len(todo)} node(s)")

        def fmt(node: NodeSpec) -> subprocess.CompletedProcess[str]:
            # a short-lived tool: C1 only and the serial GC start fastest
            cmd = [
                java, "-Xmx256m", "-XX:-UsePerfData", "-XX:TieredStopAtLevel=1",
                "-XX:+UseSerialGC", "-cp", f"{libs_dir}/*",
                "kafka.tools.StorageTool", "format", "--ignore-formatted",
                "-t", state.cluster_id, "-c", str(self._properties(node)),
            ]  # fmt: skip
            return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)

        with ThreadPoolExecutor(max_workers=len(todo)) as pool:
            results = list(pool.map(fmt, todo))
        for node, result in zip(todo, results, strict=True):
            if result.returncode != 0:
                detail = (result.stderr or result.stdout).strip().splitlines()
                raise KafkaStartError(
                    f"formatting storage of broker {node.node_id} failed: "
                    f"{detail[-1] if detail else 'exit ' + str(result.returncode)}"
                )

    def _jvm_args(self, libs_dir: Path, node: NodeSpec) -> list[str]:
        logs = self._node_dir(node) / "logs"
        log4j = resources.files("ledgerflow.local.kafka") / "log4j2.xml"
        return [
            # Modest heap: tests run up to 3 nodes on a 2-core machine. (With
            # another -Xmx the JVM sizes the initial heap itself.)
            f"-Xmx{self._heap}",
            *(["-Xms256m"] if self._heap == DEFAULT_HEAP else []),
            "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20",
            "-XX:+ExitOnOutOfMemoryError",
            "-XX:-UsePerfData",
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}",
            f"-Dkafka.logs.dir={logs}",
            # Kafka fetches OAUTHBEARER keys only from URLs the JVM allows (KIP-1003)
            *(
                [f"-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls={self._oidc_jwks_url}"]
                if self._oidc_jwks_url
                else []
            ),
            # extra JVM options, e.g. a bigger heap for a benchmark
            *shlex.split(os.environ.get("LEDGERFLOW_LOCAL_KAFKA_JVM_OPTS", "")),
            "-cp",
            f"{libs_dir}/*",
            procs.KAFKA_MAIN,
            str(self._properties(node)),
        ]

    def _oauth_jvm_options(self) -> list[str]:
        # Kafka 4 fetches OAUTHBEARER keys only from URLs this system property allows
        if not self._oidc_jwks_url:
            return []
        return [f"-Dorg.apache.kafka.sasl.oauthbearer.allowed.urls={self._oidc_jwks_url}"]

    def _spawn(self, java: str, libs_dir: Path, node: NodeSpec) -> int:
        """Start one node in its own session (it outlives the CLI); write its PID file."""
        logs = self._node_dir(node) / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self._progress(f"Starting broker {node.node_id} on {node.address}")
        out = str(logs / "stdout.log")
        # posix_spawn rather than Popen: nothing to keep a handle on, and no
        # "subprocess still running" warning when the CLI exits and leaves it.
        pid = os.posix_spawn(
            java,
            [java, *self._jvm_args(libs_dir, node)],
            dict(os.environ),
            file_actions=[
                (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                (os.POSIX_SPAWN_OPEN, 1, out, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644),
                (os.POSIX_SPAWN_DUP2, 1, 2),
            ],
            setsid=True,
        )
        self._pid_file(node).write_text(f"{pid}\n")
        return pid

    def _stop_started(self, state: _State, started: dict[int, int]) -> None:
        by_index = {n.index: n for n in state.nodes}
        targets = {pid: self._properties(by_index[i]) for i, pid in started.items()}
        # only PIDs still ours: one already reaped may have been reused
        targets = {pid: props for pid, props in targets.items() if procs.is_broker(pid, props)}
        for pid in targets:
            procs.send(pid, signal.SIGKILL)
        procs.wait_gone(targets, 10.0)
        for index in started:
            self._pid_file(by_index[index]).unlink(missing_ok=True)

    def _wait_ready(self, state: _State, started: dict[int, int]) -> None:
        deadline = time.monotonic() + self._start_timeout
        by_index = {n.index: n for n in state.nodes}

        def check_alive() -> None:
            for index, pid in started.items():
                node = by_index[index]
                status = _exit_status(pid)
                if status is None and not procs.is_broker(pid, self._properties(node)):
                    status = _wait_exit_status(pid)  # it exited just after the first look
                if status is not None or not procs.is_broker(pid, self._properties(node)):
                    self._pid_file(node).unlink(missing_ok=True)
                    why, log = _last_error(self.log_path(index))
                    raise KafkaStartError(
                        f"broker {node.node_id} exited during start"
                        f"{'' if status is None else f' (status {status})'}: {why}; see {log}",
                        str(log),
                        self._nodes_report(state, started),
                    )

        self._progress("Waiting for Kafka to be ready")
        try:
            address, admin = self._launcher_access(state)
            readiness.wait_ready(address, len(state.nodes), deadline, check_alive, admin)
        except TimeoutError as exc:
            log = self.log_path(min(started, default=0))
            raise KafkaStartError(
                f"Kafka at {state.bootstrap} not ready after {self._start_timeout:.0f} s ({exc}); see {log}",
                str(log),
                self._nodes_report(state, started),
            ) from exc

    def _nodes_report(self, state: _State, started: dict[int, int]) -> str:
        """One line per started node for a failed start: alive or not, its last log line and
        its last error; a node still alive is asked for a thread dump (SIGQUIT, into its
        stdout.log) and the top of its main thread is shown, so a node that hangs before it
        logs anything says where."""
        by_index = {n.index: n for n in state.nodes}
        alive = {i: pid for i, pid in started.items() if procs.is_broker(pid, self._properties(by_index[i]))}
        errors = {i: _last_error(self.log_path(i))[0] for i in started}  # before the dumps
        for pid in alive.values():
            procs.send(pid, signal.SIGQUIT)
        if alive:
            time.sleep(1.0)  # the JVM writes the dump asynchronously
        lines = []
        for index, pid in sorted(started.items()):
            log = self.log_path(index)
            last = _last_line(log)
            where = f"; main thread at {_main_frames(log.with_name('stdout.log'))}" if index in alive else ""
            lines.append(
                f"broker {by_index[index].node_id} (pid {pid}, {'alive' if index in alive else 'gone'}):"
                f" last log {last!r}; last error {errors[index]!r}{where}"
            )
        return "\n".join(lines)

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Serialise up/down on one data dir across processes."""
        with (self.data_dir / ".lock").open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _exit_status(pid: int) -> int | None:
    """Exit code if ``pid`` is our child and has exited (reaping it), else None."""
    try:
        done, status = os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return None
    return os.waitstatus_to_exitcode(status) if done else None


def _wait_exit_status(pid: int, timeout: float = 2.0) -> int | None:
    """Exit code of our child ``pid`` once it has exited, waiting up to ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while (status := _exit_status(pid)) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    return status


def _last_line(log: Path) -> str:
    try:
        lines = log.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return "(no log)"
    return lines[-1].strip()[:200] if lines else "(empty)"


def _main_frames(stdout: Path, frames: int = 4) -> str:
    """The top frames of the ``"main"`` thread in the last thread dump of ``stdout``."""
    try:
        text = stdout.read_text(errors="replace")
    except FileNotFoundError:
        return "(no stdout.log)"
    start = text.rfind('\n"main"')
    if start < 0:
        return "(no thread dump)"
    stack = [line.strip()[3:] for line in text[start:].splitlines()[2:] if line.strip().startswith("at ")]
    return " < ".join(stack[:frames]) or "(empty stack)"


def _last_error(log: Path) -> tuple[str, Path]:
    """The broker's last ERROR/FATAL line, else the JVM's last words, as one short line.

    Returns the text and the file it came from.
    """
    try:
        lines = log.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        lines = []
    for line in reversed(lines):
        if " ERROR " in line or " FATAL " in line:
            return line.strip()[:300], log
    stdout = log.with_name("stdout.log")
    try:  # the JVM itself (bad option, no memory, crash) writes to stdout.log
        jvm = [line.strip() for line in stdout.read_text(errors="replace").splitlines()]
    except FileNotFoundError:
        jvm = []
    last = [line for line in jvm if line][-3:]
    return (" | ".join(last)[:300], stdout) if last else ("no error logged", log)
