"""A team on a fleet hub with tokens, in real headless Chromium (issue 15's "Tests that must exist").

Two people at once, each with their own session: ada (an edit token) at ``127.0.0.1`` and bob (a
read token) at ``localhost`` (another host, so another cookie jar). Ada signs in, reaches every
page by clicking, acts (a note, a status change, a claim; a refused claim says why) and opens the
editor; bob, on the same hub, sees her changes and her room arrive live without a reload, has no
action button nor editor link anywhere, and a request he forges with his own cookie (and even his
own CSRF token) is refused by the hub. Both sign out. Screenshots of each signed-in page at desktop
and phone width land in ``test-output/``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from statehub.auth.tokens import mint
from tests.browser.chromium import OUTPUT
from tests.browser.test_pages import click_to, wait_outcome, wait_ready
from tests.browser.test_signin import fleet_hub, sign_in
from tests.gitfixtures import GitRepo, workplan_text

if TYPE_CHECKING:
    from collections.abc import Iterator

    from biscuit_auth import KeyPair

    from tests.hubserver import HubServer

FLEET_EXAMPLE = Path(__file__).resolve().parents[1] / "registry" / "fleet_example.toml"
PLAN = "TEAM-WP-0001"
PAGES = {
    "dashboard": "#/",
    "repo": "#/repos/team",
    "workplan": f"#/workplans/{PLAN}",
    "task": f"#/tasks/{PLAN}-T02",
    "tasks": "#/tasks?status=todo",
    "workplans": "#/workplans",
    "canon": "#/canon/ADR-001?repo=team",
    "events": "#/events",
    "fleet": "#/fleet",
    "search": "#/search?q=tunnels",
}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HubServer, KeyPair, GitRepo]]:
    base = tmp_path_factory.mktemp("fleet-team")
    repo = GitRepo(base / "repos" / "team")
    repo.write("statehub.toml", '[repo]\nslug = "team"\ntitle = "Team"\nprefixes = ["TEAM"]\n')
    tasks: list[dict[str, object]] = [
        {"id": "T01", "title": "Draft the plan", "status": "done", "owner": "ada"},
        {"id": "T02", "title": "Move the tunnels", "status": "todo", "owner": "ada", "depends_on": ["T01"]},
        {"id": "T03", "title": "Drain the old host", "status": "todo", "owner": "bob", "depends_on": ["T02"]},
    ]
    repo.write(f"workplans/{PLAN}.md", workplan_text(PLAN, tasks, title="Fleet move", owner="ada"))
    repo.write("registry/fleet.toml", FLEET_EXAMPLE.read_text(encoding="utf-8"))
    repo.write(
        "canon/ADR-001.md",
        '+++\nid = "ADR-001"\ntitle = "Files are the truth"\nkind = "adr"\nstatus = "accepted"\n'
        "date = 2026-05-02\n+++\n# Files\n\nThe files are **the truth**.\n",
    )
    repo.commit("start")
    with fleet_hub(base / "home", repo) as (server, root):
        yield server, root, repo


def signed_in(browser: Any, base: str, token: str, width: int = 1280) -> Any:
    page = browser.new_page()
    page.set_viewport_size({"width": width, "height": 900})
    page.goto(f"{base}/#/")
    sign_in(page, token)
    page.wait_for_selector("#who-actor")
    wait_ready(page)
    return page


def visit(page: Any, base: str, address: str) -> None:
    before = page.evaluate("() => document.body.dataset.ready || null")
    page.goto(f"{base}/{address}")
    wait_ready(page, before)


def live(page: Any) -> None:
    page.wait_for_function("() => document.getElementById('live').dataset.state === 'live'", timeout=15000)
    page.evaluate("() => { window.__sameDocument = true }")  # gone if the page reloads


def shot(page: Any, name: str) -> None:
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUTPUT / f"{name}.png"), full_page=True)


def test_a_team_signs_in_acts_and_sees_each_other_live(
    browser: Any, fleet: tuple[HubServer, KeyPair, GitRepo]
) -> None:
    server, root, repo = fleet
    mine, theirs = server.url, server.url.replace("127.0.0.1", "localhost")
    first = browser.new_page()
    first.goto(f"{mine}/#/")
    first.wait_for_selector("#sign-in-token")
    for width in (1280, 390):
        first.set_viewport_size({"width": width, "height": 700})
        shot(first, f"fleet-sign-in-{width}")
    first.close()
    ada = signed_in(browser, mine, mint(root, "ada", "edit").to_base64())
    bob = signed_in(browser, theirs, mint(root, "bob", "read").to_base64())
    assert ada.inner_text("#who-actor") == "ada" and bob.inner_text("#who-actor") == "bob"
    assert "read" in bob.inner_text("#who-rights") and "write" not in bob.inner_text("#who-rights")

    # ada reaches the pages by clicking, from the dashboard down to a task and across to its plan
    click_to(ada, "a[href='#/repos/team']", "#/repos/team")
    click_to(ada, f"a[href='#/workplans/{PLAN}']", f"#/workplans/{PLAN}")
    click_to(ada, f"tr[data-href='#/tasks/{PLAN}-T02'] a", f"#/tasks/{PLAN}-T02")
    click_to(ada, f"a[href='#/workplans/{PLAN}']", f"#/workplans/{PLAN}")
    before = ada.evaluate("() => document.body.dataset.ready")
    ada.fill("#search input[name=q]", "tunnels")  # the header's search box, over GET /search
    ada.keyboard.press("Enter")
    ada.wait_for_function("() => location.hash === '#/search?q=tunnels'")
    wait_ready(ada, before)
    assert f"{PLAN}-T02" in ada.inner_text("main")
    for name, address in PAGES.items():
        visit(ada, mine, address)
        assert "Could not load" not in ada.inner_text("main"), (name, ada.inner_text("main"))
        wordless = ada.evaluate(
            "() => [...document.querySelectorAll('main .status')]"
            ".filter((e) => !/[a-z]{2}/.test(e.textContent)).map((e) => e.outerHTML)"
        )
        assert wordless == [], (name, wordless)  # every status says its word, not its colour alone
        for width in (1280, 390):
            ada.set_viewport_size({"width": width, "height": 900})
            assert ada.evaluate("() => document.documentElement.scrollWidth") <= width, (name, width)
            shot(ada, f"fleet-{name}-{width}")
        ada.set_viewport_size({"width": 1280, "height": 900})

    # bob reads the workplan: no action anywhere, and he follows the hub live
    visit(bob, theirs, f"#/workplans/{PLAN}")
    assert bob.locator("[data-act], .actions button").count() == 0
    assert "does not allow write" in bob.inner_text("#act #read-only")
    live(bob)
    shot(bob, "fleet-read-only-workplan-1280")

    # ada acts on a task: a note and a status change apply; a claim whose dependency is open is
    # refused with the reason; a claim of a free task is won
    visit(ada, mine, f"#/tasks/{PLAN}-T03")
    ada.fill("[data-act=note] input[name=note]", "checked the old host")
    ada.click("[data-act=note] button")
    wait_outcome(ada, "applied", "committed as")
    ada.click("[data-act=claim] button:not([data-release])")
    assert f"{PLAN}-T02" in wait_outcome(ada, "refused", f"{PLAN}-T02")
    ada.select_option("[data-act=status] select", "blocked")
    ada.click("[data-act=status] button")
    wait_outcome(ada, "applied")
    assert repo.git("log", "-1", "--format=%an").strip() == "ada"
    # another session's change reaches bob's open page without a reload
    bob.wait_for_function(
        f"() => document.querySelector('tr[data-href=\"#/tasks/{PLAN}-T03\"]').innerText.includes('blocked')",
        timeout=20000,
    )
    assert bob.evaluate("() => window.__sameDocument") is True
    visit(ada, mine, f"#/tasks/{PLAN}-T02")
    ada.click("[data-act=claim] button:not([data-release])")
    wait_outcome(ada, "applied")
    ada.wait_for_function("() => document.querySelector('main').textContent.includes('held by ada')")

    # bob's task page: no buttons; a request he forges with his cookie is refused, with or without
    # his session's CSRF token, and nothing is written
    visit(bob, theirs, f"#/tasks/{PLAN}-T02")
    assert bob.locator("[data-act]").count() == 0
    assert "held by ada" in bob.inner_text("main")
    forged = bob.evaluate(
        """async (plan) => {
          const me = await (await fetch('/auth/session')).json()
          const event = { key: 'forged-by-bob', kind: 'progress.note', repo: 'team', workplan: plan,
                          task: 'T02', note: 'forged', actor: 'bob' }
          const send = async (headers) => {
            const answer = await fetch('/events', { method: 'POST', body: JSON.stringify(event),
              headers: { 'content-type': 'application/json', ...headers } })
            return [answer.status, (await answer.json()).error]
          }
          return { bare: await send({}), csrf: await send({ 'x-statehub-csrf': me.csrf_token }) }
        }""",
        PLAN,
    )
    assert forged["bare"][0] == 403 and "CSRF" in forged["bare"][1], forged
    assert forged["csrf"][0] == 403 and "bob" in forged["csrf"][1], forged
    admin = {"Authorization": f"Bearer {mint(root, 'agt-admin', 'admin').to_base64()}"}
    assert httpx.get(f"{server.url}/events/forged-by-bob", headers=admin).status_code == 404
    assert "forged" not in repo.read(f"workplans/{PLAN}.md")

    # the rooms: ada opens the editor and leaves a draft; bob's dashboard shows it live, read only
    visit(bob, theirs, "#/")
    live(bob)
    assert "Nobody is editing a manifest" in bob.inner_text("[aria-label='open rooms and drafts']")
    ada.goto(f"{mine}/#/edit/team/statehub.toml")
    ada.wait_for_function(
        "() => window.statehubEditor && window.statehubEditor.provider.synced", timeout=15000
    )
    rooms = "[aria-label='open rooms and drafts']"
    bob.wait_for_function(
        f"() => document.querySelector(\"{rooms}\").innerText.includes('ada')", timeout=20000
    )
    ada.click(".cm-content")
    ada.keyboard.press("Control+End")
    ada.keyboard.type("# a draft\n")
    bob.wait_for_function(
        f"() => document.querySelector(\"{rooms}\").innerText.includes('unsaved draft')", timeout=20000
    )
    assert bob.evaluate("() => window.__sameDocument") is True
    for width in (1280, 390):
        ada.set_viewport_size({"width": width, "height": 900})
        assert ada.evaluate("() => document.documentElement.scrollWidth") <= width, ("editor", width)
        shot(ada, f"fleet-editor-{width}")
    ada.set_viewport_size({"width": 1280, "height": 900})
    assert bob.locator(f"{rooms} a[href^='#/edit/']").count() == 0  # read only: no way into the editor
    assert "(read only)" in bob.inner_text(rooms)
    shot(bob, "fleet-dashboard-rooms-read-only-1280")
    visit(ada, mine, "#/")  # ada leaves the room; her draft stays, and says so
    bob.wait_for_function(
        f'() => {{ const t = document.querySelector("{rooms}").innerText;'
        " return t.includes('nobody') && t.includes('unsaved draft') }",
        timeout=20000,
    )
    click_to(ada, f"{rooms} a[href='#/edit/team/statehub.toml']", "#/edit/team/statehub.toml")
    ada.wait_for_function(
        "() => window.statehubEditor"
        " && window.statehubEditor.view.state.doc.toString().includes('# a draft')",
        timeout=15000,
    )

    # sign out: both sessions end
    for page in (ada, bob):
        page.click("#sign-out")  # in the header of every page
        page.wait_for_selector("#sign-in-token")
        assert page.evaluate("async () => (await fetch('/tasks')).status") == 401
        page.close()
