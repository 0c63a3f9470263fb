"""Code workflows used by the integration tests.

``LEDGERFLOW_TEST_VERSION=2`` in an engine's environment switches
``Versioned`` to a changed (non-deterministic) body.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from ledgerflow import (
    ActivityError,
    ApplicationError,
    ChildWorkflowError,
    RetryPolicy,
    SearchAttributeKey,
    workflow,
)
from ledgerflow.sdk.context import current_runtime
from tests.testapps import acts

FAST_RETRY = RetryPolicy(initial_interval=0.2, backoff_coefficient=2.0, maximum_interval=1.0)


@workflow.defn
class ThreeSteps:
    @workflow.run
    async def run(self, n: int) -> int:
        a = await workflow.execute_activity(acts.add_one, n, start_to_close_timeout=10)
        b = await workflow.execute_activity(acts.add_one, a, start_to_close_timeout=10)
        return await workflow.execute_activity(acts.add_one, b, start_to_close_timeout=10)


@workflow.defn
class Flaky:
    """Calls an activity that fails ``failures`` times before it succeeds."""

    @workflow.run
    async def run(self, key: str, failures: int) -> str:
        return await workflow.execute_activity(
            acts.fail_times, key, failures, start_to_close_timeout=10, retry_policy=FAST_RETRY
        )


@workflow.defn
class Hopeless:
    """An activity that always fails non-retryably."""

    @workflow.run
    async def run(self) -> str:
        return await workflow.execute_activity(
            acts.always_fails, start_to_close_timeout=10, retry_policy=FAST_RETRY
        )


@workflow.defn
class Sleeper:
    @workflow.run
    async def run(self, seconds: float) -> dict[str, float]:
        before = workflow.now().timestamp()
        await workflow.sleep(seconds)
        return {"before": before, "after": workflow.now().timestamp()}


@workflow.defn
class SignalCounter:
    """Collects 'add' signals until a 'done' signal; returns them all."""

    def __init__(self) -> None:
        self.values: list[Any] = []

    @workflow.run
    async def run(self) -> list[Any]:
        done = asyncio.ensure_future(workflow.wait_signal("done"))
        while True:
            add = asyncio.ensure_future(workflow.wait_signal("add"))
            await asyncio.wait({add, done}, return_when=asyncio.FIRST_COMPLETED)
            if add.done():
                self.values.append(add.result())
            if done.done():
                add.cancel()
                return self.values

    @workflow.query
    def received(self) -> list[Any]:
        return self.values


@workflow.defn
class ChaosMix:
    """The chaos run's main workload, every kind of step in one run: an activity that fails
    ``failures`` times before it succeeds, a durable timer, ``signals`` 'add' signals taken one
    by one (the run waits for them, so they are sent while nodes die), then a child workflow."""

    @workflow.run
    async def run(self, n: int, failures: int, signals: int) -> dict[str, Any]:
        first = await workflow.execute_activity(
            acts.flaky_add_one, n, failures, start_to_close_timeout=5, retry_policy=FAST_RETRY
        )
        await workflow.sleep(1.0)
        received = [await workflow.wait_signal("add") for _ in range(signals)]
        child = await workflow.execute_child_workflow(
            ThreeSteps, first, id=f"{workflow.info().workflow_id}-child"
        )
        return {"first": first, "signals": received, "child": child}


@workflow.defn
class SlowCancellable:
    """Waits on a long activity; a cancel should reach it."""

    @workflow.run
    async def run(self, marker_dir: str) -> str:
        try:
            return await workflow.execute_activity(
                acts.slow_until_cancelled, marker_dir, start_to_close_timeout=60, heartbeat_timeout=5
            )
        except asyncio.CancelledError:
            await workflow.execute_activity(
                acts.write_marker, marker_dir, "cleanup", start_to_close_timeout=10
            )
            raise


@workflow.defn
class CrashSafe:
    """One activity that takes a while: the worker running it may be killed."""

    @workflow.run
    async def run(self, marker_dir: str) -> str:
        return await workflow.execute_activity(
            acts.count_runs, marker_dir, start_to_close_timeout=3, retry_policy=FAST_RETRY
        )


@workflow.defn
class Parent:
    @workflow.run
    async def run(self, n: int) -> list[int]:
        info = workflow.info()
        results = await asyncio.gather(
            *(
                workflow.execute_child_workflow(ThreeSteps, n + i, id=f"{info.workflow_id}-child-{i}")
                for i in range(2)
            )
        )
        return list(results)


@workflow.defn
class FixedChild:
    """Starts a child under a fixed bare id: the engine starts it in the parent's namespace."""

    @workflow.run
    async def run(self, n: int) -> int:
        return await workflow.execute_child_workflow(ThreeSteps, n, id="fixed-child")


