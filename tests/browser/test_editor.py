"""The web editor in real headless Chromium (Debian's ``chromium``, driven by Playwright).

Two people edit the same manifest at once and converge; a save commits both
edits in one commit with a co-author trailer; an invalid edit shows its error
and writes nothing; a hub restart mid-edit duplicates and loses nothing.
"""

from __future__ import annotations

import json
import re
import subprocess
from typing import TYPE_CHECKING, Any

import pytest

from statehub.hub import Hub
from statehub.settings import Settings
from tests.browser.chromium import OUTPUT
from tests.gitfixtures import GitRepo, workplan_text
from tests.hubserver import HubServer
from tests.nodepackages import node_packages

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

MANIFEST = '[repo]\nslug = "demo"\ntitle = "Demo"\nprefixes = ["DEMO"]\n'
DOC = "demo/statehub.toml"
CANON = (
    '+++\nid = "ADR-001"\ntitle = "Files are the truth"\nkind = "adr"\nstatus = "accepted"\n'
    "date = 2026-05-02\n+++\nBody.\n"
)


@pytest.fixture(scope="module")
def hub_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, GitRepo]:
    base = tmp_path_factory.mktemp("browser")
    repo = GitRepo(base / "repos" / "demo")
    repo.write("statehub.toml", MANIFEST)
    tasks: list[dict[str, object]] = [
        {"id": "T01", "title": "Draft the plan", "status": "done", "owner": "ada"},
        {"id": "T02", "title": "Move the tunnels", "status": "todo", "owner": "bob", "depends_on": ["T01"]},
        {"id": "T03", "title": "Drain the old host", "status": "todo", "owner": "bob", "depends_on": ["T02"]},
    ]
    repo.write("workplans/DEMO-WP-0001.md", workplan_text("DEMO-WP-0001", tasks, title="Fleet roles"))
    repo.write("workplans/broken.md", "no front matter here\n")
    repo.write("canon/ADR-001.md", CANON)
    repo.commit("start")
    home = base / "hub-home"
    with Hub(Settings.from_env({"STATEHUB_HOME": str(home)})) as hub:
        hub.register(repo.root)
    return home, repo


@pytest.fixture(scope="module")
def server(hub_home: tuple[Path, GitRepo]) -> Iterator[HubServer]:
    with HubServer(hub_home[0]) as running:
        yield running


@pytest.fixture
def repo(hub_home: tuple[Path, GitRepo], server: HubServer) -> Iterator[GitRepo]:
    """The demo repo, back at its first manifest after each test (through a save, so the room agrees)."""
    yield hub_home[1]
    hub_home[1].write("statehub.toml", MANIFEST)
    hub_home[1].commit("reset between browser tests")


def open_editor(browser: Any, server: HubServer, user: str) -> Any:
    page = browser.new_page()
    page.set_viewport_size({"width": 1100, "height": 620})
    page.goto(f"{server.url}/#/edit/{DOC}?user={user}")
    page.wait_for_function(
        "() => window.statehubEditor && window.statehubEditor.provider.synced", timeout=10000
    )
    return page


def text_of(page: Any) -> str:
    return str(page.evaluate("() => window.statehubEditor.view.state.doc.toString()"))


def type_at(page: Any, where: str, text: str) -> None:
    page.click(".cm-content")
    page.keyboard.press("Control+Home" if where == "start" else "Control+End")
    page.keyboard.type(text)


def wait_text(page: Any, predicate_js: str, timeout: int = 10000) -> None:
    page.wait_for_function(
        f"() => {{ const text = window.statehubEditor.view.state.doc.toString(); return {predicate_js}; }}",
        timeout=timeout,
    )


def test_an_open_hub_needs_no_sign_in(browser: Any, server: HubServer) -> None:
    page = browser.new_page()
    page.goto(f"{server.url}/#/")
    page.wait_for_function("() => document.body.dataset.ready !== undefined")
    # an open dev hub: no sign-in; the header asks the name events are sent as (ADR-040, ADR-041)
    assert page.locator("#sign-in-token").count() == 0 and page.locator("#who input[name=who]").count() == 1
    assert page.evaluate("async () => (await fetch('/auth/session')).json()") == {
        "tokens": False,
        "actor": None,
        "right": None,
        "rights": [],
        "repos": None,
        "expires": None,
        "session_expires": None,
        "csrf_token": None,
    }
    sign_in = (
        "async () => (await fetch('/auth/session', {method: 'POST', body: '{\"token\": \"x\"}',"
        " headers: {'content-type': 'application/json'}})).status"
    )
    assert page.evaluate(sign_in) == 400  # nothing to sign in to
    assert "demo" in page.inner_text("main")
    page.close()


