"""Layers only point down: no module imports one of a layer above it, nor a sibling it must not.

    schemas -> core (SDK, settings, codec) -> engine | executors | client -> api -> local -> cli

``ledgerflow.testing`` (test tools) stands on ``local`` beside the CLI; the CLI does not import it.

``import ledgerflow`` (the package's ``__init__``, its own layer) loads the core alone: the Client
is imported on first use, so workflow and activity code loads no Kafka client.

A module-level ``import`` or ``from ... import`` counts, and so does one inside a function (a
lazy import is still a dependency); ``if TYPE_CHECKING:`` imports do not (types only).
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ledgerflow"

LAYERS: list[tuple[str, tuple[str, ...]]] = [
    ("surface", ("ledgerflow",)),  # the package's __init__ alone (see layer_of)
    ("schemas", ("ledgerflow.schemas",)),
    (
        "core",
        (
            "ledgerflow.activity",
            "ledgerflow.workflow",
            "ledgerflow.sdk",
            "ledgerflow.dag",
            "ledgerflow.kafkaclients",
            "ledgerflow.errors",
            "ledgerflow.failures",
            "ledgerflow.reset_points",
            "ledgerflow.converter",
            "ledgerflow.config",
            "ledgerflow.namespaces",
            "ledgerflow.kafkaprops",
            "ledgerflow.secretfiles",
            "ledgerflow.engine_token",
            "ledgerflow.partitioning",
            "ledgerflow.paging",
            "ledgerflow.deadlines",
            "ledgerflow.search_attributes",
            "ledgerflow.schedule_times",
            "ledgerflow.visibility",
            "ledgerflow.logs",
            "ledgerflow.codec",
            "ledgerflow.samples",
        ),
    ),
    ("engine", ("ledgerflow.engine",)),
    ("executors", ("ledgerflow.executors",)),
    (
        "client",
        (
            "ledgerflow.client",
            "ledgerflow.async_client",
            "ledgerflow.kafka_writes",
            "ledgerflow.owner_reads",
            "ledgerflow.owner_watch",
            "ledgerflow.schedule_client",
            "ledgerflow.routing",
            "ledgerflow.cluster",
        ),
    ),
    ("api", ("ledgerflow.api",)),
    ("local", ("ledgerflow.local",)),
    ("testing", ("ledgerflow.testing",)),
    ("cli", ("ledgerflow.cli",)),
]
MAY_IMPORT: dict[str, set[str]] = {
    "surface": {"schemas", "core", "client"},
    "schemas": {"schemas"},
    "core": {"schemas", "core"},
    "engine": {"schemas", "core", "engine"},
    "executors": {"schemas", "core", "executors"},
    "client": {"schemas", "core", "client"},
    "api": {"surface", "schemas", "core", "client", "api"},
    # the local stack runs every part, as a user's machine would; `ledgerflow dev` and the tests use it
    "local": {"surface", "schemas", "core", "engine", "executors", "client", "api", "local"},
    # test tools (invariants, chaos, fuzz) over the local stack
    "testing": {"surface", "schemas", "core", "engine", "executors", "client", "api", "local", "testing"},
    # the CLI runs the local stack, never the test tools
    "cli": {"surface", "schemas", "core", "engine", "executors", "client", "api", "local", "cli"},
}


def layer_of(module: str) -> str | None:
    """The layer of a ledgerflow module: the one whose longest prefix names it (``ledgerflow``
    names the package's ``__init__`` alone)."""
    best: tuple[int, str] | None = None
    for layer, prefixes in LAYERS:
        for prefix in prefixes:
            named = module == prefix or (layer != "surface" and module.startswith(prefix + "."))
            if named and (best is None or len(prefix) > best[0]):
                best = (len(prefix), layer)
    return best[1] if best else None


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, module: str) -> list[tuple[int, str]]:
    """The ledgerflow names ``path`` imports, with their lines."""
    tree = ast.parse(path.read_text(), str(path))
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            typing_only.update(id(n) for child in node.body for n in ast.walk(child))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert not node.level, f"{module}:{node.lineno}: a relative import (the codebase has none)"
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return [(line, name) for line, name in found if name.split(".")[0] == "ledgerflow"]


def upward_edges() -> list[str]:
    edges: set[str] = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        module = module_name(path)
        layer = layer_of(module)
        assert layer is not None, f"{module} is in no layer: add it to LAYERS"
        for line, imported in imports_of(path, module):
            target = _resolved(imported)
            target_layer = layer_of(target)
            if target_layer is not None and target_layer not in MAY_IMPORT[layer]:
                where = f"{path.relative_to(PACKAGE.parent)}:{line}"
                edges.add(f"{where} ({layer}) imports {target} ({target_layer})")
    return sorted(edges)


def _resolved(imported: str) -> str:
    """``from ledgerflow import workflow`` names a module; ``from ledgerflow.x import Name`` names
    a member of ``ledgerflow.x``: the module is the longest prefix that is a file or package."""
    parts = imported.split(".")
    for end in range(len(parts), 0, -1):
        candidate = PACKAGE.parent.joinpath(*parts[:end])
        if candidate.with_suffix(".py").exists() or (candidate / "__init__.py").exists():
            return ".".join(parts[:end])
    return imported


def test_no_module_imports_a_layer_above_its_own() -> None:
    edges = upward_edges()
    assert not edges, "imports against the layers:\n" + "\n".join(edges)


@pytest.mark.parametrize(
    ("module", "layer"),
    [
        ("ledgerflow", "surface"),
        ("ledgerflow.client", "client"),
        ("ledgerflow.workflow", "core"),
        ("ledgerflow.engine.loop", "engine"),
        ("ledgerflow.api.app", "api"),
        ("ledgerflow.cli.run", "cli"),
        ("ledgerflow.schemas.dag", "schemas"),
        ("ledgerflow.local.kafka.launcher", "local"),
        ("ledgerflow.local.processes", "local"),
        ("ledgerflow.testing.invariants", "testing"),
    ],
)
def test_every_module_has_one_layer(module: str, layer: str) -> None:
    assert layer_of(module) == layer


def test_importing_the_sdk_loads_no_kafka_client_nor_the_engine() -> None:
    """What a module of workflows and activities imports: ``ledgerflow``, its ``workflow`` and
    ``activity`` (a fresh interpreter, so nothing this test process loaded counts)."""
    probe = (
        "import sys, ledgerflow\n"
        "from ledgerflow import activity, workflow\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    loaded = set(
        subprocess.run(
            [sys.executable, "-c", probe], capture_output=True, text=True, check=True
        ).stdout.split()
    )
    assert not {"confluent_kafka", "aiokafka", "rocksdict", "httpx", "fastapi"} & loaded
    assert not {m for m in loaded if m.startswith(("ledgerflow.engine", "ledgerflow.client"))}
