"""Sweeps the server runs: in the background on request, on a schedule, one at a time per repo.

A real ``statehub serve`` process over real git repos, one with a bare remote a
teammate pushes to. Nothing waits for a time: the schedule runs every second
(``STATEHUB_SWEEP_INTERVAL=1``) and each test waits, with a generous limit, for
what the hub does; a test holds the applier lock from outside (as a CLI command
would) to keep a sweep where it wants it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING, Any

import httpx
import msgspec
import pytest

from statehub.diagnostics import WatcherState, diagnose
from statehub.errors import NotFound, Unavailable
from statehub.events import EventDesk
from statehub.state_stores import state_location
from statehub.sweep import last_sweeps, latest_sweep, scheduler, sweep
from statehub.sweep.records import SWEEPS_FILE, SweepRecords
from statehub.sweep.scheduler import Sweeper, SweepRun
from sync.applier_lock import ApplierLock, lock_file
from sync.leader import replica_name
from tests.gitfixtures import GitRepo, workplan_text
from tests.hubserver import HubServer
from tests.statehub.sweeping import follow_sweep
from tests.statehub.test_sweep import Team as SweepTeam

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from statehub.hub import Hub
    from statehub.settings import Settings

WAIT = 120.0
"""Seconds a test waits for what it expects: a guard against a hung hub, never a timing check."""


class Team(SweepTeam):
    """test_sweep's team: a bare remote, the hub's clone and a teammate's clone."""

    def mate_pushes(self, rel: str, text: str) -> str:
        self.mate_commit(rel, text, f"teammate writes {rel}")
        return self.mate.git("rev-parse", "HEAD").strip()


def _other(make_repo: Callable[[str], GitRepo]) -> GitRepo:
    repo = make_repo("other")
    repo.write("statehub.toml", '[repo]\nslug = "other"\nprefixes = ["OTH"]\n')
    repo.write("workplans/OTH-WP-0001.md", workplan_text("OTH-WP-0001", [{"id": "T01", "title": "one"}]))
    repo.commit("start")
    return repo


def _home(settings: Settings) -> Path:
    return settings.config_dir.parent


def _serve(settings: Settings, **env: str) -> HubServer:
    return HubServer(_home(settings), env=env).start()


def _call(server: HubServer, method: str, path: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, f"{server.url}{path}", timeout=60, **kwargs)


def _get(server: HubServer) -> Callable[[str], httpx.Response]:
    return lambda path: _call(server, "GET", path)


def _until(check: Callable[[], Any], what: str) -> Any:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.05)
    raise AssertionError(f"never saw {what}")


def _sweep_messages(server: HubServer, done: Callable[[list[dict[str, Any]]], bool]) -> list[dict[str, Any]]:
    """The ``sweep.*`` messages of the change log from its start (``?since=0``), read until ``done``."""
    messages: list[dict[str, Any]] = []
    url = f"{server.url}/events/stream?since=0&types=sweep."
    with httpx.stream("GET", url, timeout=WAIT) as answer:
        assert answer.status_code == 200
        fields: dict[str, str] = {}
        for line in answer.iter_lines():
            if not line:
                if fields.get("event", "").startswith("sweep."):
                    messages.append({"type": fields["event"], **json.loads(fields["data"])})
                    if done(messages):
                        return messages
                fields = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(": ")
                fields[name] = value
    raise AssertionError(f"the stream ended first: {messages}")


@pytest.fixture
def team(tmp_path: Path, make_repo: Callable[[str], GitRepo]) -> Team:
    return Team(tmp_path, make_repo)


@pytest.fixture
def scheduled(
    served_settings: Settings, team: Team, make_repo: Callable[[str], GitRepo]
) -> Iterator[HubServer]:
    """A hub sweeping every second, with the team's repo and another (no remote) registered."""
    server = _serve(served_settings, STATEHUB_SWEEP_INTERVAL="1")
    try:
        for repo in (team.hub, _other(make_repo)):
            assert _call(server, "POST", "/repos", json={"path": str(repo.root)}).status_code == 201
        yield server
    finally:
        server.stop()