def test_two_people_converge_and_one_save_commits_both(
    browser: Any, server: HubServer, repo: GitRepo
) -> None:
    ada = open_editor(browser, server, "Ada")
    bob = open_editor(browser, server, "Bob")
    type_at(ada, "end", 'default_branch = "main"\n')
    type_at(bob, "start", "# two people were here\n")
    for page in (ada, bob):
        wait_text(page, "text.includes('default_branch') && text.startsWith('# two people were here')")
    assert text_of(ada) == text_of(bob) == "# two people were here\n" + MANIFEST + 'default_branch = "main"\n'
    ada.wait_for_selector('.person[data-name="Bob"]')
    bob.wait_for_selector('.person[data-name="Ada"]')
    ada.wait_for_selector(".cm-ySelectionInfo")
    OUTPUT.mkdir(exist_ok=True)
    ada.screenshot(path=str(OUTPUT / "editor-two-people.png"))

    head = repo.git("rev-parse", "HEAD").strip()
    bob.click("#save")
    for page in (ada, bob):
        page.wait_for_selector("#status.ok", timeout=10000)
    assert "saved statehub.toml as commit" in ada.inner_text("#status")
    assert repo.read("statehub.toml") == text_of(ada)
    assert repo.git("rev-list", "--count", f"{head}..HEAD").strip() == "1"
    log = repo.git("log", "-1", "--format=%an%n%B")
    assert log.startswith("Bob\n")
    assert "Co-authored-by: Ada <ada@users.statehub.invalid>" in log
    # y-websocket sends back the other's presence it applied: that is no attempt to change it.
    assert [page.inner_text("#notice") for page in (ada, bob)] == ["", ""]
    ada.close()
    bob.close()


def test_an_invalid_edit_shows_its_error_and_writes_nothing(
    browser: Any, server: HubServer, repo: GitRepo
) -> None:
    before, head = repo.read("statehub.toml"), repo.git("rev-parse", "HEAD")
    ada = open_editor(browser, server, "Ada")
    bob = open_editor(browser, server, "Bob")
    type_at(ada, "end", "owner = = 1\n")
    wait_text(bob, "text.includes('owner = = 1')")
    ada.click("#save")
    for page in (ada, bob):
        page.wait_for_selector("#status.bad", timeout=10000)
        assert re.search(r"line \d+, column \d+: invalid TOML", page.inner_text("#errors"))
    ada.wait_for_selector(".cm-lint-marker-error")
    ada.screenshot(path=str(OUTPUT / "editor-invalid.png"))
    assert repo.read("statehub.toml") == before
    assert repo.git("rev-parse", "HEAD") == head
    # Fix it so the room is clean for the next test.
    ada.evaluate(
        "() => { const t = window.statehubEditor.ydoc.getText('manifest'); const s = t.toString();"
        " t.delete(s.indexOf('owner = = 1\\n'), 'owner = = 1\\n'.length) }"
    )
    wait_text(bob, "!text.includes('owner = = 1')")
    ada.close()
    bob.close()


def test_a_restart_mid_edit_loses_and_duplicates_nothing(
    browser: Any, server: HubServer, repo: GitRepo
) -> None:
    ada = open_editor(browser, server, "Ada")
    bob = open_editor(browser, server, "Bob")
    type_at(ada, "start", "# before the restart\n")
    wait_text(bob, "text.startsWith('# before the restart')")
    server.restart()
    for page in (ada, bob):
        page.wait_for_function("() => window.statehubEditor.provider.wsconnected", timeout=15000)
    type_at(bob, "end", "# after the restart\n")
    want = "# before the restart\n" + repo.read("statehub.toml") + "# after the restart\n"
    for page in (ada, bob):
        wait_text(page, "text.includes('# after the restart')")
    assert text_of(ada) == text_of(bob) == want
    assert text_of(ada).count("[repo]") == 1
    bob.click("#save")
    bob.wait_for_selector("#status.ok", timeout=10000)
    assert repo.read("statehub.toml") == want
    # Ada edited before the restart: she is still credited.
    assert "Co-authored-by: Ada <ada@users.statehub.invalid>" in repo.git("log", "-1", "--format=%B")
    ada.close()
    bob.close()


