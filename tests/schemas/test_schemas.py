"""Wire formats as a producer in another language sees them: JSON in, model or named error out."""

from __future__ import annotations

import json
import typing
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from ledgerflow.schemas import commands as c
from ledgerflow.schemas import events as ev
from ledgerflow.schemas import export
from ledgerflow.schemas.commands import inbox_command_adapter
from ledgerflow.schemas.dag import DagDefinition, DagDefinitionError, dag_from_json, graph_problems
from ledgerflow.schemas.events import history_event_adapter
from ledgerflow.schemas.tasks import ActivityTask, CancelActivity, task_message_adapter

# ------------------------------------------------------------------ drift
EXPECTED_FILES = {
    "inbox-command.json",
    "history-event.json",
    "task-message.json",
    "lifecycle-event.json",
    "dag-definition.json",
}


def test_export_covers_every_wire_format() -> None:
    assert set(export.SCHEMAS) == EXPECTED_FILES


@pytest.mark.parametrize("name", sorted(EXPECTED_FILES))
def test_committed_json_schema_matches_the_models(name: str) -> None:
    path = export.SCHEMA_DIR / name
    assert path.is_file(), f"{path} missing: run python -m ledgerflow.schemas.export"
    assert path.read_text(encoding="utf-8") == export.generate()[name], (
        f"{name} is out of date: run python -m ledgerflow.schemas.export"
    )


def test_check_mode_reports_a_stale_file_and_write_fixes_it(tmp_path: Path) -> None:
    assert export.main(["--dir", str(tmp_path)]) == 0
    assert {p.name for p in tmp_path.iterdir()} == EXPECTED_FILES
    assert export.main(["--check", "--dir", str(tmp_path)]) == 0

    stale = tmp_path / "task-message.json"
    stale.write_text(stale.read_text(encoding="utf-8").replace("activity_task", "renamed"), encoding="utf-8")
    (tmp_path / "lifecycle-event.json").unlink()
    assert export.stale_files(tmp_path) == ["task-message.json", "lifecycle-event.json"]
    assert export.main(["--check", "--dir", str(tmp_path)]) == 1
    assert (tmp_path / "task-message.json").read_text(encoding="utf-8") == stale.read_text(encoding="utf-8")

    assert export.write(tmp_path) == ["task-message.json", "lifecycle-event.json"]
    assert export.stale_files(tmp_path) == []


def test_files_are_stably_formatted() -> None:
    text = export.generate()["dag-definition.json"]
    assert text.endswith("}\n")
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def test_schema_requires_the_kind_tag_like_the_engine_does() -> None:
    schema = json.loads(export.generate()["inbox-command.json"])
    mapping = schema["discriminator"]["mapping"]
    assert set(mapping) == {
        "start_workflow",
        "signal_workflow",
        "update_workflow",
        "cancel_workflow",
        "terminate_workflow",
        "reset_workflow",
        "register_definition",
        "task_completed",
        "task_failed",
        "task_heartbeat",
        "child_workflow_closed",
        "create_schedule",
        "update_schedule",
        "pause_schedule",
        "trigger_schedule",
        "backfill_schedule",
        "delete_schedule",
        "scheduled_run_closed",
    }
    for ref in mapping.values():
        assert "kind" in schema["$defs"][ref.split("/")[-1]]["required"], ref
    start = schema["$defs"]["StartWorkflow"]
    assert set(start["required"]) == {"kind", "workflow_id", "workflow_type"}
    assert start["additionalProperties"] is False
    # ... and the model indeed refuses a record without it.
    with pytest.raises(ValidationError, match="kind"):
        inbox_command_adapter.validate_python({"workflow_id": "w", "workflow_type": "T"})


def test_dag_schema_names_the_camel_case_alias() -> None:
    schema = json.loads(export.generate()["dag-definition.json"])
    node = schema["$defs"]["DagNode"]["properties"]
    assert "timeoutSeconds" in node
    assert "timeout_seconds" not in node


# ---------------------------------------------------------------- commands
FAILURE = {"type": "ValueError", "message": "boom"}
DAG = {"id": "d", "nodes": [{"id": "a", "type": "echo"}]}

