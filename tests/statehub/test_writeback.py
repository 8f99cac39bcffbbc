"""Write-back against real git repos: people's uncommitted work, removed tasks, broken files."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from statehub.auth import LOCAL_COMMAND
from statehub.events import EventDesk, writeback
from statehub.hub import Hub
from tests.gitfixtures import GitRepo, lose_cache
from tests.statehub.eventfixtures import PLAN_PATH, PLAN_TEXT, event, plan_repo, trailer_counts

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from workplans import EventKinds


pytestmark = pytest.mark.usefixtures(
    "state_in_cache_database"
)  # the buffer in the state schema on [postgres]


@pytest.fixture
def desk(hub: Hub) -> Iterator[EventDesk]:
    with EventDesk(hub) as opened:
        yield opened


def _state(desk: EventDesk, key: str) -> tuple[str, str | None]:
    found = desk.buffer.get(key)
    assert found is not None
    return found.state.value, found.reason


def _setup(hub: Hub, make_repo: Callable[[str], GitRepo]) -> GitRepo:
    repo = plan_repo(make_repo)
    hub.register(repo.root)
    return repo


def test_a_persons_uncommitted_edit_is_never_overwritten(
    hub: Hub, desk: EventDesk, make_repo: Callable[[str], GitRepo]
) -> None:
    repo = _setup(hub, make_repo)
    edited = PLAN_TEXT.replace("Free   text", "Half-typed thought")
    repo.write(PLAN_PATH, edited)
    desk.submit(event("E1", kind="progress.note"), authorise=LOCAL_COMMAND)
    desk.apply_pending()
    assert _state(desk, "E1") == ("pending", f"uncommitted changes in {PLAN_PATH}")
    assert repo.read(PLAN_PATH) == edited
    assert trailer_counts(repo) == {}
    repo.commit("my edit")
    desk.apply_pending()
    assert _state(desk, "E1") == ("applied", None)
    text = repo.read(PLAN_PATH)
    assert "Half-typed thought" in text and "<!-- event:E1 -->" in text
    assert trailer_counts(repo) == {"E1": 1}


def test_a_persons_staged_work_on_another_file_stays_out_of_hub_commits(
    hub: Hub, desk: EventDesk, make_repo: Callable[[str], GitRepo]
) -> None:
    repo = _setup(hub, make_repo)
    repo.write("notes.txt", "mine\n")
    repo.git("add", "notes.txt")
    desk.submit(event("E2"), authorise=LOCAL_COMMAND)
    desk.apply_pending()
    assert _state(desk, "E2")[0] == "applied"
    assert repo.git("show", "--name-only", "--format=", "HEAD").split() == [PLAN_PATH]
    assert repo.git("status", "--porcelain").strip() == "A  notes.txt"


def test_an_event_for_a_task_removed_meanwhile_is_rejected_with_its_reason(
    hub: Hub, desk: EventDesk, make_repo: Callable[[str], GitRepo]
) -> None:
    repo = _setup(hub, make_repo)
    desk.submit(
        [event("E3"), event("E4", kind="progress.note", task=None, note="still here")],
        authorise=LOCAL_COMMAND,
    )
    repo.write(PLAN_PATH, PLAN_TEXT.split('[[tasks]]\nid = "T02"')[0].rstrip("\n") + "\n+++\nbody\n")
    repo.commit("drop T02")
    desk.apply_pending()
    state, reason = _state(desk, "E3")
    assert state == "rejected"
    assert reason is not None and "CUST-WP-0054-T02 is no longer in the workplan" in reason
    assert _state(desk, "E4")[0] == "applied"
    assert trailer_counts(repo) == {"E4": 1}


def test_an_event_for_a_removed_workplan_file_is_rejected(
    hub: Hub, desk: EventDesk, make_repo: Callable[[str], GitRepo]
) -> None:
    repo = _setup(hub, make_repo)
    desk.submit(event("E5"), authorise=LOCAL_COMMAND)
    repo.git("rm", "-q", PLAN_PATH)
    repo.commit("drop the plan")
    hub.refresh()
    desk.apply_pending()
    head = repo.git("rev-parse", "--short=10", "HEAD").strip()
    assert _state(desk, "E5") == (
        "rejected",
        f"workplan CUST-WP-0054 is in no committed file of repo the-custodian (HEAD {head}): "
        "it was removed or renamed there",
    )


def test_a_broken_file_holds_its_events_until_it_is_fixed(
    hub: Hub, desk: EventDesk, make_repo: Callable[[str], GitRepo]
) -> None:
    repo = _setup(hub, make_repo)
    desk.submit(event("E6", kind="workplan.status"), authorise=LOCAL_COMMAND)
    repo.write(PLAN_PATH, PLAN_TEXT.replace('owner = "custodian"', "owner = "))
    repo.commit("oops")
    desk.apply_pending()
    state, reason = _state(desk, "E6")
    assert state == "pending"
    assert reason is not None and "fix the file" in reason
    repo.write(PLAN_PATH, PLAN_TEXT)
    repo.commit("fixed")
    desk.apply_pending()
    assert _state(desk, "E6")[0] == "applied"
    assert trailer_counts(repo) == {"E6": 1}


def test_each_actor_authors_their_own_commit(
    hub: Hub, desk: EventDesk, make_repo: Callable[[str], GitRepo]
) -> None:
    repo = _setup(hub, make_repo)
    batch: list[dict[str, Any]] = [
        event("A1", kind="progress.note", note="one"),
        event("A2", kind="progress.note", note="two"),
        event("B1", kind="progress.note", note="three", actor="atm-railiance01"),
    ]
    desk.submit(batch, authorise=LOCAL_COMMAND)
    results = desk.apply_pending()
    assert results is not None and len(results[0].commits) == 2
    authors = repo.git("log", "-2", "--format=%an %cn").splitlines()
    assert authors == ["atm-railiance01 State Hub", "agt-codex State Hub"]
    assert "Statehub-Event: A1\nStatehub-Event: A2" in repo.git("log", "-1", "--skip=1", "--format=%B")
    assert trailer_counts(repo) == {"A1": 1, "A2": 1, "B1": 1}


def test_the_buffer_survives_a_cache_rebuild(
    hub: Hub, desk: EventDesk, make_repo: Callable[[str], GitRepo]
) -> None:
    repo = _setup(hub, make_repo)
    desk.submit(event("R1", kind="progress.note"), authorise=LOCAL_COMMAND)
    hub.rebuild()
    lose_cache(hub.settings.database_url, hub.settings.default_cache_file)
    with Hub(hub.settings) as fresh, EventDesk(fresh) as again:
        assert _state(again, "R1")[0] == "pending"
        again.apply_pending()
        assert _state(again, "R1")[0] == "applied"
    assert trailer_counts(repo) == {"R1": 1}


def test_git_trouble_in_one_repo_leaves_its_events_pending_and_the_others_apply(
    hub: Hub, desk: EventDesk, make_repo: Callable[[str], GitRepo]
) -> None:
    stuck = _setup(hub, make_repo)
    other = plan_repo(make_repo, "other")
    other.write(PLAN_PATH, other.read(PLAN_PATH).replace("CUST-WP-0054", "OTHR-WP-0054"))
    other.commit("rename")
    hub.register(other.root)
    desk.submit(
        [event("G1", kind="progress.note"), event("G2", kind="progress.note", workplan="OTHR-WP-0054")],
        authorise=LOCAL_COMMAND,
    )
    lock = stuck.root / ".git" / "index.lock"
    lock.write_text("")  # a person's git command is running
    desk.apply_pending()
    state, reason = _state(desk, "G1")
    assert state == "pending" and reason is not None
    assert reason.startswith(f"git is busy in {stuck.root}: {lock} has been held for ")
    assert reason.endswith(
        "by a git command (not the hub), so writes wait; if no git command is running there, "
        f"remove it: rm {lock}"
    )
    assert _state(desk, "G2")[0] == "applied"
    assert stuck.git("status", "--porcelain") == ""  # the written file was put back
    lock.unlink()
    desk.apply_pending()
    assert _state(desk, "G1")[0] == "applied"
    assert trailer_counts(stuck) == {"G1": 1}


def test_a_file_saved_by_a_person_while_the_hub_applies_is_not_overwritten(
    hub: Hub, desk: EventDesk, make_repo: Callable[[str], GitRepo], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = _setup(hub, make_repo)
    desk.submit(event("H1", kind="progress.note"), authorise=LOCAL_COMMAND)
    saved = PLAN_TEXT.replace("Free   text", "Saved meanwhile")
    real_apply = writeback.apply_event

    def apply_while_a_person_saves(text: str, item: Any, kinds: EventKinds) -> str:
        repo.write(PLAN_PATH, saved)  # lands between the hub's read and its write
        return real_apply(text, item, kinds)

    monkeypatch.setattr(writeback, "apply_event", apply_while_a_person_saves)
    desk.apply_pending()
    state, reason = _state(desk, "H1")
    assert state == "pending"
    # The write found the person's bytes and wrote nothing; the pass started over and saw their save.
    assert reason == f"uncommitted changes in {PLAN_PATH}"
    assert trailer_counts(repo) == {}
    assert repo.read(PLAN_PATH) == saved
    monkeypatch.setattr(writeback, "apply_event", real_apply)
    repo.commit("my save")
    desk.apply_pending()
    assert _state(desk, "H1")[0] == "applied"
    assert "Saved meanwhile" in repo.read(PLAN_PATH)
    assert trailer_counts(repo) == {"H1": 1}


def _hub_commits(repo: GitRepo) -> list[tuple[str, list[str]]]:
    """(author, trailer keys) of each commit the hub made, oldest first."""
    log = repo.git("log", "--reverse", "--format=%cn%x00%an%x00%(trailers:key=Statehub-Event,valueonly)%x00")
    fields = log.split("\0")
    return [
        (author, keys.split())
        for committer, author, keys in zip(fields[0::3], fields[1::3], fields[2::3], strict=False)
        if committer.strip() == "State Hub"
    ]


def test_an_event_and_the_one_reverting_it_both_get_their_trailer(
    hub: Hub, desk: EventDesk, make_repo: Callable[[str], GitRepo]
) -> None:
    repo = _setup(hub, make_repo)
    original = repo.read(PLAN_PATH)
    desk.submit(
        [
            event("V1", status="done"),  # T02 is in-progress: changes the file
            event("V2", status="in-progress"),  # back as it was, same actor
            event("V3", status="done", actor="atm-railiance01"),
            event("V4", status="in-progress", actor="agt-codex"),  # back again, another actor
            event("V5", status="in-progress"),  # the file already says so
        ],
        authorise=LOCAL_COMMAND,
    )
    results = desk.apply_pending()
    assert results is not None and results[0].applied == 4 and results[0].unchanged == 1
    assert repo.read(PLAN_PATH) == original
    assert trailer_counts(repo) == {"V1": 1, "V2": 1, "V3": 1, "V4": 1}
    assert _hub_commits(repo) == [
        ("agt-codex", ["V1", "V2"]),
        ("atm-railiance01", ["V3"]),
        ("agt-codex", ["V4"]),
    ]
    states = {key: desk.buffer.get(key) for key in ("V1", "V2", "V3", "V4", "V5")}
    assert all(found is not None and found.state.value == "applied" for found in states.values())
    commits = {key: found.commit for key, found in states.items() if found is not None}
    assert commits["V1"] == commits["V2"] and commits["V3"] and commits["V4"] and commits["V5"] is None
    assert repo.git("status", "--porcelain") == ""


@pytest.mark.parametrize("committed", [False, True], ids=["saved", "committed"])
def test_events_accepted_before_a_half_saved_file_wait_for_the_fix_then_apply(
    hub: Hub, desk: EventDesk, make_repo: Callable[[str], GitRepo], committed: bool
) -> None:
    repo = _setup(hub, make_repo)
    answers = desk.submit(
        [event("B1", kind="progress.note"), event("B2", kind="workplan.status")], authorise=LOCAL_COMMAND
    )
    assert [a.result for a in answers] == ["accepted", "accepted"]
    # An editor's truncate-then-write seen half-way, or a TOML typo: the watcher re-indexes it
    # and the cache no longer knows the workplan.
    repo.write(PLAN_PATH, PLAN_TEXT[: PLAN_TEXT.index("[[tasks]]")])
    if committed:
        repo.commit("half a file")
    hub.refresh()
    for _ in range(2):
        desk.apply_pending()
        for key in ("B1", "B2"):
            state, reason = _state(desk, key)
            assert state == "pending" and reason is not None
            assert (
                ("fix the file" in reason) if committed else (reason == f"uncommitted changes in {PLAN_PATH}")
            )
    repo.write(PLAN_PATH, PLAN_TEXT)
    if committed:
        repo.commit("fixed")
    hub.refresh()
    desk.apply_pending()
    assert _state(desk, "B1") == ("applied", None) and _state(desk, "B2") == ("applied", None)
    assert trailer_counts(repo) == {"B1": 1, "B2": 1}
    assert repo.git("status", "--porcelain") == ""


def test_a_momentarily_missing_file_holds_its_events(
    hub: Hub, desk: EventDesk, make_repo: Callable[[str], GitRepo]
) -> None:
    repo = _setup(hub, make_repo)
    desk.submit(event("M1", kind="progress.note"), authorise=LOCAL_COMMAND)
    (repo.root / PLAN_PATH).unlink()  # an editor that deletes, then writes
    hub.refresh()
    desk.apply_pending()
    assert _state(desk, "M1") == (
        "pending",
        f"uncommitted changes in {PLAN_PATH} (it is missing from the work tree)",
    )
    repo.write(PLAN_PATH, PLAN_TEXT)
    desk.apply_pending()
    assert _state(desk, "M1") == ("applied", None)
    assert trailer_counts(repo) == {"M1": 1}


def test_a_workplan_moved_and_committed_follows_its_file_and_a_removed_task_is_rejected_as_committed(
    hub: Hub, desk: EventDesk, make_repo: Callable[[str], GitRepo]
) -> None:
    repo = _setup(hub, make_repo)
    desk.submit(
        [event("W1", kind="progress.note", task=None, note="moved"), event("W2")], authorise=LOCAL_COMMAND
    )
    repo.git("mv", PLAN_PATH, "workplans/renamed.md")
    text = repo.read("workplans/renamed.md")
    repo.write("workplans/renamed.md", text.split('[[tasks]]\nid = "T02"')[0].rstrip("\n") + "\n+++\nbody\n")
    repo.commit("rename, drop T02")  # the cache has not seen it yet
    desk.apply_pending()
    state, reason = _state(desk, "W2")
    assert state == "rejected" and reason is not None
    assert "T02 is no longer in the workplan" in reason
    assert "the committed workplans/renamed.md says so" in reason
    assert _state(desk, "W1") == ("applied", None)
    assert "<!-- event:W1 -->" in repo.read("workplans/renamed.md")
    assert trailer_counts(repo) == {"W1": 1}


def test_a_persons_staged_version_of_the_target_stays_staged(
    hub: Hub, desk: EventDesk, make_repo: Callable[[str], GitRepo]
) -> None:
    repo = _setup(hub, make_repo)
    repo.write(PLAN_PATH, PLAN_TEXT.replace("Free   text", "Staged thought"))
    repo.git("add", PLAN_PATH)
    staged = repo.git("ls-files", "-s", PLAN_PATH)
    repo.write(PLAN_PATH, PLAN_TEXT)  # the work tree is back as committed; the index is not
    desk.submit(event("S1", kind="progress.note"), authorise=LOCAL_COMMAND)
    desk.apply_pending()
    assert _state(desk, "S1") == ("applied", None)
    assert repo.git("ls-files", "-s", PLAN_PATH) == staged  # the person's staged work is theirs
    assert "Staged thought" not in repo.git("show", f"HEAD:{PLAN_PATH}")
    assert "<!-- event:S1 -->" in repo.read(PLAN_PATH)
