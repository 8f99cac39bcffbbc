"""Follow every way files move in registered repos, and the registry itself, so the cache stays current.

One watchfiles watcher (its Rust notifier, through ``awatch`` with a stop event)
covers every registered work tree and the hub's config dir, where ``hub.toml``
lives (ADR-030). Changes are debounced (a batch ends after ``step_ms`` without a
new change, or ``debounce_ms`` into a burst, and a repo's refresh starts at least
``gap_ms`` after its last one ended; canon/ADR-039); each changed path is mapped to the
repo whose work tree holds it, and only the repos where it can change what is
indexed (:func:`statehub.cache.sources.may_hold_sources`: a source file, anything
under ``workplans/`` or ``canon/``, the work tree itself) are refreshed, each
with one stat-driven ``Hub.refresh``. A refresh stats the whole repo, so a file
renamed, a directory renamed or deleted, a file moved in or out, a branch switch
of hundreds of files, or an editor's atomic-rename save all end with the cache
equal to a fresh rebuild once the last batch is refreshed.

What events cannot say is checked on every batch and at least every
``check_ms``: the layout, that is each registered work tree's identity (device
and inode of its directory, or None when missing) and ``hub.toml``'s stat. An
inotify watch follows a moved directory's inode, so a work tree moved away, put
back, or replaced by another directory at its path is only seen this way. When
the layout changes (a repo registered or removed by this process, by the CLI
of another process, or by hand; a work tree gone or back) the watch restarts
over the new set of work trees and, once it is armed, ``Hub.reconcile`` brings
the cache up to date with hub.toml and every work tree, so nothing that changed
while no watch ran is missed. A missing work tree is a file error, not silence
(statehub.cache.indexer.missing_tree).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from watchfiles import awatch

from statehub.cache.sources import may_hold_sources

if TYPE_CHECKING:
    from watchfiles import Change

    from statehub.hub import Hub
    from statehub.hubfile import RegisteredRepo

__all__ = ["RepoWatcher", "WatchLayout"]

log = logging.getLogger(__name__)

STEP_MS = 10
"""A batch ends once no change arrived for this long (watchfiles ``step``): a save is seen 10-20 ms
after it lands, not 30-60 (canon/ADR-039; bench/watch.py shows both floors)."""
DEBOUNCE_MS = 200
"""A burst is cut into batches at most this long (watchfiles ``debounce``)."""
GAP_MS = 50
"""After a repo's refresh its next one waits until this long has passed: a burst of saves gathers
meanwhile, so it costs about one refresh per gap, not one per save (canon/ADR-039)."""
CHECK_MS = 250
"""The layout is checked at least this often when nothing changes (watchfiles ``rust_timeout``)."""

Identity = tuple[int, int] | None
"""(st_dev, st_ino) of a directory, None when it is missing or no directory."""


def _identity(path: Path) -> Identity:
    try:
        info = path.stat()
    except OSError:
        return None
    return (info.st_dev, info.st_ino) if stat.S_ISDIR(info.st_mode) else None


def _within(path: Path, root: Path, seen: dict[tuple[Path, Path], bool]) -> bool:
    """Whether ``path`` (under ``root`` as spelled) is in the work tree once links are resolved.

    Its directory's real path is compared with the work tree's, each resolved once
    per batch through ``seen``; the work tree itself is within.
    """
    if path == root:
        return True
    key = (root, path.parent)
    if key not in seen:  # os.path.realpath: a link loop resolves as far as it goes, it does not raise
        seen[key] = Path(os.path.realpath(path.parent)).is_relative_to(os.path.realpath(root))
    return seen[key]


@dataclass(frozen=True, slots=True)
class WatchLayout:
    """What the watch covers: each registered work tree (path -> slug, identity) and hub.toml's stat."""

    repos: tuple[tuple[Path, str, Identity], ...]
    registry: tuple[int, int, int, int] | None
    """(inode, size, mtime ns, ctime ns) of hub.toml; None when it does not exist."""

    @property
    def roots(self) -> dict[Path, str]:
        """The work trees present now, each to its slug: what the watch is opened over."""
        return {path: slug for path, slug, identity in self.repos if identity is not None}


