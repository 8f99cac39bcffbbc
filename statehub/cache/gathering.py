"""A rebuild's reading half, shared with a second process: repos gathered in order.

A rebuild spends about half its time reading, parsing and judging files
(:func:`statehub.cache.indexer.gather_repo`), work that needs no cache and no
other repo's rows once every repo's declared prefixes are known. With
``worker=True`` a forked process gathers the later repos while this one
gathers the first ones and writes them; their results come back (pickled, in
repo order) as this process reaches them, so rows are written in the same
order as a single process writes them (canon/ADR-043).

Only a process that runs no other threads may ask for the worker (``fork``
copies one thread): ``statehub rebuild`` does, the server does not.
"""

from __future__ import annotations

import itertools
import multiprocessing
from contextlib import contextmanager
from typing import TYPE_CHECKING

from statehub.cache.indexer import Gathered, gather_repo

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence
    from pathlib import Path

    from statehub.repofiles import FileLimits

__all__ = ["MIN_REPOS_FOR_WORKER", "gathered"]

MIN_REPOS_FOR_WORKER = 8
"""Fewer repos than this are gathered here: starting the worker would cost more than it saves."""

WORKER_SHARE = 0.55
"""The part of the repos (the later ones) the worker gathers; this process also writes every
repo's rows and has the rebuild's snapshot to take, so it keeps the smaller part."""

_Job = tuple[str, "Path", dict[str, tuple[str, ...]], "FileLimits"]


def _gather(job: _Job) -> Gathered:
    slug, root, declared, limits = job
    return gather_repo(slug, root, declared, limits)


@contextmanager
def gathered(
    repos: Sequence[tuple[str, Path]],
    declared: dict[str, tuple[str, ...]],
    limits: FileLimits,
    *,
    worker: bool,
) -> Iterator[Iterator[Gathered]]:
    """Each of ``repos`` (slug, work tree) gathered, in order, as the iterator the block is given
    is advanced; with ``worker`` (and enough repos) the later ones in a forked process, started as
    the block begins (it gathers while this process does other work) and stopped as it ends,
    however it ends."""
    jobs = [(slug, root, declared, limits) for slug, root in repos]
    if not worker or len(jobs) < MIN_REPOS_FOR_WORKER:
        yield map(_gather, jobs)
        return
    split = len(jobs) - round(len(jobs) * WORKER_SHARE)
    with multiprocessing.get_context("fork").Pool(1) as pool:
        later = pool.imap(_gather, jobs[split:], chunksize=2)
        yield itertools.chain(map(_gather, jobs[:split]), later)
