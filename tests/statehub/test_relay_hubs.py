"""Two real hubs: a dev hub cut off from its fleet hub delivers every event exactly once later."""

from __future__ import annotations

import contextlib
import signal
import time
from typing import TYPE_CHECKING

import pytest

from statehub.events.writeback import CRASH_ENV
from tests.statehub.eventfixtures import trailer_counts
from tests.statehub.relayfixtures import PLANS, HubPair, notes, plan_of, run_cli

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from tests.gitfixtures import GitRepo


@pytest.fixture
def pair(tmp_path: Path, make_repo: Callable[[str], GitRepo]) -> Iterator[HubPair]:
    made = HubPair(tmp_path, make_repo, batch=100)
    yield made
    made.stop()


def _exactly_once(repo: GitRepo, keys: list[str]) -> None:
    counts = trailer_counts(repo)
    assert {k: counts.get(k, 0) for k in keys} == dict.fromkeys(keys, 1)
    texts = {plan: repo.read(f"workplans/{plan}.md") for plan in PLANS}
    assert all(texts[plan_of(k)].count(f"<!-- event:{k} -->") == 1 for k in keys)
    assert repo.git("status", "--porcelain") == ""


def _in_order(repo: GitRepo, keys: list[str]) -> None:
    """Per workplan, the notes stand in the file in the order the dev hub accepted them."""
    for plan in PLANS:
        text = repo.read(f"workplans/{plan}.md")
        positions = [text.index(f"<!-- event:{k} -->") for k in keys if plan_of(k) == plan]
        assert positions == sorted(positions), f"{plan}: applied upstream out of acceptance order"


def test_a_thousand_events_buffered_offline_arrive_upstream_exactly_once(pair: HubPair) -> None:
    pair.register()
    batch = notes("off", 1000)
    for start in range(0, 1000, 250):
        assert pair.dev.call("POST", "/events", json=batch[start : start + 250]).status_code == 202
    pair.dev.wait_settled()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not (
        pair.relay()["reachable"] is False and pair.relay()["pending"] == 1000
    ):
        time.sleep(0.05)
    offline = pair.relay()
    assert offline["reachable"] is False and offline["pending"] == 1000
    assert offline["oldest_pending_age_s"] > 0 and offline["last_error"]
    assert pair.dev.call("GET", "/workplans/RELAY-WP-0001").status_code == 200  # reads serve the cache
    pair.fleet.start()
    relay = pair.wait_relay(1000)
    assert relay["reachable"] is True and relay["parked"] == 0 and relay["oldest_pending_age_s"] is None
    pair.fleet.wait_settled()
    keys = [e["key"] for e in batch]
    _exactly_once(pair.fleet_repo, keys)
    _in_order(pair.fleet_repo, keys)
    for sent in (batch[0], batch[777]):  # the original key, actor and time, not the relay's
        upstream = pair.fleet.call("GET", f"/events/{sent['key']}").json()
        assert upstream["state"] == "applied"
        assert {k: upstream["event"][k] for k in ("key", "actor", "at")} == {
            k: sent[k] for k in ("key", "actor", "at")
        }

    # weeks later: the fleet hub restarted with its cache rebuilt; a replay changes nothing
    pair.fleet.stop()
    rebuilt = run_cli(pair.fleet.home, "rebuild")
    assert rebuilt.returncode == 0, rebuilt.stderr
    pair.fleet.start()
    head = pair.fleet_repo.git("rev-parse", "HEAD")
    replayed = pair.fleet.call("POST", "/events?each=true", json=[{**e} for e in batch]).json()["results"]
    assert {(r["result"], r["state"]) for r in replayed} == {("duplicate", "applied")}
    changed = dict(batch[5], note="the same key with other words")
    conflict = pair.fleet.call("POST", "/events?each=true", json=[changed]).json()["results"][0]
    assert conflict["result"] == "rejected" and "already used for a different event" in conflict["reason"]
    time.sleep(1.5)  # the fleet applier polls every second: it had its chance to do something wrong
    assert pair.fleet_repo.git("rev-parse", "HEAD") == head
    _exactly_once(pair.fleet_repo, keys)


def test_kills_on_both_sides_mid_relay_still_deliver_exactly_once(pair: HubPair) -> None:
    pair.register()
    batch = notes("kill", 1000)
    assert pair.dev.call("POST", "/events", json=batch).status_code == 202
    with contextlib.suppress(AssertionError):  # it may be dead before it answered its first health check
        pair.fleet.start(**{CRASH_ENV: "committed"})  # dies right after committing the first relayed batch
    assert pair.fleet.wait_exit() == -signal.SIGKILL
    assert pair.relay()["counts"]["confirmed"] == 0
    pair.fleet.start()
    deadline = time.monotonic() + 60
    while pair.relay()["counts"]["queued"] > 700 and time.monotonic() < deadline:
        time.sleep(0.01)
    pair.dev.kill()  # mid-relay: some batches sent, most still queued
    pair.start_dev()
    assert pair.relay()["counts"]["queued"] < 1000
    deadline = time.monotonic() + 60
    while int(pair.fleet_repo.git("rev-list", "--count", "HEAD")) < 5 and time.monotonic() < deadline:
        time.sleep(0.005)
    pair.fleet.kill()  # mid-batch: the fleet hub is storing or applying relayed events
    assert pair.relay()["pending"] > 0, "everything was relayed before the kill; the test proved nothing"
    pair.fleet.start()
    pair.wait_relay(1000)
    pair.fleet.wait_settled()
    keys = [e["key"] for e in batch]
    _exactly_once(pair.fleet_repo, keys)
    _in_order(pair.fleet_repo, keys)
    listed = pair.fleet.call("GET", "/events?state=applied&limit=1").json()
    assert listed["total"] == 1000
