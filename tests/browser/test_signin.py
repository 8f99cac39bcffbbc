"""Signing in on a fleet hub in real headless Chromium (ADR-040).

The page loads without a token and shows the sign-in form; a wrong token is
refused with the hub's reason and sets no cookie; a valid one signs in: the
cookie is HttpOnly and SameSite=Strict (the page's script cannot read it), the
header names the actor and what the token may do, the dashboard reads with
the session, and the editor's saves are authored by the token's actor. A page
on another site cannot use the session; sign-out and revoking the token end it.
"""

from __future__ import annotations

import http.server
import json
import threading
import uuid
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from statehub.auth.keys import init_root_key, load_root_key
from statehub.auth.revocation import add_revocation
from statehub.auth.tokens import mint, read_token
from tests.browser.chromium import OUTPUT
from tests.gitfixtures import GitRepo, workplan_text
from tests.hubserver import HubServer, free_port

if TYPE_CHECKING:
    from collections.abc import Iterator

    from biscuit_auth import KeyPair

MANIFEST = '[repo]\nslug = "demo"\ntitle = "Demo"\nprefixes = ["DEMO"]\n'


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[HubServer, KeyPair, GitRepo]]:
    base = tmp_path_factory.mktemp("signin")
    repo = GitRepo(base / "repos" / "demo")
    repo.write("statehub.toml", MANIFEST)
    repo.write(
        "workplans/DEMO-WP-0001.md",
        workplan_text("DEMO-WP-0001", [{"id": "T01", "title": "Sign in", "status": "todo"}]),
    )
    repo.commit("start")
    home = base / "home"
    init_root_key(home / "data" / "token-root.key")
    root = load_root_key(home / "data" / "token-root.key")
    admin = mint(root, "agt-admin", "admin").to_base64()
    with HubServer(home, env={"STATEHUB_PROFILE": "fleet"}) as server:
        answer = httpx.post(
            f"{server.url}/repos", json={"path": str(repo.root)}, headers={"Authorization": f"Bearer {admin}"}
        )
        assert answer.status_code == 201, answer.text
        yield server, root, repo


def sign_in(page: Any, token: str) -> None:
    page.wait_for_selector("#sign-in-token")
    page.fill("#sign-in-token", token)
    page.click("#sign-in-button")


def test_sign_in_shows_who_you_are_and_the_editor_saves_as_the_actor(
    browser: Any, fleet: tuple[HubServer, KeyPair, GitRepo]
) -> None:
    server, root, repo = fleet
    page = browser.new_page()
    page.set_viewport_size({"width": 1100, "height": 700})
    page.goto(f"{server.url}/#/")
    sign_in(page, mint(root, "ada", "edit", ["other"]).to_base64() + "x")  # altered: does not verify
    page.wait_for_function("() => document.querySelector('#sign-in-error').textContent.length > 0")
    assert "token" in page.inner_text("#sign-in-error")
    assert browser.cookies(server.url) == []
    OUTPUT.mkdir(exist_ok=True)
    page.screenshot(path=str(OUTPUT / "sign-in-refused.png"))

    token = mint(root, "ada", "edit", ["demo"]).to_base64()
    sign_in(page, token)
    page.wait_for_selector("#who-actor")
    assert page.inner_text("#who-actor") == "ada"
    assert "read, write, edit" in page.inner_text("#who-rights") and "demo" in page.inner_text("#who-rights")
    page.wait_for_selector("#task-table table")
    assert "DEMO-WP-0001-T01" in page.inner_text("#task-table")
    [cookie] = browser.cookies(server.url)
    assert cookie["name"] == "statehub_session" and cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    assert cookie["secure"] is False  # plain http on loopback
    assert page.evaluate("() => document.cookie") == ""  # the page's script cannot read the session
    assert token not in page.content()  # the page keeps no token
    page.screenshot(path=str(OUTPUT / "signed-in.png"), full_page=True)

    page.goto(f"{server.url}/#/edit/demo/statehub.toml")
    page.wait_for_function(
        "() => window.statehubEditor && window.statehubEditor.provider.synced", timeout=15000
    )
    page.wait_for_selector('.person[data-name="ada"]')
    page.click(".cm-content")
    page.keyboard.press("Control+End")
    page.keyboard.type("# signed in\n")
    page.wait_for_function(
        "() => window.statehubEditor.view.state.doc.toString().includes('# signed in')", timeout=10000
    )
    page.click("#save")
    page.wait_for_selector("#status.ok", timeout=15000)
    assert repo.git("log", "-1", "--format=%an").strip() == "ada"
    assert "# signed in" in repo.read("statehub.toml")
    page.screenshot(path=str(OUTPUT / "editor-signed-in.png"))

    page.goto(f"{server.url}/#/")
    page.wait_for_selector("#sign-out")
    page.click("#sign-out")
    page.wait_for_selector("#sign-in-token")
    assert page.evaluate("async () => (await fetch('/tasks')).status") == 401
    assert browser.cookies(server.url) == []
    page.close()


