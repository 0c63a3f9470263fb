"""Built-in activities: DAG nodes name them as types; each worker runs those it enables.

Each takes one JSON object (the node's rendered ``input``), checked against its model in
``ledgerflow/dag/node_inputs.py`` (a failure naming the field, not retried), and returns JSON
the next node can use (lists of records under ``items``). The pure ones compute on their input
alone and are on by default; those doing I/O are off until named in the worker's
``LEDGERFLOW_BUILTINS`` (``--builtins``), and then reach only what their sandbox settings allow
(``ledgerflow/executors/sandbox/``). A task for a built-in its worker does not enable fails, not
retried, with ``BuiltinDisabled``; a call the sandbox forbids fails with ``BuiltinRefused``.

The seed system's types are here under its names (docs/dag.md has the table); ``csv.read`` and
``kafka.produce`` are the same nodes as ``file.csv`` and ``kafka.producer``.
"""

from __future__ import annotations

import asyncio
import csv
import hashlib
import io
import json
import logging
import os
import random
from collections.abc import Callable
from dataclasses import replace
from typing import Any, NoReturn, TypeVar

from ledgerflow import activity
from ledgerflow.config import Settings
from ledgerflow.dag import node_inputs as inputs
from ledgerflow.dag.expressions import evaluate
from ledgerflow.dag.node_types import KAFKA_CONSUMER, KAFKA_CONSUMER_COMMIT
from ledgerflow.errors import ApplicationError
from ledgerflow.executors.claims import ClaimStore
from ledgerflow.executors.sandbox.consumer import TopicReader
from ledgerflow.executors.sandbox.files import FileSandbox
from ledgerflow.executors.sandbox.refusal import DISABLED, Refused
from ledgerflow.executors.sandbox.settings import BUILTINS_SETTING, BuiltinSettings
from ledgerflow.executors.sandbox.sql import SqlSandbox
from ledgerflow.executors.sandbox.topics import TopicSandbox
from ledgerflow.executors.sandbox.web import HttpSandbox

log = logging.getLogger("ledgerflow.builtins")
INVALID_INPUT = "InvalidInput"
"""Failure type of a node whose input breaks its type's model (not retried: it would again)."""
M = TypeVar("M", bound=inputs.NodeInput)


def worker_builtins(
    builtin_settings: BuiltinSettings, settings: Settings, claims: ClaimStore | None = None
) -> dict[str, activity.ActivityDefinition]:
    """Every built-in for a worker with these settings: the enabled ones ready to run in their
    sandbox, the others as stand-ins that fail their task with ``BuiltinDisabled``. With
    ``claims``, an enabled one reads the claim references in its input back and claim-checks a
    result too large for history (``ledgerflow/executors/claims.py``)."""
    available = {
        d.name: d for d in [*map(activity.definition_of, PURE), *_io_builtins(builtin_settings, settings)]
    }
    enabled = set(builtin_settings.builtins)
    if KAFKA_CONSUMER in enabled:  # its commit runs where it runs
        enabled.add(KAFKA_CONSUMER_COMMIT)
    built = {}
    for name, definition in available.items():
        if name not in enabled:
            built[name] = _disabled(name)
        else:
            built[name] = _claim_checked(definition, claims) if claims else definition
    return built


def _claim_checked(
    definition: activity.ActivityDefinition, claims: ClaimStore
) -> activity.ActivityDefinition:
    """``definition`` reading its arguments' claim references back and claim-checking its result."""
    fn = definition.fn
    if definition.is_async:

        async def run_async(*args: Any) -> Any:
            if claims.holds_reference(args):  # a thread only when there is Kafka to read
                args = tuple(await asyncio.to_thread(claims.resolve, list(args), _owner()))
            result = await fn(*args)
            if claims.too_large(result):
                result = await asyncio.to_thread(claims.fit, result, _owner())
            return result

        return replace(definition, fn=run_async)

    def run(*args: Any) -> Any:  # in the worker's threads, as the built-in itself would be
        if claims.holds_reference(args):
            args = tuple(claims.resolve(list(args), _owner()))
        result = fn(*args)
        return claims.fit(result, _owner()) if claims.too_large(result) else result

    return replace(definition, fn=run)