class RepoWatcher:
    """Watches every registered work tree and hub.toml; refreshes the repos a change touches.

    ``start`` inside the server's event loop, ``stop`` to end it; ``repos_changed``
    (any thread) restarts the watch over what hub.toml lists. Refreshes run in a
    worker thread under the hub's write lock. A failure is logged and the watch
    restarts after a second: the watcher never takes the hub down.
    """

    def __init__(
        self,
        hub: Hub,
        *,
        step_ms: int = STEP_MS,
        debounce_ms: int = DEBOUNCE_MS,
        gap_ms: int = GAP_MS,
        check_ms: int = CHECK_MS,
    ) -> None:
        self.hub = hub
        self.step_ms = step_ms
        self.debounce_ms = debounce_ms
        self.gap_ms = gap_ms
        self.check_ms = check_ms
        self._calm_at: dict[str, float] = {}
        """slug -> when (event loop time) its next refresh may start: its last one's end plus the gap."""
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._restart = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._known: list[RegisteredRepo] = []
        """The repos hub.toml listed when last readable: kept while a person's edit leaves it broken."""

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._run(), name="statehub-watcher")

    @property
    def alive(self) -> bool:
        """Whether the watching task runs: started, and neither stopped nor ended by an error."""
        return self._task is not None and not self._task.done()

    def repos_changed(self) -> None:
        """Called from any thread after a registration or removal: watch what hub.toml lists."""
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self._restart.set)

    async def stop(self) -> None:
        self._stop.set()
        self._restart.set()
        if self._task is not None:
            await self._task

    # the loop ----------------------------------------------------------------------------------

    async def _run(self) -> None:
        while not self._stop.is_set():
            self._restart.clear()
            layout = self.layout()
            paths = [*layout.roots, self.hub.settings.config_dir]
            try:
                await self._watch(layout, [p for p in paths if _identity(p) is not None])
            except FileNotFoundError:  # a path vanished between the layout and the watch
                await asyncio.sleep(self.step_ms / 1000)
            except Exception:  # the watcher must never take the hub down
                log.exception("file watcher failed; retrying in 1 s")
                await asyncio.sleep(1)

    async def _watch(self, layout: WatchLayout, paths: list[Path]) -> None:
        """One watch over ``paths`` until the layout changes or the watcher stops."""
        armed = False
        async for changes in awatch(
            *paths,
            stop_event=self._restart,
            watch_filter=None,
            debounce=self.debounce_ms,
            step=self.step_ms,
            rust_timeout=self.check_ms,
            yield_on_timeout=True,
        ):
            if not armed:  # the notifier runs now: catch up with what moved while none did
                armed = True
                await asyncio.to_thread(self._reconcile)
            if self.layout() != layout:
                self._restart.set()
                return
            loop = asyncio.get_running_loop()
            for slug in sorted(self.touched(changes, layout.roots)):
                root = next(root for root, named in layout.roots.items() if named == slug)
                calm = self._calm_at.get(slug, 0.0) - loop.time()
                if calm > 0:  # a burst: one refresh, after the gap, covers what it saved meanwhile
                    await asyncio.sleep(calm)
                # The gap follows a refresh; a look that refreshed nothing (the hub's own write) has none.
                if await asyncio.to_thread(self._refresh, slug, self.sources_changed(changes, root), root):
                    self._calm_at[slug] = loop.time() + self.gap_ms / 1000

    # what changed ------------------------------------------------------------------------------

    def layout(self) -> WatchLayout:
        """The registered work trees (hub.toml as last readable) with their identity, and hub.toml's stat."""
        hub_file = self.hub.settings.hub_file
        try:
            info = hub_file.stat()
            registry: tuple[int, int, int, int] | None = (
                info.st_ino,
                info.st_size,
                info.st_mtime_ns,
                info.st_ctime_ns,
            )
        except OSError:
            registry = None
        try:
            self._known = self.hub.repos()
        except ValueError as error:  # a person's half-saved hub.toml: keep watching what it listed
            log.warning("%s; watching the repos it listed before", error)
        return WatchLayout(tuple((r.path, r.slug, _identity(r.path)) for r in self._known), registry)

    @staticmethod
    def touched(changes: set[tuple[Change, str]], roots: dict[Path, str]) -> set[str]:
        """The slugs of the repos where a changed path can change what is indexed (may_hold_sources).

        A path reached through a symbolic link to a directory outside the work tree
        is not the repo's: the notifier follows such links when it opens its watch
        (watchfiles cannot be told not to), so ``canon -> ..`` would report changes
        to the hub's own cache, each refresh writing it again, without end. A path
        counts only when its directory's real path lies inside the work tree's.
        """
        hit: set[str] = set()
        inside: dict[tuple[Path, Path], bool] = {}
        for _change, raw in changes:
            path = Path(raw)
            for root, slug in roots.items():
                if slug not in hit and path.is_relative_to(root):
                    rel = path.relative_to(root).as_posix()
                    if may_hold_sources("" if rel == "." else rel) and _within(path, root, inside):
                        hit.add(slug)
        return hit

    @staticmethod
    def sources_changed(changes: set[tuple[Change, str]], root: Path) -> list[str]:
        """The repo-relative paths under ``root`` where a change can change what is indexed (the
        paths :meth:`touched` counts), sorted."""
        found: set[str] = set()
        inside: dict[tuple[Path, Path], bool] = {}
        for _change, raw in changes:
            path = Path(raw)
            if path.is_relative_to(root):
                rel = path.relative_to(root).as_posix()
                rel = "" if rel == "." else rel
                if may_hold_sources(rel) and _within(path, root, inside):
                    found.add(rel)
        return sorted(found)

    def _reconcile(self) -> None:
        try:
            self.hub.reconcile()
        except Exception:
            log.exception("bringing the cache up to date with hub.toml and the work trees failed")

    def _refresh(self, slug: str, changed: list[str], root: Path) -> bool:
        """Re-index ``slug`` unless every changed path is as the cache holds it (the hub's own
        writes: ``Hub.refresh_changed``), then note the lag from its earliest changed file's change
        time to now (``statehub_index_lag_seconds``; a deleted file counts from now, so adds no lag).
        Whether a re-index ran (or failed)."""
        try:
            if self.hub.refresh_changed(slug, changed) is None:
                return False
        except Exception:
            log.exception("re-indexing %s after a file change failed", slug)
            return True
        if self.hub.metrics is None:
            return True
        now = time.time()
        stamps = [now]
        for rel in changed[:1000]:  # a batch can be huge (a checkout); its first files tell enough
            with contextlib.suppress(OSError):  # deleted since
                stamps.append((root / rel).lstat().st_ctime)  # a rename keeps mtime, not ctime
        if self.hub.metrics is not None:
            self.hub.metrics.index_lag_seconds.labels(slug).observe(max(0.0, now - min(stamps)))
        return True
