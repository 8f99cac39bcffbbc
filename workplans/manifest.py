"""The repo manifest, ``statehub.toml``: slug, title, owned prefixes, default branch."""

from __future__ import annotations

import re

from workplans._fields import KeyLines, Reader
from workplans._toml import load_toml
from workplans.lines import BOM
from workplans.models import RepoManifest
from workplans.problems import FileProblem, FormatError

__all__ = ["MANIFEST_PATH", "SLUG", "parse_manifest"]

MANIFEST_PATH = "statehub.toml"
SLUG = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
PREFIX = re.compile(r"^[A-Z][A-Z0-9]*(-[A-Z0-9]+)*$")


def parse_manifest(text: str, path: str = MANIFEST_PATH) -> RepoManifest:
    """Read ``statehub.toml`` (docs/format.md); a leading byte order mark is allowed. Raises FormatError."""
    text = text.removeprefix(BOM)
    data = load_toml(text, path)
    problems: list[FileProblem] = []
    lines = KeyLines(text, 1)
    repo = data.get("repo", {})
    if not isinstance(repo, dict):
        raise FormatError([FileProblem(path, lines.key("repo"), "'repo' must be a table: [repo]")])
    reader = Reader(repo, path, lines, problems, table="repo")
    slug = reader.string("slug", required=False)
    if slug is not None and not SLUG.fullmatch(slug):
        reader.problem("slug", f"'slug' = {slug!r} must be lower-case letters, digits, '.', '_' or '-'")
    title = reader.string("title", required=False)
    prefixes = reader.strings("prefixes")
    for prefix in prefixes:
        if not PREFIX.fullmatch(prefix):
            reader.problem("prefixes", f"prefix {prefix!r} must look like CUST or RAIL-BS")
    branch = reader.string("default_branch", required=False)
    unknown = sorted(k for k in data if k != "repo")
    if problems:
        raise FormatError(problems)
    return RepoManifest(
        slug=slug,
        title=title,
        prefixes=prefixes,
        default_branch=branch,
        extra={k: data[k] for k in unknown} | reader.extra(("slug", "title", "prefixes", "default_branch")),
    )
