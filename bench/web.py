"""The web UI's first paint and navigation on the 74-repo corpus, beside a bare page, in one run.

Builds the synthetic corpus (bench/corpus.py), serves it with a real hub on loopback and drives
Debian's chromium headless with Playwright (as tests/browser do). Two measures:

- first paint: a fresh page load of ``/#/`` until the dashboard has drawn its data
  (``statehub:view-ready``, marked by web/src/main.js), and the browser's own first contentful
  paint, each the median of ``--rounds`` loads (the static assets cached after the first, as a
  person's browser would have them);
- navigation: from setting ``location.hash`` to the view's ``statehub:view-ready``, for each view
  on the way dashboard -> workplans -> a workplan -> a task -> tasks -> a repo -> events, median
  over rounds.

The floor is a bare page (served by Playwright's router, no build, no framework) that fetches the
same JSON the view fetches, in the same parallel groups, and writes it into the page as text: what
any page showing those data must pay. Targets (issue 15): first paint < 1 s, navigation < 200 ms.

    .venv/bin/python bench/web.py [--repos 74] [--rounds 7]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from bench._hubs import free_port, start_hub  # noqa: E402
from bench.corpus import build_corpus  # noqa: E402
from statehub.hub import Hub  # noqa: E402
from statehub.settings import Settings  # noqa: E402

CHROMIUM = Path(os.environ.get("STATEHUB_CHROMIUM", "/usr/bin/chromium"))
FIRST_PAINT_TARGET_MS = 1000.0
NAVIGATION_TARGET_MS = 200.0

STATUSES = ("todo", "in-progress", "blocked", "done", "cancelled")


def view_requests(plan: str, task: str, repo: str) -> dict[str, tuple[str, list[list[str]]]]:
    """Each view's address and the JSON it asks for, in the groups it asks them in (web/src/pages.js
    and lists.js): what the floor page fetches for the same view."""
    return {
        "dashboard": (
            "#/",
            [
                [
                    "/repos",
                    "/workplans?status=active&limit=10",
                    "/events?desc=true&limit=8",
                    "/fleet/readiness",
                    "/sync",
                    *(f"/tasks?status={s}&limit=1" for s in STATUSES),
                ]
            ],
        ),
        "workplans": ("#/workplans", [["/repos"], ["/workplans?limit=100&offset=0"]]),
        "workplan": (
            f"#/workplans/{plan}",
            [[f"/workplans/{plan}/overview", f"/tasks?workplan={plan}&claimable=true&limit=1000"]],
        ),
        "task": (
            f"#/tasks/{task}",
            [[f"/tasks/{task}/links", f"/tasks/{task}/claim", f"/events?task={task}&desc=true&limit=100"]],
        ),
        "tasks": ("#/tasks", [["/tasks?limit=100&offset=0"]]),
        "repo": (
            f"#/repos/{repo}",
            [
                [
                    f"/repos/{repo}",
                    f"/state/diagnostics?repo={repo}&probe=false",
                    "/sweeps/latest",
                    "/sync",
                    f"/workplans?repo={repo}&limit=100",
                ]
            ],
        ),
        "events": ("#/events?order=newest", [["/events?desc=true&limit=100&offset=0"]]),
    }


FLOOR_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>floor</title></head>
<body><main id="app"></main><script>
window.floor = async (groups) => {
  const t0 = performance.now();
  const box = document.getElementById('app');
  box.textContent = '';
  for (const group of groups) {
    const answers = await Promise.all(group.map((u) => fetch(u, { headers: { accept: 'application/json' } })
      .then((r) => r.text())));
    for (const text of answers) {
      const pre = document.createElement('pre');
      pre.textContent = text.slice(0, 20000);
      box.appendChild(pre);
    }
  }
  await new Promise((resolve) => requestAnimationFrame(() => resolve()));
  return performance.now() - t0;
};
</script></body></html>"""

NAVIGATE = """async (address) => {
  const t0 = performance.now();
  const done = new Promise((resolve) =>
    window.addEventListener('statehub:view-ready', resolve, { once: true }));
  location.hash = address.slice(1);
  await done;
  await new Promise((resolve) => requestAnimationFrame(() => resolve()));
  return performance.now() - t0;
}"""

FIRST_PAINT = """() => {
  const ready = performance.getEntriesByName('statehub:view-ready')[0];
  const fcp = performance.getEntriesByName('first-contentful-paint')[0];
  return { ready: ready ? ready.startTime : null, fcp: fcp ? fcp.startTime : null };
}"""


