"""Git access for registered work trees: the one place the hub runs git (ADR-022).

A registered repo's ``.git`` is untrusted input: whoever can push to it, or
write its ``.git/config``, chooses hooks, filter drivers, fsmonitor, merge and
diff drivers, credential helpers, ssh commands, includes and ``core.worktree``.
Every git command the hub runs goes through this module, so none can forget
the rule **a repo's .git never runs code**:

* :func:`open_work_tree` / :func:`open_repo` return a :class:`HubRepo`, a
  gitpython ``Repo`` whose command wrapper (:class:`HardenedGit`) adds the
  hardened environment (:func:`hardened_env`) to *every* command it runs,
  including gitpython's persistent ``cat-file`` processes;
* :func:`run_git` (for the dev hub's own example repos) and :func:`git_in`
  (plumbing with bytes in and out, for :mod:`statehub.gitcommit`) are the only
  subprocess calls of git, with the same environment.

The hardened environment is ``GIT_CONFIG_NOSYSTEM=1``, no prompts
(``GIT_TERMINAL_PROMPT=0``, empty ``GIT_ASKPASS``), no-op editors and pager,
``GIT_ALLOW_PROTOCOL=file:git:http:https:ssh`` (no ``ext::``, ``fd::`` or
other remote helpers), an empty ``GIT_PROXY_COMMAND``, an ssh command taken
from the hub's own environment or global config only, ``GIT_DIR`` and
``GIT_WORK_TREE`` pinned to the registered work tree, and command-scope config
(``GIT_CONFIG_COUNT``/``KEY_n``/``VALUE_n``, which outranks the repo's own
config) that disables hooks (``core.hooksPath=/dev/null``), fsmonitor,
signing and signature checks, credential helpers other than the hub user's
global ones, submodule recursion, auto gc/maintenance, and neutralises each
filter, merge and diff driver and each remote's upload/receive-pack that the
repo's config names. (``remote.<x>.uploadpack/receivepack`` keep their first
value, so the sweep passes ``--upload-pack``/``--receive-pack`` on the command
line instead, :func:`upload_pack_args` / :func:`receive_pack_args`.) Empty
``filter.<x>.clean/smudge/process`` skip the filter
(checked with git 2.39, see tests/statehub/security/test_git_code.py), empty
``diff.<x>.command/textconv`` fail closed, ``merge.<x>.driver=false`` turns a
custom merge into a conflict.

Settings that cannot be overridden are refused with a reason
(:class:`~statehub.errors.NotAGitRepo`): an ``include.path`` /
``includeIf.*.path`` in the repo's own config (it could pull config from any
file, or block on a FIFO), and a ``core.worktree`` that points away from the
directory holding ``.git``.

Requires git >= 2.31 (``GIT_CONFIG_COUNT``); :func:`check_git_version` says so.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

import git

from statehub.errors import NotAGitRepo
from statehub.gitfiles import GitDirs, git_dirs
from statehub.gitfiles import find_git as _find_git

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = [
    "MIN_GIT",
    "GitDirs",
    "HardenedGit",
    "HubRepo",
    "check_git_version",
    "git_dirs",
    "git_in",
    "git_said",
    "hardened_env",
    "is_local_url",
    "local_receive_pack",
    "open_repo",
    "open_work_tree",
    "rebase_with_todo",
    "receive_pack_args",
    "run_git",
    "upload_pack_args",
    "work_tree_root",
]

MIN_GIT = (2, 31)
"""GIT_CONFIG_COUNT/KEY/VALUE arrived in git 2.31."""

ALLOWED_PROTOCOLS = "file:git:http:https:ssh"

_BASE_ENV: dict[str, str] = {
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_ASKPASS": "",
    "GIT_EDITOR": ":",
    "GIT_SEQUENCE_EDITOR": ":",
    "GIT_PAGER": "cat",
    "GIT_ALLOW_PROTOCOL": ALLOWED_PROTOCOLS,
    "GIT_OPTIONAL_LOCKS": "0",
    "GIT_MERGE_AUTOEDIT": "no",
}

_FIXED_CONFIG: tuple[tuple[str, str], ...] = (
    ("core.hooksPath", "/dev/null"),
    ("core.fsmonitor", "false"),
    ("core.askPass", ""),
    ("core.editor", ":"),
    ("sequence.editor", ":"),
    ("core.pager", "cat"),
    ("core.alternateRefsCommand", "true"),
    ("diff.external", ""),
    ("commit.gpgSign", "false"),
    ("tag.gpgSign", "false"),
    ("push.gpgSign", "false"),
    ("log.showSignature", "false"),
    ("merge.verifySignatures", "false"),
    ("gpg.program", "false"),
    ("gpg.openpgp.program", "false"),
    ("gpg.x509.program", "false"),
    ("gpg.ssh.program", "false"),
    ("gpg.ssh.defaultKeyCommand", "false"),
    ("protocol.allow", "never"),
    ("protocol.ext.allow", "never"),
    ("protocol.fd.allow", "never"),
    ("submodule.recurse", "false"),
    ("fetch.recurseSubmodules", "false"),
    ("push.recurseSubmodules", "no"),
    ("diff.ignoreSubmodules", "all"),
    ("status.submoduleSummary", "false"),
    ("gc.auto", "0"),
    ("maintenance.auto", "false"),
    ("fetch.writeCommitGraph", "false"),
    ("rebase.autoStash", "false"),
    ("rebase.updateRefs", "false"),
    ("rebase.backend", "merge"),
    ("merge.renormalize", "false"),
    ("trailer.separators", ":"),
    ("credential.helper", ""),  # resets the list; the hub user's global helpers are added back
)

_REPO_SCOPES = ("local", "worktree")
"""Config scopes a repo's owner controls (``.git/config``, ``config.worktree``)."""


