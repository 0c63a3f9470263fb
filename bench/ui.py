"""The web UI's weight and first load over loopback, in Debian's chromium.

Bundle: every file the gateway serves at /ui, raw and gzip-compressed (what a browser fetching
it compressed would move; the gateway itself sends it as is). First load: ``--loads`` fresh
browser contexts (no cache) each open ``/ui/`` against a real stack (Kafka, one engine, the
gateway with an API key given to the page) holding ``--runs`` runs; measured in the page from
navigation start to the DOM ready, to the load event, and to the runs table showing its first
page (the app's first API answer drawn).

    python -m bench.ui --report bench/results/ui.md
"""

from __future__ import annotations

import gzip
import json
import re
import shutil
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import sync_playwright

from bench.common import arguments, local_stack, percentile, report_header, save_report
from ledgerflow.api.ui import UI_DIR

FLOWS = "tests.testapps.flows"
ACTS = "tests.testapps.acts"


def bundle() -> list[dict[str, Any]]:
    """Each shipped file: its path under /ui, bytes, and bytes gzip-compressed."""
    rows = []
    for file in sorted(UI_DIR.rglob("*")):
        if file.is_file() and file.name != "build-info.json":
            data = file.read_bytes()
            name = file.relative_to(UI_DIR).as_posix()
            rows.append({"file": name, "bytes": len(data), "gzip": len(gzip.compress(data))})
    return rows


def main() -> None:
    parser = arguments(__doc__, ".ledgerflow/bench", "bench/results/ui.md", partitions=4)
    parser.add_argument("--loads", type=int, default=20, help="Fresh page loads measured.")
    parser.add_argument("--runs", type=int, default=50, help="Runs the stack holds (the list's first page).")
    args = parser.parse_args()
    chromium = shutil.which("chromium")
    if chromium is None:
        raise SystemExit("Debian's chromium is needed: scripts/install-chromium.sh")
    files = bundle()
    timings: dict[str, list[float]] = {"dom_ready_ms": [], "load_ms": [], "runs_drawn_ms": []}
    with local_stack(args, "bench-ui") as cluster:
        cluster.pythonpath.append(str(Path(__file__).resolve().parents[1]))
        engine = cluster.engine([FLOWS])
        cluster.worker([ACTS])
        gateway = cluster.gateway()
        engine.wait_ready(120)
        gateway.wait_ready(120)
        with httpx.Client(base_url=gateway.url, headers=gateway.headers, timeout=10) as api:
            for i in range(args.runs):
                body = {"id": f"ui-bench-{i}", "type": "ThreeSteps", "input": i}
                assert api.post("/api/v1/workflows", json=body).status_code == 202
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
            for load in range(args.loads + 1):  # the first warms the gateway's routes, not counted
                context = browser.new_context(viewport={"width": 1280, "height": 800})
                key = cluster.api_key
                context.add_init_script(f"sessionStorage.setItem('ledgerflow.apiKey', {key!r})")
                page = context.new_page()
                page.goto(f"{gateway.url}/ui/")
                page.locator("tbody tr").first.wait_for(timeout=30_000)
                drawn = page.evaluate("performance.now()")
                navigation = page.evaluate("JSON.stringify(performance.getEntriesByType('navigation')[0])")
                entry = json.loads(navigation)
                if load:
                    timings["dom_ready_ms"].append(entry["domContentLoadedEventEnd"])
                    timings["load_ms"].append(entry["loadEventEnd"])
                    timings["runs_drawn_ms"].append(drawn)
                context.close()
            browser.close()
    page = (UI_DIR / "index.html").read_text()
    first = {"index.html", *re.findall(r'(?:src|href)="/ui/([^"]+)"', page)}
    figures = {
        "bundle": files,
        "bundle_bytes": sum(f["bytes"] for f in files),
        "bundle_gzip": sum(f["gzip"] for f in files),
        "first_page_bytes": sum(f["bytes"] for f in files if f["file"] in first),
        "first_page_gzip": sum(f["gzip"] for f in files if f["file"] in first),
        "loads": args.loads,
        "runs": args.runs,
        **{f"{name}_p50": percentile(values, 50) for name, values in timings.items()},
        **{f"{name}_p90": percentile(values, 90) for name, values in timings.items()},
    }
    lines = report_header(
        "The web UI: bundle weight and first load over loopback",
        "one broker, one engine, one worker, the gateway (API key on) and Debian's chromium on one machine",
        f"python -m bench.ui --loads {args.loads} --runs {args.runs}",
    )
    lines += [
        "## Bundle (what /ui serves)",
        "",
        "| file | bytes | gzip bytes |",
        "|---|---|---|",
        *(f"| `{f['file']}` | {f['bytes']:,} | {f['gzip']:,} |" for f in files),
        f"| all | {figures['bundle_bytes']:,} | {figures['bundle_gzip']:,} |",
        f"| what a first page loads (index.html and the files it names) | {figures['first_page_bytes']:,} | "
        f"{figures['first_page_gzip']:,} |",
        "",
        "React Flow (the DAG editor, a DAG run's graph) is in chunks of its own, loaded when those "
        "pages open.",
        "",
        f"## First load: {args.loads} fresh browser contexts (no cache), the stack holding {args.runs} runs",
        "",
        "Milliseconds from navigation start, measured in the page.",
        "",
        "| to | P50 ms | P90 ms |",
        "|---|---|---|",
        f"| DOM ready | {figures['dom_ready_ms_p50']:.1f} | {figures['dom_ready_ms_p90']:.1f} |",
        f"| load event | {figures['load_ms_p50']:.1f} | {figures['load_ms_p90']:.1f} |",
        f"| runs table drawn (first API answer) | {figures['runs_drawn_ms_p50']:.1f} | "
        f"{figures['runs_drawn_ms_p90']:.1f} |",
    ]
    save_report(args.report, lines, figures)


if __name__ == "__main__":
    main()
