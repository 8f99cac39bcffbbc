"""statehub.toml, the repo manifest: what it declares and how its mistakes are reported."""

from __future__ import annotations

import pytest

from workplans import FormatError, RepoManifest, parse_manifest


def _problems(text: str) -> list[str]:
    with pytest.raises(FormatError) as caught:
        parse_manifest(text)
    return [str(p) for p in caught.value.problems]


def test_parses_the_format_example() -> None:
    text = (
        '[repo]\nslug = "the-custodian"          # unique across the hub\ntitle = "The Custodian"\n'
        'prefixes = ["CUST"]\ndefault_branch = "main"\n'
    )
    assert parse_manifest(text) == RepoManifest(
        slug="the-custodian", title="The Custodian", prefixes=("CUST",), default_branch="main"
    )


def test_an_empty_manifest_means_defaults() -> None:
    assert parse_manifest("") == RepoManifest()


def test_unknown_tables_and_keys_are_kept() -> None:
    manifest = parse_manifest('[repo]\nslug = "x"\nteam = "ops"\n[ci]\nrunner = "forge"\n')
    assert manifest.extra == {"ci": {"runner": "forge"}, "team": "ops"}


def test_every_problem_is_reported_with_its_line() -> None:
    assert _problems('[repo]\nslug = "Bad Slug"\nprefixes = ["cust"]\ntitle = 3\n') == [
        "statehub.toml:2: 'slug' = 'Bad Slug' must be lower-case letters, digits, '.', '_' or '-'",
        "statehub.toml:4: 'title' must be a string, not an integer",
        "statehub.toml:3: prefix 'cust' must look like CUST or RAIL-BS",
    ]
    assert _problems('[repo]\nprefixes = "CUST"\n') == [
        "statehub.toml:2: 'prefixes' must be an array of strings, not a string"
    ]


def test_repo_must_be_a_table() -> None:
    assert _problems("repo = 3\n") == ["statehub.toml:1: 'repo' must be a table: [repo]"]


def test_bad_toml_points_at_the_line() -> None:
    assert _problems('# manifest\n[repo\nslug = "x"\n') == [
        "statehub.toml:2: invalid TOML: Expected ']' at the end of a table declaration (column 6)"
    ]