def _owner() -> str:
    """The workflow whose claims the running attempt may read and write."""
    return activity.info().workflow_id


def _disabled(name: str) -> activity.ActivityDefinition:
    async def refuse(*_: Any) -> NoReturn:
        raise Refused(name, f"not enabled on this worker (enable it with {BUILTINS_SETTING})", type=DISABLED)

    return activity.definition_of(activity.defn(name=name)(refuse))


def _input(node_type: str, model: type[M], value: Any) -> M:
    try:
        checked = inputs.parsed(node_type, value)
    except ValueError as exc:
        raise ApplicationError(str(exc), type=INVALID_INPUT, non_retryable=True) from None
    assert isinstance(checked, model)
    return checked


@activity.defn(name="echo")
def echo(input: Any = None) -> Any:
    return input


@activity.defn(name="console.log")
def console_log(input: dict[str, Any]) -> dict[str, Any]:
    args = _input("console.log", inputs.ConsoleLog, input)
    message = args.message if args.message is not None else args.items
    if message is None:  # as before there were models: the whole input
        message = input
    info = activity.info()
    log.info("console.log: %s", message, extra={"workflowId": info.workflow_id})
    print(f"[{info.workflow_id}] {message}", flush=True)
    return {"logged": message}


@activity.defn(name="sequence.numbers")
def sequence_numbers(input: dict[str, Any]) -> dict[str, Any]:
    args = _input("sequence.numbers", inputs.SequenceNumbers, input)
    return {"numbers": list(range(args.start, args.stop, args.step))}


@activity.defn(name="random.numbers")
def random_numbers(input: dict[str, Any]) -> dict[str, Any]:
    args = _input("random.numbers", inputs.RandomNumbers, input)
    info = activity.info()
    seed = args.seed
    if seed is None:  # the run and the node: a retry of this node draws the same numbers
        digest = hashlib.sha256(f"{info.workflow_id}\x00{info.run_id}\x00{info.seq}".encode()).digest()
        seed = int.from_bytes(digest[:8], "big")
    draw = random.Random(seed)  # noqa: S311 - sample data, reproducible on purpose
    return {"numbers": [draw.randint(args.low, args.high) for _ in range(args.count)]}


@activity.defn(name="memory.collection")
def memory_collection(input: dict[str, Any]) -> dict[str, Any]:
    return {"items": _input("memory.collection", inputs.MemoryCollection, input).items}


@activity.defn(name="filter.condition")
def filter_condition(input: dict[str, Any]) -> dict[str, Any]:
    args = _input("filter.condition", inputs.FilterCondition, input)
    return {"items": [item for item in args.items if evaluate(args.condition, {"item": item})]}


@activity.defn(name="map.transform")
def map_transform(input: dict[str, Any]) -> dict[str, Any]:
    args = _input("map.transform", inputs.MapTransform, input)
    return {"items": [evaluate(args.expression, {"item": item}) for item in args.items]}


@activity.defn(name="aggregate.sum")
def aggregate_sum(input: dict[str, Any]) -> dict[str, Any]:
    args = _input("aggregate.sum", inputs.AggregateSum, input)
    values = [_field(item, args.field) for item in args.items] if args.field else args.items
    try:
        return {"sum": sum(values)}
    except TypeError:
        raise ApplicationError(
            "aggregate.sum input: items must be numbers (or objects with a numeric 'field')",
            type=INVALID_INPUT,
            non_retryable=True,
        ) from None


def _field(item: Any, name: str) -> Any:
    if not isinstance(item, dict) or name not in item:
        raise ApplicationError(
            f"aggregate.sum input: an item has no field {name!r}", type=INVALID_INPUT, non_retryable=True
        )
    return item[name]


