"""What a namespace's ingress topic lets through to the inbox, and as what (ledgerflow/engine/ingress.py)."""

from __future__ import annotations

import re

import pytest

from ledgerflow.config import Settings
from ledgerflow.engine.ingress import Refused, inbox_record, namespace_of_topic, qualified, subscription
from ledgerflow.engine.outbox import Outbox
from ledgerflow.samples.dags import FAN_OUT_FAN_IN
from ledgerflow.schemas import commands as c
from ledgerflow.schemas.dag import DagDefinition

SETTINGS = Settings(bootstrap="unused:9092", prefix="prod.")


def test_the_topic_names_the_namespace() -> None:
    assert SETTINGS.ingress_topic("acme") == "prod.ingress.acme"
    assert namespace_of_topic(SETTINGS, "prod.ingress.acme") == "acme"
    assert namespace_of_topic(SETTINGS, "prod.ingress.default") == "default"
    assert namespace_of_topic(SETTINGS, "prod.ingress.Not_A_Namespace") is None
    assert namespace_of_topic(SETTINGS, "prod.inbox") is None


def test_the_subscription_matches_this_deployments_ingress_topics_only() -> None:
    pattern = subscription(SETTINGS)
    assert pattern.startswith("^")  # librdkafka's mark of a pattern
    matches = re.compile(pattern).match
    assert matches("prod.ingress.acme")
    assert not matches("prodXingress.acme")  # the dots are literal
    assert not matches("prod.inbox")
    assert not matches("staging.ingress.acme")
    # another deployment whose prefix starts with this one's ingress topics' names
    assert not matches("prod.ingress.team.inbox")


@pytest.mark.parametrize(
    ("command", "key"),
    [
        (c.StartWorkflow(workflow_id="order-1", workflow_type="Pay"), "acme/order-1"),
        (c.StartWorkflow(workflow_id="acme/order-1", workflow_type="Pay"), "acme/order-1"),
        (c.SignalWorkflow(workflow_id="order-1", name="approve"), "acme/order-1"),
        (c.CancelWorkflow(workflow_id="order-1"), "acme/order-1"),
        (c.TerminateWorkflow(workflow_id="order-1"), "acme/order-1"),
    ],
)
def test_a_workflow_command_acts_in_the_topics_namespace(command: c.InboxCommand, key: str) -> None:
    forwarded = qualified(command, "acme")
    assert forwarded[0] == key
    assert forwarded[1].workflow_id == key  # type: ignore[union-attr]  # each kind here has one
    assert forwarded[1].kind == command.kind


def test_the_default_namespaces_ids_stay_bare() -> None:
    forwarded = qualified(c.StartWorkflow(workflow_id="order-1", workflow_type="Pay"), "default")
    assert forwarded[0] == "order-1"


def test_a_definition_is_registered_in_the_topics_namespace() -> None:
    dag = DagDefinition.model_validate({**FAN_OUT_FAN_IN, "id": "fan"})
    key, command = qualified(c.RegisterDefinition(definition=dag), "acme")
    assert key == "acme/fan"
    assert isinstance(command, c.RegisterDefinition) and command.definition.id == "acme/fan"
    assert command.definition.nodes == dag.nodes


@pytest.mark.parametrize(
    ("command", "reason"),
    [
        (c.StartWorkflow(workflow_id="globex/order-1", workflow_type="Pay"), "names namespace 'globex'"),
        (c.SignalWorkflow(workflow_id="globex/order-1", name="x"), "this is namespace 'acme''s ingress"),
        (
            c.RegisterDefinition(
                definition=DagDefinition.model_validate({**FAN_OUT_FAN_IN, "id": "globex/f"})
            ),
            "definition.id",
        ),
        (
            c.StartWorkflow(workflow_id="x", workflow_type="Pay", parent_workflow_id="p", parent_seq=1),
            "parent_workflow_id: only an engine",
        ),
        (
            c.StartWorkflow(workflow_id="x", workflow_type="Pay", parent_run_id="r"),
            "parent_workflow_id: only an engine",
        ),
        (
            c.StartWorkflow(
                workflow_id="x",
                workflow_type="f",
                dag=DagDefinition.model_validate({**FAN_OUT_FAN_IN, "id": "f"}),
            ),
            "dag: name a registered DAG",
        ),
        (
            c.StartWorkflow(workflow_id="x", workflow_type="globex/fan"),
            "workflow_type: 'globex/fan' holds '/'",
        ),
        (c.TaskCompleted(workflow_id="x", run_id="r", seq=1, attempt=1), "task_completed is written by"),
        (
            c.ChildWorkflowClosed(
                workflow_id="x", run_id="r", seq=1, child_workflow_id="y", status="COMPLETED"
            ),
            "child_workflow_closed is written by",
        ),
    ],
)
def test_what_another_namespace_or_ledgerflow_itself_would_send_is_refused(
    command: c.InboxCommand, reason: str
) -> None:
    with pytest.raises(Refused) as refused:
        qualified(command, "acme")
    assert reason in str(refused.value)


def test_a_record_that_no_longer_fits_once_qualified_is_refused_by_name() -> None:
    """A record just under Kafka's limit on the ingress topic is over it once its id names the
    namespace: refused (a dead letter), not a failed transaction."""
    settings = Settings(
        bootstrap="unused:9092", prefix="prod.", max_record_bytes=4096, max_payload_bytes=1024
    )
    start = c.StartWorkflow(workflow_id="w", workflow_type="Pay", input="x" * 4000)
    value = start.model_dump_json().encode()
    room = settings.max_record_bytes - len(b"w") - len(value)
    start = start.model_copy(update={"input": "x" * (4000 + room)})
    value = start.model_dump_json().encode()
    assert len(value) + len(b"w") == settings.max_record_bytes  # fits on the ingress topic as sent
    out = Outbox(settings)
    with pytest.raises(Refused, match="PayloadTooLarge"):
        inbox_record(out, settings, "prod.ingress.acme", value)
    assert out.records == []
    inbox_record(out, settings, "prod.ingress.default", value)  # the default namespace adds nothing
    assert [r.key for r in out.records] == [b"w"]


@pytest.mark.parametrize(
    ("topic", "value", "reason"),
    [
        ("prod.ingress.acme", b"{not json", "invalid ingress record"),
        ("prod.ingress.acme", None, "invalid ingress record"),  # a tombstone
        ("prod.ingress.acme", b"[" * 100_000 + b"]" * 100_000, "ingress record"),
        (
            "prod.ingress.-bad-",
            c.StartWorkflow(workflow_id="w", workflow_type="P").model_dump_json().encode(),
            "a namespace is",
        ),
        (
            "prod.ingress.acme",
            rb'{"kind":"start_workflow","workflow_id":"a\u0000b","workflow_type":"P"}',
            "workflow_id",
        ),
    ],
)
def test_a_hostile_record_is_refused_with_a_reason(topic: str, value: bytes | None, reason: str) -> None:
    out = Outbox(SETTINGS)
    with pytest.raises(Refused, match=reason):
        inbox_record(out, SETTINGS, topic, value)
    assert out.records == []
