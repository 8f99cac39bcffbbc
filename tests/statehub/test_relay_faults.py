"""What the upstream refuses is parked and reported, never blocks later events, and a refused
token pauses the relay without losing anything; an overloaded upstream is waited for."""

from __future__ import annotations

import itertools
import re
import time
from functools import partial
from typing import TYPE_CHECKING, Any

import pytest

from tests.clijson import cli_data
from tests.gitfixtures import GitRepo, workplan_text
from tests.statehub.eventfixtures import trailer_counts
from tests.statehub.relayfixtures import HubPair, notes, run_cli
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


def _until(check: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _status(pair: HubPair, *args: str) -> Any:
    done = run_cli(pair.dev.home, "buffer", *args, env=pair.dev_env)
    return done if "--json" not in args or done.returncode else cli_data(done.stdout)


def test_poison_and_conflicting_events_are_parked_while_later_events_flow(pair: HubPair) -> None:
    local = workplan_text("LOCAL-WP-0001", [{"id": "T01", "title": "Only on the laptop"}])
    pair.dev_repo.write("workplans/LOCAL-WP-0001.md", local)
    pair.dev_repo.commit("a plan the fleet has not seen yet")
    pair.register()
    pair.fleet.start()
    first = notes("ok", 4)
    clash = dict(notes("clash", 1)[0], note="what the fleet was told", workplan="RELAY-WP-0010")
    assert pair.fleet.call("POST", "/events", json=clash).status_code == 202
    poison = dict(notes("poison", 1)[0], workplan="LOCAL-WP-0001")
    later = notes("ok", 4, start=4)
    sent = [
        *first[:2],
        poison,
        *first[2:],
        dict(clash, note="what the laptop says", workplan="RELAY-WP-0009"),
        *later,
    ]
    for item in sent:  # one by one, in this order, as an agent would
        assert pair.dev.call("POST", "/events", json=item).status_code == 202
    relay = pair.wait_relay(8)
    assert relay["parked"] == 2 and relay["counts"]["confirmed"] == 8
    pair.fleet.wait_settled()
    counts = trailer_counts(pair.fleet_repo)
    assert {e["key"]: counts.get(e["key"]) for e in first + later} == {e["key"]: 1 for e in first + later}

    status = _status(pair, "status", "--json")
    parked = {p["key"]: p["reason"] for p in status["relay"]["parked_events"]}
    assert "no workplan LOCAL-WP-0001" in parked[poison["key"]]
    assert "already used for a different event" in parked[clash["key"]]
    human = _status(pair, "status")
    assert human.returncode == 0 and "2 parked" in human.stdout and poison["key"] in human.stdout

    # bad decisions are refused and change nothing
    assert _status(pair, "drop", clash["key"]).returncode == 2  # --reason is required
    blank = _status(pair, "drop", clash["key"], "--reason", " ")
    assert blank.returncode == 2 and "--reason" in blank.stderr
    unknown = _status(pair, "retry", "no-such-key")
    assert unknown.returncode == 4 and "not in the relay queue" in unknown.stderr
    not_parked = _status(pair, "retry", first[0]["key"])
    assert not_parked.returncode == 4 and "confirmed, not parked" in not_parked.stderr
    no_upstream = run_cli(pair.dev.home, "buffer", "retry", poison["key"])
    assert no_upstream.returncode == 2 and "STATEHUB_UPSTREAM" in no_upstream.stderr
    assert _status(pair, "status", "--json")["relay"]["parked"] == 2

    # fix the cause (the laptop's plan reaches the fleet by git), then retry: it is applied
    for hub in (pair.dev, pair.fleet):
        swept = sweep_over_http(partial(hub.call, "POST"), partial(hub.call, "GET"))
        assert swept["totals"]["problems"] == 0, swept
    assert _status(pair, "retry", poison["key"]).returncode == 0
    # the clash is a decision: the fleet keeps its own event under that key, the relay stops trying
    dropped = _status(pair, "drop", clash["key"], "--reason", "the fleet's note stands", "--json")
    assert dropped["was"] == "parked" and dropped["event"]["note"] == "what the laptop says"
    relay = pair.wait_relay(9)
    assert relay["parked"] == 0 and relay["counts"]["confirmed"] == 9
    pair.fleet.wait_settled()
    assert trailer_counts(pair.fleet_repo).get(poison["key"]) == 1
    decisions = _status(pair, "status", "--json")["relay"]["decisions"]
    assert [(d["key"], d["decision"]) for d in decisions] == [
        (clash["key"], "drop"),
        (poison["key"], "retry"),
    ]
    assert decisions[0]["reason"] == "the fleet's note stands"
    assert pair.dev.call("GET", f"/events/{clash['key']}").status_code == 200  # the local record stays


def test_an_overloaded_upstream_is_waited_for_as_it_asks(pair: HubPair) -> None:
    gate = Gate(pair.fleet.url)
    try:
        pair.register(upstream=gate.url)
        pair.fleet.start()
        gate.answer = (503, {"Retry-After": "2"})
        assert pair.dev.call("POST", "/events", json=notes("busy", 20)).status_code == 202
        _until(lambda: len(gate.seen) >= 2, "two refused attempts")
        gate.answer = (429, {})
        _until(lambda: sum(1 for s in gate.seen if s[3] == 429) >= 3, "three 429s")
        gate.answer = None
        pair.wait_relay(20)
        times = [t for t, _, _, status in gate.seen if status == 503]
        assert times[1] - times[0] >= 1.9  # Retry-After: 2 beats the 0.5 s backoff cap
        busy = [t for t, _, _, status in gate.seen if status == 429]
        assert max(b - a for a, b in itertools.pairwise(busy)) <= 1.5  # backoff capped (0.5 s here)
    finally:
        gate.close()


def _token(home: Path, actor: str) -> tuple[str, str]:
    """Mint an admin token on the fleet hub's host: (token, revocation id)."""
    minted = run_cli(home, "token", "mint", "--actor", actor, "--right", "admin")
    assert minted.returncode == 0, minted.stderr
    revocation = re.search(r"statehub token revoke ([0-9a-f]+)", minted.stderr)
    assert revocation is not None, minted.stderr
    return minted.stdout.strip(), revocation.group(1)


def test_a_revoked_upstream_token_pauses_the_relay_and_a_new_token_resumes_it(pair: HubPair) -> None:
    """Against the real guard: a fleet hub that requires Biscuit tokens, revoked live."""
    assert run_cli(pair.fleet.home, "token", "init").returncode == 0
    admin, _ = _token(pair.fleet.home, "test-admin")
    first, first_id = _token(pair.fleet.home, "hub-laptop")
    pair.fleet_env = {"STATEHUB_AUTH": "required"}
    pair.fleet_headers = {"Authorization": f"Bearer {admin}"}
    pair.token_file.write_text(first + "\n")
    pair.dev_env["STATEHUB_RELAY_BACKOFF_CAP"] = "5"  # a refused token is tried again after 5 s
    pair.register()
    pair.start_fleet()
    assert pair.fleet.call("GET", "/events").status_code == 401  # the guard is on
    before = notes("before", 50)
    assert pair.dev.call("POST", "/events", json=before).status_code == 202
    pair.wait_relay(50)
    revoked = run_cli(pair.fleet.home, "token", "revoke", first_id, "--note", "laptop token rotated")
    assert revoked.returncode == 0, revoked.stderr
    after = notes("after", 50)
    assert pair.dev.call("POST", "/events", json=after).status_code == 202
    _until(lambda: bool(pair.relay()["paused"]), "the relay to pause")
    paused = pair.relay()
    assert (
        "refused the upstream token (401)" in paused["paused"] and "every event is kept" in paused["paused"]
    )
    assert "revoked" in paused["paused"]  # the guard's own words
    assert paused["pending"] == 50 and paused["counts"]["confirmed"] == 50 and paused["parked"] == 0
    assert "PAUSED" in _status(pair, "status").stdout
    time.sleep(1.5)  # paused means paused: nothing is sent, parked or lost meanwhile
    assert pair.relay()["pending"] == 50 and pair.relay()["parked"] == 0
    second, _ = _token(pair.fleet.home, "hub-laptop")
    pair.token_file.write_text(second + "\n")  # a new token resumes the relay, no restart
    relay = pair.wait_relay(100)
    assert relay["paused"] is None and relay["reachable"] is True
    pair.fleet.wait_settled()
    counts = trailer_counts(pair.fleet_repo)
    keys = [e["key"] for e in before + after]
    assert {k: counts.get(k, 0) for k in keys} == dict.fromkeys(keys, 1)
    upstream = pair.fleet.call("GET", f"/events/{after[0]['key']}", headers=pair.fleet_headers).json()
    assert upstream["event"]["actor"] == "agt-codex"  # the original actor, not the relay token's


def test_a_batch_over_the_upstreams_body_limit_is_split_not_parked(pair: HubPair) -> None:
    """An upstream with a smaller STATEHUB_MAX_BODY_BYTES answers 413 to a whole batch: the relay
    halves it until the parts fit and parks nothing (review of issue 12: the leftover said a 413
    parked the batch)."""
    pair.fleet_env["STATEHUB_MAX_BODY_BYTES"] = "20000"
    pair.register()
    pair.fleet.start()
    sent = notes("big", 300)  # about 60 kB as one batch, three times the upstream's limit
    assert pair.dev.call("POST", "/events", json=sent).status_code == 202
    relay = pair.wait_relay(300)
    assert relay["parked"] == 0
    pair.fleet.wait_settled()
    counts = trailer_counts(pair.fleet_repo)
    assert {e["key"]: counts.get(e["key"]) for e in sent} == {e["key"]: 1 for e in sent}
