"""The gateway's writes to Kafka: one record, or one inbox command to its owner's partition."""

from __future__ import annotations

import asyncio

from pydantic import BaseModel

from ledgerflow.api.errors import PayloadTooLargeError
from ledgerflow.api.state import GatewayState


async def send_record(
    state: GatewayState, topic: str, key: str, value: bytes, partition: int | None = None
) -> int:
    """Write one record and wait for Kafka's acknowledgement; the partition it went to."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    delivery = await state.live_producer().send(topic, key, value, partition)
    state.request_metrics.writes.labels(topic.removeprefix(state.settings.prefix)).observe(
        loop.time() - started
    )
    return delivery.partition


async def send_command(state: GatewayState, workflow_id: str, command: BaseModel) -> int:
    """Write an inbox command to the workflow's partition (the deployment's partitioner decides).

    A command over ``max_payload_bytes`` gets 413 here: the engine would refuse it to the DLQ.
    """
    value = command.model_dump_json(by_alias=True).encode()
    if len(value) > state.settings.max_payload_bytes:
        what = f"the {type(command).__name__} (max_payload_bytes)"
        raise PayloadTooLargeError(len(value), state.settings.max_payload_bytes, what)
    partition = state.live_reads().partition(workflow_id)
    return await send_record(state, state.settings.topic("inbox"), workflow_id, value, partition)
