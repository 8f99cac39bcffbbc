"""``make dev-hub``'s set-up: this checkout, DEV_HUB_REPOS and the example workspace, registered."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from statehub import devhub
from statehub.cache import queries
from statehub.cache.answers import RepoCounts
from statehub.devhub import CHECKOUT, repo_paths, set_up
from tests.gitfixtures import GitRepo, workplan_text

if TYPE_CHECKING:
    from collections.abc import Callable

    from statehub.hub import Hub


def test_repo_paths_split_on_colons_and_spaces() -> None:
    assert repo_paths(None) == []
    assert repo_paths(" /a:/b  /c\n") == [Path("/a"), Path("/b"), Path("/c")]
    assert repo_paths("~/x") == [Path.home() / "x"]


def test_set_up_registers_the_checkout_extras_and_examples(
    hub: Hub, make_repo: Callable[[str], GitRepo], tmp_path: Path
) -> None:
    extra = make_repo("mine")
    extra.write("workplans/M.md", workplan_text("MINE-WP-0001", [{"id": "T01", "title": "x"}]))
    extra.commit()
    said: list[str] = []
    result = set_up(hub, [extra.root, tmp_path / "missing"], say=said.append)

    assert result.skipped == [f"skipped {tmp_path / 'missing'}: {tmp_path / 'missing'} does not exist"]
    assert sorted(r.repo for r in result.reports) == [
        "activity-core",
        "mine",
        "railiance-ops",
        "statehub",
        "the-custodian",
    ]
    assert all(r.errors == [] for r in result.reports)
    with hub.engine.connect() as conn:
        counts = {
            s: queries.get_repo(conn, s).counts for s in ("the-custodian", "railiance-ops", "activity-core")
        }
        assert counts == {
            "the-custodian": RepoCounts(workplans=2, tasks=7, canon=2),
            "railiance-ops": RepoCounts(workplans=2, tasks=6, canon=1),
            "activity-core": RepoCounts(workplans=1, tasks=3, canon=1),
        }
        ready = queries.list_tasks(conn, ready=True).items
        assert sorted(t.ref for t in ready) == [
            "ACT-WP-0001-T01",
            "CUST-WP-0054-T02",
            "CUST-WP-0054-T03",
            "CUST-WP-0055-T01",
            "MINE-WP-0001-T01",
            "RAIL-BS-WP-0006-T02",
            "RAIL-HO-WP-0005-T03",
        ]
        own_canon = {d.id for d in queries.list_canon(conn, repo="statehub").items}
        assert {"ADR-001", "ADR-002", "ADR-003", "ADR-004", "ADR-005"} <= own_canon
    assert hub.repo("statehub").path == CHECKOUT
    assert (hub.settings.data_dir / "examples" / "the-custodian" / ".git").is_dir()


def test_examples_are_copied_on_the_first_run_only(hub: Hub) -> None:
    set_up(hub, [], checkout=None, say=lambda _line: None)
    plan = hub.settings.data_dir / "examples" / "activity-core" / "workplans" / "ACT-WP-0001.md"
    plan.write_text(plan.read_text(encoding="utf-8").replace('status = "in-progress"', 'status = "done"'))
    set_up(hub, [], checkout=None, say=lambda _line: None)
    with hub.engine.connect() as conn:
        assert queries.get_task(conn, "ACT-WP-0001-T01").status == "done"


@pytest.mark.parametrize(
    ("env", "hub_toml", "said"),
    [
        ({"STATEHUB_PORT": "x"}, None, "STATEHUB_PORT='x' must be a port number"),
        ({}, "[[repos]\n", "cannot read the list of registered repos"),
    ],
)
def test_make_dev_hub_says_a_setup_error_in_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    env: dict[str, str],
    hub_toml: str | None,
    said: str,
) -> None:
    """As ``statehub serve`` does: one line and the setup exit code, no traceback."""
    if hub_toml is not None:
        (tmp_path / "config").mkdir()
        (tmp_path / "config" / "hub.toml").write_text(hub_toml, encoding="utf-8")
    with pytest.raises(SystemExit) as exited:
        devhub.main({"STATEHUB_HOME": str(tmp_path), **env})
    assert exited.value.code == 3
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and said in lines[0], lines
