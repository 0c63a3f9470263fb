"""Built-in activities: DAG nodes name them as types; each worker runs those it enables.

Each takes one JSON object (the node's rendered ``input``) and returns JSON. The pure ones
compute on their input alone and are on by default; those doing I/O are off until named in the
worker's ``LEDGERFLOW_BUILTINS`` (``--builtins``), and then reach only what their sandbox
settings allow (``ledgerflow/executors/sandbox/``). A task for a built-in its worker does not enable fails,
not retried, with ``BuiltinDisabled``; a call the sandbox forbids fails with ``BuiltinRefused``.

Pure, on by default:

- ``echo``: returns its input.
- ``console.log``: ``{"message"}`` → ``{"logged"}``; prints with the workflow id.
- ``sequence.numbers``: ``{"start"=0, "stop", "step"=1}`` → ``{"numbers"}``.
- ``filter.condition``: ``{"items", "condition"}`` (an expression over ``item``) → ``{"items"}``.
- ``map.transform``: ``{"items", "expression"}`` (over ``item``) → ``{"items"}``.
- ``aggregate.sum``: ``{"items"}`` → ``{"sum"}``.

I/O, off by default:

- ``http.request``: ``{"url", "method"="GET", "headers", "json", "timeout"}``
  → ``{"status", "headers", "body"}``.
- ``kafka.produce``: ``{"topic", "key", "value"}`` → ``{"topic", "partition", "offset"}``.
- ``file.read_text`` / ``file.write_text``: ``{"path", "encoding"="utf-8"}`` /
  ``{"path", "text", "encoding"="utf-8"}`` → ``{"text"}`` / ``{"path", "bytes"}``.
- ``csv.read`` / ``csv.write``: ``{"path"}`` / ``{"path", "rows"}`` (a list of objects)
  → ``{"rows"}`` / ``{"path", "rows"}``.
"""

from __future__ import annotations

import csv
import io
import logging
from typing import Any, NoReturn

from ledgerflow import activity
from ledgerflow.config import Settings
from ledgerflow.dag.expressions import MAX_VALUE_ITEMS, evaluate
from ledgerflow.executors.sandbox.files import FileSandbox
from ledgerflow.executors.sandbox.refusal import DISABLED, Refused
from ledgerflow.executors.sandbox.settings import BUILTINS_SETTING, BuiltinSettings
from ledgerflow.executors.sandbox.topics import TopicSandbox
from ledgerflow.executors.sandbox.web import HttpSandbox

log = logging.getLogger("ledgerflow.builtins")


def worker_builtins(
    builtin_settings: BuiltinSettings, settings: Settings
) -> dict[str, activity.ActivityDefinition]:
    """Every built-in for a worker with these settings: the enabled ones ready to run in their
    sandbox, the others as stand-ins that fail their task with ``BuiltinDisabled``."""
    available = {
        d.name: d for d in [*map(activity.definition_of, PURE), *_io_builtins(builtin_settings, settings)]
    }
    return {
        name: definition if name in builtin_settings.builtins else _disabled(name)
        for name, definition in available.items()
    }


def _disabled(name: str) -> activity.ActivityDefinition:
    async def refuse(*_: Any) -> NoReturn:
        raise Refused(name, f"not enabled on this worker (enable it with {BUILTINS_SETTING})", type=DISABLED)

    return activity.definition_of(activity.defn(name=name)(refuse))


@activity.defn(name="echo")
def echo(input: Any = None) -> Any:
    return input


@activity.defn(name="console.log")
def console_log(input: dict[str, Any]) -> dict[str, Any]:
    message = input.get("message", input)
    info = activity.info()
    log.info("console.log: %s", message, extra={"workflowId": info.workflow_id})
    print(f"[{info.workflow_id}] {message}", flush=True)
    return {"logged": message}


@activity.defn(name="sequence.numbers")
def sequence_numbers(input: dict[str, Any]) -> dict[str, Any]:
    numbers = range(int(input.get("start", 0)), int(input["stop"]), int(input.get("step", 1)))
    if len(numbers) > MAX_VALUE_ITEMS:
        raise Refused("sequence.numbers", f"{len(numbers):,} numbers asked, limit {MAX_VALUE_ITEMS:,}")
    return {"numbers": list(numbers)}


@activity.defn(name="filter.condition")
def filter_condition(input: dict[str, Any]) -> dict[str, Any]:
    condition = str(input["condition"])
    return {"items": [item for item in input["items"] if evaluate(condition, {"item": item})]}


@activity.defn(name="map.transform")
def map_transform(input: dict[str, Any]) -> dict[str, Any]:
    expression = str(input["expression"])
    return {"items": [evaluate(expression, {"item": item}) for item in input["items"]]}


@activity.defn(name="aggregate.sum")
def aggregate_sum(input: dict[str, Any]) -> dict[str, Any]:
    return {"sum": sum(input["items"])}


PURE = (echo, console_log, sequence_numbers, filter_condition, map_transform, aggregate_sum)


def _io_builtins(builtin_settings: BuiltinSettings, settings: Settings) -> list[activity.ActivityDefinition]:
    """The built-ins doing I/O, bound to the sandboxes of these settings."""
    files = FileSandbox(builtin_settings)
    web = HttpSandbox(builtin_settings)
    topics = TopicSandbox(builtin_settings, settings)

    @activity.defn(name="http.request")
    async def http_request(input: dict[str, Any]) -> dict[str, Any]:
        return (await web.request(input)).as_output()

    @activity.defn(name="kafka.produce")
    async def kafka_produce(input: dict[str, Any]) -> dict[str, Any]:
        return await topics.produce(input)

    @activity.defn(name="file.read_text")
    def file_read_text(input: dict[str, Any]) -> dict[str, Any]:
        data = files.read("file.read_text", input.get("path"))
        return {"text": data.decode(input.get("encoding", "utf-8"))}

    @activity.defn(name="file.write_text")
    def file_write_text(input: dict[str, Any]) -> dict[str, Any]:
        data = str(input.get("text", "")).encode(input.get("encoding", "utf-8"))
        return {"path": files.write("file.write_text", input.get("path"), data), "bytes": len(data)}

    @activity.defn(name="csv.read")
    def csv_read(input: dict[str, Any]) -> dict[str, Any]:
        text = files.read("csv.read", input.get("path")).decode("utf-8")
        return {"rows": list(csv.DictReader(io.StringIO(text, newline="")))}

    @activity.defn(name="csv.write")
    def csv_write(input: dict[str, Any]) -> dict[str, Any]:
        rows: list[dict[str, Any]] = input["rows"]
        fields = list(dict.fromkeys(k for row in rows for k in row))
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
        path = files.write("csv.write", input.get("path"), text.getvalue().encode("utf-8"))
        return {"path": path, "rows": len(rows)}

    io_builtins = (http_request, kafka_produce, file_read_text, file_write_text, csv_read, csv_write)
    return [activity.definition_of(fn) for fn in io_builtins]
