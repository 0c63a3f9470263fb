"""Schedules on a real broker and engine: a cron schedule fires once per fire time, survives a
kill -9 with exactly the fires inside its catch-up window started, each overlap policy does what
it says against a run longer than the interval, and pause, unpause, trigger, backfill, update
and delete work through the Python client and the gateway."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from ledgerflow import (
    Client,
    IntervalSpec,
    Schedule,
    ScheduleAction,
    ScheduleAlreadyRunningError,
    ScheduleNotFoundError,
    SchedulePolicy,
    ScheduleSpec,
)
from ledgerflow.local.processes import Cluster
from ledgerflow.schemas.schedules import OverlapPolicy
from tests.cli.test_cli import cli_json
from tests.fixtures import ACTS, FLOWS

pytestmark = pytest.mark.kafka


def every_second(workflow_type: str = "Sleeper", input: Any = 0, **policy: Any) -> Schedule:
    return Schedule(
        action=ScheduleAction(workflow_type=workflow_type, input=input),
        spec=ScheduleSpec(cron_expressions=["* * * * * *"]),
        policy=SchedulePolicy(**policy),
    )


def fire_times(client: Client, schedule_id: str) -> list[int]:
    """The fire time (Unix seconds) of every run the schedule started, from the runs' ids."""
    rows = client.list_workflows(query=f"TemporalScheduledById = '{schedule_id}'", limit=1000)
    stamps = [row["workflow_id"].removeprefix(f"{schedule_id}-") for row in rows]
    return sorted(
        int(datetime.strptime(s, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()) for s in stamps
    )


def wait_for(check: Any, timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def test_a_cron_schedule_every_second_starts_one_run_per_fire_time(running: Cluster, client: Client) -> None:
    handle = client.create_schedule("tick", every_second(overlap="allow_all"))
    with pytest.raises(ScheduleAlreadyRunningError):
        client.create_schedule("tick", every_second())
    time.sleep(6)
    handle.pause(note="enough")
    described = handle.describe()
    assert described.schedule.state.paused and described.schedule.state.note == "enough"
    assert described.info.next_fire_times == []
    times = wait_for(lambda: (t := fire_times(client, "tick")) and len(t) == described.info.actions and t)
    assert 5 <= len(times) <= 8, times
    assert times == list(range(times[0], times[0] + len(times))), "one run per second, no gap, no repeat"
    for row in client.list_workflows(query="TemporalScheduledById = 'tick'", limit=100):
        stamp = row["search_attributes"]["TemporalScheduledStartTime"]["value"]
        assert row["workflow_id"] == "tick-" + datetime.fromisoformat(stamp).strftime("%Y-%m-%dT%H:%M:%SZ")
    wait_for(lambda: not handle.describe().info.running)
    assert {a.status for a in handle.describe().info.recent_actions} == {"COMPLETED"}

    handle.unpause()
    assert len(handle.describe().info.next_fire_times) == 10
    handle.delete()
    with pytest.raises(ScheduleNotFoundError):
        handle.describe()
    assert "tick" not in [s.id for s in client.list_schedules()]


def test_after_a_kill_9_the_fires_inside_the_catchup_window_start_once_and_older_ones_are_missed(
    cluster: Cluster, client: Client
) -> None:
    engine = cluster.engine([FLOWS])
    engine.wait_ready()
    handle = client.create_schedule("catchup", every_second(overlap="allow_all", catchup_window=10))
    time.sleep(3)
    engine.kill()
    time.sleep(25)  # 25 fire times pass with no engine
    cluster.restart(engine).wait_ready()
    wait_for(lambda: handle.describe().info.missed > 0, 60)
    time.sleep(2)
    handle.pause()
    info = handle.describe().info
    times = wait_for(lambda: (t := fire_times(client, "catchup")) and len(t) == info.actions and t, 60)
    assert len(times) == len(set(times)) == info.actions
    gaps = [(a, b) for a, b in itertools.pairwise(times) if b - a > 1]
    assert len(gaps) == 1, times  # the fires older than the window, and only those
    before, after = gaps[0]
    assert after - before - 1 == info.missed
    assert info.missed >= 10  # 25 s down, 10 s window (restore time makes it more)
    resumed = [t for t in times if t >= after]
    assert resumed == list(range(after, after + len(resumed)))
    assert len(resumed) >= 10  # every fire of the window was started: none lost


POLICIES: list[OverlapPolicy] = [
    "skip",
    "buffer_one",
    "buffer_all",
    "cancel_other",
    "terminate_other",
    "allow_all",
]


def test_each_overlap_policy_against_runs_longer_than_the_interval(running: Cluster, client: Client) -> None:
    handles = {}
    for policy in POLICIES:
        schedule = Schedule(
            action=ScheduleAction(workflow_type="Sleeper", input=2.5),
            spec=ScheduleSpec(intervals=[IntervalSpec(every=1)]),
            policy=SchedulePolicy(overlap=policy),
        )
        handles[policy] = client.create_schedule(f"o-{policy.replace('_', '-')}", schedule)
    time.sleep(6)
    for handle in handles.values():
        handle.pause()
    info = {policy: handle.describe().info for policy, handle in handles.items()}

    def statuses(policy: OverlapPolicy) -> list[str | None]:
        return [a.status for a in handles[policy].describe().info.recent_actions]

    assert info["skip"].actions in (2, 3) and info["skip"].skipped >= 3
    assert info["buffer_one"].skipped >= 2 and info["buffer_one"].buffered <= 1
    assert info["buffer_all"].buffered >= 2 and info["buffer_all"].skipped == 0
    assert info["allow_all"].actions >= 5 and len(info["allow_all"].running) >= 2
    assert info["terminate_other"].actions >= 5 and len(info["terminate_other"].running) <= 1
    assert "TERMINATED" in wait_for(lambda: statuses("terminate_other"))
    assert wait_for(lambda: "CANCELED" in statuses("cancel_other")), statuses("cancel_other")
    # a buffered start runs once the run before it closed: never two at once
    assert wait_for(lambda: handles["buffer_one"].describe().info.buffered == 0, 15)
    assert all(len(i.running) <= 1 for p, i in info.items() if p != "allow_all")
    for policy in ("skip", "buffer_one", "buffer_all"):
        assert "TERMINATED" not in statuses(policy) and "CANCELED" not in statuses(policy)


def test_trigger_backfill_update_and_the_gateway(running: Cluster, client: Client) -> None:
    day = datetime(2026, 1, 5, tzinfo=UTC)
    schedule = Schedule(
        action=ScheduleAction(workflow_type="Sleeper", input=0, workflow_id="report"),
        spec=ScheduleSpec(
            cron_expressions=["0 9 * * *"], time_zone="Europe/Paris", end_at=day + timedelta(days=3)
        ),
        policy=SchedulePolicy(overlap="buffer_all"),
    )
    handle = client.create_schedule("daily", schedule)
    handle.backfill(day, day + timedelta(days=2, hours=12))  # 09:00 Paris on the 5th, 6th, 7th
    ids = ["report-2026-01-05T08:00:00Z", "report-2026-01-06T08:00:00Z", "report-2026-01-07T08:00:00Z"]

    def completed() -> list[str]:
        rows = client.list_workflows(query="TemporalScheduledById = 'daily'")
        return sorted(r["workflow_id"] for r in rows if r["status"] == "COMPLETED")

    assert wait_for(lambda: completed() == ids, 30), completed()
    assert handle.describe().info.next_fire_times == []  # its end is in the past

    handle.update(
        lambda d: d.schedule.model_copy(update={"spec": ScheduleSpec(cron_expressions=["0 9 * * *"])})
    )
    assert len(handle.describe().info.next_fire_times) == 10
    handle.trigger()
    assert wait_for(lambda: handle.describe().info.actions == 4)

    gateway = running.gateway([ACTS])
    gateway.wait_ready()
    assert gateway.url is not None
    body: dict[str, Any] = {
        "scheduleId": "gw",
        "schedule": {
            "action": {"workflow_type": "Sleeper", "input": 0},
            "spec": {"cron_expressions": ["*/5 * * * *"], "time_zone": "America/New_York"},
        },
    }
    with httpx.Client(base_url=gateway.url, headers=gateway.headers, timeout=20) as api:
        created = api.post("/api/v1/schedules", json=body)
        assert created.status_code == 201, created.text
        assert len(created.json()["info"]["next_fire_times"]) == 10
        assert api.post("/api/v1/schedules", json=body).status_code == 409
        paused = api.post("/api/v1/schedules/gw/pause", json={"note": "hold"})
        assert paused.status_code == 200 and paused.json()["schedule"]["state"]["note"] == "hold"
        triggered = api.post("/api/v1/schedules/gw/trigger", json={})
        assert triggered.json()["info"]["actions"] == 1
        listed = api.get("/api/v1/schedules").json()["schedules"]
        assert {s["scheduleId"] for s in listed} >= {"gw", "daily"}
        spec = {"cron_expressions": ["61 * * * *"]}
        bad = api.post(
            "/api/v1/schedules", json={"scheduleId": "bad", "schedule": {**body["schedule"], "spec": spec}}
        )
        assert bad.status_code == 422 and "cron_expressions" in bad.text, bad.text
        huge = {"start_at": "2020-01-01T00:00:00Z", "end_at": "2026-01-01T00:00:00Z"}
        refused = api.post("/api/v1/schedules/gw/backfill", json=huge)
        assert refused.status_code == 422 and "more than 1000 fire times" in refused.text, refused.text
        dag = {
            "id": "every-second-dag",
            "nodes": [{"id": "a", "type": "echo", "input": {"x": 1}}],
            "schedule": {"spec": {"intervals": [{"every": 1}]}, "policy": {"overlap": "allow_all"}},
        }
        registered = api.post("/api/v1/workflows", json=dag)
        assert registered.status_code == 201, registered.text
        assert registered.json()["schedule"]["schedule"]["action"]["workflow_type"] == "every-second-dag"

        def dag_runs() -> list[str]:
            rows = client.list_workflows(query="WorkflowType = 'every-second-dag'")
            return [r["workflow_id"] for r in rows if r["status"] == "COMPLETED"]

        assert len(wait_for(lambda: len(dag_runs()) >= 2 and dag_runs(), 30)) >= 2
        assert all(i.startswith("every-second-dag-") for i in dag_runs())
        assert api.post("/api/v1/schedules/every-second-dag/pause", json={}).status_code == 200
        assert api.delete("/api/v1/schedules/gw").status_code == 204
        assert api.get("/api/v1/schedules/gw").status_code == 404

    assert "daily" in [row["id"] for row in cli_json(running, "schedule list")]
    assert cli_json(running, "schedule describe", "daily")["info"]["actions"] == 4