COMMANDS: list[tuple[dict[str, Any], type[Any]]] = [
    (
        {"kind": "start_workflow", "workflow_id": "w", "workflow_type": "T", "input": {"a": 1}},
        c.StartWorkflow,
    ),
    ({"kind": "signal_workflow", "workflow_id": "w", "name": "go", "payload": [1, 2]}, c.SignalWorkflow),
    (
        {"kind": "update_workflow", "workflow_id": "w", "update_id": "u1", "name": "set", "payload": ["x"]},
        c.UpdateWorkflow,
    ),
    (
        {
            "kind": "start_workflow",
            "workflow_id": "w",
            "workflow_type": "T",
            "start_signal": {"name": "go", "payload": 1},
        },
        c.StartWorkflow,
    ),
    ({"kind": "cancel_workflow", "workflow_id": "w", "reason": "user"}, c.CancelWorkflow),
    ({"kind": "terminate_workflow", "workflow_id": "w"}, c.TerminateWorkflow),
    ({"kind": "reset_workflow", "workflow_id": "w", "to_event": 5, "reason": "fixed"}, c.ResetWorkflow),
    ({"kind": "register_definition", "definition": DAG}, c.RegisterDefinition),
    (
        {"kind": "task_completed", "workflow_id": "w", "run_id": "r", "seq": 1, "attempt": 1, "result": 5},
        c.TaskCompleted,
    ),
    (
        {
            "kind": "task_failed",
            "workflow_id": "w",
            "run_id": "r",
            "seq": 2,
            "attempt": 3,
            "failure": FAILURE,
        },
        c.TaskFailed,
    ),
    (
        {
            "kind": "task_heartbeat",
            "workflow_id": "w",
            "run_id": "r",
            "seq": 1,
            "attempt": 1,
            "details": "50%",
        },
        c.TaskHeartbeat,
    ),
    (
        {
            "kind": "child_workflow_closed",
            "workflow_id": "parent",
            "run_id": "r",
            "seq": 4,
            "child_workflow_id": "child",
            "status": "FAILED",
            "failure": FAILURE,
        },
        c.ChildWorkflowClosed,
    ),
    (
        {
            "kind": "create_schedule",
            "schedule_id": "nightly",
            "schedule": {
                "action": {"workflow_type": "Report", "input": {"day": 1}},
                "spec": {"cron_expressions": ["0 2 * * *"], "time_zone": "Europe/Paris"},
                "policy": {"overlap": "buffer_one", "catchup_window": 600.0},
            },
            "trigger_immediately": True,
        },
        c.CreateSchedule,
    ),
    (
        {
            "kind": "update_schedule",
            "schedule_id": "nightly",
            "schedule": {"action": {"workflow_type": "Report"}, "spec": {"intervals": [{"every": 60.0}]}},
        },
        c.UpdateSchedule,
    ),
    ({"kind": "pause_schedule", "schedule_id": "nightly", "paused": False, "note": "back"}, c.PauseSchedule),
    ({"kind": "trigger_schedule", "schedule_id": "nightly", "overlap": "allow_all"}, c.TriggerSchedule),
    (
        {
            "kind": "backfill_schedule",
            "schedule_id": "nightly",
            "start_at": "2026-01-01T00:00:00Z",
            "end_at": "2026-01-02T00:00:00Z",
        },
        c.BackfillSchedule,
    ),
    ({"kind": "delete_schedule", "schedule_id": "nightly"}, c.DeleteSchedule),
    (
        {
            "kind": "scheduled_run_closed",
            "schedule_id": "nightly",
            "scheduled_workflow_id": "nightly-2026-01-01T01:00:00Z",
            "status": "FAILED",
            "reason": "boom",
        },
        c.ScheduledRunClosed,
    ),
]


def test_every_command_kind_has_a_round_trip_case() -> None:
    union = typing.get_args(c.InboxCommand)[0]
    members = {m.model_fields["kind"].default for m in typing.get_args(union)}
    assert len(members) == 18
    assert {data["kind"] for data, _ in COMMANDS} == members


@pytest.mark.parametrize(("data", "model"), COMMANDS, ids=[d["kind"] for d, _ in COMMANDS])
def test_command_from_foreign_json(data: dict[str, Any], model: type[Any]) -> None:
    raw = json.dumps(data).encode()  # what a Go or Java producer puts on the topic
    command = inbox_command_adapter.validate_json(raw)
    assert type(command) is model
    assert command.v == c.ENVELOPE_VERSION
    for key, value in data.items():
        got = getattr(command, key)
        if hasattr(got, "model_dump"):
            got = got.model_dump(mode="json", exclude_defaults=True)
        elif isinstance(got, datetime):
            got = got.isoformat().replace("+00:00", "Z")
        assert got == value, key
    # and back: what the engine writes is read the same way
    again = inbox_command_adapter.validate_json(inbox_command_adapter.dump_json(command))
    assert again == command


