"""What files say is shown, never obeyed: no Rich markup, no terminal escapes, no cut cells when piped."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from statehub.cli import _output
from statehub.cli._context import HubCommandError
from statehub.cli._output import clean, print_table
from statehub.errors import Unprocessable
from tests.gitfixtures import GitRepo, workplan_text

if TYPE_CHECKING:
    from collections.abc import Callable

    from statehub.settings import Settings
    from tests.statehub.cli.conftest import Run

HOSTILE = "[[tasks]] [/x] [bold]b \x1b[31mred :smile:"
"""Markup Rich would read (one closing tag that crashes it), an ANSI colour and an emoji code."""
SHOWN = "[[tasks]] [/x] [bold]b \\x1b[31mred :smile:"
"""How HOSTILE must appear: every character as written, the escape character spelled out."""
IN_TOML = HOSTILE.replace("\x1b", "\\u001b")
BAD_NAME = "workplans/[[tasks]] [bold]\x1b[31m.md"
BAD_NAME_SHOWN = "workplans/[[tasks]] [bold]\\x1b[31m.md"
LONG_TITLE = "Move " + "-".join(["the-daily-triage-job-off-the-workstation"] * 6) + " end"
LONG_OWNER = "agt-" + "x" * 90


@pytest.fixture
def hostile(make_repo: Callable[[str], GitRepo]) -> GitRepo:
    made = make_repo("hostile")
    made.write(
        "workplans/OPS-WP-0001.md",
        workplan_text(
            "OPS-WP-0001",
            [
                {"id": "T01", "title": IN_TOML, "status": "todo", "owner": IN_TOML},
                {"id": "T02", "title": LONG_TITLE, "status": "todo", "owner": LONG_OWNER},
            ],
            title=IN_TOML,
        ),
    )
    made.write("workplans/OPS-WP-0002.md", workplan_text("OPS-WP-0002", status=IN_TOML))
    made.write(BAD_NAME, "no front matter\n")
    made.commit()
    return made


def _assert_shown_not_obeyed(output: str) -> None:
    assert "\x1b" not in output
    assert "\\x1b[31m" in output


def test_clean_spells_out_control_characters_and_keeps_lines() -> None:
    assert clean("a\x1b[31mb\x07c\rd\x7f\x9b") == "a\\x1b[31mb\\x07c\\x0dd\\x7f\\x9b"
    assert clean("two\nlines\tand a tab") == "two\nlines\tand a tab"
    assert clean("abc\u202eevil") == "abc\\u202eevil"
    assert clean("[bold]x[/bold] Ünïcødé ✓") == "[bold]x[/bold] Ünïcødé ✓"
    assert clean(None) == "None"


def test_file_errors_titles_and_owners_print_as_written(run: Run, hostile: GitRepo) -> None:
    added = run("repos", "add", str(hostile.root))
    assert added.exit_code == 0, added.output
    _assert_shown_not_obeyed(added.output)
    assert f"workplans/OPS-WP-0002.md:4: 'status' = '{SHOWN}' is not one of" in added.output
    assert f"{BAD_NAME_SHOWN}:1: a workplan must open with TOML front matter" in added.output

    for args in (("repos", "refresh"), ("rebuild",)):
        result = run(*args)
        assert result.exit_code == 0, result.output
        assert "'status' = '[[tasks]] [/x] [bold]b \\x1b[31mred" in result.output
        assert "\x1b" not in result.output

    tasks = run("tasks", "--workplan", "OPS-WP-0001")
    assert tasks.exit_code == 0, tasks.output
    _assert_shown_not_obeyed(tasks.output)
    assert tasks.output.count(SHOWN) == 2  # the title and the owner, whole
    plans = run("workplans")
    assert plans.exit_code == 0, plans.output
    assert SHOWN in plans.output


def test_error_lines_spell_out_control_characters() -> None:
    error = HubCommandError(Unprocessable(f"fleet.toml cannot be read: {HOSTILE}"))
    assert error.message == f"fleet.toml cannot be read: {SHOWN}"
    assert error.exit_code == 6


def test_piped_tables_keep_every_cell_whole(
    hostile: GitRepo, settings: Settings, settings_home: Path, run: Run
) -> None:
    assert run("repos", "add", str(hostile.root)).exit_code == 0
    env = {**os.environ, "STATEHUB_HOME": str(settings_home), "COLUMNS": "60", "TERM": "xterm-256color"}
    env.pop("FORCE_COLOR", None)
    statehub = Path(sys.executable).parent / "statehub"
    piped = subprocess.run(
        [str(statehub), "tasks", "--workplan", "OPS-WP-0001"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    out = piped.stdout
    assert "…" not in out
    row = next(line for line in out.splitlines() if "OPS-WP-0001-T02" in line)
    assert LONG_TITLE in row and LONG_OWNER in row  # one line per row, nothing cut or wrapped
    _assert_shown_not_obeyed(out)
    assert out.count(SHOWN) == 2


def test_on_a_terminal_tables_still_fit_the_window(monkeypatch: pytest.MonkeyPatch) -> None:
    screen = io.StringIO()
    monkeypatch.setattr(sys, "stdout", screen)
    monkeypatch.setattr(_output, "terminal_width", lambda: 60)
    print_table("Tasks", ["ref", "title"], [("OPS-WP-0001-T02", LONG_TITLE), ("OPS-WP-0001-T01", HOSTILE)])
    plain = screen.getvalue()
    assert "\x1b" not in plain
    assert all(len(line) <= 60 for line in plain.splitlines())
    assert "…" in plain  # a cell too long for the window is cut to fit, as before
    assert "\\x1b[31mred" in plain  # the file's escape character spelled out, never sent