@activity.defn(name="aggregate.count")
def aggregate_count(input: dict[str, Any]) -> dict[str, Any]:
    args = _input("aggregate.count", inputs.AggregateCount, input)
    if args.condition is None:
        return {"count": len(args.items)}
    condition = args.condition
    return {"count": sum(1 for item in args.items if evaluate(condition, {"item": item}))}


@activity.defn(name="data.clean")
def data_clean(input: dict[str, Any]) -> dict[str, Any]:
    args = _input("data.clean", inputs.DataClean, input)
    cleaned: list[dict[str, Any]] = []
    seen: set[str] = set()
    dropped = 0
    for record in args.items:
        row = {k: v.strip() if args.trim and isinstance(v, str) else v for k, v in record.items()}
        if args.drop_nulls:
            row = {k: v for k, v in row.items() if v is not None and v != ""}
        try:
            row.update({k: _coerce(row[k], kind) for k, kind in args.types.items() if k in row})
        except (TypeError, ValueError):
            dropped += 1
            continue
        if args.drop_duplicates:
            key = _canonical(row)
            if key in seen:
                dropped += 1
                continue
            seen.add(key)
        cleaned.append(row)
    return {"items": cleaned, "dropped": dropped}


def _canonical(row: dict[str, Any]) -> str:
    return json.dumps(row, sort_keys=True, default=str)


_TRUE = {"true", "1", "yes", "y", "t"}
_FALSE = {"false", "0", "no", "n", "f"}


def _coerce(value: Any, kind: str) -> Any:
    if kind == "str":
        return str(value)
    if kind == "int":
        if isinstance(value, float) and not value.is_integer():
            raise ValueError(value)
        return int(value)
    if kind == "float":
        return float(value)
    text = str(value).strip().lower()
    if isinstance(value, bool):
        return value
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(value)


@activity.defn(name="data.transform")
def data_transform(input: dict[str, Any]) -> dict[str, Any]:
    args = _input("data.transform", inputs.DataTransform, input)
    out = []
    for record in args.items:
        row = {args.rename.get(k, k): v for k, v in record.items()}
        for name, expression in args.compute.items():
            row[name] = evaluate(expression, {"item": row})
        if args.select is not None:
            row = {k: row[k] for k in args.select if k in row}
        out.append(row)
    return {"items": out}


PURE = (
    echo,
    console_log,
    sequence_numbers,
    random_numbers,
    memory_collection,
    filter_condition,
    map_transform,
    aggregate_sum,
    aggregate_count,
    data_clean,
    data_transform,
)


