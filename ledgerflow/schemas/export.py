"""Export the JSON Schema of every wire format, for producers in other languages.

    python -m ledgerflow.schemas.export           # (re)write ledgerflow/schemas/json/*.json
    python -m ledgerflow.schemas.export --check   # exit 1 when a file is out of date

The files are generated from the pydantic models (validation mode: what the
engine accepts) with stable formatting, so a diff in review is a real change
of the wire format, and CI can detect a model changed without its schema.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ledgerflow.schemas.commands import inbox_command_adapter
from ledgerflow.schemas.dag import DagDefinition
from ledgerflow.schemas.events import history_event_adapter
from ledgerflow.schemas.lifecycle import LifecycleEvent
from ledgerflow.schemas.tasks import task_message_adapter

SCHEMA_DIR = Path(__file__).resolve().parent / "json"
"""Where the generated files live (``ledgerflow/schemas/json/`` in the source tree)."""

SCHEMAS: dict[str, Callable[[], dict[str, Any]]] = {
    "inbox-command.json": lambda: _tag_required(inbox_command_adapter.json_schema(mode="validation")),
    "history-event.json": lambda: _tag_required(history_event_adapter.json_schema(mode="validation")),
    "task-message.json": lambda: _tag_required(task_message_adapter.json_schema(mode="validation")),
    "lifecycle-event.json": lambda: LifecycleEvent.model_json_schema(mode="validation"),
    "dag-definition.json": lambda: DagDefinition.model_json_schema(mode="validation"),
}
"""File name -> function producing its schema."""


def _tag_required(schema: dict[str, Any]) -> dict[str, Any]:
    """Mark the discriminator (``kind``) required in every member of a tagged union.

    Pydantic lists ``kind`` as optional because each model has it as a default,
    yet validating the union fails without it. Producers in other languages
    must send it, so the schema says so.
    """
    defs = schema.get("$defs", {})

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            discriminator = node.get("discriminator")
            if isinstance(discriminator, dict) and "mapping" in discriminator:
                tag = discriminator["propertyName"]
                for ref in discriminator["mapping"].values():
                    member = defs[ref.removeprefix("#/$defs/")]
                    required = member.setdefault("required", [])
                    if tag not in required:
                        required.insert(0, tag)
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(schema)
    return schema


def render(schema: dict[str, Any]) -> str:
    """The stable text form of a schema: sorted keys, two-space indent, trailing newline."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def generate() -> dict[str, str]:
    """File name -> the text the models produce now."""
    return {name: render(make()) for name, make in SCHEMAS.items()}


def stale_files(directory: Path = SCHEMA_DIR) -> list[str]:
    """Names of the files in ``directory`` that are missing or differ from the models."""
    stale = []
    for name, text in generate().items():
        path = directory / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            stale.append(name)
    return stale


def write(directory: Path = SCHEMA_DIR) -> list[str]:
    """Write every schema file into ``directory``; returns the names of files that changed."""
    directory.mkdir(parents=True, exist_ok=True)
    changed = []
    for name, text in generate().items():
        path = directory / name
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            changed.append(name)
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m ledgerflow.schemas.export",
        description="Write the JSON Schema of Ledgerflow's wire formats.",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 and list the files that differ from the models",
    )
    parser.add_argument("--dir", type=Path, default=SCHEMA_DIR, help=f"output folder (default: {SCHEMA_DIR})")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files(args.dir)
        if stale:
            print(
                f"JSON Schema out of date in {args.dir}: {', '.join(stale)}\n"
                "run: python -m ledgerflow.schemas.export",
                file=sys.stderr,
            )
            return 1
        print(f"JSON Schema up to date ({len(SCHEMAS)} files in {args.dir})")
        return 0
    changed = write(args.dir)
    for name in SCHEMAS:
        print(f"{'wrote' if name in changed else 'unchanged'} {args.dir / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
