"""A repo's ``.git`` never runs code (ADR-022, issue 10 item 5).

Each test plants, in real repos, every hook of githooks(5), an fsmonitor hook,
clean/smudge/process filters, merge and diff drivers, a gpg program with
signing and signature display on, an editor, pager, askpass, ssh command,
credential helper, alternate-refs command, upload/receive-pack commands and the
remote's own hooks; each writes a marker file. Then the hub registers and
indexes the repo, writes back an event, saves a manifest, and sweeps against a
remote (fetch, fast-forward, push). No marker may appear, and the work is done;
settings the hub cannot override (an include, a ``core.worktree`` elsewhere) are
refused with a reason and nothing is registered.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import threading
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from click.testing import CliRunner

from statehub import gitcommit, gitrepo, gitstate
from statehub.cli import main
from statehub.collab import ManifestSaver
from statehub.errors import NEEDS_A_PERSON, NotAGitRepo
from statehub.events import gitwork
from sync.errors import RoomInputError
from sync.saving import Person, SaveRequest, identity_problem
from tests.gitfixtures import GitRepo
from tests.statehub.eventfixtures import PLAN_PATH, event, plan_repo, trailer_counts
from tests.statehub.hubprocess import HubProcess
from tests.statehub.sweeping import sweep_over_http
from tests.sync_fixtures import MANIFEST

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from statehub.hub import Hub

HOOKS = (
    "applypatch-msg",
    "pre-applypatch",
    "post-applypatch",
    "pre-commit",
    "pre-merge-commit",
    "prepare-commit-msg",
    "commit-msg",
    "post-commit",
    "pre-rebase",
    "post-checkout",
    "post-merge",
    "pre-push",
    "pre-receive",
    "update",
    "proc-receive",
    "post-receive",
    "post-update",
    "reference-transaction",
    "push-to-checkout",
    "pre-auto-gc",
    "post-rewrite",
    "sendemail-validate",
    "fsmonitor-watchman",
    "p4-changelist",
    "p4-prepare-changelist",
    "p4-post-changelist",
    "p4-pre-submit",
    "post-index-change",
)
"""Every hook of githooks(5) in git 2.39."""


def _script(path: Path, marks: Path, name: str, then: str = "exit 0") -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'#!/bin/sh\ntouch "{marks}/{name}"\n{then}\n')
    path.chmod(0o755)
    return str(path)


def _plant_hooks(git_dir: Path, marks: Path, prefix: str) -> None:
    for hook in HOOKS:
        _script(git_dir / "hooks" / hook, marks, f"{prefix}hook-{hook}")


def plant(repo: GitRepo, marks: Path) -> None:
    """Every program a repo's .git can name, each touching a marker in ``marks``."""
    repo.write(".gitattributes", "* filter=evil diff=evil merge=evil\n")
    repo.commit("attributes naming the planted drivers")  # before the drivers exist
    bin_dir = repo.root.parent / f"{repo.root.name}-planted"
    _plant_hooks(repo.root / ".git", marks, "")
    settings = {
        "core.fsmonitor": _script(bin_dir / "fsmonitor", marks, "fsmonitor"),
        "filter.evil.clean": _script(bin_dir / "clean", marks, "filter-clean", "exec cat"),
        "filter.evil.smudge": _script(bin_dir / "smudge", marks, "filter-smudge", "exec cat"),
        "filter.evil.process": _script(bin_dir / "process", marks, "filter-process", "exit 1"),
        "filter.evil.required": "true",
        "merge.evil.driver": _script(bin_dir / "merge", marks, "merge-driver") + " %O %A %B",
        "diff.evil.textconv": _script(bin_dir / "textconv", marks, "textconv", 'exec cat "$1"'),
        "diff.evil.command": _script(bin_dir / "diffcmd", marks, "diff-command"),
        "diff.external": _script(bin_dir / "extdiff", marks, "diff-external"),
        "gpg.program": _script(bin_dir / "gpg", marks, "gpg"),
        "gpg.ssh.program": _script(bin_dir / "gpg-ssh", marks, "gpg-ssh"),
        "commit.gpgSign": "true",
        "log.showSignature": "true",
        "merge.verifySignatures": "true",
        "core.editor": _script(bin_dir / "editor", marks, "editor"),
        "sequence.editor": _script(bin_dir / "seq-editor", marks, "sequence-editor"),
        "core.pager": _script(bin_dir / "pager", marks, "pager", "exec cat"),
        "core.askPass": _script(bin_dir / "askpass", marks, "askpass", "echo secret"),
        "core.sshCommand": _script(bin_dir / "ssh", marks, "ssh-command", "exit 1"),
        "credential.helper": "!" + _script(bin_dir / "cred", marks, "credential-helper"),
        "core.alternateRefsCommand": _script(bin_dir / "altrefs", marks, "alternate-refs"),
        "trailer.separators": "=",
        "gc.auto": "1",
        "fetch.writeCommitGraph": "true",
    }
    for key, value in settings.items():
        repo.git("config", key, value)