def check_git_version(version: tuple[int, ...] | None = None) -> str | None:
    """A sentence when the installed git is too old for the hardened environment, else None."""
    found = version or tuple(int(part) for part in git.Git().version_info[:2])
    if found < MIN_GIT:
        need = ".".join(map(str, MIN_GIT))
        have = ".".join(map(str, found))
        return f"git {have} is too old: the hub needs git {need} or newer to run git safely"
    return None


def is_local_url(url: str) -> bool:
    """Whether git reaches ``url`` by running programs on this machine (a path or ``file://``)."""
    if url.startswith("file://"):
        return True
    if "://" in url or "::" in url:
        return False
    colon, slash = url.find(":"), url.find("/")
    return colon < 0 or (0 <= slash < colon)


def upload_pack_args() -> list[str]:
    """Options for every ``git fetch``: the plain upload-pack, whatever the repo's config says."""
    return ["--upload-pack=git-upload-pack"]


def receive_pack_args(urls: list[str]) -> list[str]:
    """Options for a ``git push`` to ``urls``: plain receive-pack, with no hooks for a local remote."""
    if any(is_local_url(url) for url in urls):
        return [f"--receive-pack={local_receive_pack()}"]
    return ["--receive-pack=git-receive-pack"]


def local_receive_pack() -> str:
    """The receive-pack command for a push to a repo on this machine: its hooks never run.

    Git clears our config from the environment of the receiving side, so the
    settings go on its command line instead.
    """
    settings = (
        ("core.hooksPath", "/dev/null"),
        ("core.fsmonitor", "false"),
        ("receive.denyCurrentBranch", "refuse"),
        ("receive.autogc", "false"),
        ("receive.procReceiveRefs", ""),
    )
    return "git " + " ".join(f"-c {shlex.quote(f'{k}={v}')}" for k, v in settings) + " receive-pack"


# --- reading what the repo's config names ----------------------------------------------------


def _base_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_CONFIG_", "GIT_DIR", "GIT_WORK"))}
    env.pop("GIT_INDEX_FILE", None)
    env.pop("GIT_COMMON_DIR", None)
    keep = os.environ.get("GIT_CONFIG_GLOBAL")
    if keep is not None:
        env["GIT_CONFIG_GLOBAL"] = keep
    env.update(_BASE_ENV)
    env["GIT_PROXY_COMMAND"] = os.environ.get("GIT_PROXY_COMMAND", "")
    return env


