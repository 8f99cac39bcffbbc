"""A person edits and commits a workplan while events flow to it (issue 12, item 1).

A simulated editor runs hundreds of cycles against a real repo: it appends a
line, rewrites the file in place (truncate, then write in two halves: the hub may
read it half-way), or saves through a temp file and a rename, and every few
cycles commits with ``git commit -a`` as a person would (retrying while another
git command holds the index lock, as a person would). Beside it an agent sends
progress notes, and the hub's real applier thread writes them back. Afterwards:

- no line the person wrote is missing from the work tree or from HEAD;
- no hub commit (committer State Hub) adds or removes a line the hub did not write;
- every accepted event is applied, with exactly one ``Statehub-Event`` trailer, on
  the commit the buffer names.
"""

from __future__ import annotations

import random
import re
import subprocess
import threading
import time
from typing import TYPE_CHECKING

import pytest

from statehub.auth import LOCAL_COMMAND
from statehub.events import EventDesk
from statehub.events.intake import InvalidEvents
from statehub.events.worker import ApplierWorker
from tests.statehub.eventfixtures import PLAN_PATH, event, plan_repo, trailer_counts

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from statehub.hub import Hub
    from tests.gitfixtures import GitRepo

CYCLES = 300
PERSON = re.compile(r"person line \d+")


@pytest.fixture
def desk(hub: Hub) -> Iterator[EventDesk]:
    with EventDesk(hub) as opened:
        yield opened


