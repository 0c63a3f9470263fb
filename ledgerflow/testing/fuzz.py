"""Hostile Kafka ingress: the inbox records a careless or malicious producer writes.

Each category draws its records with hypothesis from a seed, so a run can be reproduced
(``generate(per_category, seed, target)``), and the same number per category keeps the
figures of two runs comparable. Every record carries what the engine must do with it,
from its documented behaviour (docs/kafka-ingress.md):

- anything that is not a valid command (not JSON, not UTF-8, the wrong schema, an unknown
  kind, nested past the parser's limit) goes to the dead-letter topic with its reason;
- a valid command that cannot apply goes there too: a signal, cancel or terminate for a
  workflow with no open run, a start whose input is over ``max_payload_bytes``;
- a workflow-scoped record on another partition than its workflow id's (a null key, a key
  that is not the workflow id) is dead-lettered: its owner is elsewhere;
- a task result or a child's outcome for a run that does not exist is dropped as stale;
- a start of a type nobody knows fails its run with ``UnknownWorkflowType``;
- a DAG whose expressions would build huge values never runs them: its registration is
  refused, or every run of it fails with the expression's error; a start whose input is
  nested to the parser's limit is refused or fails too.

Where two behaviours are both right (a check at registration or at run time), the outcome
accepts either (``REFUSED``, ``VETTED``); what is never right is a record left undecided,
a real workflow lost or run twice, and the engine restarting.
"""

from __future__ import annotations

import itertools
import json
import random
import string
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from ledgerflow.config import Settings
from ledgerflow.schemas import commands as c

JsonDict = dict[str, Any]


class Outcome(StrEnum):
    """Where the engine must put a record."""

    DEAD_LETTER = "dead-lettered"
    """In the dead-letter topic, with a reason naming the problem."""
    IGNORED = "ignored"
    """Applied without effect (a stale task result): not in the dead-letter topic."""
    REGISTERED = "registered"
    """A definition registered (DEFINITION_REGISTERED): not in the dead-letter topic."""
    FAILED_RUN = "run failed"
    """Its run failed with a named failure (WORKFLOW_FAILED): not in the dead-letter topic."""
    REFUSED = "refused"
    """A start that must not run (a hostile DAG, an input nested to the parser's limit):
    dead-lettered, or its run failed."""
    VETTED = "vetted"
    """A hostile DAG's registration: dead-lettered, or registered (its runs then fail: REFUSED)."""


@dataclass(frozen=True)
class Expectation:
    outcome: Outcome
    reason: str | None = None
    """A fragment the dead letter's reason holds (DEAD_LETTER)."""
    failure: str | None = None
    """The failure type of the run (FAILED_RUN)."""


WRONG_PARTITION = Expectation(Outcome.DEAD_LETTER, "partition")


@dataclass(frozen=True)
class FuzzRecord:
    """One generated inbox record and what the engine must do with it."""

    category: str
    key: bytes | None
    value: bytes | None
    expected: Expectation
    workflow_id: str | None = None
    """The workflow of a valid workflow-scoped command: the record belongs on its partition."""
    definition_id: str | None = None
    """The definition a valid ``register_definition`` registers."""

    def expected_on(self, partition: int, target: Settings) -> Expectation:
        """What the engine must do with this record once it landed on ``partition``."""
        if self.workflow_id is not None and target.partition_of(self.workflow_id) != partition:
            return WRONG_PARTITION
        return self.expected


@dataclass(frozen=True)
class Target:
    """What the generator must know about the deployment it attacks."""

    settings: Settings
    tag: str
    """Makes this run's fresh ids unique on a shared broker."""
    real_ids: tuple[str, ...] = ()
    """Ids of the real workflows running meanwhile (some records aim at them from the wrong partition)."""
    real_type: str = "ProcessOrder"
    """A code workflow type the engine runs."""


@dataclass(frozen=True)
class _Draft:
    """A record before its category is known: the key, the value, and how to judge it."""

    key: bytes | None
    value: bytes | None
    accepted: Outcome | None = None
    """The outcome when the schema accepts it (None: by the command's kind)."""
    expected: Expectation | None = None
    """The outcome whatever the schema says (for records aimed at the wrong partition)."""


