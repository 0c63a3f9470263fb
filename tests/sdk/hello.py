"""Temporal's Python "hello" samples, ported by changing imports (``temporalio`` to ``ledgerflow``)
and nothing else where Ledgerflow has the API; docs/migrating-from-temporal.md says what differs.

An engine runs these workflows and a worker these activities in tests/sdk/test_hello_samples.py.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from ledgerflow import SearchAttributeKey, activity, workflow


# ------------------------------------------------------------------ hello_signal
@workflow.defn
class GreetingSignalWorkflow:
    def __init__(self) -> None:
        self._pending_greetings: asyncio.Queue[str] = asyncio.Queue()
        self._exit = False

    @workflow.run
    async def run(self) -> list[str]:
        # Continually handle from queue or wait for exit to be received
        greetings: list[str] = []
        while True:
            # Wait for queue item or exit
            await workflow.wait_condition(lambda: not self._pending_greetings.empty() or self._exit)

            # Drain and process queue
            while not self._pending_greetings.empty():
                greetings.append(f"Hello, {self._pending_greetings.get_nowait()}")

            # Exit if complete
            if self._exit:
                return greetings

    @workflow.signal
    async def submit_greeting(self, name: str) -> None:
        await self._pending_greetings.put(name)

    @workflow.signal
    def exit(self) -> None:
        self._exit = True


# ------------------------------------------------------------------- hello_query
@workflow.defn
class GreetingQueryWorkflow:
    def __init__(self) -> None:
        self._greeting = ""

    @workflow.run
    async def run(self, name: str) -> None:
        self._greeting = f"Hello, {name}!"
        await asyncio.sleep(2)
        self._greeting = f"Goodbye, {name}!"

    @workflow.query
    def greeting(self) -> str:
        return self._greeting


# ------------------------------------------------------- hello_signal_with_start
@activity.defn
async def compose_greeting(greeting: str, name: str) -> str:
    return f"{greeting}, {name}!"


@workflow.defn
class SignalWithStartWorkflow:
    """Collects names by signal until none arrives for a while, then greets them all."""

    def __init__(self) -> None:
        self._names: list[str] = []
        self._seen = 0

    @workflow.run
    async def run(self, greeting: str) -> list[str]:
        while True:
            self._seen = len(self._names)
            try:
                await workflow.wait_condition(self._more_names, timeout=timedelta(seconds=2))
            except TimeoutError:
                break
        return [
            await workflow.execute_activity(
                compose_greeting, args=[greeting, name], start_to_close_timeout=timedelta(seconds=10)
            )
            for name in self._names
        ]

    def _more_names(self) -> bool:
        return len(self._names) > self._seen

    @workflow.signal
    def add_name(self, name: str) -> None:
        self._names.append(name)

    @workflow.query
    def names(self) -> list[str]:
        return self._names


# ------------------------------------------------------------------- hello_update
@workflow.defn
class GreetingUpdateWorkflow:
    def __init__(self) -> None:
        self.is_complete = False

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self.is_complete)
        return "Hello, World!"

    @workflow.update
    async def update_workflow_status(self) -> str:
        self.is_complete = True
        return "Workflow status updated"


# ------------------------------------------- message_passing (an update with a validator)
@workflow.defn
class LanguageWorkflow:
    def __init__(self) -> None:
        self.greetings = {"en": "Hello", "fr": "Bonjour"}
        self.language = "en"
        self.changes = 0
        self.done = False

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self.done)
        return f"{self.greetings[self.language]}, World! ({self.changes} change)"

    @workflow.update
    def set_language(self, language: str) -> str:
        previous, self.language = self.language, language
        self.changes += 1
        return previous

    @set_language.validator
    def validate_language(self, language: str) -> None:
        if language not in self.greetings:
            raise ValueError(f"{language} is not supported")

    @workflow.signal
    def approve(self) -> None:
        self.done = True


# ---------------------------------------------------------- hello_activity_heartbeat
@activity.defn
async def count_to(goal: int) -> list[int]:
    """Counts, heartbeating its progress; its first attempt crashes part way, and the retry
    resumes from the last heartbeat instead of starting over."""
    info = activity.info()
    counted = info.heartbeat_details or 0
    start = counted
    while counted < goal:
        counted += 1
        activity.heartbeat(counted)
        if info.attempt == 1 and counted == 3:
            raise RuntimeError("crashed after 3")
    return [start, counted, info.attempt]


@workflow.defn
class HeartbeatWorkflow:
    @workflow.run
    async def run(self, goal: int) -> list[int]:
        return await workflow.execute_activity(
            count_to,
            goal,
            start_to_close_timeout=timedelta(seconds=30),
            heartbeat_timeout=timedelta(seconds=10),
            retry_policy=workflow.RetryPolicy(initial_interval=0.2),
        )


# -------------------------------------------------------------- hello_activity (typed)
@dataclass
class ComposeGreetingInput:
    greeting: str
    name: str


@activity.defn
async def compose_typed_greeting(input: ComposeGreetingInput) -> str:
    return f"{input.greeting}, {input.name}!"


@dataclass
class Greeting:
    text: str
    length: int


@workflow.defn
class GreetingWorkflow:
    @workflow.run
    async def run(self, name: str) -> Greeting:
        text = await workflow.execute_activity(
            compose_typed_greeting,
            ComposeGreetingInput("Hello", name),
            start_to_close_timeout=timedelta(seconds=10),
        )
        return Greeting(text, len(text))


# -------------------------------------------------------- hello_async_activity_completion
@activity.defn
async def compose_greeting_async(token_file: str) -> str:
    """Hands its task token to someone else (a file here) and returns without a result: whoever
    reads the token completes the attempt later."""
    Path(token_file).write_text(activity.info().task_token)
    activity.raise_complete_async()


@workflow.defn
class AsyncCompletionWorkflow:
    @workflow.run
    async def run(self, token_file: str) -> str:
        return await workflow.execute_activity(
            compose_greeting_async, token_file, start_to_close_timeout=timedelta(seconds=60)
        )


# ------------------------------------------------------------------ hello_activity_method
class MyDatabaseClient:
    def __init__(self) -> None:
        self.updates = 0

    async def run_database_update(self) -> int:
        self.updates += 1
        return self.updates


class MyActivities:
    def __init__(self, db_client: MyDatabaseClient) -> None:
        self.db_client = db_client

    @activity.defn
    async def do_database_thing(self, table: str) -> str:
        count = await self.db_client.run_database_update()
        return f"{table} updated ({count})"


my_activities = MyActivities(MyDatabaseClient())
"""The worker runs the methods of this object (its module names it to the worker)."""


@workflow.defn
class ActivityMethodWorkflow:
    @workflow.run
    async def run(self) -> str:
        return await workflow.execute_activity_method(
            MyActivities.do_database_thing, "orders", start_to_close_timeout=timedelta(seconds=5)
        )


# --------------------------------------------------------------------- hello_exception
@activity.defn
async def compose_greeting_failing(input: ComposeGreetingInput) -> str:
    raise RuntimeError(f"Intentionally failing to greet {input.name}")


@workflow.defn
class ExceptionWorkflow:
    @workflow.run
    async def run(self, name: str) -> str:
        return await workflow.execute_activity(
            compose_greeting_failing,
            ComposeGreetingInput("Hello", name),
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=workflow.RetryPolicy(initial_interval=0.1, maximum_attempts=2),
        )


# ---------------------------------------------------------------- hello_local_activity
@workflow.defn
class LocalActivityWorkflow:
    @workflow.run
    async def run(self, name: str) -> str:
        return await workflow.execute_local_activity(
            compose_typed_greeting,
            ComposeGreetingInput("Hello", name),
            start_to_close_timeout=timedelta(seconds=10),
        )


# ---------------------------------------------------------------- hello_activity_retry
@activity.defn
async def compose_greeting_on_the_fourth_try(input: ComposeGreetingInput) -> str:
    if activity.info().attempt < 4:
        raise RuntimeError(f"Intentionally failing attempt {activity.info().attempt}")
    return f"{input.greeting}, {input.name}! (attempt {activity.info().attempt})"


@workflow.defn
class ActivityRetryWorkflow:
    @workflow.run
    async def run(self, name: str) -> str:
        return await workflow.execute_activity(
            compose_greeting_on_the_fourth_try,
            ComposeGreetingInput("Hello", name),
            start_to_close_timeout=timedelta(seconds=10),
            retry_policy=workflow.RetryPolicy(initial_interval=timedelta(milliseconds=100)),
        )


# ---------------------------------------------------------------- hello_child_workflow
@workflow.defn
class ComposeGreetingWorkflow:
    @workflow.run
    async def run(self, input: ComposeGreetingInput) -> str:
        return f"{input.greeting}, {input.name}!"


@workflow.defn
class GreetingParentWorkflow:
    @workflow.run
    async def run(self, name: str) -> str:
        return await workflow.execute_child_workflow(
            ComposeGreetingWorkflow.run,
            ComposeGreetingInput("Hello", name),
            id="hello-child-workflow-workflow-child-id",
        )


# ---------------------------------------------------------------- hello_continue_as_new
@workflow.defn
class LoopingWorkflow:
    @workflow.run
    async def run(self, iteration: int) -> int:
        if iteration == 5:
            return iteration
        await asyncio.sleep(0.1)
        workflow.continue_as_new(iteration + 1)


# ------------------------------------------------------------- hello_parallel_activity
@activity.defn
async def say_hello_activity(name: str) -> str:
    return f"Hello, {name}!"


@workflow.defn
class SayHelloWorkflow:
    @workflow.run
    async def run(self) -> list[str]:
        results = await asyncio.gather(
            *(
                workflow.execute_activity(
                    say_hello_activity, name, start_to_close_timeout=timedelta(seconds=5)
                )
                for name in ("user1", "user2", "user3", "user4")
            )
        )
        return sorted(results)


# ------------------------------------------------------------------- hello_cancellation
@activity.defn
async def never_complete_activity(marker_dir: str) -> None:
    """Heartbeats until told to stop; the cancellation arrives as ``asyncio.CancelledError``."""
    Path(marker_dir, "started").touch()
    try:
        while True:
            activity.heartbeat()
            await asyncio.sleep(0.2)
    except asyncio.CancelledError:
        Path(marker_dir, "cancelled").touch()
        raise


@activity.defn
async def cleanup_activity(marker_dir: str) -> None:
    Path(marker_dir, "cleanup").touch()


@workflow.defn
class CancellationWorkflow:
    @workflow.run
    async def run(self, marker_dir: str) -> None:
        try:
            await workflow.execute_activity(
                never_complete_activity,
                marker_dir,
                start_to_close_timeout=timedelta(seconds=1000),
                heartbeat_timeout=timedelta(seconds=2),
            )
        finally:
            await workflow.execute_activity(
                cleanup_activity, marker_dir, start_to_close_timeout=timedelta(seconds=5)
            )


# ------------------------------------------------------------------ hello_search_attributes
customer_id_key = SearchAttributeKey.for_keyword("CustomerId")
misc_data_key = SearchAttributeKey.for_text("MiscData")


@workflow.defn
class SearchAttributesWorkflow:
    @workflow.run
    async def run(self) -> None:
        # Wait a couple seconds, then alter the keyword search attribute
        await asyncio.sleep(2)
        workflow.upsert_search_attributes([customer_id_key.value_set("customer_2")])
