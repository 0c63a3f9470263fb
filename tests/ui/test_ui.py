"""The web UI in a real browser (Debian's chromium, driven by Playwright) against a real stack:
Kafka, an engine, a worker and a gateway that asks for an API key.

Screenshots go to a temporary folder, or to ``LEDGERFLOW_UI_SCREENSHOTS`` (``make ui-screenshots``
writes the ones docs/ui/ and the README show)."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Browser, Page, expect, sync_playwright

from ledgerflow.local.processes import Cluster, NodeProcess
from tests.fixtures import ACTS, FLOWS

pytestmark = pytest.mark.kafka

DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


@dataclass
class Stack:
    cluster: Cluster
    gateway: NodeProcess
    shots: Path

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.gateway.url, headers=self.gateway.headers, timeout=10)

    def start(self, workflow_type: str, input: object, workflow_id: str) -> None:
        with self.api() as api:
            body = {"id": workflow_id, "type": workflow_type, "input": input}
            answer = api.post("/api/v1/workflows", json=body)
            assert answer.status_code == 202, answer.text


@pytest.fixture
def stack(cluster: Cluster, tmp_path: Path) -> Stack:
    engine = cluster.engine([FLOWS])
    cluster.worker([ACTS])
    gateway = cluster.gateway()
    engine.wait_ready()
    gateway.wait_ready()
    shots = Path(os.environ.get("LEDGERFLOW_UI_SCREENSHOTS") or tmp_path / "screenshots")
    shots.mkdir(parents=True, exist_ok=True)
    return Stack(cluster, gateway, shots)


@pytest.fixture
def browser() -> Iterator[Browser]:
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium package is not installed (make chromium installs it)"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        yield launched
        launched.close()


PAGE_ERRORS: dict[int, list[str]] = {}
"""Per page: what its console said of the content security policy, and uncaught errors."""


def new_page(browser: Browser, viewport: dict[str, int]) -> Page:
    page = browser.new_page(viewport=viewport)  # type: ignore[arg-type]
    errors = PAGE_ERRORS.setdefault(id(page), [])
    page.on("console", lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    return page


def signed_in(browser: Browser, stack: Stack, viewport: dict[str, int] = DESKTOP) -> Page:
    """A page of the UI that has been given the gateway's API key, on the runs list."""
    page = new_page(browser, viewport)
    page.goto(f"{stack.gateway.url}/ui")
    page.get_by_label("API key").fill(stack.cluster.api_key)
    page.get_by_role("button", name="Use").click()
    expect(page.get_by_role("heading", name="Runs")).to_be_visible()
    return page


def no_serious_violations(page: Page) -> None:
    """axe-core finds no serious or critical accessibility violation, and the page met no
    content security policy refusal and no uncaught error."""
    assert PAGE_ERRORS.get(id(page)) == [], PAGE_ERRORS.get(id(page))
    results = Axe().run(page)
    serious = [v for v in results.response["violations"] if v["impact"] in ("serious", "critical")]
    assert not serious, results.generate_report()


def test_a_run_is_listed_and_its_page_shows_it_completed_with_every_step_on_the_timeline(
    stack: Stack, browser: Browser
) -> None:
    stack.start("ThreeSteps", 1, "ui-three")
    page = signed_in(browser, stack)
    link = page.get_by_role("link", name="ui-three")
    expect(link).to_be_visible(timeout=30_000)  # the list refreshes itself
    no_serious_violations(page)
    page.screenshot(path=stack.shots / "runs.png", full_page=True)
    link.click()
    expect(page.get_by_test_id("run-status")).to_have_text("COMPLETED", timeout=30_000)
    rows = page.get_by_test_id("timeline-row")
    expect(rows).to_have_count(3, timeout=10_000)
    assert [rows.nth(i).get_attribute("data-status") for i in range(3)] == ["completed"] * 3
    expect(page.get_by_text("workflow_completed", exact=True)).to_be_visible()
    result = page.locator("details").filter(has=page.get_by_text("Result", exact=True)).locator("pre")
    expect(result).to_have_text("4")  # 1 + 3
    no_serious_violations(page)
    page.screenshot(path=stack.shots / "run.png", full_page=True)


def test_a_sleeping_run_is_canceled_from_its_page(stack: Stack, browser: Browser) -> None:
    stack.start("Sleeper", 3600, "ui-sleeper")
    page = signed_in(browser, stack)
    page.goto(f"{stack.gateway.url}/ui/#/runs/ui-sleeper")
    expect(page.get_by_test_id("run-status")).to_have_text("RUNNING", timeout=30_000)
    expect(page.get_by_test_id("timeline-row")).to_have_count(1, timeout=10_000)  # the timer
    page.once("dialog", lambda dialog: dialog.accept())  # "Cancel ui-sleeper?"
    page.get_by_role("button", name="Cancel run").click()
    expect(page.get_by_role("status")).to_have_text("cancel: accepted")
    expect(page.get_by_test_id("run-status")).to_have_text("CANCELED", timeout=30_000)
    expect(page.get_by_role("button", name="Terminate run")).to_be_disabled()
    page.screenshot(path=stack.shots / "run-canceled.png", full_page=True)


