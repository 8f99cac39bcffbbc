"""Claims on a dev hub with an upstream (ADR-032): made offline, relayed, parked when the upstream
gave the task to someone else meanwhile, and the task then shows as contested."""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING, Any

import pytest

from tests.statehub.relayfixtures import HubPair

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from tests.gitfixtures import GitRepo

TAKEN = "RELAY-WP-0001-T01"
FREE = "RELAY-WP-0002-T01"


@pytest.fixture
def pair(tmp_path: Path, make_repo: Callable[[str], GitRepo]) -> Iterator[HubPair]:
    made = HubPair(tmp_path, make_repo, batch=100)
    yield made
    made.stop()


def test_a_relayed_claim_the_upstream_gave_away_is_parked_and_the_task_contested(pair: HubPair) -> None:
    pair.register()  # the fleet hub is left stopped
    pair.start_fleet()
    given = pair.fleet.call("POST", f"/tasks/{TAKEN}/claim", json={"actor": "agt-fleet", "lease_s": 3600})
    assert given.status_code == 200, given.text
    pair.fleet.stop()

    # offline: the dev hub decides alone
    mine = pair.dev.call("POST", f"/tasks/{TAKEN}/claim", json={"actor": "agt-dev"})
    assert mine.status_code == 200, mine.text
    free = pair.dev.call("POST", f"/tasks/{FREE}/claim", json={"actor": "agt-dev"})
    assert free.status_code == 200, free.text
    pair.dev.wait_settled()

    pair.start_fleet()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not (pair.relay()["parked"] >= 1 and pair.relay()["pending"] == 0):
        time.sleep(0.1)
    relay = pair.relay()
    assert relay["parked"] == 1, relay
    assert relay["counts"]["confirmed"] + relay["counts"]["sent"] == 1, relay

    state = pair.dev.call("GET", f"/tasks/{TAKEN}/claim").json()
    assert state["contested"] is not None
    assert "held by agt-fleet" in state["contested"], state
    assert state["claimable"] is False
    listed = pair.dev.call("GET", "/tasks?claimable=true").json()["items"]
    assert TAKEN not in [t["ref"] for t in listed]

    upstream = pair.fleet.call("GET", f"/tasks/{TAKEN}/claim").json()
    assert (upstream["held"], upstream["actor"]) == (True, "agt-fleet")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not pair.fleet.call("GET", f"/tasks/{FREE}/claim").json()["held"]:
        time.sleep(0.1)
    relayed = pair.fleet.call("GET", f"/tasks/{FREE}/claim").json()
    assert (relayed["held"], relayed["actor"], relayed["key"]) == (True, "agt-dev", free.json()["key"])
    pair.fleet.wait_settled()
    assert pair.fleet.call("GET", f"/tasks/{FREE}").json()["owner"] == "agt-dev"
    assert pair.fleet.call("GET", f"/tasks/{TAKEN}").json()["owner"] == "agt-fleet"


def _left_s(claim: dict[str, Any]) -> float:
    """Seconds from now until the lease of a ``GET /tasks/{ref}/claim`` answer ends (0 when not held)."""
    if not claim["held"]:
        return 0.0
    ends = dt.datetime.strptime(claim["lease_expires_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    return ends.timestamp() - time.time()


def _upstream_lease(pair: HubPair, ref: str, key: str, at_least_s: float) -> dict[str, Any]:
    """The fleet hub's claim on ``ref`` once it is ``key``'s with at least ``at_least_s`` left."""
    deadline = time.monotonic() + 120
    claim: dict[str, Any] = {}
    while time.monotonic() < deadline:
        claim = pair.fleet.call("GET", f"/tasks/{ref}/claim").json()
        if claim["held"] and claim["key"] == key and _left_s(claim) >= at_least_s:
            return claim
        time.sleep(0.1)
    raise AssertionError(f"the upstream lease did not follow: {claim}\n{pair.dev.log.read_text()[-3000:]}")


def test_a_lease_held_through_a_dev_hub_is_renewed_upstream_without_an_event(pair: HubPair) -> None:
    pair.register()
    pair.start_fleet()
    mine = pair.dev.call("POST", f"/tasks/{FREE}/claim", json={"actor": "agt-dev", "lease_s": 3600})
    assert mine.status_code == 200, mine.text
    key = mine.json()["key"]

    # the upstream decided the relayed claim under its default 900 s; the relay brings it to 3600 s
    _upstream_lease(pair, FREE, key, at_least_s=1800)

    # heartbeats here (several, coalesced) move the upstream's lease end too
    for _ in range(3):
        beat = pair.dev.call("POST", f"/tasks/{FREE}/heartbeat", json={"actor": "agt-dev", "lease_s": 7200})
        assert beat.status_code == 200, beat.text
    upstream = _upstream_lease(pair, FREE, key, at_least_s=5400)
    assert upstream["actor"] == "agt-dev"

    # renewals make no event, here or upstream: only the claim was relayed and committed
    relay = pair.wait_relay(confirmed=1)
    assert relay["counts"]["confirmed"] == 1, relay
    pair.fleet.wait_settled()
    trailers = pair.fleet_repo.git("log", "--format=%(trailers:key=Statehub-Event,valueonly=true)").split()
    assert trailers == [key]
