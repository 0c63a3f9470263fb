"""A small order workflow: three activities in sequence, a durable sleep, a signal."""

from __future__ import annotations

from pydantic import BaseModel

from ledgerflow import activity, workflow


class Order(BaseModel):
    order_id: str
    amount: float


@activity.defn
def reserve_stock(order: Order) -> str:
    return f"reserved-{order.order_id}"


@activity.defn
async def charge_card(order: Order) -> str:
    return f"charged-{order.amount:.2f}"


@activity.defn
def ship(order: Order, reservation: str) -> str:
    return f"shipped-{order.order_id}-{reservation}"


@workflow.defn
class ProcessOrder:
    """Reserve, charge, ship."""

    def __init__(self) -> None:
        self.stage = "new"

    @workflow.run
    async def run(self, order: Order) -> dict[str, str]:
        self.stage = "reserving"
        reservation = await workflow.execute_activity(reserve_stock, order, start_to_close_timeout=10)
        self.stage = "charging"
        payment = await workflow.execute_activity(charge_card, order, start_to_close_timeout=10)
        self.stage = "shipping"
        shipment = await workflow.execute_activity(ship, order, reservation, start_to_close_timeout=10)
        self.stage = "done"
        return {"reservation": reservation, "payment": payment, "shipment": shipment}

    @workflow.query
    def current_stage(self) -> str:
        return self.stage


@workflow.defn
class Approval:
    """Waits for an 'approve' signal, with a timeout."""

    @workflow.run
    async def run(self, timeout: float) -> str:
        try:
            decision = await workflow.wait_signal("approve", timeout=timeout)
        except TimeoutError:
            return "timed out"
        return f"approved by {decision}"