def test_a_missing_run_shows_the_gateway_s_404_and_a_closed_run_offers_no_actions(
    stack: Stack, browser: Browser
) -> None:
    stack.start("ThreeSteps", 5, "ui-done")
    page = signed_in(browser, stack)
    page.goto(f"{stack.gateway.url}/ui/#/runs/no-such-run")
    expect(page.get_by_role("alert")).to_contain_text("404", timeout=10_000)
    page.goto(f"{stack.gateway.url}/ui/#/runs/ui-done")
    expect(page.get_by_test_id("run-status")).to_have_text("COMPLETED", timeout=30_000)
    expect(page.get_by_role("button", name="Cancel run")).to_be_disabled()


def test_without_a_key_the_page_says_so_and_a_phone_screen_needs_no_sideways_scroll(
    stack: Stack, browser: Browser
) -> None:
    page = new_page(browser, PHONE)
    page.goto(f"{stack.gateway.url}/ui/")
    expect(page.get_by_role("alert")).to_contain_text("401", timeout=10_000)
    stack.start("ThreeSteps", 2, "ui-phone")
    phone = signed_in(browser, stack, PHONE)
    expect(phone.get_by_role("link", name="ui-phone")).to_be_visible(timeout=30_000)
    overflow = phone.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the runs page is {overflow}px wider than a phone's screen"
    phone.screenshot(path=stack.shots / "runs-phone.png", full_page=True)
    # a keyboard alone reaches the run's link and opens its page
    for _ in range(30):
        phone.keyboard.press("Tab")
        if phone.evaluate("document.activeElement.textContent") == "ui-phone":
            break
    else:
        raise AssertionError("30 presses of Tab did not reach the run's link")
    phone.keyboard.press("Enter")
    expect(phone.get_by_role("heading", name="ui-phone")).to_be_visible()
    expect(phone.get_by_test_id("run-status")).to_have_text("COMPLETED", timeout=30_000)


def test_a_dag_drawn_in_the_editor_is_registered_started_and_runs_every_node(
    stack: Stack, browser: Browser
) -> None:
    """Four nodes dragged from the palette and connected by dragging handle to handle; the
    gateway's refusal of a node's input shown on that node; once fixed, saved, started, and the
    run's page shows it completed with every node on the timeline."""
    page = signed_in(browser, stack)
    page.get_by_role("link", name="DAG editor").click()
    canvas = page.get_by_label("DAG canvas")
    expect(page.get_by_test_id("palette-echo")).to_be_visible(timeout=10_000)
    for i, node_type in enumerate(["sequence.numbers", "aggregate.sum", "aggregate.count", "echo"]):
        page.get_by_test_id(f"palette-{node_type}").drag_to(
            canvas, target_position={"x": 80 + 220 * (i % 2), "y": 60 + 130 * i}
        )
    nodes = {
        "numbers": "sequence_numbers_1",
        "sum": "aggregate_sum_1",
        "count": "aggregate_count_1",
        "echo": "echo_1",
    }
    for node_id in nodes.values():
        expect(page.get_by_test_id(f"node-{node_id}")).to_be_visible()

    def connect(source: str, target: str) -> None:
        out = page.get_by_test_id(f"node-{source}").locator(".react-flow__handle-right")
        into = page.get_by_test_id(f"node-{target}").locator(".react-flow__handle-left")
        out.drag_to(into)

    connect(nodes["numbers"], nodes["sum"])
    connect(nodes["numbers"], nodes["count"])
    connect(nodes["sum"], nodes["echo"])
    # the last edge without a mouse drag: the selected node's "Connect to" list
    page.get_by_test_id(f"node-{nodes['count']}").click()
    page.get_by_label("Connect to").select_option(nodes["echo"])
    expect(page.get_by_text("4 node(s), 4 edge(s)")).to_be_visible()

    def set_input(node_id: str, value: str) -> None:
        page.get_by_test_id(f"node-{node_id}").click()
        page.get_by_role("textbox", name="Node input").fill(value)

    numbers = "{{ nodes.sequence_numbers_1.output.numbers }}"
    set_input(nodes["sum"], f'{{"items": "{numbers}"}}')
    set_input(nodes["count"], f'{{"items": "{numbers}"}}')
    set_input(nodes["echo"], '{"sum": "{{ nodes.aggregate_sum_1.output.sum }}"}')
    page.get_by_label("DAG id").fill("ui-drawn")
    page.get_by_role("button", name="Save (register)").click()  # sequence.numbers has no stop yet
    expect(page.get_by_role("status")).to_contain_text("not registered")
    marked = page.get_by_test_id(f"node-{nodes['numbers']}")
    expect(marked).to_have_class(re.compile("step-problem"))
    expect(marked.get_by_role("alert")).to_contain_text("stop")
    expect(page.get_by_test_id(f"node-{nodes['sum']}")).not_to_have_class(re.compile("step-problem"))
    page.screenshot(path=stack.shots / "editor-refused.png")
    set_input(nodes["numbers"], '{"stop": 5}')
    page.get_by_role("button", name="Save (register)").click()
    expect(page.get_by_role("status")).to_contain_text("registered ui-drawn: 4 nodes, 4 edges")
    expect(marked).not_to_have_class(re.compile("step-problem"))
    no_serious_violations(page)
    page.screenshot(path=stack.shots / "editor.png")
    page.get_by_role("button", name="Start a run").click()
    expect(page.get_by_test_id("run-status")).to_have_text("COMPLETED", timeout=60_000)
    rows = page.get_by_test_id("timeline-row")
    expect(rows).to_have_count(4, timeout=10_000)
    for node_id in nodes.values():
        expect(page.locator("svg text").filter(has_text=node_id)).to_have_count(1)
        # the run's graph (the DAG pinned at its start), each node coloured by its step
        expect(page.get_by_test_id(f"graph-node-{node_id}")).to_have_attribute("data-state", "completed")
    no_serious_violations(page)
    expect(page.locator("pre").filter(has_text='"sum": 10').first).to_be_visible()  # 0+1+2+3+4
    page.screenshot(path=stack.shots / "run-dag.png", full_page=True)


