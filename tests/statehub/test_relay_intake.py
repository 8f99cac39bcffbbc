"""``POST /events?each=true``: a relayed batch answered per event; the default stays all-or-nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from statehub.settings import Settings
from tests.statehub.eventfixtures import event, plan_repo

if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path

    from litestar.testing import TestClient

    from tests.gitfixtures import GitRepo


def test_a_relayed_batch_is_answered_per_event(
    client: TestClient[Any], make_repo: Callable[[str], GitRepo]
) -> None:
    repo = plan_repo(make_repo)
    assert client.post("/repos", json={"path": str(repo.root)}).status_code == 201
    assert client.post("/events", json=event("taken", kind="progress.note")).status_code == 202
    batch = [
        event("good", kind="progress.note", note="fine"),
        event("bad-plan", kind="progress.note", workplan="NOPE-WP-0001"),
        {"key": "broken", "kind": "task.status"},
        event("taken", kind="progress.note", note="other words"),
        event("taken", kind="progress.note"),
    ]
    all_or_nothing = client.post("/events", json=batch)
    assert all_or_nothing.status_code == 422 and client.get("/events/good").status_code == 404
    answer = client.post("/events?each=true", json=batch)
    assert answer.status_code == 202
    results = answer.json()["results"]
    assert [(r["key"], r["result"]) for r in results] == [
        ("good", "accepted"),
        ("bad-plan", "rejected"),
        ("broken", "rejected"),
        ("taken", "rejected"),
        ("taken", "duplicate"),
    ]
    assert "no workplan NOPE-WP-0001" in results[1]["reason"]
    assert "already used for a different event" in results[3]["reason"]
    assert results[0]["state"] == "pending" and results[4]["state"] in ("pending", "applied")
    assert client.get("/events/good").status_code == 200 and client.get("/events/bad-plan").status_code == 404
    again = client.post("/events?each=true", json=[batch[0]]).json()[
        "results"
    ]  # a resend: answered from the buffer
    assert again[0]["key"] == "good" and again[0]["result"] == "duplicate"
    health = client.get("/state/health").json()
    assert health["relay"] is None  # no upstream configured


@pytest.mark.parametrize(
    ("name", "value", "said"),
    [
        ("STATEHUB_UPSTREAM", "hub.example:8750", "give the upstream hub's URL"),
        ("STATEHUB_RELAY_BACKOFF_CAP", "soon", "a number of seconds"),
        ("STATEHUB_RELAY_BACKOFF_CAP", "0", "more than 0"),
        ("STATEHUB_RELAY_BATCH", "0", "from 1 to 5000"),
        ("STATEHUB_RELAY_BATCH", "lots", "from 1 to 5000"),
    ],
)
def test_bad_relay_settings_are_refused_clearly(tmp_path: Path, name: str, value: str, said: str) -> None:
    with pytest.raises(ValueError, match=said):
        Settings.from_env({"STATEHUB_HOME": str(tmp_path), name: value})


def test_relay_settings_from_the_environment(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {
            "STATEHUB_HOME": str(tmp_path),
            "STATEHUB_UPSTREAM": "https://fleet.example",
            "STATEHUB_UPSTREAM_TOKEN": "t",
        }
    )
    assert settings.upstream == "https://fleet.example" and settings.upstream_token == "t"
    assert settings.upstream_token_path == tmp_path.resolve() / "config" / "upstream.token"
    assert settings.relay_backoff_cap == 60.0 and settings.relay_batch == 1000


def test_buffer_status_without_an_upstream_says_so(settings: Settings) -> None:
    from click.testing import CliRunner

    from statehub.cli import main

    runner = CliRunner()
    human = runner.invoke(main, ["buffer", "status"])
    assert human.exit_code == 0 and "no upstream configured" in human.output
    as_json = runner.invoke(main, ["buffer", "status", "--json"])
    assert as_json.exit_code == 0 and '"relay": null' in as_json.output
    refused = runner.invoke(main, ["buffer", "drop", "some-key", "--reason", "x"])
    assert refused.exit_code == 2 and "STATEHUB_UPSTREAM" in refused.output