def test_the_schedule_sweeps_every_repo_pulls_a_teammates_push_and_reports_it_everywhere(
    scheduled: HubServer, team: Team
) -> None:
    schedule = _call(scheduled, "GET", "/sweeps").json()["schedule"]
    assert schedule["interval_s"] == 1 and schedule["jitter"] == 0.1
    pushed = team.mate_pushes("notes/from-mate.md", "hello\n")

    def pulled() -> dict[str, Any] | None:
        for run in _call(scheduled, "GET", "/sweeps?limit=100").json()["sweeps"]:
            if run["trigger"] == "schedule" and run["state"] == "finished":
                mine = [r for r in run["repos"] if r["repo"] == "the-custodian" and r["pulled"] == 1]
                if mine:
                    return dict(run)
        return None

    run = _until(pulled, "a scheduled sweep pulling the teammate's commit")
    assert run["requested_by"] is None and "the-custodian" in run["targets"] and run["error"] is None
    assert [r["repo"] for r in run["repos"]] == run["targets"] == sorted(run["targets"])
    assert all(r["in_step"] for r in run["repos"])
    assert team.hub.git("log", "--format=%H").split().count(pushed) == 1

    # the stream: each repo's sweep.started then its sweep.finished, with the sweep's id
    def ended(messages: list[dict[str, Any]]) -> bool:
        finished = [m for m in messages if m["type"] == "sweep.finished" and m["sweep"] == run["id"]]
        return len(finished) == len(run["targets"])

    mine = [m for m in _sweep_messages(scheduled, ended) if m["sweep"] == run["id"]]
    assert [(m["type"], m["repo"]) for m in mine] == [
        (kind, slug) for slug in run["targets"] for kind in ("sweep.started", "sweep.finished")
    ]
    assert mine[-1]["repo"] == "the-custodian" and mine[-1]["pulled"] == 1 and mine[-1]["in_step"] is True

    # diagnostics: each repo's last sweep (the schedule sweeps both), with its findings
    def both_swept() -> dict[str, Any] | None:
        diagnosis = _call(scheduled, "GET", "/state/diagnostics?probe=false").json()
        last = {r["repo"]: r["last_sweep"] for r in diagnosis["repos"]}
        return last if all(last.values()) else None

    last = _until(both_swept, "a last sweep of each repo in diagnostics")
    assert set(last) == {"other", "the-custodian"}
    for entry in last.values():
        assert entry["in_step"] is True and entry["last_in_step_at"] == entry["finished_at"]
        assert entry["findings_total"] == len(entry["findings"])
        assert entry["sweep"] is not None

    # metrics: sweeps by outcome, their duration, each repo's last sweep in step
    scrape = _call(scheduled, "GET", "/metrics").text
    assert 'statehub_sweeps_total{outcome="finished"}' in scrape
    assert "statehub_sweep_duration_seconds_count" in scrape
    assert 'statehub_repo_sweeps_total{outcome="in_step"}' in scrape
    for slug in ("other", "the-custodian"):
        assert f'statehub_sweep_last_in_step_timestamp_seconds{{repo="{slug}"}}' in scrape


