"""Write-back: apply pending events to the files, commit them, re-index, mark them applied.

Per repo, in acceptance order. Each step is safe to repeat, which is how a hub
killed at any moment comes back without losing or doubling an event:

1. Events whose file has a person's uncommitted change wait, with that reason.
2. Events are applied to the text read (``workplans.apply_event``); an event the
   file already reflects changes nothing; one that no longer applies is rejected.
3. Before touching a file the hub records the write-back in the buffer (the
   files with the git blob sha of the text read and of the text to write).
4. Files are written atomically (temp file + rename) if they still hold the
   text read; then one commit per run of events by the same actor (a run holds at
   most :data:`MAX_EVENTS_PER_COMMIT` events: a longer one becomes several
   commits), with one ``Statehub-Event: <key>`` trailer per event that changed the file.
5. The repo is re-indexed; then the events are marked applied (with the commit)
   and the records are closed, in one buffer transaction (:meth:`Applier.settle`).
   So "applied" means: in the file, committed, and visible in the cache.

On restart leftover records are resolved first (:meth:`Applier.recover`): if a
commit after the recorded HEAD carries the trailers, the events are marked
applied with it; otherwise a file that holds exactly what the hub wrote is put
back to HEAD and the events are applied again from scratch. A commit that fails
(a person's git holds the index lock) puts the files back at once.

When git fails in a repo (a stale ``index.lock``, a read-only ``.git``, config the
hub refuses), every pending event of the repo waits with that reason, the repo
is listed in :attr:`Applier.failing` (``/state/health`` says "degraded" with it)
and the server's worker retries it with exponential backoff (:data:`BACKOFF`,
:meth:`Applier.due`) rather than on every pass; an explicit apply (CLI) tries at
once. The first pass that gets through clears it.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import git
from sqlalchemy import and_, select

from statehub.cache import blob_sha
from statehub.cache.schema import WORKPLANS
from statehub.errors import HubError, NotFound
from statehub.events import gitwork
from statehub.hub import Hub
from statehub.repofiles import (
    RepoPathError,
    TooManyTasks,
    count_task_tables,
    read_repo_file,
    remove_stale_repo_temps,
    write_repo_file,
)
from sync.buffer import EventRecord, Writeback, WriteBuffer
from workplans import (
    FLEET_PATH,
    BrokenTarget,
    Event,
    InvalidEvent,
    NoLongerApplies,
    apply_event,
    parse_event,
)
from workplans.fleet_event_types import FleetEvent

__all__ = ["BACKOFF", "CRASH_ENV", "MAX_EVENTS_PER_COMMIT", "Applier", "Failing", "RepoApplied"]

log = logging.getLogger(__name__)

MAX_EVENTS_PER_COMMIT = 200
"""A run of events by one actor is committed in chunks of at most this many (message size bound)."""

BACKOFF = (1.0, 60.0)
"""Seconds before the first retry of a failing repo, and the most it waits between retries."""

CRASH_ENV = "STATEHUB_TEST_CRASH_AT"
"""Fault injection for the crash tests: the hub SIGKILLs itself at this step ("written", "committed")."""


@dataclass(slots=True)
class RepoApplied:
    """What one write-back pass did in one repo."""

    repo: str
    applied: int = 0
    unchanged: int = 0
    rejected: int = 0
    waiting: int = 0
    commits: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    decided: dict[str, str | None] = field(default_factory=dict)
    """Events to mark applied, with their commit (None: the file already said so)."""
    refused: dict[str, str] = field(default_factory=dict)
    """Events to mark rejected, with the reason."""
    writebacks: list[int] = field(default_factory=list)
    """Write-back records to close once the events are marked."""

    @property
    def changed(self) -> bool:
        """Whether the repo's files or events moved, so its cache rows need a refresh."""
        return bool(self.commits or self.applied or self.rejected)

    def as_dict(self) -> dict[str, object]:
        return {
            "repo": self.repo,
            "applied": self.applied,
            "unchanged": self.unchanged,
            "rejected": self.rejected,
            "waiting": self.waiting,
            "commits": self.commits,
            "reasons": self.reasons,
        }


