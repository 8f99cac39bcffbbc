"""Canon documents: the format, every problem with path and line, and the round trip."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from workplans import CanonDocument, CanonKind, CanonStatus, FormatError, parse_canon, render_canon

EXAMPLE = """+++
id = "ADR-001"
title = "Files are authoritative; databases are disposable caches"
kind = "adr"                    # adr | standard | runbook | note
status = "accepted"             # proposed | accepted | superseded | deprecated
date = 2026-05-02
supersedes = []
reviewers = ["ops-lead"]
+++
Body.
"""


def _problems(text: str, path: str = "canon/a.md") -> list[str]:
    with pytest.raises(FormatError) as caught:
        parse_canon(text, path)
    return [str(p) for p in caught.value.problems]


def test_parses_the_format_example() -> None:
    doc = parse_canon(EXAMPLE, "canon/ADR-001.md")
    assert doc == CanonDocument(
        id="ADR-001",
        title="Files are authoritative; databases are disposable caches",
        kind=CanonKind.ADR,
        status=CanonStatus.ACCEPTED,
        date=dt.date(2026, 5, 2),
        supersedes=(),
        body="Body.\n",
        extra={"reviewers": ["ops-lead"]},
    )


def test_every_problem_is_reported_with_its_line() -> None:
    text = (
        '+++\nid = "adr1"\ntitle = "t"\nkind = "decision"\nstatus = "accepted"\n'
        'date = "yesterday"\nsupersedes = "ADR-000"\n+++\n'
    )
    assert _problems(text) == [
        "canon/a.md:2: 'id' = 'adr1' does not match ^[A-Z][A-Z0-9]*(-[A-Z0-9]+)+$ (e.g. ADR-001)",
        "canon/a.md:4: 'kind' = 'decision' is not one of adr | standard | runbook | note",
        "canon/a.md:6: 'date' must be a TOML date like 2026-05-02, not a string",
        "canon/a.md:7: 'supersedes' must be an array of strings, not a string",
    ]


def test_missing_keys_are_named() -> None:
    assert _problems('+++\ntitle = "t"\n+++\n') == [
        "canon/a.md: missing required key 'id'",
        "canon/a.md: missing required key 'kind'",
        "canon/a.md: missing required key 'status'",
    ]


def test_bad_toml_and_unclosed_front_matter() -> None:
    assert _problems('+++\nid = "ADR-001"\ntitle = "x\n+++\n') == [
        "canon/a.md:3: invalid TOML: Illegal character '\\n' (column 11)"
    ]
    assert _problems('+++\nid = "ADR-001"\n') == [
        "canon/a.md:1: front matter opened with '+++' on line 1 is never closed by a '+++' line"
    ]


def test_readme_without_front_matter_is_skipped_other_files_are_errors() -> None:
    assert parse_canon("# Canon\n", "canon/README.md") is None
    assert _problems("# Notes\n", "canon/notes.md") == [
        "canon/notes.md:1: a canon document must open with TOML front matter between '+++' lines"
    ]


_text = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=20).filter(
    lambda s: s.strip() != ""
)


@given(
    st.builds(
        CanonDocument,
        id=st.from_regex(r"\A[A-Z]{1,4}-[0-9]{3}\Z"),
        title=_text,
        kind=st.sampled_from(CanonKind),
        status=st.sampled_from(CanonStatus),
        date=st.none() | st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2999, 12, 31)),
        supersedes=st.lists(st.from_regex(r"\AADR-[0-9]{3}\Z"), max_size=3).map(tuple),
        body=st.text(max_size=100).filter(lambda b: "\r" not in b),
        extra=st.dictionaries(st.sampled_from(["area", "reviewers"]), _text, max_size=2),
    )
)
def test_round_trip(doc: CanonDocument) -> None:
    assert parse_canon(render_canon(doc), "canon/x.md") == doc
