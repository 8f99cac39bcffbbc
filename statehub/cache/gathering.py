"""A rebuild's reading half, shared with a second process: repos gathered in order.

A rebuild spends about half its time reading, parsing and judging files
(:func:`statehub.cache.reading.gather_repo`), work that needs no cache and no
other repo's rows once every repo's declared prefixes are known. With
``worker=True`` a forked process takes repos from the end of the list while
this one takes them from the start, one at a time, until they meet: whichever
gets more of the machine gathers more. The worker's results come back pickled
through a pipe once it is done, and the whole list is given in its order, so
rows are written exactly as a single process writes them (canon/ADR-043).

The worker only reads files; it never touches the cache (its copy of the
parent's connections is left alone and it ends with ``os._exit``). If it
fails or dies, this process gathers its repos itself: the rebuild gives the
same result either way (and a file that breaks the parser breaks it here
too, with the usual error). Only a process that runs no other threads may ask
for the worker (``fork`` copies one thread): ``statehub rebuild`` does; the
rebuild a hub runs when it opens a missing or outdated cache does not.

Neither this module nor what it imports loads SQLAlchemy (a test holds it so):
``statehub rebuild`` starts the gathering, and forks the worker, before it opens
the hub, so the worker gathers while this process imports SQLAlchemy, opens the
cache and empties it.
"""

from __future__ import annotations

import fcntl
import gc
import mmap
import os
import pickle
import signal
import struct
import tempfile
import threading
from contextlib import contextmanager
from typing import TYPE_CHECKING

from statehub.cache.reading import Gathered, declared_prefixes, gather_repo

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from pathlib import Path

    from statehub.repofiles import FileLimits

__all__ = ["MIN_REPOS_FOR_WORKER", "gathered"]

MIN_REPOS_FOR_WORKER = 8
"""Fewer repos than this are gathered here: starting the worker would cost more than it saves."""

_BOUNDS = struct.Struct("=ii")
"""The shared bounds: the next index from the start, and the end of what is left (exclusive)."""


class _Split:
    """Two processes taking jobs from either end of one list: bounds in shared memory, guarded by
    a POSIX record lock (owned by a process, so one that dies cannot leave it held)."""

    def __init__(self, count: int) -> None:
        self.memory = mmap.mmap(-1, _BOUNDS.size)  # shared with a forked child
        _BOUNDS.pack_into(self.memory, 0, 0, count)
        self.lock = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close()

    def close(self) -> None:
        self.lock.close()
        self.memory.close()

    def take(self, *, from_end: bool) -> int | None:
        """The next index from the start (or from the end); None when none is left."""
        fcntl.lockf(self.lock, fcntl.LOCK_EX)
        try:
            bounds: tuple[int, int] = _BOUNDS.unpack_from(self.memory, 0)
            start, end = bounds
            if start >= end:
                return None
            if from_end:
                end -= 1
                taken = end
            else:
                taken = start
                start += 1
            _BOUNDS.pack_into(self.memory, 0, start, end)
            return taken
        finally:
            fcntl.lockf(self.lock, fcntl.LOCK_UN)


_Job = tuple[str, "Path"]


def _work(
    split: _Split,
    jobs: list[_Job],
    declared: dict[str, tuple[str, ...]],
    limits: FileLimits,
    out: int,
    *,
    for_sqlite: bool,
) -> None:
    """The worker: gather from the end until the two meet (encoded for SQLite when the cache is
    SQLite), then write the results to ``out``."""
    done: list[tuple[int, Gathered]] = []
    while (index := split.take(from_end=True)) is not None:
        slug, root = jobs[index]
        found = gather_repo(slug, root, declared, limits)
        done.append((index, found.encoded() if for_sqlite else found))
    data = memoryview(pickle.dumps(done, protocol=pickle.HIGHEST_PROTOCOL))
    while data:
        data = data[os.write(out, data) :]


def _fork_worker(
    split: _Split,
    jobs: list[_Job],
    declared: dict[str, tuple[str, ...]],
    limits: FileLimits,
    *,
    for_sqlite: bool,
) -> tuple[int, int]:
    """Start the worker: (its pid, the read end of its results pipe)."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker: never returns
        status = 1
        try:
            os.close(read)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            gc.disable()  # its rows hold no cycles, and it ends with os._exit (see Hub.rebuild)
            _work(split, jobs, declared, limits, write, for_sqlite=for_sqlite)
            status = 0
        finally:
            os._exit(status)
    os.close(write)
    return pid, read


def _results(pid: int, read: int) -> list[tuple[int, Gathered]] | None:
    """The worker's results once it is done; None when it failed or died."""
    chunks = []
    while chunk := os.read(read, 1 << 20):
        chunks.append(chunk)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        return None
    found: list[tuple[int, Gathered]] = pickle.loads(b"".join(chunks))  # noqa: S301 - our own child's
    return found


@contextmanager
def gathered(
    repos: Sequence[tuple[str, Path]], limits: FileLimits, *, worker: bool, for_sqlite: bool = False
) -> Iterator[Iterator[Gathered]]:
    """Each of ``repos`` (slug, work tree) gathered, in order, as the iterator the block is given
    is advanced; with ``worker`` (and enough repos, and no other thread in this process to copy
    half-way through something) partly in a forked process, started as the block begins (it
    gathers while this process does other work) and stopped when it ends, however it ends.

    Every repo's declared prefixes (:func:`statehub.cache.reading.declared_prefixes`) are read
    as the block begins, so each workplan's claim is judged once, against all of them.
    ``for_sqlite`` (the cache is SQLite) has the worker hand its repos over encoded for the
    driver (:meth:`statehub.cache.reading.Gathered.encoded`)."""
    jobs = list(repos)
    declared = {slug: declared_prefixes(root, limits) for slug, root in jobs}
    if not worker or len(jobs) < MIN_REPOS_FOR_WORKER or threading.active_count() > 1:
        yield (gather_repo(slug, root, declared, limits) for slug, root in jobs)
        return
    split = _Split(len(jobs))
    pid, read = _fork_worker(split, jobs, declared, limits, for_sqlite=for_sqlite)
    waited = False

    def in_order() -> Iterator[Gathered]:
        nonlocal waited
        last = -1
        while (index := split.take(from_end=False)) is not None:
            slug, root = jobs[index]
            yield gather_repo(slug, root, declared, limits)
            last = index
        results = _results(pid, read)
        waited = True
        if results is None:  # the worker failed: gather what it took here
            results = [(i, gather_repo(*jobs[i], declared, limits)) for i in range(last + 1, len(jobs))]
        for _, found in sorted(results, key=lambda pair: pair[0]):
            yield found

    try:
        yield in_order()
    finally:
        if not waited:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        os.close(read)
        split.close()
