"""Built-in activities: every worker serves them, and DAG nodes name them as types.

Each takes one JSON object (the node's rendered ``input``) and returns JSON.

- ``echo``: returns its input.
- ``console.log``: ``{"message"}`` → ``{"logged"}``; prints with the workflow id.
- ``http.request``: ``{"url", "method"="GET", "headers", "json", "timeout"=10}``
  → ``{"status", "headers", "body"}``.
- ``kafka.produce``: ``{"topic", "key", "value", "bootstrap"?}`` → ``{"topic", "partition", "offset"}``.
- ``sequence.numbers``: ``{"start"=0, "stop", "step"=1}`` → ``{"numbers"}``.
- ``filter.condition``: ``{"items", "condition"}`` (an expression over ``item``) → ``{"items"}``.
- ``map.transform``: ``{"items", "expression"}`` (over ``item``) → ``{"items"}``.
- ``aggregate.sum``: ``{"items"}`` → ``{"sum"}``.
- ``file.read_text`` / ``file.write_text``: ``{"path"}`` / ``{"path", "text"}``
  → ``{"text"}`` / ``{"path", "bytes"}``.
- ``csv.read`` / ``csv.write``: ``{"path"}`` / ``{"path", "rows"}`` (a list of objects)
  → ``{"rows"}`` / ``{"path", "rows"}``.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from pathlib import Path
from typing import Any

import httpx

from ledgerflow import activity
from ledgerflow.engine.workflow.expressions import evaluate

log = logging.getLogger("ledgerflow.builtins")


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


@activity.defn(name="http.request")
async def http_request(input: dict[str, Any]) -> dict[str, Any]:
    timeout = float(input.get("timeout", 10))
    async with httpx.AsyncClient(timeout=timeout) as client:
        response = await client.request(
            input.get("method", "GET"), input["url"], headers=input.get("headers"), json=input.get("json")
        )
    try:
        body: Any = response.json()
    except ValueError:
        body = response.text
    return {"status": response.status_code, "headers": dict(response.headers), "body": body}


@activity.defn(name="kafka.produce")
async def kafka_produce(input: dict[str, Any]) -> dict[str, Any]:
    from aiokafka import AIOKafkaProducer

    bootstrap = input.get("bootstrap") or os.environ.get("LEDGERFLOW_BOOTSTRAP", "127.0.0.1:9092")
    value = input.get("value")
    raw = value.encode() if isinstance(value, str) else json.dumps(value).encode()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        key = input.get("key")
        meta = await producer.send_and_wait(input["topic"], raw, key=key.encode() if key else None)
    finally:
        await producer.stop()
    return {"topic": meta.topic, "partition": meta.partition, "offset": meta.offset}


@activity.defn(name="sequence.numbers")
def sequence_numbers(input: dict[str, Any]) -> dict[str, Any]:
    return {"numbers": list(range(int(input.get("start", 0)), int(input["stop"]), int(input.get("step", 1))))}


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


@activity.defn(name="file.read_text")
def file_read_text(input: dict[str, Any]) -> dict[str, Any]:
    return {"text": Path(input["path"]).read_text(encoding=input.get("encoding", "utf-8"))}


@activity.defn(name="file.write_text")
def file_write_text(input: dict[str, Any]) -> dict[str, Any]:
    path = Path(input["path"])
    data = str(input.get("text", ""))
    path.write_text(data, encoding=input.get("encoding", "utf-8"))
    return {"path": str(path), "bytes": len(data.encode())}


@activity.defn(name="csv.read")
def csv_read(input: dict[str, Any]) -> dict[str, Any]:
    with open(input["path"], newline="", encoding="utf-8") as handle:
        return {"rows": list(csv.DictReader(handle))}


@activity.defn(name="csv.write")
def csv_write(input: dict[str, Any]) -> dict[str, Any]:
    rows: list[dict[str, Any]] = input["rows"]
    fields = list(dict.fromkeys(k for row in rows for k in row))
    with open(input["path"], "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    return {"path": input["path"], "rows": len(rows)}