@workflow.defn
class Countdown:
    """Continues as new until the counter reaches zero."""

    @workflow.run
    async def run(self, counter: int) -> str:
        if counter > 0:
            await workflow.execute_activity(acts.add_one, counter, start_to_close_timeout=10)
            workflow.continue_as_new(counter - 1)
        return "liftoff"


@workflow.defn
class Deterministic:
    @workflow.run
    async def run(self) -> dict[str, Any]:
        first = {"uuid": str(workflow.uuid4()), "rand": workflow.random().random()}
        await workflow.sleep(0.1)
        return {**first, "uuid2": str(workflow.uuid4())}


@workflow.defn
class Versioned:
    """Version 1 calls add_one then waits for 'go'; version 2 calls double first."""

    @workflow.run
    async def run(self, n: int) -> int:
        if os.environ.get("LEDGERFLOW_TEST_VERSION") == "2":
            n = await workflow.execute_activity(acts.double, n, start_to_close_timeout=10)
        else:
            n = await workflow.execute_activity(acts.add_one, n, start_to_close_timeout=10)
        await workflow.wait_signal("go")
        return await workflow.execute_activity(acts.add_one, n, start_to_close_timeout=10)


@workflow.defn
class BuggyStep:
    """add_one, then an activity that has a bug while the worker runs with LEDGERFLOW_TEST_BUG."""

    @workflow.run
    async def run(self, n: int) -> int:
        a = await workflow.execute_activity(acts.add_one, n, start_to_close_timeout=10)
        return await workflow.execute_activity(acts.buggy_add_one, a, start_to_close_timeout=10)


@workflow.defn
class TwoAttempts:
    """One activity with a retry policy of two attempts."""

    @workflow.run
    async def run(self, n: int) -> int:
        policy = RetryPolicy(initial_interval=0.1, maximum_attempts=2)
        return await workflow.execute_activity(
            acts.add_one, n, start_to_close_timeout=10, retry_policy=policy
        )


@workflow.defn
class Mixed:
    """For failover: an activity, a short sleep, another activity."""

    @workflow.run
    async def run(self, n: int) -> int:
        a = await workflow.execute_activity(
            acts.add_one, n, start_to_close_timeout=5, retry_policy=FAST_RETRY
        )
        await workflow.sleep(0.5)
        b = await workflow.execute_activity(
            acts.add_one, a, start_to_close_timeout=5, retry_policy=FAST_RETRY
        )
        return b


@workflow.defn
class Timeouts:
    """A silent activity under a heartbeat timeout, then one under a schedule-to-close timeout."""

    @workflow.run
    async def run(self) -> list[str]:
        outcomes = []
        for options in (
            {
                "heartbeat_timeout": 1,
                "start_to_close_timeout": 30,
                "retry_policy": RetryPolicy(maximum_attempts=2),
            },
            {"schedule_to_close_timeout": 1.5, "retry_policy": FAST_RETRY},
        ):
            try:
                await workflow.execute_activity(acts.silent_sleeper, 5, **options)
                outcomes.append("completed")
            except ActivityError as exc:
                outcomes.append(exc.failure.type)
        return outcomes


@workflow.defn
class BadChild:
    """After a timer, starts a child with an invalid (empty) id: an engine-side error.

    Asks the runtime directly: ``workflow.execute_child_workflow`` would refuse the id first.
    """

    @workflow.run
    async def run(self) -> None:
        await workflow.sleep(0.1)
        await current_runtime().execute_child_workflow("ThreeSteps", "", 1)


@workflow.defn
class OwnIdChild:
    """Starts a child with its own workflow id, which is taken (by itself)."""

    @workflow.run
    async def run(self) -> str:
        try:
            await workflow.execute_child_workflow(ThreeSteps, 1, id=workflow.info().workflow_id)
        except ChildWorkflowError as exc:
            return exc.failure.type
        return "started"


@workflow.defn
class Huge:
    """An activity whose result is too large for a Kafka record."""

    @workflow.run
    async def run(self) -> str:
        try:
            return await workflow.execute_activity(acts.huge_result, start_to_close_timeout=30)
        except ActivityError as exc:
            return exc.failure.type


