"""A rebuild's reading half, shared with a second process: repos gathered in order.

A rebuild spends about half its time reading, parsing and judging files
(:func:`statehub.cache.reading.gather_repo`), work that needs no cache and no
other repo's rows once every repo's declared prefixes are known. With
``worker=True`` a second process takes repos from the end of the list while
this one takes them from the start, one at a time, until they meet: whichever
gets more of the machine gathers more. The worker's results come back pickled
through a pipe once it is done, and the whole list is given in its order, so
rows are written exactly as a single process writes them (canon/ADR-043).

The worker only reads files; it never touches the cache. Where this process
runs no other thread it is forked (its copy of the parent's connections is
left alone and it ends with ``os._exit``); where other threads run (a server:
``fork`` copies one thread, maybe half-way through holding a lock) it is a
fresh ``python -m statehub.cache.gathering``, handed the shared bounds' file
descriptor and its jobs pickled on stdin, writing its results to stdout. Both
run the same ``_work``. If it cannot start, fails or dies, this process
gathers its repos itself: the rebuild gives the same result either way (and a
file that breaks the parser breaks it here too, with the usual error).

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
import subprocess
import sys
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from statehub.cache.reading import Gathered, declared_prefixes, gather_repo

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from statehub.repofiles import FileLimits

__all__ = ["MIN_REPOS_FOR_WORKER", "gathered"]

MIN_REPOS_FOR_WORKER = 8
"""Fewer repos than this are gathered here: starting the worker would cost more than it saves."""

_BOUNDS = struct.Struct("=ii")
"""The shared bounds: the next index from the start, and the end of what is left (exclusive)."""


class _Split:
    """Two processes taking jobs from either end of one list: bounds in a shared mapping of an
    unnamed temporary file (a forked worker inherits it; a spawned one is handed its descriptor),
    guarded by a POSIX record lock on that file (owned by a process, so one that dies cannot leave
    it held)."""

    def __init__(self, lock: int) -> None:
        self.lock = lock
        self.memory = mmap.mmap(lock, _BOUNDS.size)

    @classmethod
    def new(cls, count: int) -> _Split:
        """Bounds for ``count`` jobs, none taken."""
        with tempfile.TemporaryFile() as file:
            lock = os.dup(file.fileno())
        os.ftruncate(lock, _BOUNDS.size)
        split = cls(lock)
        _BOUNDS.pack_into(split.memory, 0, 0, count)
        return split

    def close(self) -> None:
        self.memory.close()
        os.close(self.lock)

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
) -> _Worker:
    """Start the worker by ``fork`` (only where no other thread runs)."""
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
    return _Worker(read, pid, None)


def _spawn_worker(
    split: _Split,
    jobs: list[_Job],
    declared: dict[str, tuple[str, ...]],
    limits: FileLimits,
    *,
    for_sqlite: bool,
) -> _Worker:
    """Start the worker as a fresh ``python -P -m statehub.cache.gathering`` (where other threads
    run, which ``fork`` would not copy): it is handed the split's descriptor and, pickled on its
    stdin, the jobs; it writes its results to its stdout. ``-P`` keeps the working directory off
    its ``sys.path``: a server started inside a repo must not import that repo's ``statehub/``
    (repos are untrusted). Raises OSError if it cannot start."""
    package_root = str(Path(__file__).resolve().parent.parent.parent)
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))
    )
    process = subprocess.Popen(  # noqa: S603 - this interpreter, this module
        [sys.executable, "-P", "-m", "statehub.cache.gathering", str(split.lock)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        pass_fds=(split.lock,),
        env=env,
    )
    assert process.stdin is not None and process.stdout is not None  # both piped
    try:
        with process.stdin:
            pickle.dump((jobs, declared, limits, for_sqlite), process.stdin, protocol=pickle.HIGHEST_PROTOCOL)
    except OSError:  # it died as it started: _results finds it failed
        pass
    read = os.dup(process.stdout.fileno())
    process.stdout.close()
    return _Worker(read, process.pid, process)


class _Worker:
    """A started worker: the read end of its results, its pid and, when spawned, its Popen."""

    def __init__(self, read: int, pid: int, process: subprocess.Popen[bytes] | None) -> None:
        self.read = read
        self.pid = pid
        self.process = process

    def wait(self) -> int:
        """Its exit status (0 when it succeeded)."""
        if self.process is not None:
            return self.process.wait()
        return os.waitpid(self.pid, 0)[1]

    def kill(self) -> None:
        """Stop it and reap it (if it is not reaped already)."""
        if self.process is not None:
            self.process.kill()  # Popen knows whether it has reaped it
        else:
            os.kill(self.pid, signal.SIGKILL)
        self.wait()

    def close(self) -> None:
        os.close(self.read)


def _results(worker: _Worker) -> list[tuple[int, Gathered]] | None:
    """The worker's results once it is done; None when it failed, died or wrote something other
    than its pickled results."""
    chunks = []
    while chunk := os.read(worker.read, 1 << 20):
        chunks.append(chunk)
    if worker.wait() != 0:
        return None
    try:
        found: list[tuple[int, Gathered]] = pickle.loads(b"".join(chunks))  # noqa: S301 - our own child's
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError, IndexError):
        return None
    return found


@contextmanager
def gathered(
    repos: Sequence[tuple[str, Path]], limits: FileLimits, *, worker: bool, for_sqlite: bool = False
) -> Iterator[Iterator[Gathered]]:
    """Each of ``repos`` (slug, work tree) gathered, in order, as the iterator the block is given
    is advanced; with ``worker`` (and enough repos) partly in a second process, forked if no
    other thread runs here, else spawned, started as the block begins (it gathers while this
    process does other work) and stopped when it ends, however it ends.

    Every repo's declared prefixes (:func:`statehub.cache.reading.declared_prefixes`) are read
    as the block begins, so each workplan's claim is judged once, against all of them.
    ``for_sqlite`` (the cache is SQLite) has the worker hand its repos over encoded for the
    driver (:meth:`statehub.cache.reading.Gathered.encoded`)."""
    jobs = list(repos)
    declared = {slug: declared_prefixes(root, limits) for slug, root in jobs}
    if not worker or len(jobs) < MIN_REPOS_FOR_WORKER:
        yield (gather_repo(slug, root, declared, limits) for slug, root in jobs)
        return
    split = _Split.new(len(jobs))
    start = _fork_worker if threading.active_count() == 1 else _spawn_worker
    try:
        started = start(split, jobs, declared, limits, for_sqlite=for_sqlite)
    except OSError:  # no worker (no process to spare): gather here
        split.close()
        yield (gather_repo(slug, root, declared, limits) for slug, root in jobs)
        return
    waited = False

    def in_order() -> Iterator[Gathered]:
        nonlocal waited
        last = -1
        while (index := split.take(from_end=False)) is not None:
            slug, root = jobs[index]
            yield gather_repo(slug, root, declared, limits)
            last = index
        results = _results(started)
        waited = True
        if results is None:  # the worker failed: gather what it took here
            results = [(i, gather_repo(*jobs[i], declared, limits)) for i in range(last + 1, len(jobs))]
        for _, found in sorted(results, key=lambda pair: pair[0]):
            yield found

    try:
        yield in_order()
    finally:
        if not waited:
            started.kill()
        started.close()
        split.close()


def _main(lock: int) -> None:
    """A spawned worker (``_spawn_worker``): the jobs from stdin, the results to stdout."""
    gc.disable()  # its rows hold no cycles, and it exits as soon as it has written them
    jobs, declared, limits, for_sqlite = pickle.load(sys.stdin.buffer)  # noqa: S301 - our parent's
    _work(_Split(lock), jobs, declared, limits, sys.stdout.fileno(), for_sqlite=for_sqlite)


if __name__ == "__main__":
    _main(int(sys.argv[1]))
