"""Engine, worker and gateway processes for ``ledgerflow dev`` and integration tests: real processes,
killable with -9.

A ``Cluster`` runs secured, as production does: its engines require an engine token it makes,
and its gateways accept an API key it makes (every scope), unless a gateway is asked for
``insecure``. The secrets are files under the cluster's folder (``secrets/``, mode 0600).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from ledgerflow.api.keys import entry_line, new_key
from ledgerflow.api.scopes import Scope
from ledgerflow.async_client import AsyncClient
from ledgerflow.client import Client
from ledgerflow.codec.base import PayloadCodec
from ledgerflow.engine_token import bearer, new_token
from ledgerflow.local.ports import free_port
from ledgerflow.secretfiles import write_private

FAILED_BATCH_LINES = (
    "transaction failed, aborting",
    "restarting the owner session",
    "owner session failed, restarting",
)
"""What an engine logs when a batch fails: aborted and its partitions reloaded inside the group,
or, when that cannot be done, its whole owner session restarted."""


def failed_batches(log: str) -> list[str]:
    """The lines of an engine log that tell of a failed batch (see ``FAILED_BATCH_LINES``)."""
    return [line for line in log.splitlines() if any(marker in line for marker in FAILED_BATCH_LINES)]


@dataclass
class NodeProcess:
    """One ``ledgerflow engine``, ``worker`` or ``api`` child process."""

    args: list[str]
    log_path: Path
    env: dict[str, str]
    url: str | None = None
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    """Credentials its HTTP routes need (an engine's token, a gateway's API key)."""
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    def start(self) -> NodeProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "ledgerflow.cli", *self.args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
            start_new_session=True,
        )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """kill -9: no shutdown code runs."""
        if self.alive():
            assert self.process is not None
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(10)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM and wait; SIGKILL if it does not exit in time."""
        if not self.alive():
            return
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Wait until /ready answers 200 (engines and gateways)."""
        assert self.url is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"process exited; see {self.log_path}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise TimeoutError(f"not ready after {timeout} s; see {self.log_path}:\n{self.log_tail()}")

    def get(self, path: str, params: dict[str, Any] | None = None, timeout: float = 5.0) -> httpx.Response:
        """GET ``path`` on this node, with its credentials."""
        assert self.url is not None
        return httpx.get(f"{self.url}{path}", params=params, headers=self.headers, timeout=timeout)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class Cluster:
    """Engines and workers of one test, sharing a bootstrap and a topic prefix."""

    bootstrap: str
    prefix: str
    base_dir: Path
    partitions: int = 4
    pythonpath: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    """Extra environment of every process (e.g. ``LEDGERFLOW_PARTITIONER``)."""
    nodes: list[NodeProcess] = field(default_factory=list)
    engine_token: str = field(default_factory=new_token, repr=False)
    """The token its engines require (in ``secrets/engine-token``)."""
    api_key: str = field(init=False, repr=False)
    """A key its gateways accept, with every scope (its hash in ``secrets/api-keys.jsonl``)."""

    def __post_init__(self) -> None:
        self.api_key, self._key_entry = new_key("tests", list(Scope))

    @property
    def secrets_dir(self) -> Path:
        return self.base_dir / "secrets"

    def _secret_file(self, name: str, text: str) -> Path:
        path = self.secrets_dir / name
        if not path.exists():
            write_private(path, text)
        return path

    @property
    def engine_token_file(self) -> Path:
        return self._secret_file("engine-token", self.engine_token + "\n")

    @property
    def engine_headers(self) -> dict[str, str]:
        return bearer(self.engine_token)

    @property
    def api_headers(self) -> dict[str, str]:
        return bearer(self.api_key)

    def client(self, namespace: str | None = None, codec: PayloadCodec | None = None) -> Client:
        """A Client of this cluster, with its engine token."""
        return Client(
            self.bootstrap,
            self.prefix,
            partitions=self.partitions,
            engine_token=self.engine_token,
            codec=codec,
            namespace=namespace,
        )

    def async_client(self, namespace: str | None = None) -> AsyncClient:
        """An AsyncClient of this cluster, with its engine token (``async with`` connects it)."""
        return AsyncClient(
            self.bootstrap,
            self.prefix,
            partitions=self.partitions,
            engine_token=self.engine_token,
            namespace=namespace,
        )

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        paths = [*self.pythonpath, env.get("PYTHONPATH", "")]
        env["PYTHONPATH"] = os.pathsep.join(p for p in paths if p)
        env["PYTHONUNBUFFERED"] = "1"
        env["LEDGERFLOW_ENGINE_TOKEN_FILE"] = str(self.engine_token_file)
        env.update(self.env)
        return env

    def _common(self) -> list[str]:
        return ["--bootstrap", self.bootstrap, "--prefix", self.prefix, "--partitions", str(self.partitions)]

    def engine(
        self,
        workflows: list[str],
        name: str = "engine-0",
        start: bool = True,
        extra: list[str] | None = None,
        env: dict[str, str] | None = None,
    ) -> NodeProcess:
        port = free_port()
        data_dir = self.base_dir / name
        args = [
            "engine",
            *self._common(),
            "--data-dir",
            str(data_dir),
            "--http-port",
            str(port),
            *(extra or []),
        ]
        for module in workflows:
            args += ["--workflows", module]
        node = NodeProcess(
            args,
            self.base_dir / f"{name}.log",
            {**self._env(), **(env or {})},
            url=f"http://127.0.0.1:{port}",
            headers=self.engine_headers,
        )
        self.nodes.append(node)
        return node.start() if start else node

    def worker(
        self,
        activities: list[str],
        name: str = "worker-0",
        queue: str = "default",
        concurrency: int = 50,
        shutdown_grace: float | None = None,
        env: dict[str, str] | None = None,
    ) -> NodeProcess:
        """A ``ledgerflow worker`` process; ``env`` adds to its environment (e.g. its built-in
        settings, ``LEDGERFLOW_BUILTINS``)."""
        args = ["worker", *self._common(), "--queue", queue, "--concurrency", str(concurrency)]
        if shutdown_grace is not None:
            args += ["--shutdown-grace", str(shutdown_grace)]
        for module in activities:
            args += ["--activities", module]
        node = NodeProcess(args, self.base_dir / f"{name}.log", {**self._env(), **(env or {})})
        self.nodes.append(node)
        return node.start()

    def gateway(
        self,
        activities: list[str] | None = None,
        name: str = "gateway",
        env: dict[str, str] | None = None,
        extra: list[str] | None = None,
        insecure: bool = False,
    ) -> NodeProcess:
        """A ``ledgerflow api`` process on a free port (``url`` set; ``wait_ready`` polls /ready).

        It accepts ``api_key`` (``headers`` carry it), or anyone with ``insecure``; ``env``
        may name other credentials (``LEDGERFLOW_API_KEYS_FILE``, ``LEDGERFLOW_JWT_*``)."""
        port = free_port()
        args = ["api", *self._common(), "--host", "127.0.0.1", "--port", str(port), *(extra or [])]
        for module in activities or []:
            args += ["--activities", module]
        own: dict[str, str] = {}
        if insecure:
            args.append("--insecure")
        else:
            keys = self._secret_file("api-keys.jsonl", entry_line(self._key_entry) + "\n")
            own["LEDGERFLOW_API_KEYS_FILE"] = str(keys)
        node = NodeProcess(
            args,
            self.base_dir / f"{name}.log",
            {**self._env(), **own, **(env or {})},
            url=f"http://127.0.0.1:{port}",
            headers={} if insecure else self.api_headers,
        )
        self.nodes.append(node)
        return node.start()

    def restart(self, node: NodeProcess, hard: bool = False) -> NodeProcess:
        """Stop (or kill -9) ``node`` and start the same command again, same data folder and port."""
        if hard:
            node.kill()
        else:
            node.stop()
        return node.start()

    def stop_all(self) -> None:
        for node in self.nodes:
            node.stop(timeout=10)
