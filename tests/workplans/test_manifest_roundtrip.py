"""statehub.toml round trip: a manifest written out as TOML parses back to the same model.

The hub has no manifest writer of its own (people and the editor write the
file), so tomlkit, the library the hub edits TOML with, writes the generated
model; ``parse_manifest`` must give back exactly that model, unknown keys and
tables included.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
import tomlkit
from hypothesis import given
from hypothesis import strategies as st

from workplans import FormatError, RepoManifest, parse_manifest
from workplans.manifest import PREFIX, SLUG

KNOWN = ("slug", "title", "prefixes", "default_branch")
slugs = st.from_regex(SLUG, fullmatch=True).filter(lambda text: not text.endswith("\n"))
prefix_names = st.from_regex(PREFIX, fullmatch=True).filter(lambda text: not text.endswith("\n"))
any_text = st.text(st.characters(blacklist_categories=["Cs"]), max_size=30)
bare_keys = st.from_regex(r"[A-Za-z0-9_-]{1,12}", fullmatch=True)
scalars = (
    any_text
    | st.integers(-(2**63), 2**63 - 1)
    | st.booleans()
    | st.floats(allow_nan=False)
    | st.dates()
    | st.datetimes(timezones=st.just(dt.UTC)).map(lambda moment: moment.replace(microsecond=0))
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(bare_keys, inner, max_size=3),
    max_leaves=6,
)


@st.composite
def manifests(draw: st.DrawFn) -> tuple[RepoManifest, dict[str, Any], dict[str, Any]]:
    """A manifest, the unknown keys of its [repo] table, and its unknown top-level entries."""
    repo_extra = draw(st.dictionaries(bare_keys.filter(lambda key: key not in KNOWN), values, max_size=3))
    top_extra = draw(
        st.dictionaries(
            bare_keys.filter(lambda key: key != "repo" and key not in repo_extra), values, max_size=3
        )
    )
    manifest = RepoManifest(
        slug=draw(st.none() | slugs),
        title=draw(st.none() | any_text),
        prefixes=tuple(draw(st.lists(prefix_names, max_size=4))),
        default_branch=draw(st.none() | any_text),
        extra=top_extra | repo_extra,
    )
    return manifest, repo_extra, top_extra


def write_manifest(manifest: RepoManifest, repo_extra: dict[str, Any], top_extra: dict[str, Any]) -> str:
    repo: dict[str, Any] = {}
    if manifest.slug is not None:
        repo["slug"] = manifest.slug
    if manifest.title is not None:
        repo["title"] = manifest.title
    if manifest.prefixes:
        repo["prefixes"] = list(manifest.prefixes)
    if manifest.default_branch is not None:
        repo["default_branch"] = manifest.default_branch
    document = tomlkit.document()
    document["repo"] = repo | repo_extra
    for key, value in top_extra.items():
        document[key] = value
    return tomlkit.dumps(document)


@given(manifests())
def test_a_written_manifest_parses_back_to_its_model(
    generated: tuple[RepoManifest, dict[str, Any], dict[str, Any]],
) -> None:
    manifest, repo_extra, top_extra = generated
    assert parse_manifest(write_manifest(manifest, repo_extra, top_extra)) == manifest


@given(slugs, prefix_names)
def test_a_slug_or_prefix_ending_in_a_newline_is_refused(slug: str, prefix: str) -> None:
    """``$`` also matches before a final newline: the patterns must hold for the whole value."""
    for text in (
        tomlkit.dumps({"repo": {"slug": slug + "\n"}}),
        tomlkit.dumps({"repo": {"prefixes": [prefix + "\n"]}}),
    ):
        with pytest.raises(FormatError):
            parse_manifest(text)