def test_a_request_runs_in_the_background_joins_a_waiting_sweep_and_never_sweeps_a_repo_twice_at_once(
    served_settings: Settings, team: Team, make_repo: Callable[[str], GitRepo]
) -> None:
    server = _serve(served_settings)  # the dev profile: no schedule
    try:
        for repo in (team.hub, _other(make_repo)):
            assert _call(server, "POST", "/repos", json={"path": str(repo.root)}).status_code == 201
        assert _call(server, "GET", "/sweeps").json() == {
            "schedule": {"interval_s": None, "jitter": 0.1, "next_at": None},
            "sweeps": [],
        }
        lock = ApplierLock(
            lock_file(served_settings.data_dir / "applier.lock", "the-custodian")
        )  # as a CLI command holds it
        assert lock.acquire(timeout=WAIT)
        try:
            first = _call(server, "POST", "/sweeps", json={"repos": ["the-custodian", "other"]})
            assert first.status_code == 202, first.text
            assert first.headers["location"] == f"/sweeps/{first.json()['id']}"
            one = first.json()
            assert one["state"] in ("queued", "running") and one["requests"] == 1
            # it waits for the lock at its first repo: a request for the second joins it ...
            _until(
                lambda: _call(server, "GET", f"/sweeps/{one['id']}").json()["sweeping"] == "the-custodian",
                "the sweep waiting at its first repo",
            )
            joined = _call(server, "POST", "/sweeps", json={"repos": ["other"]}).json()
            assert joined["id"] == one["id"] and joined["requests"] == 2
            # ... one for the first repo, which it reached, queues a second sweep, and the next joins that
            two = _call(server, "POST", "/sweeps", json={"repos": ["the-custodian"]}).json()
            assert two["id"] != one["id"] and two["state"] == "queued"
            again = _call(
                server, "POST", "/sweeps", json={"repos": ["the-custodian", "the-custodian"]}
            ).json()
            assert again["id"] == two["id"] and again["requests"] == 2
        finally:
            lock.release()
        ended = [follow_sweep(_get(server), run["id"]) for run in (one, two)]
        assert [run["state"] for run in ended] == ["finished", "finished"]
        assert [r["repo"] for r in ended[0]["repos"]] == ["the-custodian", "other"]
        assert [r["repo"] for r in ended[1]["repos"]] == ["the-custodian"]
        listed = _call(server, "GET", "/sweeps?limit=1").json()["sweeps"]
        assert [run["id"] for run in listed] == [two["id"]]

        # the repo's sweeps never overlapped: started, finished, started, finished
        def four(messages: list[dict[str, Any]]) -> bool:
            return [m["type"] for m in messages if m["repo"] == "the-custodian"].count("sweep.finished") == 2

        custodian = [m for m in _sweep_messages(server, four) if m["repo"] == "the-custodian"]
        assert [(m["type"], m["sweep"]) for m in custodian] == [
            ("sweep.started", one["id"]),
            ("sweep.finished", one["id"]),
            ("sweep.started", two["id"]),
            ("sweep.finished", two["id"]),
        ]
        latest = _call(server, "GET", "/sweeps/latest").json()
        assert latest["id"] == two["id"]
    finally:
        server.stop()


def test_bad_requests_are_refused_clearly_and_queue_nothing(served_settings: Settings, team: Team) -> None:
    server = _serve(served_settings)
    try:
        assert _call(server, "POST", "/repos", json={"path": str(team.hub.root)}).status_code == 201
        unknown = _call(server, "POST", "/sweeps", json={"repos": ["the-custodian", "nope"]})
        assert unknown.status_code == 404 and "'nope'" in unknown.json()["error"], unknown.text
        too_many = _call(server, "POST", "/sweeps", json={"repos": [f"r{n}" for n in range(1001)]})
        assert too_many.status_code == 400, too_many.text
        assert _call(server, "POST", "/sweeps", json={"repos": "the-custodian"}).status_code == 400
        # a misspelt field is refused, not ignored: {"repo": ...} would otherwise sweep every repo
        typo = _call(server, "POST", "/sweeps", json={"repo": "the-custodian"})
        assert typo.status_code == 400 and "repo" in typo.json()["error"], typo.text
        assert _call(server, "GET", "/sweeps/20261201T000000Z-00000000").status_code == 404
        missing = _call(server, "GET", "/sweeps/20261201T000000Z-00000000").json()["error"]
        assert "keeps the last 100 sweeps" in missing and "GET /sweeps lists them" in missing
        assert _call(server, "GET", "/sweeps/not-a-sweep-id").status_code == 400
        assert _call(server, "GET", "/sweeps?limit=0").status_code == 400
        assert _call(server, "GET", "/sweeps?limit=101").status_code == 400
        assert _call(server, "GET", "/sweeps").json()["sweeps"] == []
    finally:
        server.stop()


