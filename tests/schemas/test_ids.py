"""One id rule for workflow, run, request and definition ids, in every model that carries one.

An id is a Kafka key, part of RocksDB keys (``\\x00`` separates it from what follows) and a
URL path segment at the gateway (``/`` would split it). The rule: 1 to 256 characters, no
control character, no ``/``. The SDK checks it before sending (``InvalidIdError``).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from ledgerflow import Client, InvalidIdError
from ledgerflow.errors import check_id
from ledgerflow.schemas import export
from ledgerflow.schemas.commands import inbox_command_adapter
from ledgerflow.schemas.common import ID_PATTERN, bare_id_adapter, id_adapter
from ledgerflow.schemas.tasks import TaskToken, read_task_token, task_token
from tests.schemas.test_schemas import COMMANDS

VALID = [
    "order-42",
    "a b?c#d%e&f=g",
    ".",
    "..",
    "naïve ✓ 注文",
    "x" * 256,
    "a\\b",
    "x",
    "🚀",
    "team-1/order-42",
]
INVALID = ["", "a/b/c", "/", "/b", "a/", "A/b", "-a/b", "a\x00b", "\x1f", "a\x7f", "x" * 257, "tab\there"]


@pytest.mark.parametrize("value", VALID)
def test_ids_the_rule_allows(value: str) -> None:
    assert id_adapter.validate_python(value) == value
    assert check_id("workflow id", value) == value


@pytest.mark.parametrize("value", INVALID)
def test_ids_the_rule_refuses_with_one_error_that_says_the_rule(value: str) -> None:
    with pytest.raises(ValidationError) as caught:
        id_adapter.validate_python(value)
    (error,) = caught.value.errors()
    assert error["type"] == "invalid_id"
    assert error["msg"] == (
        "an id is 1 to 256 characters, none of them a control character (\\x00-\\x1f, \\x7f) or '/', "
        "after an optional '<namespace>/'"
    )
    with pytest.raises(InvalidIdError, match=r"^run id .*: an id is 1 to 256 characters") as refused:
        check_id("run id", value)
    assert isinstance(refused.value, ValueError) and refused.value.field == "run id"


@pytest.mark.parametrize("value", ["team/order-42", "a/b"])
def test_a_caller_names_bare_ids_only(value: str) -> None:
    """The engine's ids may carry a namespace; what callers of the gateway name may not."""
    assert id_adapter.validate_python(value) == value
    with pytest.raises(ValidationError):
        bare_id_adapter.validate_python(value)


def id_fields(data: dict[str, Any]) -> list[tuple[str, ...]]:
    """Paths to every id a command of this shape may carry (optional ones included)."""
    command = inbox_command_adapter.validate_python(data)
    paths: list[tuple[str, ...]] = [(name,) for name in type(command).model_fields if name.endswith("_id")]
    if data["kind"] == "register_definition":
        paths.append(("definition", "id"))
    return paths


CASES = [
    pytest.param(data, path, id=f"{data['kind']}.{'.'.join(path)}")
    for data, _ in COMMANDS
    for path in id_fields(data)
]


def test_every_kind_of_id_is_covered() -> None:
    names = {path[-1] for data, _ in COMMANDS for path in id_fields(data)}
    assert names == {
        "workflow_id",
        "run_id",
        "request_id",
        "parent_workflow_id",
        "parent_run_id",
        "child_workflow_id",
        "update_id",
        "schedule_id",
        "scheduled_workflow_id",
        "id",
    }


@pytest.mark.parametrize(("data", "path"), CASES)
def test_every_id_of_every_inbox_command_follows_the_rule(
    data: dict[str, Any], path: tuple[str, ...]
) -> None:
    bad = json.loads(json.dumps(data))
    target = bad
    for step in path[:-1]:
        target = target[step]
    target[path[-1]] = "a/b/c"
    with pytest.raises(ValidationError) as caught:
        inbox_command_adapter.validate_json(json.dumps(bad))
    assert [(e["loc"], e["type"]) for e in caught.value.errors()] == [((data["kind"], *path), "invalid_id")]
    target[path[-1]] = "naïve ✓ 注文"
    inbox_command_adapter.validate_json(json.dumps(bad))


def test_producers_in_other_languages_see_the_rule_in_the_json_schema() -> None:
    schema = json.loads(export.generate()["inbox-command.json"])
    start = schema["$defs"]["StartWorkflow"]["properties"]["workflow_id"]
    assert (start["pattern"], start["minLength"], start["maxLength"]) == (ID_PATTERN, 1, 256)


def test_the_client_refuses_a_bad_id_before_sending_anything() -> None:
    with Client("127.0.0.1:1", "never.") as client:
        calls = [
            lambda: client.start_workflow("T", None, id="a/b/c"),
            lambda: client.start_workflow("T", None, id="ok", request_id="\x00"),
            lambda: client.signal("a\x01", "s"),
            lambda: client.signal("ok", "s", request_id="x" * 257),
            lambda: client.cancel(""),
            lambda: client.terminate("Team/b"),
            lambda: client.describe("a/b/c"),
            lambda: client.history("ok", run_id="r/1/2"),
            lambda: client.query("a\x7f", "q"),
            lambda: client.start_update("ok", "u", id="a/b/c"),
            lambda: client.result("ok", run_id="\n", timeout=0.1),
        ]
        for call in calls:
            with pytest.raises(
                InvalidIdError, match=r"(workflow|request|run|update) id .*: an id is 1 to 256"
            ):
                call()


def test_the_client_names_runs_in_its_namespace_one_way() -> None:
    with Client("127.0.0.1:1", "never.", namespace="team") as client:
        assert client._async._engine_id("x") == "team/x"
        assert client._async._engine_id("other/x") == "other/x"  # the Client reaches the whole deployment
        assert client._async._engine_id("default/x") == "x"  # the default namespace's ids are bare


def test_only_the_engines_own_id_fields_are_shown_bare_never_the_users_payloads() -> None:
    from ledgerflow import namespaces

    state = {"workflow_id": "team/x", "parent_workflow_id": "team/p", "result": {"workflow_id": "team/y"}}
    assert namespaces.visible("team", state) == {
        "workflow_id": "x",
        "parent_workflow_id": "p",
        "result": {"workflow_id": "team/y"},  # the user's data, as it was written
    }
    assert namespaces.visible("other", state)["workflow_id"] == "team/x"


def test_a_task_token_naming_a_bad_id_is_refused_as_no_token() -> None:
    """A forged token must fail as a token (422 naming taskToken at the gateway), not later
    as a task result the engine's models refuse (a 500)."""
    good = TaskToken(workflow_id="order-1", run_id="r", seq=1, attempt=1)
    assert read_task_token(task_token(good)) == good
    forged = task_token(TaskToken.model_construct(workflow_id="a/b/c", run_id="r", seq=1, attempt=1))
    with pytest.raises(ValueError, match="task token that does not read back"):
        read_task_token(forged)
