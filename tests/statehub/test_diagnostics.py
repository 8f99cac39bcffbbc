"""``statehub doctor`` and ``GET /state/diagnostics``: every problem named, each with its remedy.

Real repos, the real applier and sweep, the real relay queue and rooms' store; the
last test runs a real server process (its applier and watcher) beside the CLI.
"""

from __future__ import annotations

import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from click.testing import CliRunner, Result
from litestar.testing import TestClient
from pycrdt import Doc, Text

from statehub.app import create_app
from statehub.auth import LOCAL_COMMAND
from statehub.auth.keys import init_root_key, load_root_key
from statehub.auth.tokens import mint
from statehub.cli import main
from statehub.collab import ROOM_STORE_FILE
from statehub.errors import NEEDS_A_PERSON
from statehub.events import EventDesk
from statehub.health import health
from statehub.hub import Hub
from statehub.settings import Settings
from statehub.sweep import sweep
from sync.room_store import RoomStore
from sync.seed import TEXT_NAME, seed_doc
from tests.clijson import cli_data
from tests.gitfixtures import GitRepo, workplan_text
from tests.hubserver import HubServer
from tests.statehub.eventfixtures import PLAN_PATH, PLAN_TEXT, event, plan_repo

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path


def _doctor(*args: str) -> tuple[Result, dict[str, Any]]:
    result = CliRunner().invoke(main, ["doctor", "--json", *args])
    assert "Traceback" not in result.output, result.output
    return result, cli_data(result.output)