def test_a_stock_node_yjs_client_and_a_browser_converge(
    browser: Any, server: HubServer, repo: GitRepo
) -> None:
    node_dir = node_packages()
    page = open_editor(browser, server, "Ada")
    type_at(page, "end", "# from the browser\n")
    run = subprocess.run(
        ["node", str(node_dir / "interop.mjs"), f"{server.ws_url}/sync", DOC],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    node_text = json.loads(run.stdout.strip().splitlines()[-1])["text"]
    assert "# from the browser\n" in node_text
    wait_text(page, "text.includes('# from node-a') && text.includes('# from node-b')")
    assert text_of(page) == node_text
    assert node_text.count("[repo]") == 1
    page.click("#save")
    page.wait_for_selector("#status.ok", timeout=10000)
    assert repo.read("statehub.toml") == node_text
    log = repo.git("log", "-1", "--format=%an%n%B")
    assert log.startswith("Ada\n")
    assert "Co-authored-by: node-a <node-a@users.statehub.invalid>" in log
    assert "Co-authored-by: node-b <node-b@users.statehub.invalid>" in log
    page.close()


def test_a_page_from_an_earlier_lineage_reloads_the_text_instead_of_merging(
    browser: Any, server: HubServer, repo: GitRepo
) -> None:
    page = open_editor(browser, server, "Ada")
    type_at(page, "end", "# saved before the restart\n")
    page.click("#save")
    page.wait_for_selector("#status.ok", timeout=10000)
    saved = repo.read("statehub.toml")
    server.stop()  # the room closes clean and forgets its lineage
    repo.write("statehub.toml", saved + "# pulled while the hub was down\n")
    repo.commit("a pull")
    server.start()
    page.wait_for_selector(".notice", timeout=15000)
    assert "changed since you last synced" in page.inner_text("#notice")
    page.wait_for_function(
        "() => window.statehubEditor && window.statehubEditor.provider.synced", timeout=10000
    )
    wait_text(page, "text.includes('# pulled while the hub was down')")
    assert text_of(page) == saved + "# pulled while the hub was down\n"
    page.close()


def test_another_persons_colour_cannot_restyle_the_page(
    browser: Any, server: HubServer, repo: GitRepo
) -> None:
    """Review: a room member's awareness colour went into the presence chip's style attribute as
    sent, so ``red;position:fixed;inset:0`` made their chip cover everyone else's page."""
    ada = open_editor(browser, server, "ada")
    mallory = open_editor(browser, server, "mallory")
    mallory.evaluate(  # a new name too, so that ada's page shows when the change has arrived
        """() => window.statehubEditor.provider.awareness.setLocalStateField('user',
             { name: 'mallory2', color: 'red;position:fixed;inset:0;z-index:99' })"""
    )
    chip = '.person[data-name="mallory2"]'
    ada.wait_for_selector(chip)
    assert "red" not in (ada.get_attribute(chip, "style") or "")
    assert ada.evaluate(f"() => getComputedStyle(document.querySelector('{chip}')).position") != "fixed"
    mallory.close()
    ada.close()


def test_a_file_the_editor_does_not_open_says_why_instead_of_connecting_for_ever(
    browser: Any, server: HubServer
) -> None:
    """Review: ``#/edit/demo/workplans/...`` or a repo that is not registered showed an empty editor
    "connecting" for ever, retrying a socket the hub refused before it opened (a browser cannot read
    that refusal's reason)."""
    page = browser.new_page()
    sockets: list[str] = []
    page.on("websocket", lambda socket: sockets.append(socket.url))
    for doc in ("demo/workplans/DEMO-WP-0001.md", "nosuch/statehub.toml", "demo/../../etc/passwd"):
        page.goto(f"{server.url}/#/edit/{doc}?user=ada")
        page.wait_for_selector("#edit-refused")
        assert "not a file the editor opens" in page.inner_text("#edit-refused")
        assert page.is_disabled("#save")
        assert page.inner_text("#connection") == "not connected"
    tried = len(sockets)
    page.wait_for_timeout(1500)  # y-websocket retries within a second or two while it is connecting
    assert len(sockets) == tried
    page.close()


def test_the_editor_is_dark_with_the_dark_theme(browser: Any, server: HubServer) -> None:
    """Review: with the system's dark theme the page was dark but CodeMirror's gutter and active
    line stayed white."""
    page = browser.new_page()
    page.emulate_media(color_scheme="dark")
    page.goto(f"{server.url}/#/edit/{DOC}?user=ada")
    page.wait_for_function(
        "() => window.statehubEditor && window.statehubEditor.provider.synced", timeout=10000
    )
    gutter = page.evaluate("() => getComputedStyle(document.querySelector('.cm-gutters')).backgroundColor")
    page.screenshot(path=str(OUTPUT / "editor-dark.png"))
    page.close()
    red, green, blue = (int(part) for part in re.findall(r"\d+", gutter)[:3])
    assert max(red, green, blue) < 80, gutter
