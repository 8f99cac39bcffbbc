"""One atomic write for every file the hub writes: temp file in the same directory, fsync of the
file and the directory, rename, clean-up on error, an optional guard on the content read."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import Any

import pytest

from statehub import atomic
from statehub.atomic import FileChanged, atomic_write, content_sha
from statehub.auth import revocation
from statehub.auth.keys import init_root_key
from statehub.repofiles import write_repo_file

ROOT = Path(__file__).resolve().parents[2]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_writes_creates_directories_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "file.txt"
    atomic_write(path, "één\r\n")
    assert path.read_bytes() == "één\r\n".encode()
    atomic_write(path, b"\x00bytes")
    assert path.read_bytes() == b"\x00bytes"
    assert [p.name for p in path.parent.iterdir()] == ["file.txt"]


def test_mode_new_files_default_existing_files_keep_theirs(tmp_path: Path) -> None:
    old_umask = os.umask(0o077)
    try:
        fresh = tmp_path / "fresh"
        atomic_write(fresh, "x")
        assert _mode(fresh) == 0o644  # whatever the umask says
        fresh.chmod(0o640)
        atomic_write(fresh, "y")
        assert _mode(fresh) == 0o640
        atomic_write(fresh, "z", mode=0o600)
        assert _mode(fresh) == 0o600
    finally:
        os.umask(old_umask)


def test_the_file_and_its_directory_are_fsynced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[bool] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real(fd)

    monkeypatch.setattr(atomic.os, "fsync", fsync)
    atomic_write(tmp_path / "f", "x")
    assert synced == [False, True]


def test_a_guard_on_the_content_read_refuses_a_changed_file(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_text("mine")
    read = content_sha(path.read_bytes())
    path.write_text("someone else's")
    with pytest.raises(FileChanged, match="changed since it was read"):
        atomic_write(path, "mine, edited", expected_sha=read)
    assert path.read_text() == "someone else's"
    atomic_write(path, "edited", expected_sha=content_sha(b"someone else's"))
    assert path.read_text() == "edited"
    path.unlink()
    with pytest.raises(FileChanged, match="is gone"):
        atomic_write(path, "again", expected_sha=read)
    assert not path.exists()
    assert FileChanged("x").status_code == 409


def test_a_failure_removes_the_temp_file_and_keeps_the_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "f"
    path.write_text("before")

    def fail(*_args: Any, **_kwargs: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(atomic.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, "after")
    assert path.read_text() == "before"
    assert [p.name for p in tmp_path.iterdir()] == ["f"]


def test_repo_files_go_through_the_same_core(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = atomic.replace_in_dir

    def spy(dir_fd: int, name: str, data: bytes, mode: int, **guard: Any) -> None:
        calls.append(name)
        real(dir_fd, name, data, mode, **guard)

    monkeypatch.setattr("statehub.atomic.replace_in_dir", spy)  # repofiles imports it when writing
    write_repo_file(tmp_path, "plans/x.md", b"text", make_dirs=True)
    assert calls == ["x.md"] and (tmp_path / "plans" / "x.md").read_bytes() == b"text"


def test_the_root_key_is_private_whatever_the_umask(tmp_path: Path) -> None:
    old_umask = os.umask(0)
    try:
        init_root_key(tmp_path / "keys" / "root.key")
    finally:
        os.umask(old_umask)
    assert _mode(tmp_path / "keys" / "root.key") == 0o600


def test_a_revocation_added_meanwhile_is_not_lost(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "revoked.txt"
    first, second, third = "a" * 128, "b" * 128, "c" * 128
    revocation.add_revocation(path, first)
    real = revocation.atomic_write
    raced: list[bool] = []

    def racing(target: Path, data: str, expected_sha: str | None = None) -> None:
        if not raced:  # another command adds an id between our read and our write
            raced.append(True)
            real(target, target.read_text() + third + "\n")
        real(target, data, expected_sha=expected_sha)

    monkeypatch.setattr(revocation, "atomic_write", racing)
    assert revocation.add_revocation(path, second)
    assert revocation._read_ids(path) == {first, second, third}


WRITERS = re.compile(r"os\.replace\(|os\.rename\(|mkstemp\(|\.write_text\(|\.write_bytes\(")
NOT_YET: set[str] = set()
"""Modules still allowed to replace files by hand: none."""


def test_no_other_module_replaces_files_by_hand() -> None:
    offenders = [
        str(path.relative_to(ROOT))
        for package in ("statehub", "sync", "registry", "workplans")
        for path in sorted((ROOT / package).rglob("*.py"))
        if path.name != "atomic.py"
        and str(path.relative_to(ROOT)) not in NOT_YET
        and WRITERS.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_temp_files_of_a_dead_writer_are_removed_and_a_live_ones_kept(tmp_path: Path) -> None:
    import subprocess
    import sys

    from statehub.repofiles import remove_stale_repo_temps

    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    dead = int(gone.stdout)
    plans = tmp_path / "workplans"
    plans.mkdir()
    (plans / "A.md").write_text("x")
    stale = plans / f".A.md.{dead}.0123abcd.statehub"
    live = plans / f".A.md.{os.getpid()}.89abcdef.statehub"
    person = plans / ".A.md.swp"
    for path in (stale, live, person):
        path.write_text("half")
    assert remove_stale_repo_temps(tmp_path, "workplans/A.md") == [f"workplans/{stale.name}"]
    assert not stale.exists() and live.exists() and person.exists()
    assert remove_stale_repo_temps(tmp_path, "../outside/A.md") == []