class _Hostile(http.server.BaseHTTPRequestHandler):
    """A page on another site (localhost is not 127.0.0.1's site) that tries to use the hub session."""

    hub = ""
    key = ""

    def do_GET(self) -> None:
        event = json.dumps(
            {
                "key": self.key,
                "kind": "progress.note",
                "workplan": "DEMO-WP-0001",
                "task": "T01",
                "note": "hostile",
                "actor": "bea",
                "at": "2026-07-03T22:29:55Z",
            }
        )
        body = f"""<!doctype html><html><body><script>
          window.results = {{}};
          const hub = {self.hub!r};
          (async () => {{
            for (const [name, init] of [
              ['read', {{ credentials: 'include' }}],
              ['json', {{ method: 'POST', credentials: 'include',
                          headers: {{ 'content-type': 'application/json' }}, body: {event!r} }}],
              ['plain', {{ method: 'POST', mode: 'no-cors', credentials: 'include',
                           headers: {{ 'content-type': 'text/plain' }}, body: {event!r} }}],
              ['signout', {{ method: 'DELETE', mode: 'no-cors', credentials: 'include' }}],
            ]) {{
              const path = name === 'read' || name === 'signout' ? '/auth/session' : '/events'
              try {{ const a = await fetch(hub + path, init);
                     window.results[name] = a.type === 'opaque' ? 'opaque' : a.status }}
              catch (e) {{ window.results[name] = 'blocked' }}
            }}
            window.done = true
          }})()
        </script></body></html>""".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_args: Any) -> None:
        return


def test_a_page_on_another_site_cannot_use_the_session_and_revocation_ends_it(
    browser: Any, fleet: tuple[HubServer, KeyPair, GitRepo]
) -> None:
    server, root, _repo = fleet
    token = mint(root, "bea", "write").to_base64()
    page = browser.new_page()
    page.goto(f"{server.url}/#/")
    sign_in(page, token)
    page.wait_for_selector("#who-actor")

    key = f"hostile-{uuid.uuid4().hex}"
    handler = type("Hostile", (_Hostile,), {"hub": server.url, "key": key})
    hostile = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=hostile.serve_forever, daemon=True)
    thread.start()
    try:
        evil = browser.new_page()
        evil.goto(f"http://localhost:{hostile.server_address[1]}/")
        evil.wait_for_function("() => window.done === true", timeout=15000)
        results = evil.evaluate("() => window.results")
        evil.close()
    finally:
        hostile.shutdown()
        hostile.server_close()
    assert results["read"] == "blocked"  # no CORS: the page cannot read who you are
    assert results["json"] == "blocked"  # a JSON POST needs a preflight the hub never grants
    admin = mint(root, "agt-admin", "admin").to_base64()
    bearer = {"Authorization": f"Bearer {admin}"}
    assert httpx.get(f"{server.url}/events/{key}", headers=bearer).status_code == 404  # nothing written
    page.reload()
    page.wait_for_selector("#who-actor")  # still signed in: the hostile sign-out did nothing

    ids = list(read_token(token, root.public_key).revocation_ids)
    add_revocation(server.home / "config" / "revoked-tokens.txt", ids[0], "browser test")
    page.reload()
    page.wait_for_selector("#sign-in-token")  # the session ended with its token
    assert page.evaluate("async () => (await fetch('/tasks')).status") == 401
    page.close()
