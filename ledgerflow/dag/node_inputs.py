"""The input of each built-in node type, as a pydantic model: what a worker checks a node's
rendered input against (a failure naming the field, not retried), what the gateway checks a
DAG's literal inputs against when it is registered (422 naming the node and field), and what it
publishes at ``GET /api/v1/node-types`` for a DAG editor's forms.

The seed system's 17 types are here under its own names; Ledgerflow's earlier names stay as
aliases (``ALIASES``). Each model's docstring starts with what the node does and gives an
example input.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from ledgerflow.schemas.common import JSON

MAX_ITEMS = 100_000
"""Items a list input holds at most (the DAG interpreter's own cap on a rendered input)."""
MAX_CONSUMED = 10_000
"""Records one kafka.consumer node reads at most."""


class NodeInput(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Anything(NodeInput):
    """``echo``: returns its input as it is. Example: ``{"order": 42}``."""

    model_config = ConfigDict(extra="allow", frozen=True)


class ConsoleLog(NodeInput):
    """``console.log`` (sink): logs ``message`` (or the items, or else the whole input) with the
    workflow id; returns ``{"logged": ...}``. Example: ``{"message": "{{ nodes.sum.output.sum }}"}``."""

    model_config = ConfigDict(extra="allow", frozen=True)

    message: JSON = None
    items: list[JSON] | None = Field(default=None, max_length=MAX_ITEMS)


class SequenceNumbers(NodeInput):
    """``sequence.numbers`` (source): ``start``, ``start + step``, ... below ``stop``, as
    ``{"numbers": [...]}``. Example: ``{"start": 1, "stop": 11}``."""

    start: int = 0
    stop: int
    step: int = Field(default=1)

    @model_validator(mode="after")
    def _step(self) -> SequenceNumbers:
        if self.step == 0:
            raise ValueError("step must not be 0")
        if len(range(self.start, self.stop, self.step)) > MAX_ITEMS:
            raise ValueError(f"more than {MAX_ITEMS:,} numbers")
        return self


class RandomNumbers(NodeInput):
    """``random.numbers`` (source): ``count`` integers from ``low`` to ``high`` (inclusive),
    drawn from a generator seeded by the run and the node (or ``seed``), so a retry draws the
    same numbers. Example: ``{"count": 5, "low": 1, "high": 6}``."""

    count: int = Field(ge=0, le=MAX_ITEMS)
    low: int = 0
    high: int = 100
    seed: int | None = None

    @model_validator(mode="after")
    def _range(self) -> RandomNumbers:
        if self.high < self.low:
            raise ValueError("high must be at least low")
        return self


class MemoryCollection(NodeInput):
    """``memory.collection`` (source): the ``items`` given, as ``{"items": [...]}``. Example:
    ``{"items": [{"name": "a", "qty": 2}, {"name": "b", "qty": 5}]}``."""

    items: list[JSON] = Field(max_length=MAX_ITEMS)


class Items(NodeInput):
    items: list[JSON] = Field(max_length=MAX_ITEMS)


class FilterCondition(Items):
    """``filter.condition``: the items for which ``condition`` (an expression over ``item``) is
    true. Example: ``{"items": "{{ nodes.src.output.items }}", "condition": "item > 3"}``."""

    condition: str = Field(min_length=1, max_length=4096)


class MapTransform(Items):
    """``map.transform``: ``expression`` (over ``item``) of each item. Example:
    ``{"items": "{{ nodes.src.output.items }}", "expression": "item * 2"}``."""

    expression: str = Field(min_length=1, max_length=4096)


class AggregateSum(Items):
    """``aggregate.sum``: the sum of the items (or of their ``field``), as ``{"sum": n}``.
    Example: ``{"items": "{{ nodes.src.output.items }}", "field": "qty"}``."""

    field: str | None = Field(default=None, min_length=1, max_length=256)


class AggregateCount(Items):
    """``aggregate.count`` (sink): how many items there are (those for which ``condition``
    holds, if given), as ``{"count": n}``. Example: ``{"items": "{{ nodes.f.output.items }}"}``."""

    condition: str | None = Field(default=None, min_length=1, max_length=4096)


CleanType = Literal["str", "int", "float", "bool"]


class DataClean(NodeInput):
    """``data.clean``: records (objects) with null fields dropped (``drop_nulls``), string
    values trimmed (``trim``), fields coerced to ``types`` (a record whose value cannot be
    coerced is dropped and counted), and duplicates dropped (``drop_duplicates``); returns
    ``{"items": [...], "dropped": n}``. Example:
    ``{"items": "{{ nodes.csv.output.rows }}", "types": {"qty": "int"}}``."""

    items: list[dict[str, JSON]] = Field(max_length=MAX_ITEMS)
    drop_nulls: bool = True
    drop_duplicates: bool = True
    trim: bool = True
    types: dict[str, CleanType] = Field(default_factory=dict, max_length=256)


class DataTransform(NodeInput):
    """``data.transform``: each record with ``rename`` applied, ``compute`` fields added (each
    an expression over ``item``), then only ``select`` kept (all when absent). Example:
    ``{"items": "{{ nodes.clean.output.items }}", "rename": {"qty": "quantity"},
    "compute": {"total": "item['quantity'] * item['price']"}}``."""

    items: list[dict[str, JSON]] = Field(max_length=MAX_ITEMS)
    rename: dict[str, str] = Field(default_factory=dict, max_length=256)
    compute: dict[str, str] = Field(default_factory=dict, max_length=256)
    select: list[str] | None = Field(default=None, max_length=256)


class FilePath(NodeInput):
    path: str = Field(min_length=1, max_length=4096)
    encoding: str = Field(default="utf-8", max_length=32)


class FileText(FilePath):
    """``file.text``: reads the text file at ``path`` (source: ``{"text", "lines"}``), or, given
    ``text`` or ``lines``, writes it (sink: ``{"path", "bytes"}``). Paths lie inside the
    worker's file roots. Example: ``{"path": "/data/in/notes.txt"}``."""

    text: JSON = None
    """Written as it is when a string, else as its ``str()`` (``[0, 1, 2]``)."""
    lines: list[JSON] | None = Field(default=None, max_length=MAX_ITEMS)


class FileCsv(FilePath):
    """``file.csv`` (source; alias ``csv.read``): the rows of the CSV file at ``path`` as
    objects keyed by its header, as ``{"rows": [...], "items": [...]}``. Example:
    ``{"path": "/data/in/orders.csv"}``."""


class CsvWrite(FilePath):
    """``csv.write``: writes ``rows`` (objects) to ``path`` with a header. Example:
    ``{"path": "/data/out/orders.csv", "rows": "{{ nodes.t.output.items }}"}``."""

    rows: list[dict[str, JSON]] = Field(max_length=MAX_ITEMS)


class FileTransfer(NodeInput):
    """``file.transfer`` (sink): copies (or moves) the file at ``source`` to ``target``, both
    inside the worker's file roots, checking the copy's SHA-256 against the source's; returns
    ``{"source", "target", "bytes", "sha256"}``. Example:
    ``{"source": "/data/in/a.csv", "target": "/data/archive/a.csv", "mode": "move"}``."""

    source: str = Field(min_length=1, max_length=4096)
    target: str = Field(min_length=1, max_length=4096)
    mode: Literal["copy", "move"] = "copy"


class KafkaProducer(NodeInput):
    """``kafka.producer`` (sink; alias ``kafka.produce``): writes ``value`` to an allowed topic,
    keyed by ``key``; ``{"topic", "partition", "offset"}``. Example:
    ``{"topic": "orders.out", "key": "o-1", "value": {"total": 42}}``."""

    topic: str = Field(min_length=1, max_length=249)
    key: str | None = Field(default=None, max_length=4096)
    value: JSON = None


class KafkaConsumer(NodeInput):
    """``kafka.consumer`` (source): reads up to ``max_records`` records from an allowed topic, or
    what arrives within ``timeout`` seconds, as the node's own consumer group, from the offsets
    the group committed (a new group from ``start``). The group commits once the node's result is
    recorded: a retried or crashed attempt reads the same records again. ``{"topic", "group",
    "items", "records", "offsets", "count"}``: ``items`` the values (JSON when they parse, else
    text), ``records`` each one's partition, offset, key and timestamp. Example:
    ``{"topic": "orders.in", "max_records": 500, "timeout": 2}``."""

    topic: str = Field(min_length=1, max_length=249)
    group: str | None = Field(default=None, min_length=1, max_length=1024)
    """Set by the DAG interpreter (a DAG may not name one); a code workflow names its own."""
    max_records: int = Field(default=100, ge=1, le=MAX_CONSUMED)
    max_bytes: int = Field(default=16 * 1024 * 1024, ge=1, le=64 * 1024 * 1024)
    """The batch ends before the record that would take its values past this (the first record
    is always taken)."""
    timeout: float = Field(default=5.0, gt=0, le=120)
    """Seconds; keep it under the node's ``timeoutSeconds`` (300 by default)."""
    start: Literal["earliest", "latest"] = "earliest"
    """Where a group with no committed offset begins."""
    value_format: Literal["auto", "json", "text"] = "auto"
    """``auto``: JSON when the value parses, else text; ``json``: a value that does not parse fails
    the node, not retried; ``text``: UTF-8 text."""


class KafkaConsumerCommit(NodeInput):
    """``kafka.consumer.commit``: what the DAG interpreter runs after a ``kafka.consumer`` node's
    result is recorded: commits its ``offsets`` (partition -> next offset) for ``group``.
    Example: ``{"topic": "orders.in", "group": "dag.etl.read", "offsets": {"0": 42}}``."""

    topic: str = Field(min_length=1, max_length=249)
    group: str = Field(min_length=1, max_length=1024)
    offsets: dict[str, Annotated[int, Field(ge=0)]] = Field(max_length=10_000)


class SqlQuery(NodeInput):
    """``sql.query`` (source): runs ``query`` on the worker's database named ``database``, with
    ``parameters`` bound to its ``:name`` placeholders (never formatted into the SQL), in a
    transaction rolled back unless ``commit``; ``{"rows", "items", "columns", "truncated",
    "rowcount"}``, at most ``max_rows`` rows. Example:
    ``{"database": "orders", "query": "SELECT id, total FROM orders WHERE total > :least",
    "parameters": {"least": 100}}``."""

    database: str = Field(min_length=1, max_length=128)
    query: str = Field(min_length=1, max_length=65_536)
    parameters: dict[str, JSON] = Field(default_factory=dict, max_length=1000)
    max_rows: int | None = Field(default=None, ge=1)
    """At most the worker's ``sql_max_rows``."""
    timeout: float | None = Field(default=None, gt=0)
    """Seconds; at most the worker's ``sql_timeout``."""
    commit: bool = False


class HttpRequest(NodeInput):
    """``http.request``: an HTTP call to an allowed host; ``{"status", "headers", "body"}``.
    Example: ``{"url": "https://api.example.com/v1/rates", "method": "GET"}``."""

    url: str = Field(min_length=1, max_length=8192)
    method: str = Field(default="GET", max_length=16)
    headers: dict[str, str] = Field(default_factory=dict)
    json_body: JSON = Field(default=None, alias="json")
    timeout: float | None = Field(default=None, gt=0)

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


INPUTS: dict[str, type[NodeInput]] = {
    # the seed system's 17
    "random.numbers": RandomNumbers,
    "sql.query": SqlQuery,
    "kafka.consumer": KafkaConsumer,
    "sequence.numbers": SequenceNumbers,
    "file.csv": FileCsv,
    "file.text": FileText,
    "memory.collection": MemoryCollection,
    "filter.condition": FilterCondition,
    "map.transform": MapTransform,
    "aggregate.sum": AggregateSum,
    "data.clean": DataClean,
    "data.transform": DataTransform,
    "console.log": ConsoleLog,
    "aggregate.count": AggregateCount,
    "kafka.producer": KafkaProducer,
    "file.transfer": FileTransfer,
    # Ledgerflow's own
    "echo": Anything,
    "http.request": HttpRequest,
    "file.read_text": FilePath,
    "file.write_text": FileText,
    "csv.read": FileCsv,
    "csv.write": CsvWrite,
    "kafka.produce": KafkaProducer,
    "kafka.consumer.commit": KafkaConsumerCommit,
}
"""The input model of each built-in node type."""
ALIASES = {"csv.read": "file.csv", "kafka.produce": "kafka.producer"}
"""Ledgerflow's earlier names of seed types: the same node under two names."""


def input_problems(
    node_type: str, value: dict[str, Any], templated: frozenset[str] = frozenset()
) -> list[tuple[tuple[str | int, ...], str]]:
    """``(field path, message)`` of each way ``value`` breaks the input model of ``node_type``
    (none for a type without one). Fields in ``templated`` hold ``{{ }}`` expressions, known only
    when the node runs: they are not judged here."""
    model = INPUTS.get(node_type)
    if model is None:
        return []
    try:
        model.model_validate(value)
    except ValidationError as exc:
        return [
            (tuple(error["loc"]), error["msg"])
            for error in exc.errors()
            if not error["loc"] or error["loc"][0] not in templated
        ]
    return []


def parsed(node_type: str, value: Any) -> Any:
    """``value`` as the model of ``node_type`` (``ValueError`` naming the fields), for a worker."""
    model = INPUTS[node_type]
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        fields = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) + ': ' if e['loc'] else ''}{e['msg']}"
            for e in exc.errors()[:5]
        )
        raise ValueError(f"{node_type} input: {fields}") from None
