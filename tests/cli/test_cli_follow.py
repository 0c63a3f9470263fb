"""``ledgerflow history <id> --follow`` as a subprocess against a running workflow."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time

import pytest

from ledgerflow import Client, WorkflowNotFoundError
from ledgerflow.local.processes import Cluster
from tests.fixtures import ROOT, assert_invariants

pytestmark = pytest.mark.kafka


class Lines:
    """The stdout lines of a process, each with when it was read, through a reader thread."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self._queue: queue.Queue[tuple[float, str] | None] = queue.Queue()
        assert process.stdout is not None
        stdout = process.stdout

        def read() -> None:
            for line in stdout:
                self._queue.put((time.monotonic(), line.rstrip("\n")))
            self._queue.put(None)

        threading.Thread(target=read, daemon=True).start()

    def next(self, timeout: float, what: str) -> tuple[float, str]:
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no line within {timeout} s while waiting for {what}") from None
        assert item is not None, f"output ended while waiting for {what}"
        return item

    def until(self, kind: str, timeout: float) -> tuple[float, list[str]]:
        """Lines up to and including the first naming ``kind``; when that one was read."""
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        while True:
            at, line = self.next(max(0.1, deadline - time.monotonic()), kind)
            seen.append(line)
            if line.split()[-1] == kind:
                return at, seen

    def ended(self, timeout: float) -> bool:
        """True when the output ends (with no further line) within ``timeout``."""
        try:
            return self._queue.get(timeout=timeout) is None
        except queue.Empty:
            return False


def test_history_follow_prints_events_as_they_arrive_and_stops_when_the_run_closes(
    running: Cluster, client: Client
) -> None:
    client.start_workflow("SignalCounter", None, id="followed")
    deadline = time.monotonic() + 30
    while True:
        try:
            if client.describe("followed")["status"] == "RUNNING":
                break
        except WorkflowNotFoundError:
            pass
        assert time.monotonic() < deadline, "the workflow did not start"
        time.sleep(0.1)
    kafka = [
        "--bootstrap",
        running.bootstrap,
        "--prefix",
        running.prefix,
        "--partitions",
        str(running.partitions),
    ]
    process = subprocess.Popen(
        [sys.executable, "-m", "ledgerflow.cli", "history", "followed", *kafka, "--follow"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={
            **os.environ,
            "PYTHONPATH": ROOT,
            "PYTHONUNBUFFERED": "1",
            "LEDGERFLOW_ENGINE_TOKEN_FILE": str(running.engine_token_file),
        },
    )
    try:
        lines = Lines(process)
        _, first = lines.until("workflow_started", timeout=60)
        assert first == ["   1 workflow_started"]
        time.sleep(1.0)  # a few polls of an open run with nothing new
        assert process.poll() is None, "--follow exited while the run was open"

        sent = time.monotonic()
        client.signal("followed", "add", 1)
        at, added = lines.until("signal_received", timeout=30)
        signal_to_line = at - sent
        assert added == ["   2 signal_received"]
        assert process.poll() is None, "--follow exited while the run was open"

        sent = time.monotonic()
        client.signal("followed", "done")
        at, rest = lines.until("workflow_completed", timeout=30)
        close_to_line = at - sent
        assert rest == ["   3 signal_received", "   4 workflow_completed"]
        assert lines.ended(timeout=30), "--follow printed more after the closing event"
        assert process.wait(timeout=30) == 0
        exited = time.monotonic() - at
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
    assert client.result("followed", timeout=10) == [1]
    assert [f"{e.index:>4} {e.kind}" for e in client.history("followed")] == first + added + rest
    assert_invariants(client, "followed")
    print(
        f"\n--follow: signal printed {signal_to_line:.2f} s after it was sent, close {close_to_line:.2f} s, "
        f"exited {exited:.2f} s after the closing line"
    )