def test_a_schedule_is_paused_unpaused_and_triggered_from_the_schedules_page(
    stack: Stack, browser: Browser
) -> None:
    body = {
        "scheduleId": "ui-nightly",
        "schedule": {
            "action": {"workflow_type": "ThreeSteps", "input": 1},
            "spec": {"cron_expressions": ["0 3 * * *"]},
        },
    }
    with stack.api() as api:
        created = api.post("/api/v1/schedules", json=body)
        assert created.status_code == 201, created.text
    page = signed_in(browser, stack)
    page.get_by_role("link", name="Schedules").click()
    row = page.get_by_test_id("schedule-ui-nightly")
    expect(row.get_by_test_id("schedule-state")).to_have_text("active", timeout=10_000)
    row.get_by_role("button", name="Pause ui-nightly").click()
    expect(page.get_by_role("status")).to_have_text("ui-nightly: pause done")
    expect(row.get_by_test_id("schedule-state")).to_contain_text("paused")
    row.get_by_role("button", name="Unpause ui-nightly").click()
    expect(row.get_by_test_id("schedule-state")).to_contain_text("active")
    row.get_by_role("button", name="Trigger ui-nightly").click()
    expect(row.get_by_test_id("schedule-actions")).to_have_text("1", timeout=10_000)
    no_serious_violations(page)
    page.screenshot(path=stack.shots / "schedules.png", full_page=True)
    with stack.api() as api:  # the trigger started a real run
        described = api.get("/api/v1/schedules/ui-nightly").json()
        assert described["info"]["actions"] == 1, described
    # one more from the form: a bad cron expression is refused with the gateway's reason, then
    # the schedule is created and its next ten fire times shown
    page.get_by_text("New schedule").click()
    page.get_by_label("Schedule id").fill("ui-hourly")
    page.get_by_label("Workflow type (or DAG id)").fill("ThreeSteps")
    page.get_by_label("Cron expression").fill("61 * * * *")
    page.get_by_label("Input (JSON)").fill("3")
    page.get_by_role("button", name="Create schedule").click()
    refused = page.get_by_role("status").filter(has_text="not created")
    expect(refused).to_contain_text("422")
    expect(refused).to_contain_text("cron_expressions")  # the field the gateway named
    page.get_by_label("Cron expression").fill("15 * * * *")
    page.get_by_role("button", name="Create schedule").click()
    expect(page.get_by_role("status").filter(has_text="created ui-hourly")).to_be_visible()
    expect(page.get_by_test_id("next-fires").locator("li")).to_have_count(10)
    expect(page.get_by_test_id("schedule-ui-hourly")).to_be_visible(timeout=10_000)
    no_serious_violations(page)
    page.screenshot(path=stack.shots / "schedules-created.png", full_page=True)


def test_the_cluster_page_shows_the_engine_its_partitions_and_their_moves(
    stack: Stack, browser: Browser
) -> None:
    page = signed_in(browser, stack)
    page.get_by_role("link", name="Cluster").click()
    expect(page.get_by_test_id("cluster-summary")).to_contain_text(
        "1 engine(s), 4 partition(s), every one owned", timeout=15_000
    )
    engine = page.get_by_test_id("cluster-engine")
    expect(engine).to_have_count(1)
    expect(engine).to_contain_text("0, 1, 2, 3")
    assigned = page.get_by_test_id("cluster-event").filter(has_text="PARTITIONS_ASSIGNED")
    expect(assigned.first).to_be_visible(timeout=15_000)
    no_serious_violations(page)
    page.screenshot(path=stack.shots / "cluster.png", full_page=True)
