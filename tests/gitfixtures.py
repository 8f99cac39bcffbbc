"""Real git work trees in temp dirs, for every test that needs a repo."""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["GitRepo", "clone", "lose_cache", "workplan_text"]


def _git(cwd: Path, *args: str) -> str:
    result = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)
    return result.stdout


class GitRepo:
    """A real git work tree; ``write`` files, ``commit`` them, read ``log``. ``init=False`` takes a
    work tree that exists already (a clone, a worktree, a submodule) and only sets the identity."""

    def __init__(self, root: Path, *, init: bool = True) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        if init:
            _git(root, "init", "-q", "-b", "main")
        _git(root, "config", "user.email", "tests@statehub.invalid")
        _git(root, "config", "user.name", "State Hub tests")
        _git(root, "config", "commit.gpgsign", "false")

    def write(self, rel: str, text: str) -> Path:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    def read(self, rel: str) -> str:
        return (self.root / rel).read_text(encoding="utf-8")

    def commit(self, message: str = "test commit") -> str:
        _git(self.root, "add", "-A")
        _git(self.root, "commit", "-q", "--allow-empty", "-m", message)
        return _git(self.root, "rev-parse", "HEAD").strip()

    def git(self, *args: str) -> str:
        return _git(self.root, *args)

    def try_git(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``git ARGS`` that may fail (a merge or rebase that stops on a conflict)."""
        return subprocess.run(["git", *args], cwd=self.root, capture_output=True, text=True, check=False)


def clone(source: Path | str, dest: Path, *args: str) -> GitRepo:
    """``git clone ARGS source dest`` (``--depth 1`` for a shallow clone), as a GitRepo."""
    subprocess.run(["git", "clone", "-q", *args, str(source), str(dest)], check=True, capture_output=True)
    return GitRepo(dest, init=False)


def workplan_text(
    plan_id: str,
    tasks: list[dict[str, object]] | None = None,
    *,
    status: str = "active",
    owner: str | None = None,
    title: str = "A workplan",
    body: str = "\n# Plan\n\nFree text.\n",
) -> str:
    lines = ["+++", f'id = "{plan_id}"', f'title = "{title}"', f'status = "{status}"']
    if owner:
        lines.append(f'owner = "{owner}"')
    for task in tasks or []:
        lines += ["", "[[tasks]]"]
        for key, value in task.items():
            if isinstance(value, list):
                inner = ", ".join(f'"{v}"' for v in value)
                lines.append(f"{key} = [{inner}]")
            else:
                lines.append(f'{key} = "{value}"')
    lines.append("+++")
    return "\n".join(lines) + "\n" + body


def lose_cache(database_url: str, cache_file: Path) -> None:
    """What 'rm cache.sqlite3' is for SQLite: on PostgreSQL, drop every table of the cache database."""
    if database_url.startswith("sqlite"):
        cache_file.unlink()
        return
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()
