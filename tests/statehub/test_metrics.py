"""GET /metrics: every documented family exported, counters moving, the alert rules naming real metrics.

Scrapes are parsed with prometheus_client's own text parser; a real server
process is scraped once with the watcher on, to see the index lag observed.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import yaml
from click.testing import CliRunner
from prometheus_client.parser import text_string_to_metric_families

from statehub.cli import main
from tests.hubserver import HubServer
from tests.statehub.eventfixtures import PLAN_PATH, event, plan_repo

if TYPE_CHECKING:
    from collections.abc import Callable

    from litestar.testing import TestClient
    from prometheus_client.metrics_core import Metric

    from statehub.settings import Settings
    from tests.gitfixtures import GitRepo

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "compose" / "alerts.yaml"
ARCHITECTURE = ROOT / "docs" / "architecture.md"
PROMQL_WORDS = frozenset(
    {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}
)


def _families(text: str) -> dict[str, Metric]:
    return {family.name: family for family in text_string_to_metric_families(text)}


def _scrape(client: TestClient[Any]) -> dict[str, Metric]:
    answer = client.get("/metrics")
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return _families(answer.text)


def _exposed_name(family: Metric) -> str:
    """The name as written in the text (and in PromQL): a counter's family name lacks ``_total``."""
    return f"{family.name}_total" if family.type == "counter" else family.name


def _value(families: dict[str, Metric], sample: str, **labels: str) -> float:
    """The value of one sample (0 when absent, as a counter not yet moved is)."""
    for family in families.values():
        for found in family.samples:
            if found.name == sample and all(found.labels.get(k) == v for k, v in labels.items()):
                return float(found.value)
    return 0.0


def _documented() -> dict[str, tuple[str, list[str]]]:
    """docs/architecture.md "## Metrics": metric name -> (type, labels)."""
    section = ARCHITECTURE.read_text(encoding="utf-8").split("\n## Metrics\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `(statehub_\w+)` \| (\w+) \|([^|]*)\|", section, re.MULTILINE)
    return {name: (kind, re.findall(r"`(\w+)`", labels)) for name, kind, labels in rows}


def _wait_settled(client: TestClient[Any], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get("/state/health").json()["buffer"]["pending"] == 0:
            return
        time.sleep(0.05)
    raise AssertionError("events still pending")


def test_every_documented_family_is_exported_with_its_type(client: TestClient[Any]) -> None:
    documented = _documented()
    assert len(documented) >= 20
    exported = {_exposed_name(f): f for f in _scrape(client).values()}
    assert set(exported) == set(documented), "docs/architecture.md '## Metrics' and GET /metrics differ"
    for name, (kind, labels) in documented.items():
        assert exported[name].type == kind, name
        for sample in exported[name].samples:
            assert set(sample.labels) - {"le"} == set(labels), (name, sample.labels)


def test_counters_and_histograms_move_when_an_event_applies(
    client: TestClient[Any], make_repo: Callable[[str], GitRepo]
) -> None:
    repo = plan_repo(make_repo)
    assert client.post("/repos", json={"path": str(repo.root)}).status_code == 201
    before = _scrape(client)
    assert _value(before, "statehub_events_total", state="accepted") == 0
    assert client.post("/events", json=event("01JZ3K7T2Q9")).status_code == 202
    _wait_settled(client)
    assert client.get("/tasks/CUST-WP-0054-T02").json()["status"] == "done"
    after = _scrape(client)
    assert _value(after, "statehub_events_total", state="accepted") == 1
    assert _value(after, "statehub_events_total", state="applied") == 1
    assert _value(after, "statehub_events_total", state="rejected") == 0
    assert _value(after, "statehub_writeback_duration_seconds_count") >= 1
    assert _value(after, "statehub_writeback_duration_seconds_sum") > 0
    assert _value(after, "statehub_index_duration_seconds_count", repo="the-custodian") >= 1
    assert (
        _value(
            after,
            "statehub_http_request_duration_seconds_count",
            route="/events",
            method="POST",
            status="202",
        )
        == 1
    )
    # the route's template, never the raw path: label values stay as few as the routes
    routes = {s.labels["route"] for s in after["statehub_http_request_duration_seconds"].samples}
    assert "/tasks/{ref}" in routes
    assert not any("CUST-WP" in route for route in routes)
    # gauges agree with what the API answers now
    health = client.get("/state/health").json()
    assert _value(after, "statehub_repos") == health["repos"] == 1
    assert _value(after, "statehub_events_pending") == health["buffer"]["pending"] == 0
    assert _value(after, "statehub_events_oldest_pending_age_seconds") == 0
    done = client.get("/tasks?status=done").json()["total"]
    assert _value(after, "statehub_tasks", status="done") == done >= 1
    assert _value(after, "statehub_repo_write_problems", repo="the-custodian") == 0
    assert _value(after, "statehub_watcher_up") == 0  # the test app does not watch


def test_a_repo_with_writes_stopped_shows_in_its_gauge(
    client: TestClient[Any], make_repo: Callable[[str], GitRepo]
) -> None:
    repo = plan_repo(make_repo)
    assert client.post("/repos", json={"path": str(repo.root)}).status_code == 201
    repo.git("checkout", "-q", "--detach")
    scraped = _scrape(client)
    assert _value(scraped, "statehub_repo_write_problems", repo="the-custodian") == 1
    assert client.get("/state/health").json()["status"] == "degraded"


def test_every_alert_rule_names_only_metrics_the_hub_exports(client: TestClient[Any]) -> None:
    samples = {s.name for family in _scrape(client).values() for s in family.samples}
    samples |= {_exposed_name(f) for f in _scrape(client).values()}  # families without samples yet
    loaded: dict[str, Any] = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))
    rules = [rule for group in loaded["groups"] for rule in group["rules"]]
    assert {rule["alert"] for rule in rules} == {
        "StateHubRelayStuck",
        "StateHubEventsWaiting",
        "StateHubWatcherDown",
        "StateHubRepoWritesStopped",
        "StateHubWorkloadBlockedAtGate",
        "StateHubRepoNotSweptInStep",
        "StateHubCommitsNotOnTheForge",
    }
    for rule in rules:
        expr = rule["expr"]
        without_labels = re.sub(r"\{[^}]*\}", "", expr)
        names = {
            word
            for word in re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", without_labels)
            if word not in PROMQL_WORDS and not re.search(rf"{re.escape(word)}\s*\(", without_labels)
        }
        assert names, rule["alert"]
        assert names <= samples, (
            f"{rule['alert']} names {sorted(names - samples)}, which the hub does not export"
        )
        assert re.fullmatch(r"\d+[smhd]", rule["for"]), rule["alert"]
    stuck = next(r for r in rules if r["alert"] == "StateHubRelayStuck")
    assert stuck["for"] == "15m"
    assert "statehub_relay_pending" in stuck["expr"] and "statehub_relay_upstream_up" in stuck["expr"]
    waiting = next(r for r in rules if r["alert"] == "StateHubEventsWaiting")
    assert "statehub_events_oldest_pending_age_seconds > 600" in waiting["expr"]


