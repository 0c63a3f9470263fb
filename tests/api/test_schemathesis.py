"""schemathesis against the gateway's own OpenAPI, with a real engine and worker behind it.

Checks: no 5xx, every status code documented, every body and header as the
schema says, each operation alone and in sequences (the stateful phase, over the links
schemathesis infers from the schema). The run is bounded (examples per operation, fixed seed) to take
about a minute.
"""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from ledgerflow.local.processes import failed_batches
from tests.api.conftest import Stack, wait_status

pytestmark = pytest.mark.kafka

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
        "response_headers_conformance",
    ]
)


def test_schemathesis_finds_no_5xx_and_no_schema_violation(
    api: httpx.Client, api_stack: Stack, tmp_path: Path
) -> None:
    # the ids the schema's examples name exist, so the examples reach real runs and definitions
    schema = api.get("/openapi.json").json()
    example = schema["paths"]["/api/v1/workflows"]["post"]["requestBody"]["content"]["application/json"]
    assert api.post("/api/v1/workflows", json=example["examples"]["dag"]["value"]).status_code == 201
    started = api.post("/api/v1/workflows", json={"id": "order-42", "type": "ThreeSteps", "input": 1})
    assert started.status_code in (202, 409), started.text
    wait_status(api, "order-42", ("COMPLETED", "FAILED"))

    began = time.monotonic()
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "schemathesis.cli",
            "run",
            f"{api_stack.url}/openapi.json",
            "--header",
            f"Authorization: Bearer {api_stack.cluster.api_key}",
            "--checks",
            CHECKS,
            "--phases",
            "examples,coverage,fuzzing,stateful",
            "--max-examples",
            "12",
            "--seed",
            "20251124",
            # One worker: with two, hypothesis parses lambda sources (ast.parse) in two threads at
            # once, which CPython 3.11 may fail with "SystemError: AST constructor recursion depth
            # mismatch" (a schemathesis error, not a finding); the id patterns made it frequent.
            "--workers",
            "1",
            "--request-timeout",
            "10",
            "--no-shrink",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    output = result.stdout + result.stderr
    print(f"schemathesis took {time.monotonic() - began:.1f} s\n{output[-3000:]}")
    assert result.returncode == 0, output[-15000:]
    # the stateful phase chains operations through links schemathesis infers from the schema
    # (a start's workflow id into status, signal, cancel, history ...); it must have run
    assert re.search(r"API Links:\s+[1-9]\d* covered", output), output[-3000:]
    engine_log = api_stack.cluster.nodes[0].log_path.read_text()
    assert not failed_batches(engine_log), "fuzzed requests failed an engine batch"
    # the examples reached real data: a status and a history were answered by the engine
    metrics = api.get("/metrics").text
    for route in ("/api/v1/workflows/{id}/status", "/api/v1/workflows/{id}/history"):
        assert f'route="{route}",status="200"' in metrics, route