class _FileChanged(Exception):
    pass


@dataclass(slots=True)
class Failing:
    """A repo whose write-back fails: why, since when, how often, and when it is tried again."""

    reason: str
    since: float
    attempts: int
    retry_at: float

    def as_dict(self, now: float) -> dict[str, object]:
        return {
            "reason": self.reason,
            "attempts": self.attempts,
            "failing_for_s": round(now - self.since, 1),
            "retry_in_s": round(max(0.0, self.retry_at - now), 1),
        }


def _git_detail(error: Exception) -> str:
    """A short account of a git failure: git's own last lines, never the command line."""
    if isinstance(error, HubError):
        return error.message
    if isinstance(error, git.GitCommandError):
        text = error.stderr if isinstance(error.stderr, str) else ""
        lines = [
            line.strip().removeprefix("stderr:").strip(" '")
            for line in text.splitlines()
            if line.strip().removeprefix("stderr:").strip(" '")
        ]
        key = [line for line in lines if line.startswith(("fatal:", "error:"))] or lines
        detail = " ".join(key)
        return (
            (detail[:397] + "...")
            if len(detail) > 400
            else detail or f"git exited with status {error.status}"
        )
    return f"{type(error).__name__}: {error}"[:400]


def _crash_point(step: str) -> None:
    if os.environ.get(CRASH_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


class Applier:
    """Applies a buffer's pending events. The caller holds the applier lock."""

    def __init__(self, hub: Hub, buffer: WriteBuffer) -> None:
        self.hub = hub
        self.buffer = buffer
        self.failing: dict[str, Failing] = {}
        """Repos whose last write-back failed (shown by ``/state/health``)."""

    def apply_repo(self, slug: str, root: Path | None = None, *, reindex: bool = True) -> RepoApplied:
        """Apply the repo's pending events; ``reindex=False`` leaves re-indexing to the caller
        (a pass over many repos re-indexes them together, see ``EventDesk.apply_locked``)."""
        result = RepoApplied(slug)
        try:
            root = root or self.hub.repo(slug).path
        except NotFound:
            events = self.buffer.pending(slug)
            reason = f"repo {slug!r} is not registered; register it again and the events apply"
            self.buffer.wait([e.key for e in events], reason)
            result.waiting = len(events)
            result.reasons.append(reason)
            return result
        try:
            repo = gitwork.open_repo(root)
            try:
                result.applied += self.recover(slug, repo)
                self._apply(slug, root, repo, result)
            finally:
                repo.close()
        except (git.GitCommandError, HubError, OSError) as error:
            self._failed(slug, _git_detail(error), result)
        else:
            self.failing.pop(slug, None)
        if reindex:
            if result.changed:
                self.hub.refresh(slug)
            self.settle(result)
        return result

    def due(self, slug: str) -> bool:
        """Whether ``slug`` may be tried now: it is not failing, or its backoff has run out."""
        failing = self.failing.get(slug)
        return failing is None or time.monotonic() >= failing.retry_at

    def hold(self, slug: str) -> None:
        """Give the pending events of a failing repo, new ones too, its reason until its retry."""
        failing = self.failing.get(slug)
        if failing is not None:
            self._wait_all(slug, failing.reason, RepoApplied(slug))

    def _failed(self, slug: str, detail: str, result: RepoApplied) -> None:
        """Git failed in ``slug``: back off, and give every pending event there the reason."""
        now = time.monotonic()
        before = self.failing.get(slug)
        attempts = before.attempts + 1 if before else 1
        delay = min(BACKOFF[1], BACKOFF[0] * 2 ** (attempts - 1))
        since = before.since if before else now
        reason = f"write-back failed, will retry in {delay:.0f} s: {detail}"
        self.failing[slug] = Failing(reason, since, attempts, now + delay)
        self._wait_all(slug, reason, result)

    def _wait_all(self, slug: str, reason: str, result: RepoApplied) -> None:
        undecided = set(result.decided) | set(result.refused)
        keys = [e.key for e in self.buffer.pending(slug) if e.key not in undecided]
        self.buffer.wait(keys, reason)
        result.waiting += len(keys)
        result.reasons.append(reason)

    def settle(self, result: RepoApplied) -> None:
        """Mark the pass's events applied or rejected, after the cache shows their files.

        Marking comes last so that "applied" means "in the file, committed and
        visible in the cache"; a crash before it is resolved by :meth:`recover`.
        """
        self.buffer.finish(result.decided, result.refused, result.writebacks)
        result.decided, result.refused, result.writebacks = {}, {}, []

    # recovery ----------------------------------------------------------------------------------

    def recover(self, slug: str, repo: git.Repo) -> int:
        """Resolve write-backs a killed hub left behind (see the module docstring).

        Returns how many events turned out to be committed already.
        """
        records = self.buffer.writebacks(slug)
        if not records:
            return 0
        root = Path(repo.working_tree_dir or ".")
        for path in {entry["path"] for record in records for entry in record.files}:
            for temp in remove_stale_repo_temps(root, path):  # a kill mid-write left it (ADR-022)
                log.info("removed %s in %s: a temp file a killed write-back left behind", temp, slug)
        head = gitwork.head_sha(repo)
        committed: dict[str, str] | None = None
        found = 0
        root = Path(repo.working_tree_dir or ".")
        for record in records:
            assert record.id is not None
            if head != record.head:
                if committed is None:
                    committed = gitwork.trailer_keys(repo, records[0].head)
                done: dict[str, str | None] = {k: committed[k] for k in record.keys if k in committed}
                if done:
                    self.buffer.finish(done, {}, [record.id])
                    found += len(done)
                    continue
            for entry in record.files:
                try:
                    now = blob_sha(self._read(root, entry["path"]))
                except (OSError, RepoPathError):
                    continue
                if now == entry["after"] and now != entry["before"]:
                    gitwork.restore_path(repo, entry["path"])
            self.buffer.finish({}, {}, [record.id])
        return found

    # applying ----------------------------------------------------------------------------------

    def _apply(self, slug: str, root: Path, repo: git.Repo, result: RepoApplied) -> None:
        records = self.buffer.pending(slug)
        if not records:
            return
        rejected: dict[str, str] = {}
        targets: list[tuple[EventRecord, Event, str]] = []
        paths: dict[str | None, str | None] = {}
        for record in records:
            try:
                event = parse_event(record.event, self.hub.event_kinds)
            except InvalidEvent as error:
                rejected[record.key] = f"the stored event is not valid any more: {error}"
                continue
            problem = gitwork.identity_problem(event.actor)
            if problem:
                rejected[record.key] = f"actor {event.actor!r} cannot author a commit: {problem}"
                continue
            if event.workplan_id not in paths or self.hub.event_kinds[event.kind].fixed_path is not None:
                paths[event.workplan_id] = self._path_of(slug, event)
            path = paths[event.workplan_id]
            if path is None:
                rejected[record.key] = f"workplan {event.workplan_id} is no longer in repo {slug}"
                continue
            targets.append((record, event, path))
        result.refused.update(rejected)
        result.rejected += len(rejected)
        dirty = gitwork.dirty_paths(repo, {path for _, _, path in targets})
        waiting: dict[str, list[str]] = {}
        runnable: list[tuple[Event, str]] = []
        for _record, event, path in targets:
            if path in dirty:
                waiting.setdefault(f"uncommitted changes in {path}", []).append(event.key)
            else:
                runnable.append((event, path))
        for reason, keys in waiting.items():
            self.buffer.wait(keys, reason)
            result.waiting += len(keys)
            result.reasons.append(reason)
        for run in _runs_by_actor(runnable):
            self._apply_run(slug, root, repo, run, result)

    def _path_of(self, slug: str, event: Event) -> str | None:
        fixed = self.hub.event_kinds[event.kind].fixed_path
        if fixed is not None:
            return fixed
        with self.hub.engine.connect() as conn:
            row = conn.execute(
                select(WORKPLANS.c.path).where(
                    and_(WORKPLANS.c.repo == slug, WORKPLANS.c.id == event.workplan_id)
                )
            ).first()
        return row.path if row else None

    def _apply_run(
        self, slug: str, root: Path, repo: git.Repo, run: list[tuple[Event, str]], result: RepoApplied
    ) -> None:
        before: dict[str, str] = {}
        current: dict[str, str] = {}
        changed: list[str] = []
        unchanged: list[str] = []
        rejected: dict[str, str] = {}
        broken: dict[str, list[str]] = {}
        refused: dict[str, str] = {}
        for event, path in run:
            if path in broken:
                broken[path].append(event.key)
                continue
            if path not in current:
                try:
                    current[path] = before[path] = self._read_text(root, path)
                except RepoPathError as error:  # a link, outside the repo, too large (ADR-022)
                    broken[path] = [event.key]
                    refused[path] = f"{error}; the hub does not read or write it"
                    result.reasons.append(refused[path])
                    continue
                except (OSError, UnicodeDecodeError) as error:
                    broken[path] = [event.key]
                    result.reasons.append(f"cannot read {path}: {error}")
                    continue
            try:
                text = apply_event(current[path], event, self.hub.event_kinds)
                self._check_growth(path, current[path], text)
            except NoLongerApplies as error:
                rejected[event.key] = str(error)
                continue
            except BrokenTarget as error:
                broken[path] = [event.key]
                result.reasons.append(f"{path}: {error}")
                continue
            (changed if text != current[path] else unchanged).append(event.key)
            current[path] = text
        for path, keys in broken.items():
            why = refused.get(path, f"{path} cannot be read as a workplan")
            self.buffer.wait(keys, f"{why}; fix the file and the events apply")
            result.waiting += len(keys)
        written = [path for path in current if current[path] != before[path]]
        commit: str | None = None
        if written:
            try:
                commit = self._write_and_commit(
                    slug, root, repo, run, written, before, current, changed, result
                )
            except _FileChanged as error:
                keys = [event.key for event, path in run if path not in broken]
                self.buffer.wait(keys, str(error))
                result.waiting += len(keys)
                result.reasons.append(str(error))
                return
            result.commits.append(commit)
        result.decided.update(dict.fromkeys(changed, commit))
        result.decided.update(dict.fromkeys(unchanged))
        result.refused.update(rejected)
        result.applied += len(changed)
        result.unchanged += len(unchanged)
        result.rejected += len(rejected)

    def _write_and_commit(
        self,
        slug: str,
        root: Path,
        repo: git.Repo,
        run: list[tuple[Event, str]],
        written: list[str],
        before: dict[str, str],
        current: dict[str, str],
        changed: list[str],
        result: RepoApplied,
    ) -> str:
        shas = {path: blob_sha(before[path].encode("utf-8")) for path in written}
        for path in written:
            try:
                now = blob_sha(self._read(root, path))
            except (OSError, RepoPathError) as error:
                raise _FileChanged(f"cannot read {path}: {error}; the events will retry") from None
            if now != shas[path]:
                raise _FileChanged(f"{path} changed while the hub was applying events; they will retry")
        record = self.buffer.begin_writeback(
            Writeback(
                slug,
                gitwork.head_sha(repo),
                changed,
                [
                    {"path": p, "before": shas[p], "after": blob_sha(current[p].encode("utf-8"))}
                    for p in written
                ],
            )
        )
        for path in written:
            write_repo_file(root, path, current[path].encode("utf-8"))
        _crash_point("written")
        events = [event for event, _ in run if event.key in set(changed)]
        try:
            sha = gitwork.commit_paths(repo, written, commit_message(events), run[0][0].actor)
        except Exception:
            self._undo(root, written, before, current, record)
            raise
        result.writebacks.append(record)
        _crash_point("committed")
        return sha

    def _undo(
        self, root: Path, written: list[str], before: dict[str, str], current: dict[str, str], record: int
    ) -> None:
        """The commit failed: put back what the files held, where they still hold what the hub wrote."""
        for path in written:
            try:
                if self._read(root, path) == current[path].encode("utf-8"):
                    write_repo_file(root, path, before[path].encode("utf-8"))
            except (OSError, RepoPathError):
                continue  # not what the hub wrote any more (or not a file it may touch): leave it
        self.buffer.finish({}, {}, [record])

    # reading and writing inside the repo (ADR-022) ----------------------------------------------

    def _read(self, root: Path, path: str) -> bytes:
        """The bytes of ``path``: never through a link, never outside ``root``, never over the limit.

        Raises RepoPathError (FileTooLarge) or OSError.
        """
        return read_repo_file(root, path, self.hub.settings.file_limits.bytes_for(_kind_of(path)))

    def _read_text(self, root: Path, path: str) -> str:
        """The text of ``path`` as :meth:`_read` reads it; TooManyTasks for a workplan over the
        task limit, UnicodeDecodeError for one that is not UTF-8."""
        text = self._read(root, path).decode("utf-8")
        limit = self.hub.settings.file_limits.workplan_tasks
        if _kind_of(path) == "workplan" and (count := count_task_tables(text)) > limit:
            raise TooManyTasks(path, count, limit)
        return text

    def _check_growth(self, path: str, old: str, new: str) -> None:
        """NoLongerApplies when applying an event would take ``path`` past its size or task limit."""
        limits = self.hub.settings.file_limits
        limit = limits.bytes_for(_kind_of(path))
        size = len(new.encode("utf-8"))
        if size > limit and size > len(old.encode("utf-8")):
            raise NoLongerApplies(
                f"{path} would grow to {size:,} bytes, over the limit of {limit:,} bytes; "
                "the hub does not grow a file past its limit: split it, then send the event again"
            )
        if _kind_of(path) == "workplan" and len(new) > len(old):
            count = count_task_tables(new)
            if count > limits.workplan_tasks and count > count_task_tables(old):
                raise NoLongerApplies(
                    f"{path} would hold {count:,} tasks, over the limit of {limits.workplan_tasks:,} "
                    "tasks; split the workplan, then send the event again"
                )


def _runs_by_actor(
    events: list[tuple[Event, str]], limit: int = MAX_EVENTS_PER_COMMIT
) -> list[list[tuple[Event, str]]]:
    """Split events, in order, into runs by one actor of at most ``limit`` events:
    each run becomes one commit by its author."""
    runs: list[list[tuple[Event, str]]] = []
    for item in events:
        if runs and runs[-1][0][0].actor == item[0].actor and len(runs[-1]) < limit:
            runs[-1].append(item)
        else:
            runs.append([item])
    return runs


def _kind_of(path: str) -> str:
    """The limits kind of a write-back target: the fleet registry or a workplan."""
    return "fleet" if path == FLEET_PATH else "workplan"


def _describe(event: Event) -> str:
    if isinstance(event, FleetEvent):
        return event.describe()
    data = event.to_json()
    target = data.get("workplan", "")
    if "task" in data:
        target = f"{target}-{data['task']}"
    if event.kind in ("task.status", "workplan.status"):
        return f"{target}: status {data['status']}"
    if event.kind == "task.add":
        return f"{target}: add task {data['title']!r}"
    if event.kind == "progress.note":
        return f"{target}: progress note"
    return f"{event.kind} {target}".strip()


def commit_message(events: list[Event]) -> str:
    """Subject, one line per event, then one ``Statehub-Event`` trailer per event."""
    if len(events) == 1:
        subject = f"statehub: {_describe(events[0])}"
    else:
        kinds = Counter(event.kind for event in events)
        subject = (
            f"statehub: apply {len(events)} events ("
            + ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items()))
            + ")"
        )
    lines = [f"- {_describe(event)} @{event.actor}" for event in events]
    trailers = [f"{gitwork.TRAILER}: {event.key}" for event in events]
    return "\n".join([subject, "", *lines, "", *trailers]) + "\n"