def _run_config(args: list[str], git_dir: Path, work_tree: Path, *, in_repo: bool = True) -> str:
    """``git config ARGS``; outside any repo when ``in_repo`` is false (git then reads no repo config)."""
    env = _base_env()
    cwd = work_tree
    if in_repo:
        env |= {"GIT_DIR": str(git_dir), "GIT_WORK_TREE": str(work_tree)}
    else:
        env["GIT_CEILING_DIRECTORIES"] = "/"
        cwd = Path("/")
    try:
        return subprocess.run(
            ["git", "config", *args], cwd=cwd, env=env, capture_output=True, check=True, timeout=30
        ).stdout.decode("utf-8", "surrogateescape")
    except subprocess.CalledProcessError as error:
        detail = error.stderr.decode("utf-8", "replace").strip().splitlines()
        raise NotAGitRepo(
            f"git cannot read the config of {work_tree}: {detail[-1] if detail else 'unknown error'}"
        ) from None
    except subprocess.TimeoutExpired:
        raise NotAGitRepo(f"reading the git config of {work_tree} took over 30 s; the hub gave up") from None


def _repo_config_entries(git_dir: Path, work_tree: Path) -> list[tuple[str, str, str]]:
    """("local", key, value) of the repo's own config files, read one by one without includes.

    (Inside the repo, git reads its config, includes and all, while starting up,
    so a FIFO include would block even ``--no-includes``; run from ``/`` it does not.)
    """
    common = git_dir
    if (git_dir / "commondir").is_file():
        common = (git_dir / (git_dir / "commondir").read_text(encoding="utf-8").strip()).resolve()
    entries: list[tuple[str, str, str]] = []
    for path in dict.fromkeys([common / "config", git_dir / "config", git_dir / "config.worktree"]):
        if not path.is_file():
            continue
        args = ["--file", str(path), "--no-includes", "--list", "-z"]
        out = _run_config(args, git_dir, work_tree, in_repo=False)
        for record in out.split("\0"):
            if record:
                key, _, value = record.partition("\n")
                entries.append(("local", key, value))
    return entries


def _config_entries(git_dir: Path, work_tree: Path) -> list[tuple[str, str, str]]:
    """(scope, key, value) of every config entry git reads for this repo, includes followed."""
    out = _run_config(["--list", "--show-scope", "-z"], git_dir, work_tree)
    # With -z and --show-scope, each entry is "scope NUL key LF value NUL" (no LF: no value).
    fields = out.split("\0")
    entries: list[tuple[str, str, str]] = []
    for scope, record in zip(fields[0::2], fields[1::2], strict=False):
        key, _, value = record.partition("\n")
        entries.append((scope, key, value))
    return entries


def _split(key: str) -> tuple[str, str | None, str]:
    """``section.sub.section.name`` -> (section, subsection, name); keys are lower-case but the subsection."""
    section, _, rest = key.partition(".")
    if "." not in rest:
        return section.lower(), None, rest.lower()
    sub, _, name = rest.rpartition(".")
    return section.lower(), sub, name.lower()


def _refusals(entries: list[tuple[str, str, str]], git_dir: Path, work_tree: Path) -> str | None:
    for scope, key, value in entries:
        if scope not in _REPO_SCOPES:
            continue
        section, _, name = _split(key)
        if section in ("include", "includeif") and name == "path":
            return (
                f"{work_tree}: its git config includes another file ({key} = {value}); the hub does not "
                "read git config from outside the repo. Remove the include "
                f"(git config --unset-all {key}) and try again"
            )
        if section == "core" and name == "worktree":
            target = Path(value) if Path(value).is_absolute() else git_dir / value
            if os.path.realpath(target) != os.path.realpath(work_tree):
                return (
                    f"{work_tree}: its git config sets core.worktree = {value}, a work tree elsewhere; the "
                    "hub works only in the directory that holds .git. Unset it "
                    "(git config --unset core.worktree) and try again"
                )
    return None


