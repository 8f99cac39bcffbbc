"""The web UI follows the hub's change stream (issue 14, ADR-038): a person's hand edit of a workplan
file shows on an open page without a reload, and a page being typed into is not redrawn under the
person's hands until the field loses focus. Real headless Chromium over a real hub process with its
file watcher on."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from statehub.hub import Hub
from statehub.settings import Settings
from tests.browser.test_pages import wait_ready
from tests.gitfixtures import GitRepo, workplan_text
from tests.hubserver import HubServer

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

PLAN = "LIVE-WP-0001"
PATH = f"workplans/{PLAN}.md"


def _plan(status_t01: str) -> str:
    tasks: list[dict[str, object]] = [
        {"id": "T01", "title": "Watch the lanes", "status": status_t01, "owner": "ada"},
        {"id": "T02", "title": "Drain the host", "status": "todo", "owner": "bob"},
    ]
    return workplan_text(PLAN, tasks, title="Live plan")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HubServer, GitRepo]]:
    base: Path = tmp_path_factory.mktemp("live")
    repo = GitRepo(base / "repos" / "live")
    repo.write("statehub.toml", '[repo]\nslug = "live"\ntitle = "Live"\nprefixes = ["LIVE"]\n')
    repo.write(PATH, _plan("todo"))
    repo.commit("start")
    home = base / "hub-home"
    with Hub(Settings.from_env({"STATEHUB_HOME": str(home)})) as hub:
        hub.register(repo.root)
    with HubServer(home, watch=True) as running:
        yield running, repo


def _status_of(page: Any, ref: str) -> str:
    return str(page.locator(f'tr[data-href="#/tasks/{ref}"]').inner_text())


def _open_live(browser: Any, server: HubServer, address: str) -> Any:
    page = browser.new_page()
    page.add_init_script("localStorage.setItem('statehub.user', 'ada')")
    page.goto(f"{server.url}/{address}")
    wait_ready(page)
    page.wait_for_function("() => document.getElementById('live').dataset.state === 'live'", timeout=15000)
    page.evaluate("() => { window.__sameDocument = true }")  # gone if the page reloads
    return page


def test_a_hand_edit_shows_on_an_open_page_without_a_reload(
    browser: Any, served: tuple[HubServer, GitRepo]
) -> None:
    server, repo = served
    page = _open_live(browser, server, f"#/tasks?workplan={PLAN}")
    assert "todo" in _status_of(page, f"{PLAN}-T01")
    repo.write(PATH, _plan("blocked"))  # a person's editor, not the hub
    page.wait_for_function(
        f"""() => {{
          const row = document.querySelector('tr[data-href="#/tasks/{PLAN}-T01"]')
          return row !== null && row.innerText.includes('blocked')
        }}""",
        timeout=20000,
    )
    assert page.evaluate("() => window.__sameDocument") is True
    assert "todo" in _status_of(page, f"{PLAN}-T02")
    page.close()


def test_a_field_being_typed_in_is_not_redrawn_until_it_loses_focus(
    browser: Any, served: tuple[HubServer, GitRepo]
) -> None:
    server, repo = served
    repo.write(PATH, _plan("todo"))
    page = _open_live(browser, server, f"#/tasks?workplan={PLAN}")
    page.wait_for_function(
        f"() => document.querySelector('tr[data-href=\"#/tasks/{PLAN}-T01\"]').innerText.includes('todo')",
        timeout=20000,
    )
    field = page.locator('input[name="owner_prefix"]')
    field.click()
    field.press_sequentially("ad")  # typed, not yet applied
    drawn = page.evaluate("() => document.body.dataset.ready")
    repo.write(PATH, _plan("done"))
    page.wait_for_function("() => document.getElementById('live').textContent.includes('changes waiting')")
    assert page.evaluate("() => document.body.dataset.ready") == drawn  # not redrawn under the typing
    assert field.input_value() == "ad"
    page.locator("h1").click()  # focus leaves the field: the waiting change is drawn
    page.wait_for_function(
        f"() => document.querySelector('tr[data-href=\"#/tasks/{PLAN}-T01\"]').innerText.includes('done')",
        timeout=20000,
    )
    assert page.evaluate("() => window.__sameDocument") is True
    page.close()