@workflow.defn
class RoutedToPayments:
    """One activity routed to the 'payments' task queue, then one on 'default'.

    Returns the process id of the worker that ran each.
    """

    @workflow.run
    async def run(self) -> dict[str, int]:
        payments = await workflow.execute_activity(
            acts.worker_pid, queue="payments", start_to_close_timeout=10
        )
        default = await workflow.execute_activity(acts.worker_pid, start_to_close_timeout=10)
        return {"payments": payments, "default": default}


@workflow.defn
class ChildFailureHandled:
    """Runs ``Hopeless`` as a child, catches its ChildWorkflowError and returns what it carried."""

    @workflow.run
    async def run(self) -> dict[str, str]:
        try:
            await workflow.execute_child_workflow(Hopeless, id=f"{workflow.info().workflow_id}-child")
        except ChildWorkflowError as exc:
            activity_error = exc.cause  # the child failed by letting its activity's failure escape
            assert isinstance(activity_error, ActivityError)
            root = activity_error.cause
            assert isinstance(root, ApplicationError)
            return {
                "caught": type(exc).__name__,
                "cause": f"{type(activity_error).__name__} of {activity_error.activity_type}",
                "type": root.type,
                "message": root.message,
            }
        return {"caught": "nothing"}


@workflow.defn
class ChildFailureUnhandled:
    """Runs ``Hopeless`` as a child and lets its ChildWorkflowError fail this run."""

    @workflow.run
    async def run(self) -> str:
        await workflow.execute_child_workflow(Hopeless, id=f"{workflow.info().workflow_id}-child")
        return "unreachable"


@workflow.defn
class ParentOfSleeper:
    """Waits on a ``Sleeper`` child; returns how the child ended (a cancel of this run ends it)."""

    @workflow.run
    async def run(self, seconds: float) -> str:
        try:
            await workflow.execute_child_workflow(Sleeper, seconds, id=f"{workflow.info().workflow_id}-child")
        except ChildWorkflowError as exc:
            return f"child ended: {exc.failure.type}"
        return "child completed"


@workflow.defn
class Account:
    """Updates through the gateway: deposits, validated, and a close."""

    def __init__(self) -> None:
        self.balance = 0
        self.closed = False

    @workflow.run
    async def run(self) -> int:
        await workflow.wait_condition(lambda: self.closed)
        return self.balance

    @workflow.update
    def deposit(self, amount: int) -> int:
        self.balance += amount
        return self.balance

    @deposit.validator
    def check_deposit(self, amount: int) -> None:
        if amount <= 0:
            raise ValueError(f"a deposit is more than 0, not {amount}")

    @workflow.update
    async def close(self) -> int:
        await workflow.sleep(0.1)
        self.closed = True
        return self.balance


@workflow.defn
class Approval:
    """An activity completed from outside, by its task token (the gateway's /activities routes)."""

    @workflow.run
    async def run(self, token_dir: str) -> Any:
        return await workflow.execute_activity(
            acts.await_approval, token_dir, start_to_close_timeout=60, retry_policy=FAST_RETRY
        )


STAGE = SearchAttributeKey.for_keyword("Stage")
PRIORITY = SearchAttributeKey.for_bool("Priority")
CUSTOMER = SearchAttributeKey.for_keyword("CustomerId")


@workflow.defn
class TrackedOrder:
    """Upserts its search attributes as it goes: ``Stage`` received, then shipped on the signal
    ``ship`` (``Priority`` removed); ``continue`` instead continues as new (attributes carried)."""

    def __init__(self) -> None:
        self.next: str | None = None

    @workflow.signal
    def ship(self) -> None:
        self.next = "ship"

    @workflow.signal(name="continue")
    def go_on(self) -> None:
        self.next = "continue"

    @workflow.run
    async def run(self, rounds: int) -> dict[str, Any]:
        workflow.upsert_search_attributes([STAGE.value_set(f"received-{rounds}")])
        await workflow.wait_condition(lambda: self.next is not None)
        if self.next == "continue":
            workflow.continue_as_new(rounds + 1)
        workflow.upsert_search_attributes([STAGE.value_set("shipped"), PRIORITY.value_unset()])
        seen = workflow.info().typed_search_attributes
        return {
            "customer": seen.get(CUSTOMER),
            "stage": seen.get(STAGE),
            "priority": seen.get(PRIORITY),
            "memo": workflow.memo_value("note"),
        }