def test_the_hub_stops_cleanly_with_a_sweep_waiting_and_fails_what_it_did_not_sweep(
    served_settings: Settings, team: Team
) -> None:
    server = _serve(served_settings)
    try:
        assert _call(server, "POST", "/repos", json={"path": str(team.hub.root)}).status_code == 201
        lock = ApplierLock(lock_file(served_settings.data_dir / "applier.lock", "the-custodian"))
        assert lock.acquire(timeout=WAIT)
        try:
            run = _call(server, "POST", "/sweeps", json={}).json()
            _until(
                lambda: _call(server, "GET", f"/sweeps/{run['id']}").json()["sweeping"] == "the-custodian",
                "the sweep waiting for the lock",
            )
            queued = _call(server, "POST", "/sweeps", json={"repos": ["the-custodian"]}).json()
            assert queued["state"] == "queued"
            assert server.process is not None
            server.process.terminate()
            # uvicorn shuts the app down (the lifespan stops the sweeper), then dies of the signal it got
            assert server.process.wait(WAIT) in (0, -signal.SIGTERM)
        finally:
            lock.release()
        log = server.log.read_text()
        assert "Traceback" not in log and "session manager shutting down" in log, log
    finally:
        server.stop()
    # the sweeps' records outlive the process (canon/ADR-052, addendum of 2026-12-01): both failed,
    # as the stopping hub ended them; the repo was never swept
    server = _serve(served_settings)
    try:
        for sweep_id, why in (
            (run["id"], "stopped before sweeping"),
            (queued["id"], "before this sweep began"),
        ):
            record = _call(server, "GET", f"/sweeps/{sweep_id}")
            assert record.status_code == 200, record.text
            assert record.json()["state"] == "failed" and why in record.json()["error"], record.json()
            assert record.json()["finished_at"] is not None and record.json()["repos"] == []
        listed = [r["id"] for r in _call(server, "GET", "/sweeps").json()["sweeps"]]
        assert sorted(listed) == sorted([queued["id"], run["id"]])
        assert _call(server, "GET", "/sweeps/latest").status_code == 404
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("value", "expected"),
    [("", None), ("off", None), ("0", None), ("1", 1.0), ("900", 900.0), ("604800", 604800.0)],
)
def test_the_interval_setting(value: str, expected: float | None) -> None:
    from statehub.settings import Settings

    settings = Settings.from_env({"STATEHUB_HOME": "/nonexistent", "STATEHUB_SWEEP_INTERVAL": value})
    assert settings.sweep_every == expected
    assert settings.with_overrides(profile="fleet").sweep_every == (900.0 if value == "" else expected)


@pytest.mark.parametrize("value", ["-1", "0.5", "604801", "soon", "nan", "inf"])
def test_a_bad_interval_is_refused_with_what_to_give(value: str) -> None:
    from statehub.settings import Settings

    with pytest.raises(ValueError, match=r"STATEHUB_SWEEP_INTERVAL=.*give seconds from 1 to 604800"):
        Settings.from_env({"STATEHUB_HOME": "/nonexistent", "STATEHUB_SWEEP_INTERVAL": value})


# --- the sweeper in this process, over a real hub and a real git repo


@pytest.fixture
def desk(hub: Hub) -> Iterator[EventDesk]:
    with EventDesk(hub) as opened:
        yield opened


def test_stopping_fails_what_was_not_swept_and_keeps_the_last_report(
    hub: Hub, desk: EventDesk, team: Team
) -> None:
    hub.register(team.hub.root)
    before = sweep(desk)
    lock = ApplierLock(lock_file(hub.settings.data_dir / "applier.lock", "the-custodian"))
    assert lock.acquire(timeout=WAIT)
    sweeper = Sweeper(desk, None)
    sweeper.start()
    try:
        one = sweeper.request(["the-custodian"], "ann")
        _until(lambda: sweeper.get(one.id).sweeping == "the-custodian", "the sweep waiting for the lock")
        two = sweeper.request(["the-custodian"], "bob")
        assert two.id != one.id and two.state == "queued"
        sweeper.stop()
    finally:
        lock.release()
    stopped, never = sweeper.get(one.id), sweeper.get(two.id)
    assert (stopped.state, stopped.error) == ("failed", "the hub stopped before sweeping the-custodian")
    assert stopped.repos == [] and stopped.finished_at is not None
    assert (never.state, never.error) == ("failed", "the hub stopped before this sweep began")
    latest = latest_sweep(hub.settings)
    assert latest is not None and latest.id == before.id  # an empty stopped sweep reports nothing
    with pytest.raises(Unavailable, match="the hub is stopping"):
        sweeper.request(["the-custodian"], "ann")


