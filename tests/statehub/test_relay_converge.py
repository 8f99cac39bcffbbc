"""Files converge: the dev hub's and the fleet hub's checkouts both applied the same events;
a sweep on either side merges the histories without conflict, and an event a checkout already
reflects (it came by git first) is a no-op."""

from __future__ import annotations

import time
from functools import partial
from typing import TYPE_CHECKING

import pytest

from tests.gitfixtures import GitRepo
from tests.statehub.eventfixtures import trailer_counts
from tests.statehub.relayfixtures import PLANS, HubPair, notes
from tests.statehub.relaygate import Gate
from tests.statehub.sweeping import sweep_over_http

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path


@pytest.fixture
def pair(tmp_path: Path, make_repo: Callable[[str], GitRepo]) -> Iterator[HubPair]:
    made = HubPair(tmp_path, make_repo)
    yield made
    made.stop()


def _sweep(hub: object) -> None:
    call = hub.call  # type: ignore[attr-defined]
    report = sweep_over_http(partial(call, "POST"), partial(call, "GET"))
    assert report["totals"]["problems"] == 0, report


def _converged(pair: HubPair, keys: list[str]) -> None:
    assert pair.dev_repo.git("rev-parse", "HEAD") == pair.fleet_repo.git("rev-parse", "HEAD")
    remote = GitRepo.__new__(GitRepo)
    remote.root = pair.remote
    assert remote.git("rev-parse", "main") == pair.fleet_repo.git("rev-parse", "HEAD")
    counts = trailer_counts(pair.fleet_repo)
    assert {k: counts.get(k, 0) for k in keys} == dict.fromkeys(keys, 1)
    for plan in PLANS:
        text = pair.fleet_repo.read(f"workplans/{plan}.md")
        assert all(text.count(f"<!-- event:{k} -->") <= 1 for k in keys)
    for repo in (pair.dev_repo, pair.fleet_repo):
        assert repo.git("status", "--porcelain") == ""


@pytest.mark.parametrize("first", ["dev", "fleet"])
def test_both_checkouts_applied_the_same_events_and_a_sweep_on_either_side_converges(
    pair: HubPair, first: str
) -> None:
    for name, repo in (("laptop", pair.dev_repo), ("fleet", pair.fleet_repo)):  # histories diverge
        repo.write(f"{name}.txt", f"work done on the {name}\n")
        repo.commit(f"{name} work, not pushed yet")
    pair.register()
    pair.fleet.start()
    batch = notes("both", 30)
    assert pair.dev.call("POST", "/events", json=batch).status_code == 202
    pair.wait_relay(30)
    pair.fleet.wait_settled()
    keys = [e["key"] for e in batch]
    for repo in (pair.dev_repo, pair.fleet_repo):  # each checkout made its own commits for them
        assert set(trailer_counts(repo)) == set(keys)
    assert pair.dev_repo.git("rev-parse", "HEAD") != pair.fleet_repo.git("rev-parse", "HEAD")
    one, other = (pair.dev, pair.fleet) if first == "dev" else (pair.fleet, pair.dev)
    _sweep(one)  # pushes its commits
    _sweep(other)  # rebases onto them: its own commits for the same events become empty, dropped
    _sweep(one)  # fast-forwards
    _converged(pair, keys)


def test_an_event_that_reached_the_fleet_by_git_first_is_a_no_op_when_relayed(pair: HubPair) -> None:
    gate = Gate(pair.fleet.url)
    try:
        gate.answer = (503, {})
        pair.register(upstream=gate.url)
        pair.fleet.start()
        batch = notes("git-first", 20)
        assert pair.dev.call("POST", "/events", json=batch).status_code == 202
        pair.dev.wait_settled()
        _sweep(pair.dev)  # the laptop's commits reach the remote while the relay cannot
        _sweep(pair.fleet)  # the fleet pulls them
        head = pair.fleet_repo.git("rev-parse", "HEAD")
        gate.answer = None
        pair.wait_relay(20)
        pair.fleet.wait_settled()
        time.sleep(0.3)
        assert pair.fleet_repo.git("rev-parse", "HEAD") == head  # nothing to commit: already reflected
        for item in batch:
            upstream = pair.fleet.call("GET", f"/events/{item['key']}").json()
            assert upstream["state"] == "applied" and upstream["commit"] is None
        _sweep(pair.fleet)
        _sweep(pair.dev)
        _converged(pair, [e["key"] for e in batch])
    finally:
        gate.close()