class Editor:
    """A person at a text editor: edits the workplan, commits now and then."""

    def __init__(self, repo: GitRepo, seed: int) -> None:
        self.repo = repo
        self.path = repo.root / PLAN_PATH
        self.rng = random.Random(seed)
        self.lines: list[str] = []
        self.commits = 0
        self.lock_retries = 0

    def edit(self, number: int) -> None:
        line = f"person line {number}"
        self.lines.append(line)
        action = number % 3
        if action == 0:  # append at the end, in place
            with self.path.open("a", encoding="utf-8") as handle:
                handle.write(line + "\n")
            return
        text = self.path.read_text(encoding="utf-8")
        heading = "# Workstation independence\n"
        text = text.replace(heading, heading + line + "\n", 1) if heading in text else text + line + "\n"
        data = text.encode("utf-8")
        if action == 1:  # truncate, then write in two halves
            with self.path.open("wb") as handle:
                handle.write(data[: len(data) // 2])
                handle.flush()
                time.sleep(0.0005)
                handle.write(data[len(data) // 2 :])
        else:  # save to a temp file, then rename over the file
            temp = self.path.with_name(f".{self.path.name}.swp")
            temp.write_bytes(data)
            temp.replace(self.path)

    def commit(self) -> None:
        for _ in range(2000):
            done = subprocess.run(
                ["git", "commit", "-a", "-q", "-m", f"person commit {self.commits}"],
                cwd=self.repo.root,
                capture_output=True,
                text=True,
                check=False,
            )
            if (
                done.returncode == 0
                or "nothing added to commit" in done.stdout
                or "nothing to commit" in done.stdout
            ):
                self.commits += 1
                return
            assert "index.lock" in done.stderr, done.stderr
            self.lock_retries += 1
            time.sleep(0.002)
        raise AssertionError("the person could not commit for 4 s")

    def run(self) -> None:
        for number in range(CYCLES):
            self.edit(number)
            time.sleep(self.rng.uniform(0, 0.004))
            if number % 4 == 3:
                self.commit()
                time.sleep(self.rng.uniform(0, 0.012))  # a clean file: the hub's chance
        self.commit()


def _hub_commit_lines(repo: GitRepo) -> list[tuple[str, str]]:
    """(commit, changed line) of every line a hub commit added or removed in the workplan."""
    shas = [
        sha
        for sha, committer in (
            line.split("\0") for line in repo.git("log", "--format=%H%x00%cn").splitlines()
        )
        if committer == "State Hub"
    ]
    changed = []
    for sha in shas:
        diff = repo.git("show", "--format=", "-U0", sha, "--", PLAN_PATH)
        for line in diff.splitlines():
            if line.startswith(("+", "-")) and not line.startswith(("+++", "---")):
                changed.append((sha, line))
    return changed


def test_a_person_editing_and_committing_beside_events_loses_nothing(
    hub: Hub, desk: EventDesk, make_repo: Callable[[str], GitRepo]
) -> None:
    repo = plan_repo(make_repo)
    hub.register(repo.root)
    worker = ApplierWorker(desk, poll=0.05, gather=0.002)
    worker.start()
    editor = Editor(repo, seed=12)
    stop = threading.Event()
    sent: list[str] = []
    refused: list[str] = []
    waited: set[str] = set()

    def agent() -> None:
        number = 0
        while not stop.is_set():
            key = f"RACE{number:05d}"
            actor = "agt-codex" if number % 3 else "atm-railiance01"
            note = event(key, kind="progress.note", note=f"agent note {number}", actor=actor)
            try:
                desk.submit(note, authorise=LOCAL_COMMAND)
            except InvalidEvents:  # the cache indexed a half-written file: what the watcher fixes
                refused.append(key)
                hub.refresh()
                continue
            sent.append(key)
            number += 1
            time.sleep(0.008)

    def watch() -> None:  # which events waited at least once (the race was run, not dodged)
        while not stop.is_set():
            items, _ = desk.buffer.list_events(state="pending", limit=1000)
            waited.update(item.key for item in items if item.reason)
            time.sleep(0.02)

    threads = [threading.Thread(target=agent), threading.Thread(target=watch)]
    for thread in threads:
        thread.start()
    try:
        editor.run()
    finally:
        stop.set()
        for thread in threads:
            thread.join()
    deadline = time.monotonic() + 60
    while desk.buffer.counts().pending and time.monotonic() < deadline:
        desk.accepted.set()
        time.sleep(0.05)
    worker.stop()

    counts = desk.buffer.counts()
    assert (counts.pending, counts.applied, counts.rejected) == (0, len(sent), 0), counts
    assert len(sent) > 100 and waited, "the events never met the person's edits"

    # No line of the person's is lost, from the work tree or from history.
    text = repo.read(PLAN_PATH)
    head = repo.git("show", f"HEAD:{PLAN_PATH}")
    assert repo.git("status", "--porcelain", "--untracked-files=no") == ""
    for line in editor.lines:
        assert text.count(line + "\n") == 1, line
        assert head.count(line + "\n") == 1, line

    # A hub commit holds the hub's change and nothing else.
    hub_lines = _hub_commit_lines(repo)
    assert hub_lines, "the hub committed nothing"
    assert [(sha, line) for sha, line in hub_lines if PERSON.search(line)] == []
    assert all(line.startswith("+") for _, line in hub_lines), "a hub commit removed a line"

    # Every accepted event is applied once: one trailer, on the commit the buffer names.
    trailers = trailer_counts(repo)
    assert trailers == dict.fromkeys(sent, 1)
    bodies: dict[str, str] = {}
    for item in repo.git("log", "--format=%H%x00%B%x1e").split("\x1e"):
        sha, _, body = item.partition("\0")
        bodies[sha.strip()] = body
    for key in sent:
        found = desk.buffer.get(key)
        assert found is not None and found.commit is not None
        assert f"Statehub-Event: {key}\n" in bodies[found.commit.strip()]
    print(
        f"\n{CYCLES} edit cycles, {editor.commits} person commits ({editor.lock_retries} waits for the "
        f"index lock), {len(sent)} events ({len(waited)} waited at least once, {len(refused)} sends "
        "refused while the cache held a half-written file), "
        f"{len({sha for sha, _ in hub_lines})} hub commits"
    )