_MODELS: dict[str, type[BaseModel]] = {
    model.model_fields["kind"].default: model
    for model in (
        c.StartWorkflow,
        c.SignalWorkflow,
        c.UpdateWorkflow,
        c.CancelWorkflow,
        c.TerminateWorkflow,
        c.ResetWorkflow,
        c.RegisterDefinition,
        c.TaskCompleted,
        c.TaskFailed,
        c.TaskHeartbeat,
        c.ChildWorkflowClosed,
    )
}
KINDS = tuple(_MODELS)
_ID_CHARS = string.ascii_letters + string.digits + "-_."
_CONTROL = "".join(map(chr, range(32))) + "\x7f\x85\u2028\u2029\ufeff/\\"
HOSTILE_EXPRESSIONS = (
    "'a' * 10**9",
    "[0] * 10**9",
    "'a' * 1000000000",
    "[0] * 1000000000",
    "[[0] * 100000] * 100000",
    "['a' * 100000] * 100000",
    " + ".join(["[0] * 100000"] * 250),
    "'%099999999d' % 1",
    "(" * 1000 + "1" + ")" * 1000,
    "-" * 3000 + "1",
    "not " * 1000 + "1",
    "1 + " * 1000 + "1",
    "x" * 5000,
)
"""Each builds (or would take the owner loop to build) something huge, or cannot be parsed."""


def _json_values() -> st.SearchStrategy[Any]:
    scalars = (
        st.none()
        | st.booleans()
        | st.integers(-(10**30), 10**30)
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.text(max_size=20)
    )
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
        max_leaves=12,
    )


def _plain_ids(prefix: str) -> st.SearchStrategy[str]:
    return st.text(_ID_CHARS, min_size=1, max_size=24).map(lambda s: f"{prefix}{s}")


def _unicode_ids(prefix: str) -> st.SearchStrategy[str]:
    """Ids of any printable characters (no control characters, no surrogates)."""
    chars = st.characters(exclude_categories=("Cc", "Cs"))
    return st.text(chars, min_size=1, max_size=24).map(lambda s: f"{prefix}{s}")


def _control_ids(prefix: str) -> st.SearchStrategy[str]:
    """Ids holding control characters, separators, ``/`` or a byte order mark."""
    return st.tuples(st.text(_ID_CHARS, max_size=8), st.text(_CONTROL, min_size=1, max_size=4)).map(
        lambda parts: f"{prefix}{parts[0]}{parts[1]}{parts[0]}"
    )