def _kinds(problems: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {problem["kind"]: problem for problem in problems}


def _draft(settings: Settings, doc: str, text: str, added: str) -> None:
    """An edit in the editor's room of ``doc`` that was never saved to the file."""
    seed = seed_doc(text)
    with RoomStore(settings.data_dir / ROOM_STORE_FILE) as store:
        store.begin(doc, text, seed)
        live: Doc[Any] = Doc()
        live.apply_update(seed)
        before = live.get_state()
        live.get(TEXT_NAME, type=Text).insert(len(text), added)
        store.append(doc, live.get_update(before))


@pytest.fixture
def desk(hub: Hub) -> Iterator[EventDesk]:
    with EventDesk(hub) as opened:
        yield opened


def test_a_healthy_hub_shows_its_state_and_the_doctor_exits_0(
    hub: Hub, make_repo: Callable[[str], GitRepo]
) -> None:
    repo = plan_repo(make_repo)
    hub.register(repo.root)
    result, report = _doctor()
    assert result.exit_code == 0
    assert (report["status"], report["stops_writes"]) == ("ok", 0)
    [diagnosis] = report["repos"]
    head = repo.git("rev-parse", "HEAD").strip()
    assert diagnosis["git"]["branch"] == "main" and diagnosis["git"]["head"] == head
    assert diagnosis["last_index"]["commit"] == head
    assert diagnosis["problems"] == [] and diagnosis["waiting"] == []
    [watcher] = report["hub"]["problems"]  # no server runs in this test
    assert watcher["kind"] == "watcher" and watcher["stops_writes"] is False
    assert report["hub"]["disk"]["free_bytes"] > 0


def test_the_doctor_names_every_problem_with_a_remedy_and_exits_11_while_writes_stop(
    hub: Hub, make_repo: Callable[[str], GitRepo], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("STATEHUB_UPSTREAM", "http://127.0.0.1:9")  # relay on; nothing listens there
    settings = Settings.from_env().with_overrides(watch=False)
    repo = plan_repo(make_repo)
    repo.write("workplans/broken.md", "+++\nid = \n+++\n")
    repo.write("statehub.toml", '[repo]\nslug = "the-custodian"\n')
    repo.commit("a broken plan")
    repo.git("remote", "add", "origin", str(tmp_path / "nowhere.git"))
    hub.register(repo.root)
    with EventDesk(Hub(settings)) as desk:
        assert desk.relay_queue is not None
        desk.submit(event("W1", kind="progress.note"), authorise=LOCAL_COMMAND)
        desk.relay_queue.enqueue_new()
        desk.relay_queue.record(parked={"W1": "the upstream does not know repo the-custodian"})
        repo.write(PLAN_PATH, PLAN_TEXT + "\nA person's unsaved line.\n")  # the event waits for it
        [swept] = sweep(desk).repos
        assert swept.in_step is False
        desk.hub.close()
    _draft(settings, "the-custodian/statehub.toml", '[repo]\nslug = "the-custodian"\n', "# draft\n")
    result, report = _doctor()
    assert result.exit_code == 0, result.output  # nothing here stops writes
    [diagnosis] = report["repos"]
    problems = _kinds(diagnosis["problems"])
    assert set(problems) == {
        "remote-unreachable",
        "events-waiting",
        "file-error",
        "relay-parked",
        "sweep",
        "unsaved-draft",
    }
    assert all(problem["remedy"] and not problem["stops_writes"] for problem in problems.values())
    assert problems["events-waiting"]["message"] == f"1 event waits: uncommitted changes in {PLAN_PATH}"
    assert problems["events-waiting"]["remedy"] == (
        f"commit or revert that change (git -C {repo.root} status shows it), and the events apply"
    )
    assert problems["file-error"]["message"].startswith("workplans/broken.md:")
    assert problems["relay-parked"]["remedy"].startswith("fix the cause, then statehub buffer retry W1")
    assert problems["sweep"]["message"].startswith("the last sweep (")
    assert problems["unsaved-draft"]["message"] == "statehub.toml has unsaved edits in the editor's room"
    assert diagnosis["drafts"] == ["statehub.toml"]
    assert [p["key"] for p in diagnosis["parked"]] == ["W1"]
    assert diagnosis["git"]["remote_reachable"] is False and diagnosis["git"]["dirty"] == [PLAN_PATH]
    assert diagnosis["waiting"][0]["keys"] == ["W1"]
    repo.git("checkout", "-q", "--detach")
    result, report = _doctor("--repo", "the-custodian")
    assert result.exit_code == NEEDS_A_PERSON
    assert report["status"] == "degraded" and report["stops_writes"] == 1
    detached = _kinds(report["repos"][0]["problems"])["detached-head"]
    assert detached["stops_writes"] is True
    assert detached["remedy"].startswith(f"switch to the branch the repo tracks: git -C {repo.root} switch")
    text = CliRunner().invoke(main, ["doctor"])
    assert text.exit_code == NEEDS_A_PERSON
    assert (
        "detached-head" in text.output
        and f"fix: switch to the branch the repo tracks: git -C {repo.root}" in (text.output)
    )
    assert CliRunner().invoke(main, ["doctor", "--repo", "nope"]).exit_code == 4


def test_the_doctor_does_not_load_the_web_stack(hub: Hub, make_repo: Callable[[str], GitRepo]) -> None:
    hub.register(plan_repo(make_repo).root)
    script = (
        "import sys\n"
        "from statehub.cli import main\n"
        "try:\n"
        "    main(['doctor', '--json'])\n"
        "except SystemExit as done:\n"
        "    print('exit', done.code, 'litestar' in sys.modules, file=sys.stderr)\n"
    )
    ran = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=False)
    assert ran.stderr.strip().splitlines()[-1] == "exit 0 False", ran.stderr


def test_over_http_a_repo_scoped_token_sees_only_its_repos(
    settings: Settings, make_repo: Callable[[str], GitRepo]
) -> None:
    init_root_key(settings.root_key_file)
    root = load_root_key(settings.root_key_file)
    mine = plan_repo(make_repo, "mine")
    other = make_repo("other")
    other.write("workplans/OTHER-WP-0009.md", workplan_text("OTHER-WP-0009"))
    other.commit()
    other.git("checkout", "-q", "--detach")
    with TestClient(create_app(settings.with_overrides(auth="required"))) as client:
        for repo in (mine, other):
            assert client.post("/repos", json={"path": str(repo.root)}).status_code == 401
            client.app.state.hub.register(repo.root)

        def get(token: str, query: str = "") -> httpx.Response:
            bearer = {"Authorization": f"Bearer {token}"}
            return client.get(f"/state/diagnostics?probe=false{query}", headers=bearer)

        assert client.get("/state/diagnostics").status_code == 401
        everything = get(mint(root, "ops", "read").to_base64())
        assert everything.status_code == 200
        body = everything.json()
        assert [r["repo"] for r in body["repos"]] == ["mine", "other"] and body["status"] == "degraded"
        assert body["hub"]["watcher"]["running"] is False  # this app runs without a watcher
        scoped = mint(root, "agt-codex", "write", ("mine",)).to_base64()
        seen = get(scoped).json()
        assert [r["repo"] for r in seen["repos"]] == ["mine"] and seen["status"] == "ok"
        assert get(scoped, "&repo=mine").status_code == 200
        refused = get(scoped, "&repo=other")
        assert refused.status_code == 403 and "not scoped to repo 'other'" in refused.json()["error"]
        assert get(scoped, "&repo=nope").status_code == 404
        reader = mint(root, "viewer", "read", ("other",)).to_base64()  # reads hub-wide, scoped to other
        assert [r["repo"] for r in get(reader).json()["repos"]] == ["other"]
        assert get(reader, "&repo=mine").status_code == 403


def _wait_for(check: Callable[[], bool], what: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_a_real_server_holds_events_in_a_detached_head_says_why_and_applies_them_after(
    served_settings: Settings, make_repo: Callable[[str], GitRepo]
) -> None:
    repo = plan_repo(make_repo)
    assert CliRunner().invoke(main, ["repos", "add", str(repo.root)]).exit_code == 0
    repo.git("checkout", "-q", "--detach")
    with HubServer(served_settings.config_dir.parent, watch=True) as server:
        sent = httpx.post(f"{server.url}/events", json=event("SRV1", kind="progress.note"), timeout=10)
        assert sent.status_code == 202

        def waiting() -> bool:
            found = httpx.get(f"{server.url}/events/SRV1", timeout=10).json()
            return found["state"] == "pending" and bool(found["reason"])

        _wait_for(waiting, "the server's applier to give the event its reason")
        reason = httpx.get(f"{server.url}/events/SRV1", timeout=10).json()["reason"]
        assert reason.startswith(f"HEAD in {repo.root} is detached at ")
        health = httpx.get(f"{server.url}/state/health", timeout=10).json()
        assert health["status"] == "degraded"
        assert [p["kind"] for p in health["writes_stopped"]["the-custodian"]] == ["detached-head"]
        report = httpx.get(f"{server.url}/state/diagnostics", params={"probe": "false"}, timeout=30).json()
        assert report["hub"]["watcher"]["running"] is True
        [diagnosis] = report["repos"]
        assert diagnosis["git"]["detached"] is True
        assert diagnosis["waiting"] == [
            {
                "reason": reason,
                "count": 1,
                "oldest_accepted_at": diagnosis["waiting"][0]["oldest_accepted_at"],
                "keys": ["SRV1"],
            }
        ]
        result = CliRunner().invoke(main, ["doctor", "--json"])  # the CLI beside the server
        assert result.exit_code == NEEDS_A_PERSON
        cli = cli_data(result.output)
        assert cli["hub"]["watcher"]["running"] is True and cli["hub"]["problems"] == []
        repo.git("checkout", "-q", "main")

        def applied() -> bool:
            return bool(httpx.get(f"{server.url}/events/SRV1", timeout=10).json()["state"] == "applied")

        _wait_for(applied, "the server to apply the event once HEAD is back on main")
        assert httpx.get(f"{server.url}/state/health", timeout=10).json()["status"] == "ok"
        assert "<!-- event:SRV1 -->" in repo.read(PLAN_PATH)
    result = CliRunner().invoke(main, ["doctor", "--json"])
    assert cli_data(result.output)["hub"]["watcher"]["running"] is False  # the mark went with it


def test_events_for_a_repo_no_longer_registered_stop_writes_until_it_is_back(
    hub: Hub, desk: EventDesk, make_repo: Callable[[str], GitRepo]
) -> None:
    repo = plan_repo(make_repo)
    hub.register(repo.root)
    desk.submit(event("O1", kind="progress.note"), authorise=LOCAL_COMMAND)
    hub.remove("the-custodian")
    said = health(desk)
    assert said.status == "degraded" and said.problems[0].startswith(
        "the-custodian: events wait for this repo"
    )
    result, report = _doctor()
    assert result.exit_code == NEEDS_A_PERSON
    orphan = _kinds(report["hub"]["problems"])["unregistered-repo"]
    assert orphan["message"] == "1 event waits for repo the-custodian, which is not registered"
    hub.register(repo.root)
    desk.apply_pending()
    found = desk.buffer.get("O1")
    assert found is not None and found.state.value == "applied"
    assert health(desk).status == "ok"


@pytest.mark.parametrize("asked", ["nope", ""])
def test_diagnostics_for_a_repo_not_registered_is_a_client_error_on_an_open_hub(
    client: TestClient[Any], make_repo: Callable[[str], GitRepo], asked: str
) -> None:
    client.app.state.hub.register(plan_repo(make_repo, "mine").root)
    answer = client.get("/state/diagnostics", params={"repo": asked, "probe": "false"})
    assert answer.status_code in (400, 404), answer.text
    assert set(answer.json()) >= {"error", "status_code"}
