"""Follow file changes in registered repos so the cache stays current without a manual refresh."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from watchfiles import Change, awatch

from statehub.cache.sources import kind_of

if TYPE_CHECKING:
    from statehub.hub import Hub

__all__ = ["RepoWatcher"]

log = logging.getLogger(__name__)


class RepoWatcher:
    """Watches every registered work tree; re-indexes a repo when one of its indexed files moves."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._restart = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None

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

    async def _run(self) -> None:
        while not self._stop.is_set():
            self._restart.clear()
            roots = {r.path: r.slug for r in self.hub.repos() if r.path.is_dir()}
            if not roots:
                await self._restart.wait()
                continue
            try:
                async for changes in awatch(*roots, stop_event=self._restart, debounce=200, step=50):
                    slugs = {slug for path in self._indexable(changes, roots) for slug in [roots[path]]}
                    for slug in slugs:
                        await asyncio.to_thread(self._refresh, slug)
            except Exception:  # the watcher must never take the hub down
                log.exception("file watcher failed; retrying in 1 s")
                await asyncio.sleep(1)

    @staticmethod
    def _indexable(changes: set[tuple[Change, str]], roots: dict[Path, str]) -> set[Path]:
        hit: set[Path] = set()
        for _change, raw in changes:
            path = Path(raw)
            for root in roots:
                if path.is_relative_to(root) and kind_of(path.relative_to(root).as_posix()):
                    hit.add(root)
        return hit

    def _refresh(self, slug: str) -> None:
        try:
            self.hub.refresh(slug)
        except Exception:
            log.exception("re-indexing %s after a file change failed", slug)