def test_the_checker_catches_a_misspelled_metric() -> None:
    """The alert test's name extraction, on an expression naming a metric the hub does not have."""
    expr = 'rate(statehub_event_total{state="applied"}[5m]) > 0 and on() statehub_watcher_up == 0'
    without_labels = re.sub(r"\{[^}]*\}", "", expr)
    words = {
        w
        for w in re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", without_labels)
        if w not in PROMQL_WORDS and not re.search(rf"{re.escape(w)}\s*\(", without_labels)
    }
    assert "statehub_event_total" in words and "statehub_watcher_up" in words
    assert "rate" not in words


def test_a_real_server_is_scraped_and_sees_a_hand_edit_indexed(
    served_settings: Settings, make_repo: Callable[[str], GitRepo]
) -> None:
    repo = plan_repo(make_repo)
    assert CliRunner().invoke(main, ["repos", "add", str(repo.root)]).exit_code == 0
    with HubServer(served_settings.config_dir.parent, watch=True) as server:
        first = httpx.get(f"{server.url}/metrics", timeout=30)
        assert first.status_code == 200
        assert first.headers["content-type"].startswith("text/plain; version=0.0.4")
        families = _families(first.text)
        assert _value(families, "statehub_watcher_up") == 1
        assert _value(families, "statehub_repos") == 1
        text = repo.read(PLAN_PATH).replace('status = "in-progress"', 'status = "blocked"')
        deadline = time.monotonic() + 30
        saves = 0
        while time.monotonic() < deadline:
            # Saved again each second: a save that lands before the watcher is armed is indexed by
            # the reconcile it starts with, and the watcher's look at it then finds nothing to do.
            if saves <= (30 - (deadline - time.monotonic())):
                saves += 1
                (repo.root / PLAN_PATH).write_text(f"{text}\nsave {saves}\n", encoding="utf-8")
            families = _families(httpx.get(f"{server.url}/metrics", timeout=30).text)
            if _value(families, "statehub_index_lag_seconds_count", repo="the-custodian") >= 1:
                break
            time.sleep(0.1)
        assert _value(families, "statehub_index_lag_seconds_count", repo="the-custodian") >= 1
        assert _value(families, "statehub_index_duration_seconds_count", repo="the-custodian") >= 1
        assert _value(families, "statehub_tasks", status="blocked") >= 1
        assert (
            _value(
                families,
                "statehub_http_request_duration_seconds_count",
                route="/metrics",
                method="GET",
                status="200",
            )
            >= 1
        )
