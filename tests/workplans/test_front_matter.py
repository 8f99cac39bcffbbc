"""Splitting front matter from the body, with the line the TOML starts on."""

from __future__ import annotations

import pytest

from workplans.front_matter import split_front_matter


def test_splits_toml_and_body() -> None:
    front = split_front_matter('+++\nid = "A-WP-0001"\n+++\n# Body\n')
    assert front is not None
    assert (front.toml, front.body, front.first_line) == ('id = "A-WP-0001"\n', "# Body\n", 2)


def test_windows_line_endings_and_no_body() -> None:
    front = split_front_matter('+++\r\nid = "x"\r\n+++')
    assert front is not None
    assert (front.toml, front.body) == ('id = "x"\r\n', "")


def test_no_opening_fence_is_no_front_matter() -> None:
    assert split_front_matter("# Title\n+++\n") is None
    assert split_front_matter("") is None
    assert split_front_matter(" +++\nx\n+++\n") is None


def test_a_fence_must_be_the_whole_line() -> None:
    with pytest.raises(ValueError, match="never closed"):
        split_front_matter("+++\nid = 1\n+++ not a fence\n")