def test_start_workflow_defaults() -> None:
    command = inbox_command_adapter.validate_python(
        {"kind": "start_workflow", "workflow_id": "w", "workflow_type": "T"}
    )
    assert isinstance(command, c.StartWorkflow)
    assert (command.input, command.run_id, command.request_id, command.dag) == (None, None, None, None)


def test_unknown_kind_is_rejected_naming_the_tag() -> None:
    with pytest.raises(ValidationError) as caught:
        inbox_command_adapter.validate_python({"kind": "launch_rocket", "workflow_id": "w"})
    (error,) = caught.value.errors()
    assert error["type"] == "union_tag_invalid"
    assert "launch_rocket" in str(caught.value)
    assert "'start_workflow'" in str(caught.value)  # lists what is expected


@pytest.mark.parametrize(
    ("data", "missing"),
    [
        ({"kind": "start_workflow", "workflow_id": "w"}, "workflow_type"),
        ({"kind": "start_workflow", "workflow_type": "T"}, "workflow_id"),
        ({"kind": "signal_workflow", "workflow_id": "w"}, "name"),
        ({"kind": "task_completed", "workflow_id": "w", "run_id": "r", "seq": 1}, "attempt"),
        ({"kind": "task_failed", "workflow_id": "w", "run_id": "r", "seq": 1, "attempt": 1}, "failure"),
        ({"kind": "register_definition"}, "definition"),
    ],
)
def test_missing_field_is_rejected_naming_it(data: dict[str, Any], missing: str) -> None:
    with pytest.raises(ValidationError) as caught:
        inbox_command_adapter.validate_python(data)
    errors = caught.value.errors()
    assert [(e["type"], e["loc"]) for e in errors] == [("missing", (data["kind"], missing))]
    assert missing in str(caught.value)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"kind": "start_workflow", "workflow_id": "", "workflow_type": "T"}, "workflow_id"),
        (
            {"kind": "start_workflow", "workflow_id": "w", "workflow_type": "T", "execution_timeout": 0},
            "execution_timeout",
        ),
        ({"kind": "task_completed", "workflow_id": "w", "run_id": "r", "seq": 1, "attempt": 0}, "attempt"),
        ({"kind": "cancel_workflow", "workflow_id": "w", "v": 2}, "v"),
        ({"kind": "reset_workflow", "workflow_id": "w", "to_event": 1}, "to_event"),
        ({"kind": "cancel_workflow", "workflow_id": "w", "surprise": True}, "surprise"),
    ],
)
def test_invalid_field_is_rejected_naming_it(data: dict[str, Any], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        inbox_command_adapter.validate_python(data)
    assert [e["loc"] for e in caught.value.errors()] == [(data["kind"], field)]


def test_commands_are_immutable() -> None:
    command = inbox_command_adapter.validate_python({"kind": "cancel_workflow", "workflow_id": "w"})
    assert isinstance(command, c.CancelWorkflow)
    with pytest.raises(ValidationError, match="frozen"):
        command.workflow_id = "other"
    assert command.workflow_id == "w"


# ------------------------------------------------------- events and tasks
def test_history_event_round_trip_through_json() -> None:
    events: list[ev.HistoryEvent] = [
        ev.WorkflowStarted(index=1, time=1.0, workflow_type="T", input={"a": 1}, dag=dag_from_json(DAG)),
        ev.ActivityScheduled(index=2, time=2.0, seq=1, activity_type="charge", args=[1, "x"]),
        ev.ActivityFailed(index=3, time=3.0, seq=1, attempt=2, failure=FAILURE),  # type: ignore[arg-type]
        ev.WorkflowFailed(index=4, time=4.0, failure=FAILURE, origin="engine"),  # type: ignore[arg-type]
    ]
    for event in events:
        assert history_event_adapter.validate_json(event.model_dump_json()) == event
    with pytest.raises(ValidationError) as caught:
        history_event_adapter.validate_python({"kind": "timer_fired", "index": 0, "time": 1.0, "seq": 1})
    assert [e["loc"] for e in caught.value.errors()] == [("timer_fired", "index")]


def test_task_messages_from_foreign_json() -> None:
    task = task_message_adapter.validate_json(
        b'{"kind":"activity_task","workflow_id":"w","run_id":"r","seq":1,"attempt":1,'
        b'"activity_type":"charge","args":[{"amount":5}],"scheduled_at":10.5}'
    )
    assert isinstance(task, ActivityTask)
    assert task.args == [{"amount": 5}]
    cancel = task_message_adapter.validate_python(
        {"kind": "cancel_activity", "workflow_id": "w", "run_id": "r", "seq": 1, "attempt": 2}
    )
    assert isinstance(cancel, CancelActivity)
    with pytest.raises(ValidationError) as caught:
        task_message_adapter.validate_python({"kind": "activity_task", "workflow_id": "w"})
    missing = {e["loc"][-1] for e in caught.value.errors()}
    assert missing == {"run_id", "seq", "attempt", "activity_type", "scheduled_at"}


# --------------------------------------------------------------------- DAG
def dag(nodes: list[str], edges: list[tuple[str, str]], **node_extra: Any) -> dict[str, Any]:
    return {
        "id": "d",
        "nodes": [{"id": n, "type": "echo", **node_extra} for n in nodes],
        "edges": [{"source": s, "target": t} for s, t in edges],
    }


def dag_error(data: dict[str, Any]) -> str:
    with pytest.raises(ValidationError) as caught:
        DagDefinition.model_validate(data)
    return str(caught.value)


def test_valid_dag_and_predecessors() -> None:
    definition = dag_from_json(dag(["a", "b", "c"], [("a", "b"), ("a", "c"), ("b", "c")]))
    incoming = definition.predecessors()
    assert {k: [e.source for e in v] for k, v in incoming.items()} == {"a": [], "b": ["a"], "c": ["a", "b"]}


def test_cycle_is_rejected_naming_the_cycle() -> None:
    message = dag_error(dag(["a", "b", "c", "d"], [("a", "b"), ("b", "c"), ("c", "b"), ("c", "d")]))
    assert "cycle: b -> c -> b" in message


def test_self_loop_is_a_cycle() -> None:
    assert "cycle: a -> a" in dag_error(dag(["a"], [("a", "a")]))


def test_dangling_edge_names_the_edge_and_the_missing_node() -> None:
    message = dag_error(dag(["a", "b"], [("a", "b"), ("b", "ghost")]))
    assert "edge b->ghost: target 'ghost' is not a node" in message
    message = dag_error(dag(["a"], [("nowhere", "a")]))
    assert "edge nowhere->a: source 'nowhere' is not a node" in message


def test_duplicate_node_id_is_named() -> None:
    assert "duplicate node id 'a'" in dag_error(dag(["a", "b", "a"], [("a", "b")]))


def test_every_problem_is_reported_at_once() -> None:
    definition = dag(["a", "a"], [("a", "x"), ("y", "a")])
    message = dag_error(definition)
    assert "duplicate node id 'a'" in message
    assert "target 'x'" in message
    assert "source 'y'" in message


def test_graph_problems_raise_a_dag_definition_error_inside_validation() -> None:
    with pytest.raises(ValidationError) as caught:
        DagDefinition.model_validate(dag(["a"], [("a", "a")]))
    ctx = caught.value.errors()[0].get("ctx", {})
    assert isinstance(ctx.get("error"), DagDefinitionError)
    assert graph_problems(dag_from_json(dag(["a", "b"], [("a", "b")])).nodes, []) == []


def test_empty_dag_is_rejected() -> None:
    with pytest.raises(ValidationError) as caught:
        DagDefinition.model_validate({"id": "d", "nodes": []})
    assert caught.value.errors()[0]["loc"] == ("nodes",)


def test_timeout_seconds_alias() -> None:
    camel = dag_from_json(dag(["a"], [], timeoutSeconds=30))
    snake = dag_from_json(dag(["a"], [], timeout_seconds=30))
    assert camel.nodes[0].timeout_seconds == snake.nodes[0].timeout_seconds == 30
    dumped = camel.model_dump(by_alias=True)
    assert dumped["nodes"][0]["timeoutSeconds"] == 30
    assert dag_from_json(dumped) == camel
    assert dag_from_json(camel.model_dump()) == camel  # the engine's own (snake) form reads back
    with pytest.raises(ValidationError) as caught:
        DagDefinition.model_validate(dag(["a"], [], timeoutSeconds=0))
    assert caught.value.errors()[0]["loc"] == ("nodes", 0, "timeoutSeconds")


def test_unknown_node_field_is_rejected() -> None:
    with pytest.raises(ValidationError) as caught:
        DagDefinition.model_validate(dag(["a"], [], timeout=5))
    assert caught.value.errors()[0]["loc"] == ("nodes", 0, "timeout")
