"""A workflow and activities carrying secrets wherever payloads go (tests/security/test_payload_codec.py).

Served by engines (``--workflows``) and workers (``--activities``) alike.
"""

from __future__ import annotations

from typing import Any

from ledgerflow import ActivityError, ApplicationError, RetryPolicy, activity, workflow

FAST_RETRY = RetryPolicy(initial_interval=0.2, backoff_coefficient=1.0, maximum_interval=0.5)


@activity.defn
def seal(text: str) -> str:
    return f"sealed:{text}"


@activity.defn
def seal_fields(fields: dict[str, str]) -> dict[str, str]:
    """A DAG node's activity: its input is the node's rendered input."""
    return {name: f"sealed:{value}" for name, value in fields.items()}


@activity.defn
def refuse(secret: str) -> None:
    raise ApplicationError("refused", non_retryable=True, details={"secret": secret})


@workflow.defn
class SealedChild:
    @workflow.run
    async def run(self, order: dict[str, str]) -> str:
        return f"child saw {order['secret']}"


@workflow.defn
class SealedOrder:
    """An activity with a secret argument and result, one whose failure's details hold the
    secret, a signal, a child workflow and a query, each carrying a secret."""

    def __init__(self) -> None:
        self.approval: Any = None

    @workflow.run
    async def run(self, order: dict[str, str]) -> dict[str, Any]:
        sealed = await workflow.execute_activity(
            seal, order["secret"], start_to_close_timeout=10, retry_policy=FAST_RETRY
        )
        try:
            await workflow.execute_activity(refuse, order["secret"], start_to_close_timeout=10)
            refused: Any = None
        except ActivityError as exc:
            refused = exc.failure.details
        self.approval = await workflow.wait_signal("approve")
        child = await workflow.execute_child_workflow(
            SealedChild, {"secret": order["secret"]}, id=f"{workflow.info().workflow_id}-child"
        )
        return {"sealed": sealed, "refused": refused, "approval": self.approval, "child": child}

    @workflow.query
    def approval_seen(self, prefix: str) -> str:
        return f"{prefix}{self.approval}"


def sealed_dag(definition_id: str) -> dict[str, Any]:
    """Two nodes, the second rendered from the first's output, behind a condition on it."""
    return {
        "id": definition_id,
        "name": "sealed DAG",
        "nodes": [
            {"id": "a", "type": "seal_fields", "input": {"text": "{{ input.secret }}"}},
            {"id": "b", "type": "seal_fields", "input": {"again": "{{ nodes.a.output.text }}"}},
        ],
        "edges": [{"source": "a", "target": "b", "condition": "nodes.a.output.text != ''"}],
    }