def _load_timing(page: Any, url: str) -> dict[str, float]:
    """A fresh load of ``url`` (from a blank page, so it is never a mere hash change)."""
    page.goto("about:blank")
    page.goto(url)
    page.wait_for_function(
        "() => performance.getEntriesByName('statehub:view-ready').length > 0", timeout=60000
    )
    timing: dict[str, float] = page.evaluate(FIRST_PAINT)
    return timing


def _floor_load(page: Any, base: str, groups: list[list[str]]) -> float:
    """A fresh load of the bare page and its fetches: navigation start to the data drawn."""
    page.goto(base + "/__floor")
    drawn: float = page.evaluate("(groups) => window.floor(groups)", groups)
    loaded: float = page.evaluate(
        "() => performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd"
    )
    return loaded + drawn


def run(repos: int, rounds: int) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="statehub-bench-web-") as tmp:
        base = Path(tmp)
        corpus = build_corpus(base / "corpus", repos=repos)
        home = base / "home"
        with Hub(Settings.from_env({"STATEHUB_HOME": str(home)})) as hub:
            for repo in corpus.repos:
                hub.register(repo)
        port = free_port()
        server = start_hub(home, port, base / "hub.log")
        url = f"http://127.0.0.1:{port}"
        try:
            import httpx

            plan = httpx.get(f"{url}/workplans?status=active&limit=1&offset=200").json()["items"][0]["id"]
            task = httpx.get(f"{url}/workplans/{plan}").json()["tasks"][-1]["ref"]
            repo = httpx.get(f"{url}/repos").json()["items"][repos // 2]["slug"]
            views = view_requests(plan, task, repo)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox", "--disable-gpu"]
                )
                context = browser.new_context(viewport={"width": 1280, "height": 900})
                context.route(
                    f"{url}/__floor", lambda route: route.fulfill(body=FLOOR_PAGE, content_type="text/html")
                )
                page = context.new_page()
                cold = _load_timing(page, url + "/#/")
                ready, fcp, floor_paint = [], [], []
                for _ in range(rounds):
                    timing = _load_timing(page, url + "/#/")
                    ready.append(timing["ready"])
                    fcp.append(timing["fcp"])
                    floor_paint.append(_floor_load(page, url, views["dashboard"][1]))
                navigation: dict[str, list[float]] = {name: [] for name in views if name != "dashboard"}
                floors: dict[str, list[float]] = {name: [] for name in navigation}
                for _ in range(rounds):
                    page.goto(url + "/#/")
                    page.wait_for_function("() => document.body.dataset.ready !== undefined", timeout=60000)
                    for name in navigation:
                        navigation[name].append(page.evaluate(NAVIGATE, views[name][0]))
                    page.goto(url + "/__floor")
                    for name in floors:
                        floors[name].append(page.evaluate("(groups) => window.floor(groups)", views[name][1]))
                    page.goto(url + "/#/")
                browser.close()
        finally:
            server.terminate()
            server.wait(10)
    median = statistics.median
    return {
        "corpus": {"repos": repos, "workplans": corpus.workplans, "tasks": corpus.tasks},
        "first_paint_cold_ms": cold["ready"],
        "first_paint_ms": median(ready),
        "first_contentful_paint_ms": median(fcp),
        "first_paint_floor_ms": median(floor_paint),
        "navigation_ms": {name: median(v) for name, v in navigation.items()},
        "navigation_floor_ms": {name: median(v) for name, v in floors.items()},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repos", type=int, default=74)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args()
    result = run(args.repos, args.rounds)
    c = result["corpus"]
    print(
        f"corpus: {c['repos']} repos, {c['workplans']} workplans, {c['tasks']} tasks; median of {args.rounds}"
    )
    paint, floor = result["first_paint_ms"], result["first_paint_floor_ms"]
    print(
        f"first paint (dashboard with data): {paint:.0f} ms (cold {result['first_paint_cold_ms']:.0f} ms; "
        f"first contentful paint {result['first_contentful_paint_ms']:.0f} ms); bare page {floor:.0f} ms; "
        f"ratio {paint / floor:.2f}; target < {FIRST_PAINT_TARGET_MS:.0f} ms: "
        f"{'met' if paint < FIRST_PAINT_TARGET_MS else 'MISSED'}"
    )
    for name, took in result["navigation_ms"].items():
        bare = result["navigation_floor_ms"][name]
        print(
            f"navigate to {name:9}: {took:6.1f} ms; bare fetch+draw {bare:6.1f} ms; "
            f"ratio {took / bare:5.2f}; "
            f"target < {NAVIGATION_TARGET_MS:.0f} ms: {'met' if took < NAVIGATION_TARGET_MS else 'MISSED'}"
        )
    if args.json:
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