def test_a_full_queue_refuses_with_what_to_do(
    hub: Hub,
    desk: EventDesk,
    team: Team,
    make_repo: Callable[[str], GitRepo],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    hub.register(team.hub.root)
    hub.register(_other(make_repo).root)
    monkeypatch.setattr(scheduler, "MAX_QUEUED", 1)
    lock = ApplierLock(lock_file(hub.settings.data_dir / "applier.lock", "the-custodian"))
    assert lock.acquire(timeout=WAIT)
    sweeper = Sweeper(desk, None)
    sweeper.start()
    try:
        one = sweeper.request(["the-custodian"], None)
        _until(lambda: sweeper.get(one.id).sweeping == "the-custodian", "the sweep waiting for the lock")
        two = sweeper.request(["the-custodian"], None)
        assert sweeper.request(["the-custodian"], None).id == two.id  # joining needs no room
        with pytest.raises(Unavailable, match="1 sweeps are waiting already; follow one of them"):
            sweeper.request(["the-custodian", "other"], None)
    finally:
        lock.release()
        sweeper.stop()
    assert [run.id for run in sweeper.recent(10).sweeps] == [two.id, one.id]


@pytest.mark.parametrize(("draw", "wait"), [(0.0, 90.0), (0.5, 100.0), (1.0, 110.0)])
def test_each_scheduled_wait_is_the_interval_within_the_jitter(
    desk: EventDesk, draw: float, wait: float
) -> None:
    sweeper = Sweeper(desk, 100.0, draw=lambda: draw)
    assert sweeper._after_wait(1000.0) == pytest.approx(1000.0 + wait)
    assert Sweeper(desk, None)._after_wait(1000.0) is None


def test_each_repos_last_sweep_is_kept_apart_and_remembers_when_it_was_last_in_step(
    hub: Hub, desk: EventDesk, team: Team, make_repo: Callable[[str], GitRepo], tmp_path: Path
) -> None:
    hub.register(team.hub.root)
    hub.register(_other(make_repo).root)
    first = sweep(desk)
    kept = last_sweeps(hub.settings)
    assert kept["the-custodian"].in_step and kept["the-custodian"].sweep == first.id
    in_step_at = kept["the-custodian"].last_in_step_at
    assert in_step_at == kept["the-custodian"].finished_at
    team.remote.rename(tmp_path / "gone.git")
    second = sweep(desk, ["the-custodian"])  # one repo: the other's entry stays as it was
    kept = last_sweeps(hub.settings)
    custodian = kept["the-custodian"]
    assert (custodian.sweep, custodian.in_step, custodian.last_in_step_at) == (second.id, False, in_step_at)
    assert custodian.problems and custodian.problems[0].startswith("fetch from origin failed")
    assert kept["other"].sweep == first.id
    watcher = WatcherState(running=False, detail="no server")
    [diagnosed] = diagnose(desk, repos=["the-custodian"], watcher=watcher, probe=False).repos
    assert diagnosed.last_sweep == custodian
    assert "sweep" in {p.kind for p in diagnosed.problems}


@pytest.mark.usefixtures("state_in_cache_database")
def test_another_server_answers_a_sweep_from_its_record_and_ends_a_dead_servers(
    hub: Hub, desk: EventDesk, team: Team
) -> None:
    """Sweeps are records in the state store (``sweeps.sqlite3``, or the state schema on
    PostgreSQL), so a server that did not run a sweep answers ``GET /sweeps/{id}`` for it: before,
    it was 404 there (canon/ADR-052, addendum of 2026-12-01). A starting server ends as failed the
    records a gone process of its host left running, never a live one's or another host's."""
    hub.register(team.hub.root)
    where = state_location(hub.settings, SWEEPS_FILE)
    with SweepRecords(where, keep=scheduler.KEEP) as ours, SweepRecords(where, keep=scheduler.KEEP) as theirs:
        first = Sweeper(desk, None, records=ours)
        first.start()
        try:
            asked = first.request(["the-custodian"], "ann")
            _until(lambda: first.get(asked.id).state == "finished", "the sweep finished")
        finally:
            first.stop()
        done = first.get(asked.id)

        host = replica_name().rpartition(":")[0]
        gone = subprocess.run(  # a process of this host that is gone now
            [sys.executable, "-c", "import os; print(os.getpid())"],
            capture_output=True,
            check=True,
            text=True,
        ).stdout.strip()
        left = {
            "dead": f"{host}:{gone}",
            "live": f"{host}:{os.getppid()}",  # the process that ran pytest: alive
            "away": "another-host:1",
        }
        stuck: dict[str, SweepRun] = {}
        for number, (what, replica) in enumerate(left.items()):
            run = msgspec.structs.replace(
                done, id=f"20261201T00000{number}Z-0000000{number}", state="running", replica=replica
            )
            stuck[what] = run
            theirs.save(run.id, run.queued_at, "running", replica, msgspec.json.encode(run))

        second = Sweeper(desk, None, records=theirs)  # another server: nothing of these in its memory
        second.start()
        try:
            assert second.get(asked.id) == done
            assert second.get(stuck["dead"].id).state == "failed"
            assert "stopped before it ended" in (second.get(stuck["dead"].id).error or "")
            assert second.get(stuck["live"].id).state == "running"
            assert second.get(stuck["away"].id).state == "running"
            assert {run.id for run in second.recent(10).sweeps} == {asked.id} | {r.id for r in stuck.values()}
            with pytest.raises(NotFound, match="the hub keeps the last 100 sweeps"):
                second.get("20261201T000009Z-00000009")
        finally:
            second.stop()


@pytest.mark.usefixtures("state_in_cache_database")
def test_a_record_left_running_by_a_replica_on_another_host_is_pruned_once_old(hub: Hub) -> None:
    """A replica on another host killed mid-sweep (or its container re-created under a new host
    name, compose's default) leaves its record ``running``, and no starting server of this host
    may end it: the addendum says it stays until it is pruned. Before, an unfinished record was
    never pruned, so it stayed ``running`` in every replica's ``GET /sweeps`` for ever. Now it
    goes once ``keep`` newer records are kept (a live sweep's next save writes it again)."""
    where = state_location(hub.settings, SWEEPS_FILE)
    orphan = "20261201T000000Z-00000000"
    with SweepRecords(where, keep=3) as records:
        records.save(orphan, "2026-12-01T00:00:00Z", "running", "another-host:1", b'{"state":"running"}')
        newer = [f"20261201T00000{n}Z-0000000{n}" for n in (1, 2, 3)]
        for number, sweep_id in enumerate(newer, 1):
            records.save(
                sweep_id, f"2026-12-01T00:00:0{number}Z", "finished", "here:2", b'{"state":"finished"}'
            )
        assert records.get(orphan) is None, "the orphan outlived the newest 3 records"
        assert [row[0] for row in records.newest(10)] == newer[::-1]
        assert records.unfinished() == []
        records.save(orphan, "2026-12-01T00:00:00Z", "running", "another-host:1", b'{"state":"running"}')
        records.save("20261201T000004Z-00000004", "2026-12-01T00:00:04Z", "running", "here:2", b"{}")
        assert [row[0] for row in records.unfinished()] == ["20261201T000004Z-00000004"]


@pytest.mark.postgres
def test_a_sweep_record_whose_session_is_ended_at_its_commit_is_written(postgres_database: str) -> None:
    """The server ends the records' session at the COMMIT of a sweep's last record ("finished"):
    the write is made again on a new connection, so every replica reads the sweep finished. Before,
    the write raised, the scheduler logged it, and the record said ``running`` until pruned."""
    import threading

    import psycopg

    from sync._durable_pg import PgState
    from tests.backends import AT_COMMIT, end_at_commit, hold_commits

    state = PgState(postgres_database)
    records = SweepRecords(state, keep=10)
    holder = psycopg.connect(state.url, autocommit=True)
    try:
        records.save("s-1", "2026-12-01T00:00:00Z", "running", "r1", b'{"state":"running"}')
        hold_commits(holder, "sweep")
        failed: list[BaseException] = []

        def finish() -> None:
            try:
                records.save("s-1", "2026-12-01T00:00:00Z", "finished", "r1", b'{"state":"finished"}')
            except BaseException as error:  # noqa: BLE001 - reported by the test below
                failed.append(error)

        saving = threading.Thread(target=finish)
        saving.start()
        assert end_at_commit(holder), "no session waited at the COMMIT: the test proved nothing"
        holder.execute("SELECT pg_advisory_unlock(%s)", (AT_COMMIT,))
        saving.join(30)
        assert not saving.is_alive() and failed == []
        assert records.get("s-1") == b'{"state":"finished"}'
        assert [r[0] for r in records.unfinished()] == []
    finally:
        holder.close()
        records.close()
