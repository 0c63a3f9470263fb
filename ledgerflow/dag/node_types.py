"""The node types a DAG may name besides the activities workers serve: Ledgerflow's built-in
activities and the nodes the DAG interpreter runs itself. One list for the gateway, the Client,
the engine and the workers."""

from __future__ import annotations

PURE_BUILTINS = frozenset(
    {
        "echo",
        "console.log",
        "sequence.numbers",
        "random.numbers",
        "memory.collection",
        "filter.condition",
        "map.transform",
        "aggregate.sum",
        "aggregate.count",
        "data.clean",
        "data.transform",
    }
)
"""Built-ins that compute on their input alone (no file, network or Kafka): on by default."""
IO_BUILTINS = frozenset(
    {
        "file.text",
        "file.csv",
        "file.transfer",
        "sql.query",
        "file.read_text",
        "file.write_text",
        "csv.read",
        "csv.write",
        "http.request",
        "kafka.producer",
        "kafka.produce",
        "kafka.consumer",
    }
)
"""Built-ins that do I/O with the worker's rights: off until named in ``builtins``."""
KAFKA_CONSUMER = "kafka.consumer"
KAFKA_CONSUMER_COMMIT = "kafka.consumer.commit"
"""Run by the DAG interpreter after a kafka.consumer node's result is recorded (a code workflow
may call it too); enabled on a worker with kafka.consumer. A DAG may not name it."""
ALL_BUILTINS = PURE_BUILTINS | IO_BUILTINS
"""Every built-in a DAG node may name, and a worker's ``builtins`` setting."""
"""Every built-in's name, enabled on a worker or not."""
IN_WORKFLOW_NODE_TYPES = ("sleep", "wait-signal")
"""Nodes the DAG interpreter runs itself (a durable timer, a signal), on no worker."""
