"""Which repo a workplan id belongs to: the prefixes each repo's manifest declares (ADR-022).

A repo's ``statehub.toml`` may declare ``prefixes``. An id belongs to the repo
that declares the longest prefix it starts with (``RAIL-BS-WP-0006`` starts
with ``RAIL-BS`` and with ``RAIL``; ``RAIL-BS`` is more specific). A file may
claim an id only when

- its repo declares prefixes and the id starts with one of them, and no other
  repo declares a longer prefix the id starts with; or
- its repo declares no prefixes and no repo declares a prefix the id starts with.

Any other claim is an error on the claiming file alone: the file is not served
and events naming the id go to the owner's file. Two repos declaring the same
prefix both own it; a file in each claiming the same id is then the ordinary
duplicate (both files reported, neither served), because the hub cannot tell
which of the two is the impostor and must never serve or write the wrong one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = ["claim_problem", "covers", "holders_by_prefix"]


def covers(prefix: str, workplan_id: str) -> bool:
    """Whether ``workplan_id`` starts with the declared ``prefix`` (``CUST`` covers ``CUST-WP-0054``)."""
    return workplan_id.startswith(prefix + "-")


def holders_by_prefix(declared: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """``declared`` (slug -> prefixes) turned round: prefix -> the slugs declaring it, for
    :func:`claim_problem` to look a workplan id's candidates up instead of trying every prefix."""
    found: dict[str, list[str]] = {}
    for repo, prefixes in declared.items():
        for prefix in prefixes:
            found.setdefault(prefix, []).append(repo)
    return found


def claim_problem(
    repo: str,
    workplan_id: str,
    declared: Mapping[str, Sequence[str]],
    by_prefix: Mapping[str, Sequence[str]] | None = None,
) -> str | None:
    """Why a file in ``repo`` may not claim ``workplan_id``; None when it may.

    ``declared`` maps every registered repo's slug to the prefixes its manifest
    declares (``repo`` included, even when it declares none); ``by_prefix`` is
    ``holders_by_prefix(declared)`` when the caller keeps it for many ids.
    """
    own = tuple(declared.get(repo, ()))
    if by_prefix is None:
        by_prefix = holders_by_prefix(declared)
    # a prefix covers the id exactly when it is the id cut before one of its dashes
    cuts = dict.fromkeys(workplan_id[:i] for i, c in enumerate(workplan_id) if c == "-")
    matches = [(p, r) for p in cuts for r in by_prefix.get(p, ())]
    longest = max((len(p) for p, _ in matches), default=0)
    best = sorted({(p, r) for p, r in matches if len(p) == longest})
    holders = {r for _, r in best}
    elsewhere = ", ".join(f"repo {r!r} declares {p}" for p, r in best if r != repo)
    if own and not any(covers(p, workplan_id) for p in own):
        said = f"workplan id {workplan_id} is outside this repo's prefixes ({', '.join(own)})"
        if elsewhere:
            said += f"; {elsewhere}"
        return said + "; ids in this repo must start with one of its prefixes, so this file is not served"
    if not best or repo in holders:
        return None
    if own:
        return (
            f"workplan id {workplan_id} belongs to another repo: {elsewhere}, more specific than "
            f"this repo's prefixes ({', '.join(own)}); this file is not served"
        )
    return (
        f"workplan id {workplan_id} belongs to another repo: {elsewhere}; this repo declares no "
        "prefixes, so it may use only ids no repo declares; this file is not served"
    )