def _neutralised(entries: list[tuple[str, str, str]]) -> list[tuple[str, str]]:
    filters: dict[str, None] = {}
    merges: dict[str, None] = {}
    diffs: dict[str, None] = {}
    helpers: list[tuple[str, str]] = []
    ssh_command: str | None = None
    for scope, key, value in entries:
        section, sub, name = _split(key)
        if section == "filter" and sub is not None:
            filters[sub] = None
        elif section == "merge" and sub is not None:
            merges[sub] = None
        elif section == "diff" and sub is not None:
            diffs[sub] = None
        elif section == "credential" and name == "helper" and scope in ("global", "system"):
            helpers.append((key, value))
        elif section == "core" and sub is None and name == "sshcommand" and scope in ("global", "system"):
            ssh_command = value
    config: list[tuple[str, str]] = list(_FIXED_CONFIG)
    config += helpers
    if ssh_command is not None:
        config.append(("core.sshCommand", ssh_command))
    for sub in filters:
        config += [
            (f"filter.{sub}.clean", ""),
            (f"filter.{sub}.smudge", ""),
            (f"filter.{sub}.process", ""),
            (f"filter.{sub}.required", "false"),
        ]
    for sub in merges:
        config += [(f"merge.{sub}.driver", "false"), (f"merge.{sub}.recursive", "binary")]
    for sub in diffs:
        config += [(f"diff.{sub}.command", ""), (f"diff.{sub}.textconv", "")]
    return config


def _ssh_env(entries: list[tuple[str, str, str]]) -> str:
    """The ssh command git may run: the hub's environment, else the hub user's global config, else ssh."""
    if os.environ.get("GIT_SSH_COMMAND"):
        return os.environ["GIT_SSH_COMMAND"]
    for scope, key, value in reversed(entries):
        if scope in ("global", "system") and key.lower() == "core.sshcommand":
            return value
    if os.environ.get("GIT_SSH"):
        return shlex.quote(os.environ["GIT_SSH"])
    return "ssh"


_cache_lock = threading.Lock()
_cache: dict[tuple[str, str], tuple[tuple[Any, ...], dict[str, str]]] = {}


