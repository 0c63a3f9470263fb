"""Temporal's hello samples (tests/sdk/hello.py), each driven as the sample's ``main`` drives it,
with the invariants checked after: on a real broker, engine and worker, and again on the
in-process test environment (``ledgerflow.testing.WorkflowEnvironment``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ledgerflow import (
    ActivityError,
    ApplicationError,
    Client,
    NonDeterminismError,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowAlreadyStartedError,
    WorkflowFailedError,
    WorkflowHistory,
    WorkflowUpdateFailedError,
    workflow,
)
from ledgerflow.local.processes import Cluster
from ledgerflow.testing import Replayer, WorkflowEnvironment
from tests.fixtures import assert_invariants
from tests.sdk.hello import (
    ActivityMethodWorkflow,
    ActivityRetryWorkflow,
    AsyncCompletionWorkflow,
    CancellationWorkflow,
    ExceptionWorkflow,
    Greeting,
    GreetingParentWorkflow,
    GreetingQueryWorkflow,
    GreetingSignalWorkflow,
    GreetingUpdateWorkflow,
    GreetingWorkflow,
    HeartbeatWorkflow,
    LanguageWorkflow,
    LocalActivityWorkflow,
    LoopingWorkflow,
    SayHelloWorkflow,
    SearchAttributesWorkflow,
    SignalWithStartWorkflow,
    customer_id_key,
    misc_data_key,
)
from tests.waits import wait_until

HELLO = "tests.sdk.hello"


@pytest.fixture(params=[pytest.param("kafka", marks=pytest.mark.kafka), "in-process"])
def hello(request: pytest.FixtureRequest) -> Iterator[Client]:
    """A client of the samples' workflows and activities, each test run twice: on a real broker
    with an engine and a worker, and on the in-process test environment (time-skipping)."""
    if request.param == "in-process":
        with WorkflowEnvironment.start_time_skipping(modules=[HELLO]) as env:
            yield env.client
        return
    cluster: Cluster = request.getfixturevalue("cluster")
    engine = cluster.engine([HELLO])
    cluster.worker([HELLO])
    engine.wait_ready()
    with cluster.client() as client:
        yield client


def test_hello_signal(hello: Client) -> None:
    handle = hello.start_workflow(GreetingSignalWorkflow.run, id="hello-signal-workflow-id")
    handle.signal(GreetingSignalWorkflow.submit_greeting, "user1")
    handle.signal(GreetingSignalWorkflow.submit_greeting, "user2")
    handle.signal(GreetingSignalWorkflow.submit_greeting, "user3")
    handle.signal(GreetingSignalWorkflow.exit)
    assert handle.result(timeout=30) == ["Hello, user1", "Hello, user2", "Hello, user3"]
    assert_invariants(hello, "hello-signal-workflow-id", HELLO)


def test_hello_query(hello: Client) -> None:
    handle = hello.start_workflow(GreetingQueryWorkflow.run, "World", id="hello-query-workflow-id")
    # asked right after the start, which the engine may not have applied yet
    assert handle.query(GreetingQueryWorkflow.greeting) == "Hello, World!"
    time.sleep(3)
    assert handle.query(GreetingQueryWorkflow.greeting) == "Goodbye, World!"
    assert handle.result(timeout=30) is None
    timers = [e for e in hello.history("hello-query-workflow-id") if e.kind == "timer_started"]
    assert len(timers) == 1  # asyncio.sleep(2) was a durable timer
    assert_invariants(hello, "hello-query-workflow-id", HELLO)


def test_signal_with_start_starts_once_and_signals_the_running_workflow(hello: Client) -> None:
    first = hello.start_workflow(
        SignalWithStartWorkflow.run,
        "Hello",
        id="signal-with-start",
        start_signal=SignalWithStartWorkflow.add_name,
        start_signal_args=["Ada"],
    )
    assert not first.already_started
    # no run is lost to the race: this finds the first run open, or the engine sends it there
    second = hello.start_workflow(
        SignalWithStartWorkflow.run,
        "Hello",
        id="signal-with-start",
        start_signal="add_name",
        start_signal_args=["Grace"],
    )
    assert first.result(timeout=30) == ["Hello, Ada!", "Hello, Grace!"]
    assert second.result(timeout=30) == ["Hello, Ada!", "Hello, Grace!"]
    history = hello.history("signal-with-start")
    # the start's signal is applied once the run method waits (its wait_condition's timer)
    assert [e.kind for e in history[:3]] == ["workflow_started", "timer_started", "signal_received"]
    assert hello.describe("signal-with-start")["previous_runs"] == []  # one run
    assert_invariants(hello, "signal-with-start", HELLO)


def test_hello_update(hello: Client) -> None:
    handle = hello.start_workflow(GreetingUpdateWorkflow.run, id="hello-update-workflow-id")
    update_result = handle.execute_update(GreetingUpdateWorkflow.update_workflow_status)
    assert update_result == "Workflow status updated"
    assert handle.result(timeout=30) == "Hello, World!"
    kinds = [e.kind for e in hello.history("hello-update-workflow-id")]
    assert kinds == ["workflow_started", "update_accepted", "update_completed", "workflow_completed"]
    assert_invariants(hello, "hello-update-workflow-id", HELLO)


def test_an_update_is_validated_rejected_by_name_and_runs_once_per_id(hello: Client) -> None:
    handle = hello.start_workflow(LanguageWorkflow.run, id="language")
    with pytest.raises(WorkflowUpdateFailedError, match="de is not supported") as rejected:
        handle.execute_update(LanguageWorkflow.set_language, "de")
    assert rejected.value.failure.type == "ValueError"
    assert handle.execute_update(LanguageWorkflow.set_language, "fr", id="change-1") == "en"
    # the same update id again: applied once, its outcome answered again
    assert handle.execute_update(LanguageWorkflow.set_language, "fr", id="change-1") == "en"
    with pytest.raises(WorkflowUpdateFailedError, match="no update 'set_colour'"):
        hello.execute_update("language", "set_colour", "red")
    handle.signal(LanguageWorkflow.approve)
    assert handle.result(timeout=30) == "Bonjour, World! (1 change)"
    kinds = [e.kind for e in hello.history("language")]
    assert kinds.count("update_rejected") == 2 and kinds.count("update_accepted") == 1
    assert_invariants(hello, "language", HELLO)


def test_a_retry_resumes_from_the_last_heartbeat_of_the_attempt_before(hello: Client) -> None:
    handle = hello.start_workflow(HeartbeatWorkflow.run, 5, id="heartbeat")
    assert handle.result(timeout=30) == [3, 5, 2]  # attempt 2 started from 3, as heartbeated
    assert_invariants(hello, "heartbeat", HELLO)


@pytest.mark.kafka
def test_hello_patch_a_deploy_keeps_a_run_in_flight_on_its_recorded_path(cluster: Cluster) -> None:
    before = cluster.engine(["tests.sdk.patch_before"], name="engine-before")
    cluster.worker(["tests.sdk.patch_acts"])
    before.wait_ready()
    with cluster.client() as client:
        old = client.start_workflow("PatchWorkflow", id="patch-old")
        wait_until(
            lambda: "activity_scheduled" in [e.kind for e in client.history("patch-old")],
            "the old code to schedule its activity",
            20,
        )
        before.kill()  # the deploy: the patched code takes over while the activity runs
        after = cluster.engine(["tests.sdk.patch_after"], name="engine-after")
        after.wait_ready()
        new = client.start_workflow("PatchWorkflow", id="patch-new")
        assert old.result(timeout=60) == "pre-patch"
        assert new.result(timeout=60) == "post-patch"
        assert "patch_recorded" in [e.kind for e in client.history("patch-new")]
        assert "patch_recorded" not in [e.kind for e in client.history("patch-old")]
        for workflow_id in ("patch-old", "patch-new"):  # both replay on the patched code
            assert_invariants(client, workflow_id, "tests.sdk.patch_after")


def test_hello_activity_with_dataclasses_and_a_typed_result(hello: Client) -> None:
    handle = hello.start_workflow(GreetingWorkflow.run, "World", id="hello-activity-workflow-id")
    assert handle.result(timeout=30) == Greeting("Hello, World!", 13)  # the run method's return type
    assert hello.result("hello-activity-workflow-id") == {"text": "Hello, World!", "length": 13}
    assert hello.result("hello-activity-workflow-id", result_type=Greeting) == Greeting("Hello, World!", 13)
    assert_invariants(hello, "hello-activity-workflow-id", HELLO)


def test_hello_async_activity_completion(hello: Client, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    handle = hello.start_workflow(AsyncCompletionWorkflow.run, str(token_file), id="async-completion")
    token = wait_until(
        lambda: token_file.exists() and token_file.read_text(), "the activity's task token", 20
    )
    activity_handle = hello.get_async_activity_handle(token)
    activity_handle.heartbeat("half way")
    time.sleep(0.5)  # the attempt is done at the worker, and still pending at the engine
    assert hello.describe("async-completion")["status"] == "RUNNING"
    activity_handle.complete("Hello, World!")
    assert handle.result(timeout=30) == "Hello, World!"
    activity_handle.complete("again")  # the attempt is over: dropped, as any late result
    assert handle.result(timeout=5) == "Hello, World!"
    with pytest.raises(ValueError, match="not a Ledgerflow task token"):
        hello.get_async_activity_handle("some-other-token")
    assert_invariants(hello, "async-completion", HELLO)


def test_hello_activity_method(hello: Client) -> None:
    handle = hello.start_workflow(ActivityMethodWorkflow.run, id="hello-activity-method-workflow-id")
    assert handle.result(timeout=30) == "orders updated (1)"  # run bound to the module's object
    assert_invariants(hello, "hello-activity-method-workflow-id", HELLO)


def test_id_conflict_and_reuse_policies_at_the_client(hello: Client) -> None:
    first = hello.start_workflow(LanguageWorkflow.run, id="policies")
    first.describe()  # applied (a start racing it is refused by the engine instead: a dead letter)
    with pytest.raises(WorkflowAlreadyStartedError, match=first.run_id or "?"):
        hello.start_workflow(LanguageWorkflow.run, id="policies", id_conflict_policy="fail")
    assert hello.start_workflow(LanguageWorkflow.run, id="policies").already_started  # use_existing
    second = hello.start_workflow(
        LanguageWorkflow.run, id="policies", id_conflict_policy="terminate_existing"
    )
    assert second.run_id != first.run_id and not second.already_started
    with pytest.raises(WorkflowFailedError) as ended:
        first.result(timeout=30)
    assert ended.value.status == "TERMINATED"
    second.signal(LanguageWorkflow.approve)
    assert second.result(timeout=30) == "Hello, World! (0 change)"
    with pytest.raises(WorkflowAlreadyStartedError, match="COMPLETED"):
        hello.start_workflow(
            LanguageWorkflow.run, id="policies", id_reuse_policy="allow_duplicate_failed_only"
        )
    with pytest.raises(WorkflowAlreadyStartedError):
        hello.start_workflow(LanguageWorkflow.run, id="policies", id_reuse_policy="reject_duplicate")
    assert hello.describe("policies")["previous_runs"] == [first.run_id]
    assert_invariants(hello, "policies", HELLO)


def test_hello_exception_the_caller_follows_the_chain_to_the_activitys_error(hello: Client) -> None:
    handle = hello.start_workflow(ExceptionWorkflow.run, "World", id="hello-exception-workflow-id")
    with pytest.raises(WorkflowFailedError) as ended:
        handle.result(timeout=30)
    assert ended.value.status == "FAILED"
    activity_error = ended.value.cause
    assert isinstance(activity_error, ActivityError)
    assert activity_error.activity_type == "compose_greeting_failing"
    application_error = activity_error.cause
    assert isinstance(application_error, ApplicationError)
    assert application_error.type == "RuntimeError"
    assert application_error.message == "Intentionally failing to greet World"
    failed = [e for e in handle.history() if e.kind == "activity_attempt_failed"]
    assert len(failed) == 1, "maximum_attempts=2: one retry, then the failure is final"
    described = hello.describe("hello-exception-workflow-id")["failure"]
    assert (described["type"], described["cause"]["type"]) == ("ActivityError", "RuntimeError")
    assert_invariants(hello, "hello-exception-workflow-id", HELLO)


def test_hello_local_activity(hello: Client) -> None:
    handle = hello.start_workflow(LocalActivityWorkflow.run, "World", id="hello-local-activity-workflow-id")
    assert handle.result(timeout=30) == "Hello, World!"
    assert_invariants(hello, "hello-local-activity-workflow-id", HELLO)


def test_hello_activity_retry(hello: Client) -> None:
    handle = hello.start_workflow(ActivityRetryWorkflow.run, "World", id="hello-activity-retry-workflow-id")
    assert handle.result(timeout=30) == "Hello, World! (attempt 4)"
    failed = [e for e in handle.history() if e.kind == "activity_attempt_failed"]
    assert [e.attempt for e in failed] == [1, 2, 3]
    assert_invariants(hello, "hello-activity-retry-workflow-id", HELLO)


def test_hello_child_workflow(hello: Client) -> None:
    handle = hello.start_workflow(GreetingParentWorkflow.run, "World", id="hello-child-workflow-workflow-id")
    assert handle.result(timeout=30) == "Hello, World!"
    child = hello.describe("hello-child-workflow-workflow-child-id")
    assert (
        child["status"] == "COMPLETED" and child["parent_workflow_id"] == "hello-child-workflow-workflow-id"
    )
    for workflow_id in ("hello-child-workflow-workflow-id", "hello-child-workflow-workflow-child-id"):
        assert_invariants(hello, workflow_id, HELLO)


def test_hello_continue_as_new(hello: Client) -> None:
    handle = hello.start_workflow(LoopingWorkflow.run, 0, id="hello-continue-as-new-workflow-id")
    assert handle.result(timeout=30) == 5
    first = hello.history("hello-continue-as-new-workflow-id", handle.run_id)
    assert first[-1].kind == "workflow_continued_as_new"
    assert_invariants(hello, "hello-continue-as-new-workflow-id", HELLO)


def test_hello_search_attributes(hello: Client) -> None:
    handle = hello.start_workflow(
        SearchAttributesWorkflow.run,
        id="search-attributes-workflow-id",
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(customer_id_key, "customer_1"),
                SearchAttributePair(misc_data_key, "customer_1_data"),
            ]
        ),
    )
    first = TypedSearchAttributes.from_json(handle.describe()["search_attributes"])
    assert first.get(customer_id_key) == "customer_1" and first.get(misc_data_key) == "customer_1_data"
    handle.result(timeout=30)
    second = TypedSearchAttributes.from_json(handle.describe()["search_attributes"])
    assert second.get(customer_id_key) == "customer_2"
    found = hello.list_workflows(query="CustomerId = 'customer_2' AND MiscData = 'CUSTOMER_1_DATA'")
    assert [row["workflow_id"] for row in found] == ["search-attributes-workflow-id"]
    assert hello.count_workflows("CustomerId = 'customer_1'") == 0
    assert_invariants(hello, "search-attributes-workflow-id", HELLO)


def test_hello_parallel_activity(hello: Client) -> None:
    handle = hello.start_workflow(SayHelloWorkflow.run, id="hello-parallel-activity-workflow-id")
    assert handle.result(timeout=30) == [f"Hello, user{i}!" for i in (1, 2, 3, 4)]
    kinds = [e.kind for e in handle.history()]
    first_result = min(i for i, kind in enumerate(kinds) if kind == "activity_completed")
    assert kinds[:first_result].count("activity_scheduled") == 4, "all four ran at once"
    assert_invariants(hello, "hello-parallel-activity-workflow-id", HELLO)


def test_hello_cancellation(hello: Client, tmp_path: Path) -> None:
    handle = hello.start_workflow(
        CancellationWorkflow.run, str(tmp_path), id="hello-cancellation-workflow-id"
    )
    wait_until((tmp_path / "started").exists, "the activity to start", 20)
    handle.cancel()
    with pytest.raises(WorkflowFailedError) as ended:
        handle.result(timeout=30)
    assert ended.value.status == "CANCELED"
    wait_until((tmp_path / "cancelled").exists, "the activity to be told to stop", 10)
    assert (tmp_path / "cleanup").exists(), "the workflow's finally block ran its cleanup activity"
    assert_invariants(hello, "hello-cancellation-workflow-id", HELLO)


@workflow.defn(name="GreetingWorkflow")
class ReorderedGreetingWorkflow:
    """A deploy of GreetingWorkflow that sleeps before its activity: runs recorded by the old
    code do not replay on it."""

    @workflow.run
    async def run(self, name: str) -> Greeting:
        await workflow.sleep(1)
        return await GreetingWorkflow().run(name)


def test_a_replayer_checks_recorded_runs_against_new_code(hello: Client, tmp_path: Path) -> None:
    ids = [f"replayed-{i}" for i in range(3)]
    for workflow_id in ids:
        hello.start_workflow(GreetingWorkflow.run, workflow_id, id=workflow_id).result(timeout=30)
    runs = hello.list_workflows(workflow_type="GreetingWorkflow", limit=200)  # as the docs show
    assert sorted(r["workflow_id"] for r in runs) == ids
    histories = [hello.fetch_history(r["workflow_id"], r["run_id"]) for r in runs]
    exported = tmp_path / "history.json"
    exported.write_text(histories[0].to_json())  # as `ledgerflow history ID --export` writes it
    assert WorkflowHistory.from_json(exported.read_text()) == histories[0]

    results = Replayer(workflows=[GreetingWorkflow]).replay_workflows(histories)
    assert [r.run_id for r in results.results] == [h.run_id for h in histories]
    assert not results.failures
    assert [r.events for r in results.results] == [len(h.events) for h in histories] == [4, 4, 4]

    changed = Replayer(workflows=[ReorderedGreetingWorkflow])
    with pytest.raises(NonDeterminismError, match="start timer"):
        changed.replay_workflow(histories[0])
    reported = changed.replay_workflows(histories, raise_on_replay_failure=False)
    assert sorted(reported.failures) == sorted(h.run_id for h in histories)
    with pytest.raises(LookupError, match="GreetingWorkflow"):
        Replayer(workflows=[LanguageWorkflow]).replay_workflow(histories[0])