def _remote(tmp_path: Path, repo: GitRepo, marks: Path) -> Path:
    """A bare remote with its own planted hooks, and upload/receive-pack commands in the clone's config."""
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)
    repo.git("remote", "add", "origin", str(remote))
    repo.git("push", "-q", "-u", "origin", "main")
    _plant_hooks(remote, marks, "remote-")
    bin_dir = tmp_path / "remote-planted"
    upload = _script(bin_dir / "upload", marks, "uploadpack", 'exec git-upload-pack "$@"')
    receive = _script(bin_dir / "receive", marks, "receivepack", 'exec git-receive-pack "$@"')
    repo.git("config", "remote.origin.uploadpack", upload)
    repo.git("config", "remote.origin.receivepack", receive)
    return remote


def _marks(marks: Path) -> list[str]:
    return sorted(p.name for p in marks.iterdir())


@pytest.fixture
def server(tmp_path: Path) -> Iterator[HubProcess]:
    process = HubProcess(tmp_path / "hub-home", tmp_path / "hub.log")
    yield process
    process.stop()


def test_registration_events_and_a_sweep_run_no_planted_code(
    server: HubProcess, make_repo: Callable[[str], GitRepo], tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    repo = plan_repo(make_repo)
    remote = _remote(tmp_path, repo, marks)
    teammate = tmp_path / "teammate"
    subprocess.run(["git", "clone", "-q", str(remote), str(teammate)], check=True)
    plant(repo, marks)
    repo.git("-c", "core.hooksPath=/dev/null", "push", "-q", "origin", "main")  # the attributes commit
    mate = GitRepo.__new__(GitRepo)
    mate.root = teammate
    mate.git("pull", "-q")
    mate.git("config", "user.name", "Mate")
    mate.git("config", "user.email", "mate@statehub.invalid")
    mate.write("notes.txt", "from the teammate\n")
    mate.commit("teammate's commit")
    mate.git("push", "-q", "origin", "main")
    for leftover in marks.iterdir():  # planting itself ran the plain git of the test
        leftover.unlink()

    server.start()
    answer = server.call("POST", "/repos", json={"path": str(repo.root)})
    assert answer.status_code == 201, answer.text
    assert server.call("POST", "/events", json=[event("GC1", kind="progress.note")]).status_code == 202
    server.wait_settled()
    assert server.call("GET", "/events/GC1").json()["state"] == "applied"
    assert trailer_counts(repo) == {"GC1": 1}
    assert "<!-- event:GC1 -->" in repo.read(PLAN_PATH)

    swept = sweep_over_http(partial(server.call, "POST"), partial(server.call, "GET"))
    [report] = swept["repos"]
    assert report["pulled"] == 1 and report["pushed"] is True, report
    head = repo.git("-c", "core.hooksPath=/dev/null", "rev-parse", "HEAD").strip()
    assert (
        subprocess.run(
            ["git", "--git-dir", str(remote), "rev-parse", "main"], capture_output=True, text=True, check=True
        ).stdout.strip()
        == head
    )
    assert _marks(marks) == []


def test_a_save_runs_no_planted_code(hub: Hub, make_repo: Callable[[str], GitRepo], tmp_path: Path) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    repo = make_repo("demo")
    repo.write("statehub.toml", MANIFEST)
    repo.commit("start")
    plant(repo, marks)
    for leftover in marks.iterdir():
        leftover.unlink()
    hub.register(repo.root)
    assert _marks(marks) == []
    text = MANIFEST + 'default_branch = "main"\n'
    request = SaveRequest("demo/statehub.toml", text, MANIFEST, Person("Ada"), [])
    outcome = asyncio.run(ManifestSaver(hub)(request))
    assert outcome.ok, outcome.message
    assert repo.read("statehub.toml") == text
    assert repo.git("-c", "core.hooksPath=/dev/null", "log", "-1", "--format=%an").strip() == "Ada"
    assert _marks(marks) == []


def test_reading_the_git_state_and_the_doctor_run_no_planted_code(
    hub: Hub, make_repo: Callable[[str], GitRepo], tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    repo = plan_repo(make_repo)
    _remote(tmp_path, repo, marks)
    plant(repo, marks)
    hub.register(repo.root)
    repo.write(PLAN_PATH, repo.read(PLAN_PATH) + "a person's change\n")  # git status looks at it
    head = repo.git("-c", "core.hooksPath=/dev/null", "rev-parse", "HEAD").strip()
    (repo.root / ".git" / "HEAD").write_text(head + "\n")  # detached (a checkout would run filters)
    for leftover in marks.iterdir():
        leftover.unlink()
    state = gitstate.inspect(repo.root, probe=True)
    assert (state.detached, state.dirty, state.remote_reachable) == (True, [PLAN_PATH], True)
    result = CliRunner().invoke(main, ["doctor", "--json"])
    assert result.exit_code == NEEDS_A_PERSON, result.output
    assert _marks(marks) == []


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        ("include.path", "{outside}", "includes another file"),
        ("includeIf.gitdir:/.path", "{outside}", "includes another file"),
        ("core.worktree", "{elsewhere}", "core.worktree"),
    ],
)
def test_settings_the_hub_cannot_override_are_refused_with_a_reason(
    server: HubProcess, make_repo: Callable[[str], GitRepo], tmp_path: Path, key: str, value: str, reason: str
) -> None:
    repo = plan_repo(make_repo)
    outside = tmp_path / "outside.config"
    outside.write_text(f'[core]\n\tfsmonitor = "{tmp_path}/nope"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    repo.git("config", key, value.format(outside=outside, elsewhere=elsewhere))
    server.start()
    answer = server.call("POST", "/repos", json={"path": str(repo.root)})
    assert answer.status_code == 400, answer.text
    assert reason in answer.text and "try again" in answer.text
    assert server.call("GET", "/repos").json()["items"] == []
    assert list(elsewhere.iterdir()) == []


def test_a_fifo_include_is_refused_without_blocking(
    make_repo: Callable[[str], GitRepo], tmp_path: Path
) -> None:
    repo = plan_repo(make_repo)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    repo.git("config", "include.path", str(fifo))
    with pytest.raises(NotAGitRepo, match="includes another file"):
        gitrepo.open_repo(repo.root)


class _AskForPassword(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(401)
        self.send_header("WWW-Authenticate", 'Basic realm="x"')
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return None


@pytest.mark.parametrize("kind", ["https-credentials", "ssh", "ext", "fd", "helper"])
def test_fetch_runs_no_ssh_command_credential_helper_or_transport_from_the_repo(
    make_repo: Callable[[str], GitRepo], tmp_path: Path, kind: str
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    repo = plan_repo(make_repo)
    plant(repo, marks)
    for leftover in marks.iterdir():
        leftover.unlink()
    http = ThreadingHTTPServer(("127.0.0.1", 0), _AskForPassword)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    try:
        url = {
            "https-credentials": f"http://127.0.0.1:{http.server_address[1]}/repo.git",
            "ssh": "ssh://git@127.0.0.1:1/repo.git",
            "ext": f"ext::sh -c touch% {marks}/ext-transport",
            "fd": "fd::17",
            "helper": "testgit::/tmp/x",
        }[kind]
        repo.git("remote", "add", "origin", url)
        from statehub.sweep.remote import fetch

        opened = gitrepo.open_repo(repo.root)
        try:
            problem = fetch(opened, "origin")
        finally:
            opened.close()
    finally:
        http.shutdown()
        http.server_close()
    assert problem is not None and problem.startswith("fetch from origin failed")
    assert "git " not in problem.split(":", 1)[1][:5]  # git's reason, not a command line
    assert _marks(marks) == []


PYTHON_WORKERS = {Path("statehub/cache/gathering.py")}
"""Modules that start a process of their own that is not git: the rebuild's gathering worker
(``sys.executable -P -m statehub.cache.gathering``, canon/ADR-043). Only ``subprocess`` is allowed
there; a gitpython ``Repo``, ``os.system`` or an exec still counts."""


def test_every_git_command_goes_through_statehub_gitrepo() -> None:
    """No module but statehub/gitrepo.py opens a gitpython Repo or runs git in a subprocess."""
    root = Path(__file__).resolve().parents[3]
    offenders = []
    python_only = re.compile(
        r"git\.Repo\(|\bRepo\(|git\.Git\(|\bGit\(|os\.system|os\.exec|os\.spawn|\bpty\.|\bgit\b"
    )
    pattern = re.compile(
        r"git\.Repo\(|\bRepo\(|git\.Git\(|\bGit\(|subprocess|os\.system|os\.exec|os\.spawn|\bpty\."
    )
    for package in ("statehub", "sync", "registry", "workplans"):
        for path in (root / package).rglob("*.py"):
            if path == root / "statehub" / "gitrepo.py":
                continue
            check = python_only if path.relative_to(root) in PYTHON_WORKERS else pattern
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if check.search(line) and not line.lstrip().startswith("#"):
                    offenders.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    assert offenders == []


def test_the_installed_git_supports_the_hardened_environment() -> None:
    assert gitrepo.check_git_version() is None
    assert gitrepo.check_git_version((2, 30)) is not None


def test_an_empty_filter_setting_really_skips_the_filter(
    make_repo: Callable[[str], GitRepo], tmp_path: Path
) -> None:
    """The neutralised values, checked against this machine's git (clean, smudge and process)."""
    marks = tmp_path / "marks"
    marks.mkdir()
    repo = make_repo("filters")
    repo.write(".gitattributes", "*.md filter=evil\n")
    repo.commit("attributes")
    plant(repo, marks)
    for leftover in marks.iterdir():
        leftover.unlink()
    repo.write("a.md", "text\n")
    opened = gitrepo.open_repo(repo.root)
    try:
        opened.git.add("a.md")
        opened.git.commit("-q", "-m", "add a.md")
        (repo.root / "a.md").unlink()
        opened.git.checkout("HEAD", "--", "a.md")
    finally:
        opened.close()
    assert repo.read("a.md") == "text\n"
    assert _marks(marks) == []
    # plain git, for contrast: the planted process filter runs (and fails, being required)
    subprocess.run(["git", "add", "a.md"], cwd=repo.root, capture_output=True, check=False)
    assert "filter-process" in _marks(marks) or "filter-clean" in _marks(marks)


def test_a_trailer_in_the_body_is_not_proof_but_a_real_trailer_is(
    make_repo: Callable[[str], GitRepo],
) -> None:
    repo = plan_repo(make_repo)
    base = repo.git("rev-parse", "HEAD").strip()
    repo.write("a.txt", "1\n")
    repo.commit("a person's commit\n\nStatehub-Event: BODY-1\nmentioned in the body, not a trailer\n")
    repo.write("b.txt", "2\n")
    real = repo.commit("a person's commit with a real trailer\n\nBody text.\n\nStatehub-Event: REAL-1\n")
    repo.write("c.txt", "3\n")
    repo.commit("statehub-event: in the subject\n\nStatehub-Event : SPACED\n\nSigned-off-by: x <x@y>\n")
    opened = gitrepo.open_repo(repo.root)
    try:
        found = gitwork.trailer_keys(opened, base)
    finally:
        opened.close()
    assert found == {"REAL-1": real}


@pytest.mark.parametrize(
    "name",
    [
        "evil\nStatehub-Event: X",
        "a <b@c>",
        "a>b",
        "tab\tname",
        "nul\x00",
        "bell\x07",
        "ls\u2028",
        "rlo\u202e",
        " ",
    ],
)
def test_an_author_name_is_one_line_without_angle_brackets_or_control_characters(
    make_repo: Callable[[str], GitRepo], name: str
) -> None:
    repo = plan_repo(make_repo)
    head = repo.git("rev-parse", "HEAD")
    assert identity_problem("name", name) is not None
    opened = gitrepo.open_repo(repo.root)
    try:
        # the commit path takes authors as Persons, and no Person has such a name
        with pytest.raises(RoomInputError, match="name"):
            gitcommit.build_chain(
                opened,
                gitcommit.read_head(opened),
                [gitcommit.NewCommit(Person(name), "subject\n", {PLAN_PATH: b"x\n"})],
                {},
            )
    finally:
        opened.close()
    assert repo.git("rev-parse", "HEAD") == head
    assert identity_problem("name", "agt-codex") is None
    assert identity_problem("name", "Ada Lovelace") is None


def test_a_hub_started_in_a_directory_holding_a_statehub_package_runs_the_real_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The test harness starts hubs as the product starts its worker, ``python -P -m statehub``: a
    plain ``-m`` puts the working directory first on ``sys.path``, so a ``statehub/`` there (a repo's,
    planted) would be what runs."""
    planted = tmp_path / "cwd" / "statehub"
    planted.mkdir(parents=True)
    ran = tmp_path / "planted-ran"
    (planted / "__init__.py").write_text(f"open({str(ran)!r}, 'w').close()\n", encoding="utf-8")
    (planted / "__main__.py").write_text("raise SystemExit(3)\n", encoding="utf-8")
    monkeypatch.chdir(planted.parent)
    process = HubProcess(tmp_path / "hub-home", tmp_path / "hub.log")
    try:
        process.start()
        assert process.call("GET", "/state/health").status_code == 200
    finally:
        process.stop()
    assert not ran.exists()