def _stat(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _signature(git_dir: Path) -> tuple[Any, ...]:
    common = git_dir
    commondir = git_dir / "commondir"
    if commondir.is_file():
        common = (git_dir / commondir.read_text(encoding="utf-8").strip()).resolve()
    home = Path(os.environ.get("HOME", "/nonexistent"))
    xdg = Path(os.environ.get("XDG_CONFIG_HOME", home / ".config"))
    files = [
        common / "config",
        git_dir / "config.worktree",
        home / ".gitconfig",
        xdg / "git" / "config",
        Path(os.environ.get("GIT_CONFIG_GLOBAL", "/nonexistent")),
    ]
    return (*[_stat(f) for f in files], os.environ.get("GIT_SSH_COMMAND"), os.environ.get("GIT_SSH"))


def hardened_env(git_dir: Path, work_tree: Path) -> dict[str, str]:
    """The environment every git command in this repo runs with (see the module docstring).

    Re-reads the repo's config whenever ``.git/config`` (or the global config) changed.
    Raises NotAGitRepo when the config holds a setting the hub refuses.
    """
    key = (str(git_dir), str(work_tree))
    signature = _signature(git_dir)
    with _cache_lock:
        cached = _cache.get(key)
    if cached is not None and cached[0] == signature:
        return dict(cached[1])
    refusal = _refusals(_repo_config_entries(git_dir, work_tree), git_dir, work_tree)
    if refusal:
        raise NotAGitRepo(refusal)
    entries = _config_entries(git_dir, work_tree)
    config = _neutralised(entries)
    env = _base_env()
    env["GIT_SSH_COMMAND"] = _ssh_env(entries)
    env["GIT_DIR"] = str(git_dir)
    env["GIT_WORK_TREE"] = str(work_tree)
    env["GIT_CONFIG_COUNT"] = str(len(config))
    for index, (name, value) in enumerate(config):
        env[f"GIT_CONFIG_KEY_{index}"] = name
        env[f"GIT_CONFIG_VALUE_{index}"] = value
    with _cache_lock:
        _cache[key] = (signature, env)
    return dict(env)


# --- gitpython, hardened ---------------------------------------------------------------------


class HardenedGit(git.Git):
    """gitpython's command wrapper, with the hardened environment on every command it runs."""

    _hub_git_dir: Path | None = None
    _hub_work_tree: Path | None = None

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        if self._hub_git_dir is None or self._hub_work_tree is None:
            raise NotAGitRepo("internal: a git command ran before the repo was pinned")
        env = dict(kwargs.pop("env", None) or {})
        todo: Path | None = kwargs.pop("rebase_todo", None)
        hardened = hardened_env(self._hub_git_dir, self._hub_work_tree)
        # The caller may add identities (GIT_AUTHOR_*, GIT_COMMITTER_*), never loosen the rules.
        env = {k: v for k, v in env.items() if k not in hardened and not k.startswith("GIT_CONFIG")}
        kwargs["env"] = {**self._environment, **env, **hardened}
        if todo is not None:  # the hub's own todo list: the one "editor" that may run (rebase_with_todo)
            kwargs["env"]["GIT_SEQUENCE_EDITOR"] = f"cp {shlex.quote(str(todo))}"
        return super().execute(*args, **kwargs)


def rebase_with_todo(repo: HubRepo, onto: str, todo: Sequence[tuple[str, str]], *options: str) -> None:
    """``git rebase -i <options> <onto>`` with the hub's own todo list (``(action, commit)`` pairs,
    oldest first; action ``pick`` or ``drop``), written to a file of the hub's and copied in by
    ``cp`` as the sequence editor: no editor of the repo's, the user's or the system's runs (the
    file is a new one in a private temporary directory, not a file replaced).
    Raises ``git.GitCommandError`` as ``git rebase`` fails (the caller aborts)."""
    for action, commit in todo:
        if action not in ("pick", "drop") or not commit.isalnum():
            raise ValueError(f"internal: {action} {commit} is not a todo line")
    with tempfile.TemporaryDirectory(prefix="statehub-rebase-") as private:  # 0700, removed after
        path = Path(private) / "git-rebase-todo"
        with path.open("x", encoding="utf-8") as out:
            out.write("".join(f"{action} {commit}\n" for action, commit in todo))
        repo.git.execute(["git", "rebase", "-i", *options, onto], rebase_todo=path)


class HubRepo(git.Repo):
    """A gitpython ``Repo`` whose every command runs through :class:`HardenedGit`."""

    GitCommandWrapperType = HardenedGit


def open_work_tree(path: Path) -> HubRepo:
    """Open the git work tree at or above ``path``, hardened; or say plainly why we cannot.

    Raises NotAGitRepo: missing path, not a directory, no work tree, a bare
    repo, or repo config the hub refuses (an include, a core.worktree elsewhere).
    """
    if not path.exists():
        raise NotAGitRepo(f"{path} does not exist")
    if not path.is_dir():
        raise NotAGitRepo(f"{path} is not a directory")
    work_tree, git_dir = _find_git(path.resolve())
    hardened_env(git_dir, work_tree)  # refuses before gitpython reads the config itself
    try:
        repo = HubRepo(work_tree)
    except (git.InvalidGitRepositoryError, git.NoSuchPathError):
        raise NotAGitRepo(
            f"{path} is not inside a git work tree; run 'git init' there or register a clone"
        ) from None
    if repo.bare or repo.working_tree_dir is None:
        repo.close()
        raise NotAGitRepo(f"{path} is a bare git repository; register a clone with a work tree instead")
    command = repo.git
    assert isinstance(command, HardenedGit)
    command._hub_git_dir, command._hub_work_tree = git_dir, work_tree
    return repo


def open_repo(root: Path) -> HubRepo:
    """Open a registered repo's work tree (hardened); raises NotAGitRepo as :func:`open_work_tree`."""
    return open_work_tree(root)


def work_tree_root(path: Path) -> Path:
    """The resolved root of the work tree at or above ``path`` (registration)."""
    repo = open_work_tree(path)
    try:
        assert repo.working_tree_dir is not None
        return Path(repo.working_tree_dir).resolve()
    finally:
        repo.close()


def run_git(cwd: Path, *args: str, env: Mapping[str, str] | None = None) -> str:
    """Run git in the work tree ``cwd`` (or ``git init`` it) with the hardened environment.

    For repos the hub itself creates (the dev hub's examples). Raises
    CalledProcessError (git failed) or NotAGitRepo (``cwd`` is no work tree).
    """
    base = _base_env()
    if args[:1] != ("init",):
        work_tree, git_dir = _find_git(cwd.resolve())
        base = hardened_env(git_dir, work_tree)
    else:  # a new repo: nothing of its own to read yet, and never its parent's
        base["GIT_CONFIG_COUNT"] = str(len(_FIXED_CONFIG))
        for index, (name, value) in enumerate(_FIXED_CONFIG):
            base[f"GIT_CONFIG_KEY_{index}"] = name
            base[f"GIT_CONFIG_VALUE_{index}"] = value
    extra = {k: v for k, v in (env or {}).items() if k not in base}
    result = subprocess.run(
        ["git", *args], cwd=cwd, env={**base, **extra}, check=True, capture_output=True, timeout=120
    )
    return result.stdout.decode("utf-8", "replace")


def git_in(
    repo: HubRepo,
    *args: str,
    stdin: bytes = b"",
    env: Mapping[str, str] | None = None,
    timeout: float = 120,
) -> bytes:
    """Run ``git ARGS`` in the registered work tree of ``repo`` with the hardened environment; its stdout.

    ``stdin`` goes to git's stdin (a ``fast-import`` stream, ``--index-info`` lines); ``env``
    may add identities, ``GIT_INDEX_FILE`` or ``GIT_LITERAL_PATHSPECS``, never loosen
    a rule of :func:`hardened_env`. Raises git.GitCommandError (git failed or took
    over ``timeout`` seconds, with git's stderr) or NotAGitRepo (config refused).
    """
    command = repo.git
    assert isinstance(command, HardenedGit)
    if command._hub_git_dir is None or command._hub_work_tree is None:
        raise NotAGitRepo("internal: a git command ran before the repo was pinned")
    hardened = hardened_env(command._hub_git_dir, command._hub_work_tree)
    extra = {k: v for k, v in (env or {}).items() if k not in hardened and not k.startswith("GIT_CONFIG")}
    argv = ["git", *args]
    try:
        result = subprocess.run(
            argv,
            cwd=command._hub_work_tree,
            env={**hardened, **extra},
            input=stdin,
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise git.GitCommandError(argv, -1, f"git {args[0]} took over {timeout:.0f} s") from None
    if result.returncode != 0:
        raise git.GitCommandError(argv, result.returncode, result.stderr.decode("utf-8", "replace"))
    return result.stdout


def git_said(error: git.GitCommandError, limit: int = 400) -> str:
    """What git said when a command failed, for a person: its ``fatal:`` / ``error:`` lines (else
    every line it printed), never the command line and never a ``hint:`` (advice about a command
    the hub ran, often one it has already undone); at most ``limit`` characters."""
    text = error.stderr if isinstance(error.stderr, str) else ""
    lines: list[tuple[bool, str]] = []
    """(indented: it continues the line before, as git's list after "found:" does; the text)"""
    for line in text.splitlines():
        cleaned = line.strip().removeprefix("stderr:").strip(" '")
        if cleaned and not cleaned.startswith("hint:"):
            lines.append((line[:1].isspace() and bool(lines), cleaned))
    key: list[str] = []
    keeping = False
    for indented, line in lines:
        keeping = line.startswith(("fatal:", "error:")) or (indented and keeping)
        if keeping:
            key.append(line)
    key = key or [line for _, line in lines]
    said = " ".join(key)
    if len(said) > limit:
        return said[: limit - 3] + "..."
    return said or f"git exited with status {error.status}"