def _huge_ids(prefix: str) -> st.SearchStrategy[str]:
    """Ids from just over 256 characters to 200,000."""
    lengths = st.sampled_from([257, 1_000, 10_000, 200_000]) | st.integers(257, 20_000)
    return st.tuples(st.text(_ID_CHARS, min_size=1, max_size=8), lengths).map(
        lambda p: (prefix + p[0] * (p[1] // len(p[0]) + 1))[: p[1]]
    )


def _workflow_commands(target: Target, ids: st.SearchStrategy[str]) -> st.SearchStrategy[JsonDict]:
    """Valid commands of every workflow-scoped kind, for ``ids`` that have no run (starts are of
    types nobody registered)."""
    values = _json_values()
    texts = st.text(min_size=1, max_size=30)
    task = {"workflow_id": ids, "run_id": texts, "seq": st.integers(0, 10**6), "attempt": st.integers(1, 100)}
    failure = st.fixed_dictionaries(
        {"type": texts, "message": st.text(max_size=50)}, optional={"non_retryable": st.booleans()}
    )
    start_options = {
        "input": values,
        "request_id": texts,
        "run_id": texts,
        "execution_timeout": st.floats(0.001, 1e6),
        "parent_workflow_id": ids,
        "parent_run_id": texts,
        "parent_seq": st.integers(0, 100),
        "v": st.just(1),
    }
    return st.one_of(
        _command(
            "start_workflow", {"workflow_id": ids, "workflow_type": _unknown_types(target)}, start_options
        ),
        _command(
            "signal_workflow", {"workflow_id": ids, "name": texts}, {"payload": values, "request_id": texts}
        ),
        _command(
            "update_workflow",
            {"workflow_id": ids, "update_id": texts, "name": texts},
            {"payload": values, "request_id": texts},
        ),
        _command("cancel_workflow", {"workflow_id": ids}, {"reason": st.text(max_size=30)}),
        _command(
            "reset_workflow",
            {"workflow_id": ids, "to_event": st.integers(2, 10**12)},
            {"run_id": texts, "reason": st.text(max_size=30)},
        ),
        _command("terminate_workflow", {"workflow_id": ids}, {"reason": st.text(max_size=30)}),
        _command("task_completed", task, {"result": values}),
        _command("task_failed", {**task, "failure": failure}, {}),
        _command("task_heartbeat", task, {"details": values}),
        _command(
            "child_workflow_closed",
            {
                "workflow_id": ids,
                "run_id": texts,
                "seq": st.integers(0, 100),
                "child_workflow_id": texts,
                "status": st.sampled_from(["COMPLETED", "FAILED", "CANCELED", "TERMINATED"]),
            },
            {"result": values, "failure": failure},
        ),
    )


def _command(
    kind: str, required: dict[str, st.SearchStrategy[Any]], optional: dict[str, st.SearchStrategy[Any]]
) -> st.SearchStrategy[JsonDict]:
    return st.fixed_dictionaries({"kind": st.just(kind), **required}, optional=optional)


def _unknown_types(target: Target) -> st.SearchStrategy[str]:
    return _unicode_ids(f"fztype-{target.tag}-")


def _benign_definitions(target: Target) -> st.SearchStrategy[JsonDict]:
    """Small valid DAGs of ``echo`` nodes (never started)."""
    node = st.fixed_dictionaries(
        {"type": st.just("echo")},
        optional={"input": st.dictionaries(st.text(max_size=8), _json_values(), max_size=3)},
    )
    return st.tuples(_plain_ids(f"fzdef-{target.tag}-"), st.lists(node, min_size=1, max_size=5)).map(
        lambda p: {
            "id": p[0],
            "nodes": [{"id": f"n{i}", **n} for i, n in enumerate(p[1])],
            "edges": [{"source": f"n{i}", "target": f"n{i + 1}"} for i in range(len(p[1]) - 1)],
        }
    )


def _keyed(command: JsonDict, ascii_only: bool = True) -> _Draft:
    """The command as its producer should write it: keyed by its workflow (or definition) id."""
    key = command.get("workflow_id")
    if key is None and isinstance(command.get("definition"), dict):
        key = command["definition"].get("id")
    return _Draft(
        str(key).encode() if key is not None else None, json.dumps(command, ensure_ascii=ascii_only).encode()
    )


# ------------------------------------------------------------------------------ categories


def _valid_for_missing_ids(target: Target) -> st.SearchStrategy[_Draft]:
    """Valid commands of every kind for workflows that do not exist, and benign registrations."""
    commands = _workflow_commands(target, _unicode_ids(f"fz-{target.tag}-"))
    registrations = _benign_definitions(target).map(
        lambda d: {"kind": "register_definition", "definition": d}
    )
    return st.tuples(commands | registrations, st.booleans()).map(lambda p: _keyed(p[0], p[1]))


def _invalid_json(target: Target) -> st.SearchStrategy[_Draft]:
    """Text that is not JSON: prose, truncated commands, trailing garbage, Python reprs, empty
    values and tombstones (a null value)."""
    commands = _workflow_commands(target, _plain_ids(f"fz-{target.tag}-"))
    truncated = commands.flatmap(
        lambda cmd: st.integers(0, len(json.dumps(cmd)) - 1).map(lambda i: json.dumps(cmd)[:i].encode())
    )
    trailing = st.tuples(commands, st.text(min_size=1, max_size=10).filter(lambda s: s.strip() != "")).map(
        lambda p: (json.dumps(p[0]) + p[1]).encode()
    )
    reprs = commands.map(lambda cmd: repr(cmd).encode())
    prose = st.text(max_size=200).map(str.encode)
    fixed = st.sampled_from(
        [b"", None, b"{", b"}", b"[1,]", b"NaN", b'{"kind": "signal_workflow",}', b"\x00"]
    )
    values = (truncated | trailing | reprs | prose | fixed).filter(_not_json)
    return st.tuples(values, _plain_ids(f"fz-{target.tag}-")).map(lambda p: _Draft(p[1].encode(), p[0]))


def _not_utf8(target: Target) -> st.SearchStrategy[_Draft]:
    """Bytes that are not UTF-8: random bytes, a command with a bad byte inside a string,
    a command in Latin-1 or UTF-16, a lone surrogate escape."""
    commands = _workflow_commands(target, _plain_ids(f"fz-{target.tag}-é"))
    bad_byte = st.tuples(
        commands, st.sampled_from([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"])
    )
    injected = bad_byte.map(
        lambda p: json.dumps(p[0], ensure_ascii=False).encode().replace(b'": "', b'": "' + p[1], 1)
    )
    other_codecs = st.tuples(commands, st.sampled_from(["latin-1", "utf-16", "utf-32"])).map(
        lambda p: json.dumps(p[0], ensure_ascii=False).encode(p[1], errors="replace")
    )
    surrogate = commands.map(lambda cmd: json.dumps(cmd).replace('"fz-', '"\\ud800fz-', 1).encode())
    values = (st.binary(min_size=1, max_size=200) | injected | other_codecs).filter(
        _not_utf8_bytes
    ) | surrogate
    return st.tuples(values, _plain_ids(f"fz-{target.tag}-")).map(lambda p: _Draft(p[1].encode(), p[0]))


def _wrong_schema(target: Target) -> st.SearchStrategy[_Draft]:
    """JSON the schema refuses: a required field missing, an unknown field, a field of the
    wrong type, version 2, or not an object at all."""
    commands = _workflow_commands(target, _plain_ids(f"fz-{target.tag}-"))
    mutated = commands.flatmap(_schema_mutations) | _json_values().filter(lambda v: not isinstance(v, dict))
    drafts = st.tuples(mutated, _plain_ids(f"fz-{target.tag}-")).map(
        lambda p: _Draft(p[1].encode(), json.dumps(p[0]).encode())
    )
    return drafts.filter(lambda d: not _schema_accepts(d.value))


def _schema_mutations(command: JsonDict) -> st.SearchStrategy[Any]:
    model = _MODELS[command["kind"]]
    required = [name for name, f in model.model_fields.items() if f.is_required()]
    wrong = st.one_of(
        st.integers(), st.lists(st.integers(), max_size=2), st.dictionaries(st.text(), st.none(), max_size=2)
    )
    return st.one_of(
        st.sampled_from(required).map(lambda name: {k: v for k, v in command.items() if k != name}),
        st.text(min_size=1, max_size=12)
        .filter(lambda name: name not in model.model_fields)
        .map(lambda name: {**command, name: 1}),
        st.tuples(st.sampled_from(sorted(command)), wrong).map(lambda p: {**command, p[0]: p[1]}),
        st.sampled_from([2, 0, "1", None]).map(lambda v: {**command, "v": v}),
    )


def _unknown_kinds(target: Target) -> st.SearchStrategy[_Draft]:
    """A command whose ``kind`` is unknown, misspelt, of another type, or missing."""
    commands = _workflow_commands(target, _plain_ids(f"fz-{target.tag}-"))
    kinds = st.one_of(
        st.text(max_size=30).filter(lambda k: k not in KINDS),
        st.sampled_from(KINDS).map(str.upper),
        st.sampled_from(KINDS).map(lambda k: k.replace("_", "-")),
        st.integers(),
        st.none(),
        st.lists(st.sampled_from(KINDS), max_size=2),
    )
    renamed = st.tuples(commands, kinds).map(lambda p: {**p[0], "kind": p[1]})
    missing = commands.map(lambda cmd: {k: v for k, v in cmd.items() if k != "kind"})
    return (renamed | missing).map(_keyed)


def _oversized(target: Target) -> st.SearchStrategy[_Draft]:
    """Values from over ``max_payload_bytes`` to just under ``max_record_bytes``: a start's input,
    a signal's payload, a task's result, a wrong-schema command, and garbage."""
    limits = target.settings
    sizes = st.integers(limits.max_payload_bytes + 1024, limits.max_record_bytes - 4096)
    chunks = st.text(string.ascii_letters + string.digits, min_size=1, max_size=16)
    ids = _plain_ids(f"fz-{target.tag}-")

    def filler(chunk: str, size: int) -> str:
        return (chunk * (size // len(chunk) + 1))[:size]

    def make(p: tuple[str, str, int, str]) -> _Draft:
        shape, chunk, size, workflow_id = p
        blob = filler(chunk, size - 400 - len(workflow_id))
        commands: dict[str, JsonDict] = {
            "start": {
                "kind": "start_workflow",
                "workflow_id": workflow_id,
                "workflow_type": "fz",
                "input": blob,
            },
            "signal": {"kind": "signal_workflow", "workflow_id": workflow_id, "name": "s", "payload": blob},
            "result": {
                "kind": "task_completed",
                "workflow_id": workflow_id,
                "run_id": "r",
                "seq": 1,
                "attempt": 1,
                "result": blob,
            },
            "no-id": {"kind": "signal_workflow", "name": "s", "payload": blob},
        }
        if shape == "garbage":
            return _Draft(workflow_id.encode(), ("{" + blob).encode())
        return _keyed(commands[shape])

    shapes = st.sampled_from(["start", "signal", "result", "no-id", "garbage"])
    return st.tuples(shapes, chunks, sizes, ids).map(make)


def _deep_nesting(target: Target) -> st.SearchStrategy[_Draft]:
    """Lists and objects nested 150 to 10,000 deep: the whole value, a start's input, a signal's
    payload, a DAG node's input. Past the parser's limit (200) every record is refused; up to it
    a start of an unknown type is dead-lettered or its run fails. The first twelve are each
    shape at the limit, one past it and 10,000 deep (so even a short run meets them)."""
    shapes = ("value", "start", "signal", "dag")
    boundary = [(shape, depth) for depth in (200, 201, 10_000) for shape in shapes]
    turn = itertools.count()
    depths = st.sampled_from([150, 199, 200, 201, 1_000, 10_000]) | st.integers(150, 10_000)
    ids = _plain_ids(f"fz-{target.tag}-")

    def make(p: tuple[str, int, str, str]) -> _Draft:
        drawn_shape, drawn_depth, drawn_id, kind = p
        number = next(turn)
        shape, depth = boundary[number] if number < len(boundary) else (drawn_shape, drawn_depth)
        workflow_id = f"{drawn_id}-{number}"  # its own workflow: nothing else decides its fate
        nest = "[" * depth + "]" * depth if kind == "list" else '{"a":' * depth + "1" + "}" * depth
        key = f"fzdef-{target.tag}-{workflow_id}" if shape == "dag" else workflow_id
        around = {
            "value": "{}",
            "start": json.dumps(
                {
                    "kind": "start_workflow",
                    "workflow_id": workflow_id,
                    "workflow_type": f"fztype-{target.tag}",
                }
            )[:-1]
            + ', "input": {}}',
            "signal": json.dumps({"kind": "signal_workflow", "workflow_id": workflow_id, "name": "s"})[:-1]
            + ', "payload": {}}',
            "dag": '{"kind": "register_definition", "definition": {"id": "' + key + '", "nodes": '
            '[{"id": "a", "type": "echo", "input": {"a": {}}}]}}',
        }[shape]
        # A valid start nested to the parser's limit: refused one way or the other (a start
        # waiting for its type is kept one level deeper, which the parser could not read back).
        accepted = Outcome.REFUSED if shape == "start" else None
        return _Draft(key.encode(), around.replace("{}", nest, 1).encode(), accepted)

    return st.tuples(st.sampled_from(shapes), depths, ids, st.sampled_from(["list", "object"])).map(make)


def _huge_ids_category(target: Target) -> st.SearchStrategy[_Draft]:
    """Every workflow-scoped kind, and a registration, with ids of 257 to 200,000 characters."""
    commands = _workflow_commands(target, _huge_ids(f"fz-{target.tag}-"))
    registrations = st.tuples(_huge_ids(f"fzdef-{target.tag}-"), st.just(None)).map(
        lambda p: {
            "kind": "register_definition",
            "definition": {"id": p[0], "nodes": [{"id": "a", "type": "echo"}]},
        }
    )
    return (commands | registrations).map(_keyed)


def _control_character_ids(target: Target) -> st.SearchStrategy[_Draft]:
    """Every workflow-scoped kind with ids holding control characters, ``/`` or separators."""
    return st.tuples(_workflow_commands(target, _control_ids(f"fz-{target.tag}-")), st.booleans()).map(
        lambda p: _keyed(p[0], p[1])
    )


def _unknown_workflow_types(target: Target) -> st.SearchStrategy[_Draft]:
    """Starts of types no engine runs and no definition names."""
    starts = st.fixed_dictionaries(
        {
            "kind": st.just("start_workflow"),
            "workflow_id": _plain_ids(f"fz-{target.tag}-"),
            "workflow_type": _unknown_types(target)
            | st.sampled_from(["processorder", "ledgerflow.dag", " "]),
        },
        optional={"input": _json_values()},
    )
    return starts.map(_keyed)


def _hostile_expressions(target: Target) -> st.SearchStrategy[_Draft]:
    """DAGs whose node input or edge condition holds one of ``HOSTILE_EXPRESSIONS``, in turn (so
    even a short run tries every one): carried inline by a start, registered through the inbox,
    or started by id (after or before such a registration)."""
    ids = _plain_ids(f"fzdag-{target.tag}-")
    turn = itertools.count()

    def definition(number: int, where: str) -> JsonDict:
        expression = HOSTILE_EXPRESSIONS[number]
        definition_id = f"fzdef-{target.tag}-hostile-{number}-{where}"
        if where == "input":
            node = {"id": "a", "type": "echo", "input": {"v": f"{{{{ {expression} }}}}"}}
            return {"id": definition_id, "nodes": [node]}
        return {
            "id": definition_id,
            "nodes": [{"id": "a", "type": "echo"}, {"id": "b", "type": "echo"}],
            "edges": [{"source": "a", "target": "b", "condition": expression}],
        }

    def make(workflow_id: str) -> _Draft:
        phase, number = divmod(next(turn), len(HOSTILE_EXPRESSIONS))
        dag = definition(number, ("input", "condition")[phase // 3 % 2])
        how = ("inline", "register", "start")[phase % 3]
        if how == "register":
            command = {"kind": "register_definition", "definition": dag}
            return _Draft(dag["id"].encode(), json.dumps(command).encode(), Outcome.VETTED)
        start: JsonDict = {"kind": "start_workflow", "workflow_id": workflow_id, "workflow_type": dag["id"]}
        if how == "inline":
            start["dag"] = dag
        return _Draft(workflow_id.encode(), json.dumps(start).encode(), Outcome.REFUSED)

    return ids.map(make)


def _null_keys(target: Target) -> st.SearchStrategy[_Draft]:
    """Records without a key: the producer picks a partition at random."""
    commands = _workflow_commands(target, _plain_ids(f"fz-{target.tag}-"))
    return (commands.map(_keyed) | _invalid_json(target)).map(lambda d: _Draft(None, d.value, d.accepted))


def _mismatched_keys(target: Target) -> st.SearchStrategy[_Draft]:
    """Commands for the real workflows (a second start of the same id, signals, cancels, results)
    and for fresh ids, keyed by something else, on another partition than the workflow's."""
    settings = target.settings
    real = st.sampled_from(target.real_ids) if target.real_ids else _plain_ids(f"fz-{target.tag}-")
    fresh = _plain_ids(f"fz-{target.tag}-")

    def aimed(workflow_id: str) -> st.SearchStrategy[JsonDict]:
        start = {"kind": "start_workflow", "workflow_id": workflow_id, "workflow_type": target.real_type}
        return st.sampled_from(
            [
                {**start, "input": {"order_id": "dup", "amount": 1.0}, "run_id": f"dup-{workflow_id}"},
                {
                    "kind": "signal_workflow",
                    "workflow_id": workflow_id,
                    "name": "approve",
                    "payload": "mallory",
                },
                {"kind": "cancel_workflow", "workflow_id": workflow_id},
                {"kind": "terminate_workflow", "workflow_id": workflow_id},
                {"kind": "task_completed", "workflow_id": workflow_id, "run_id": "r", "seq": 1, "attempt": 1},
            ]
        )

    def elsewhere(workflow_id: str) -> st.SearchStrategy[str]:
        home = settings.partition_of(workflow_id)
        return _unicode_ids("k-").filter(lambda key: settings.partition_of(key) != home)

    def make(p: tuple[JsonDict, str]) -> _Draft:
        command, key = p
        return _Draft(key.encode(), json.dumps(command).encode(), expected=WRONG_PARTITION)

    targets = real | fresh
    return targets.flatmap(lambda wid: st.tuples(aimed(wid), elsewhere(wid))).map(make)


CATEGORIES: dict[str, Callable[[Target], st.SearchStrategy[_Draft]]] = {
    "valid commands, no such workflow": _valid_for_missing_ids,
    "invalid JSON": _invalid_json,
    "not UTF-8": _not_utf8,
    "wrong schema": _wrong_schema,
    "unknown command kinds": _unknown_kinds,
    "oversized": _oversized,
    "deep nesting": _deep_nesting,
    "huge ids": _huge_ids_category,
    "ids with control characters": _control_character_ids,
    "unknown workflow types": _unknown_workflow_types,
    "hostile DAG expressions": _hostile_expressions,
    "null keys": _null_keys,
    "keys not the workflow id": _mismatched_keys,
}


# ---------------------------------------------------------------------------- generation


def generate(per_category: int, seed_value: int, target: Target) -> list[FuzzRecord]:
    """``per_category`` records of each category, drawn from ``seed_value`` (the same seed and
    hypothesis version give the same records)."""
    records: list[FuzzRecord] = []
    for number, (name, category) in enumerate(CATEGORIES.items()):
        drafts = draw(category(target), per_category, seed_value + number)
        records += [_judge(name, d, target.settings) for d in drafts]
    # Categories mixed in time, as a real stream would be (reproducibly: not for secrecy).
    random.Random(seed_value).shuffle(records)  # noqa: S311
    return records


def draw(strategy: st.SearchStrategy[Any], count: int, seed_value: int) -> list[Any]:
    """``count`` examples of ``strategy``, reproducibly (hypothesis's ``@seed``, no database)."""
    drawn: list[Any] = []
    attempt = 0
    while len(drawn) < count:

        @seed(seed_value * 1000 + attempt)
        @settings(
            max_examples=count - len(drawn),
            phases=[Phase.generate],
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(strategy)
        def collect(example: Any) -> None:
            drawn.append(example)

        collect()
        attempt += 1
        if attempt > 50:
            raise RuntimeError(f"the strategy gave {len(drawn)} of {count} examples in {attempt} rounds")
    return drawn[:count]


def _judge(category: str, draft: _Draft, target: Settings) -> FuzzRecord:
    """The record with what the engine must do with it (see the module's docstring)."""
    command = _parse(draft.value)
    workflow_id = getattr(command, "workflow_id", None)
    definition_id = command.definition.id if isinstance(command, c.RegisterDefinition) else None
    if draft.expected is not None:
        expected = draft.expected
    elif command is None:
        expected = Expectation(Outcome.DEAD_LETTER, "inbox record")
    elif draft.accepted is not None:
        expected = Expectation(draft.accepted)
    else:
        expected = _by_kind(command, target)
    return FuzzRecord(category, draft.key, draft.value, expected, workflow_id, definition_id)


def _by_kind(command: c.InboxCommand, target: Settings) -> Expectation:
    match command:
        case c.StartWorkflow() if len(json.dumps(command.input)) > target.max_payload_bytes:
            return Expectation(Outcome.DEAD_LETTER, "PayloadTooLarge")
        case c.StartWorkflow():
            return Expectation(Outcome.FAILED_RUN, failure="UnknownWorkflowType")
        case c.SignalWorkflow() | c.UpdateWorkflow() | c.CancelWorkflow() | c.TerminateWorkflow():
            return Expectation(Outcome.DEAD_LETTER, "no open run")
        case c.ResetWorkflow():
            return Expectation(Outcome.DEAD_LETTER, "has no run")
        case c.RegisterDefinition():
            return Expectation(Outcome.REGISTERED)
    return Expectation(Outcome.IGNORED)


def _parse(value: bytes | None) -> c.InboxCommand | None:
    try:
        return c.inbox_command_adapter.validate_json(value or b"")
    except ValueError:
        return None


def _schema_accepts(value: bytes | None) -> bool:
    return _parse(value) is not None


def _not_json(value: bytes | None) -> bool:
    try:
        json.loads(value or b"")
    except ValueError:
        return True
    return False


def _not_utf8_bytes(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return True
    return False