def _io_builtins(builtin_settings: BuiltinSettings, settings: Settings) -> list[activity.ActivityDefinition]:
    """The built-ins doing I/O, bound to the sandboxes of these settings."""
    files = FileSandbox(builtin_settings)
    web = HttpSandbox(builtin_settings)
    topics = TopicSandbox(builtin_settings, settings)
    databases = SqlSandbox(builtin_settings)
    reader = TopicReader(builtin_settings, settings)

    @activity.defn(name="sql.query")
    def sql_query(input: dict[str, Any]) -> dict[str, Any]:
        return databases.query(_input("sql.query", inputs.SqlQuery, input))

    @activity.defn(name=KAFKA_CONSUMER)
    def kafka_consumer(input: dict[str, Any]) -> dict[str, Any]:
        return reader.read(_input(KAFKA_CONSUMER, inputs.KafkaConsumer, input))

    @activity.defn(name=KAFKA_CONSUMER_COMMIT)
    def kafka_consumer_commit(input: dict[str, Any]) -> dict[str, Any]:
        return reader.commit(_input(KAFKA_CONSUMER_COMMIT, inputs.KafkaConsumerCommit, input))

    @activity.defn(name="http.request")
    async def http_request(input: dict[str, Any]) -> dict[str, Any]:
        return (await web.request(input)).as_output()

    async def produce(input: dict[str, Any]) -> dict[str, Any]:
        if "bootstrap" not in input:  # the sandbox refuses that one by name
            _input("kafka.producer", inputs.KafkaProducer, input)
        return await topics.produce(input)

    def read_text(name: str, input: dict[str, Any]) -> dict[str, Any]:
        args = _input(name, inputs.FilePath, input)
        return {"text": files.read(name, args.path).decode(args.encoding)}

    def write_text(name: str, args: inputs.FileText) -> dict[str, Any]:
        if args.text is not None:
            text = args.text if isinstance(args.text, str) else str(args.text)
        else:
            text = "".join(f"{line}\n" for line in args.lines or [])
        data = text.encode(args.encoding)
        return {"path": files.write(name, args.path, data), "bytes": len(data)}

    def file_text(input: dict[str, Any]) -> dict[str, Any]:
        args = _input("file.text", inputs.FileText, input)
        if args.text is None and args.lines is None:
            text = files.read("file.text", args.path).decode(args.encoding)
            return {"text": text, "lines": text.splitlines()}
        return write_text("file.text", args)

    def file_write_text(input: dict[str, Any]) -> dict[str, Any]:
        return write_text("file.write_text", _input("file.write_text", inputs.FileText, input))

    def read_csv(name: str, input: dict[str, Any]) -> list[dict[str, Any]]:
        args = _input(name, inputs.FileCsv, input)
        text = files.read(name, args.path).decode(args.encoding)
        return list(csv.DictReader(io.StringIO(text, newline="")))

    def file_csv(input: dict[str, Any]) -> dict[str, Any]:
        rows = read_csv("file.csv", input)
        return {"rows": rows, "items": rows}  # ``items``: what the seed's transforms take

    @activity.defn(name="csv.write")
    def csv_write(input: dict[str, Any]) -> dict[str, Any]:
        args = _input("csv.write", inputs.CsvWrite, input)
        fields = list(dict.fromkeys(k for row in args.rows for k in row))
        text = io.StringIO(newline="")
        writer = csv.DictWriter(text, fieldnames=fields)
        writer.writeheader()
        writer.writerows(args.rows)
        path = files.write("csv.write", args.path, text.getvalue().encode(args.encoding))
        return {"path": path, "rows": len(args.rows)}

    @activity.defn(name="file.transfer")
    def file_transfer(input: dict[str, Any]) -> dict[str, Any]:
        args = _input("file.transfer", inputs.FileTransfer, input)
        if os.path.realpath(args.source) == os.path.realpath(args.target):
            raise Refused("file.transfer", f"{args.source!r} and {args.target!r} are the same file")
        data = files.read("file.transfer", args.source)
        digest = hashlib.sha256(data).hexdigest()
        target = files.write("file.transfer", args.target, data)
        if hashlib.sha256(files.read("file.transfer", target)).hexdigest() != digest:
            raise ApplicationError(f"file.transfer: {target} does not match {args.source} after the copy")
        if args.mode == "move":
            files.remove("file.transfer", args.source)
        return {"source": args.source, "target": target, "bytes": len(data), "sha256": digest}

    named: list[tuple[str, Callable[..., Any]]] = [
        ("kafka.producer", produce),
        ("kafka.produce", produce),
        ("file.text", file_text),
        ("file.read_text", lambda input: read_text("file.read_text", input)),
        ("file.write_text", file_write_text),
        ("file.csv", file_csv),
        ("csv.read", lambda input: {"rows": read_csv("csv.read", input)}),
    ]
    io_builtins = [
        activity.definition_of(fn)
        for fn in (http_request, csv_write, file_transfer, sql_query, kafka_consumer, kafka_consumer_commit)
    ]
    return io_builtins + [activity.definition_of(activity.defn(name=name)(fn)) for name, fn in named]
