"""Process checks that are not fooled by PID reuse.

A PID file alone proves nothing: after a reboot or a crash the number may
belong to another program. A PID counts as "our broker" only when the process
is alive (not a zombie) and its command line is ``java ... kafka.Kafka
<this node's server.properties>``. Linux reads ``/proc``; elsewhere ``ps``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

KAFKA_MAIN = "kafka.Kafka"


def _cmdline(pid: int) -> list[str] | None:
    proc = Path("/proc")
    if proc.is_dir():
        try:
            stat = (proc / str(pid) / "stat").read_text()
            # state is the field after the parenthesised command name
            if stat.rsplit(")", 1)[1].split()[0] in {"Z", "X"}:
                return None
            raw = (proc / str(pid) / "cmdline").read_bytes()
        except (OSError, IndexError):
            return None
        return [part.decode(errors="replace") for part in raw.split(b"\0") if part]
    try:
        out = subprocess.run(
            ["ps", "-p", str(pid), "-o", "stat=", "-o", "command="],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except OSError:
        return None
    line = out.stdout.strip()
    if out.returncode != 0 or not line or line.startswith("Z"):
        return None
    return line.split()[1:]


def is_broker(pid: int, properties: Path) -> bool:
    """True when ``pid`` is a live ``java kafka.Kafka`` run on ``properties``."""
    argv = _cmdline(pid)
    if not argv:
        return False
    return "java" in Path(argv[0]).name and KAFKA_MAIN in argv and str(properties) in argv


def reap(pid: int) -> None:
    """Collect ``pid``'s exit status if it is our child (no zombie left behind)."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def send(pid: int, sig: signal.Signals) -> None:
    """Send ``sig``; a process that is already gone is fine."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def wait_gone(pids: dict[int, Path], timeout: float) -> dict[int, Path]:
    """Wait until none of ``pids`` is a live broker; return those still alive."""
    deadline = time.monotonic() + timeout
    alive = dict(pids)
    while alive:
        for pid in list(alive):
            reap(pid)
            if not is_broker(pid, alive[pid]):
                del alive[pid]
        if not alive or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    return alive
