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
from contextlib import contextmanager
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
    from pathlib import Path

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
    with fleet_hub(base / "home", repo) as (server, root):
        yield server, root, repo


@contextmanager
def fleet_hub(home: Path, repo: GitRepo) -> Iterator[tuple[HubServer, KeyPair]]:
    """A fleet hub with tokens on ``home`` serving ``repo`` (registered with an admin token):
    the server and the root key to mint its tokens."""
    init_root_key(home / "data" / "token-root.key")
    root = load_root_key(home / "data" / "token-root.key")
    admin = mint(root, "agt-admin", "admin").to_base64()
    with HubServer(home, env={"STATEHUB_PROFILE": "fleet"}) as server:
        answer = httpx.post(
            f"{server.url}/repos", json={"path": str(repo.root)}, headers={"Authorization": f"Bearer {admin}"}
        )
        assert answer.status_code == 201, answer.text
        yield server, root


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
    # a repo scope limits changes, not reading (ADR-016): the header says which is which
    assert "read: all repos · write, edit: demo" in page.inner_text("#who-rights")
    page.goto(f"{server.url}/#/tasks")
    page.wait_for_selector("tr[data-href='#/tasks/DEMO-WP-0001-T01']")  # the API answers the session
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


class _SameSite(http.server.BaseHTTPRequestHandler):
    """A hostile page on the hub's own site (127.0.0.1, another port): SameSite=Strict does not keep
    the cookie from its requests, so the Origin check and the CSRF token are all that stand."""

    hub = ""
    ws = ""
    attacker = ""
    key = ""

    def do_GET(self) -> None:
        mcp = json.dumps(
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/call",
                "params": {
                    "name": "add_progress_note",
                    "arguments": {"ref": "DEMO-WP-0001-T01", "note": "hostile", "key": self.key},
                },
            }
        )
        sign_in = json.dumps({"token": self.attacker})
        body = f"""<!doctype html><html><body>
        <form id="login" method="POST" action="{self.hub}/auth/session" enctype="text/plain">
          <input name='{sign_in[:-2]}' value='{sign_in[-2:]}'></form>
        <script>
          window.results = {{}};
          const hub = {self.hub!r};
          (async () => {{
            for (const [name, path, init] of [
              ['mcp-json', '/mcp', {{ method: 'POST', credentials: 'include',
                 headers: {{ 'content-type': 'application/json', accept: 'application/json' }},
                 body: {mcp!r} }}],
              ['mcp-plain', '/mcp', {{ method: 'POST', mode: 'no-cors', credentials: 'include',
                 headers: {{ 'content-type': 'text/plain' }}, body: {mcp!r} }}],
              ['login-json', '/auth/session', {{ method: 'POST', credentials: 'include',
                 headers: {{ 'content-type': 'application/json' }}, body: {sign_in!r} }}],
            ]) {{
              try {{ const a = await fetch(hub + path, init);
                     window.results[name] = a.type === 'opaque' ? 'opaque' : a.status }}
              catch (e) {{ window.results[name] = 'blocked' }}
            }}
            window.results.ws = await new Promise((done) => {{
              const socket = new WebSocket({self.ws!r} + '/sync/demo/statehub.toml')
              socket.onclose = (e) => done(e.code)
              socket.onmessage = () => done('open')
            }})
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


def test_a_same_site_page_cannot_use_the_session_nor_sign_the_visitor_in_as_the_attacker(
    browser: Any, fleet: tuple[HubServer, KeyPair, GitRepo]
) -> None:
    """Review: the hostile page above is cross-site, so SameSite alone stopped it. On 127.0.0.1 at
    another port the cookie is sent; MCP, the editor's socket and a login-CSRF form must still fail."""
    server, root, _repo = fleet
    page = browser.new_page()
    page.goto(f"{server.url}/#/")
    sign_in(page, mint(root, "cy", "edit").to_base64())
    page.wait_for_selector("#who-actor")
    [mine] = [c for c in browser.cookies(server.url) if c["name"] == "statehub_session"]

    key = f"samesite-{uuid.uuid4().hex}"
    attacker = mint(root, "mallory", "read").to_base64()
    handler = type(
        "SameSite", (_SameSite,), {"hub": server.url, "ws": server.ws_url, "attacker": attacker, "key": key}
    )
    hostile = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=hostile.serve_forever, daemon=True)
    thread.start()
    try:
        evil = browser.new_page()
        evil.goto(f"http://127.0.0.1:{hostile.server_address[1]}/")
        evil.wait_for_function("() => window.done === true", timeout=15000)
        results = evil.evaluate("() => window.results")
        with evil.expect_navigation():
            evil.evaluate("() => document.getElementById('login').submit()")
        refused = evil.inner_text("body")
        evil.close()
    finally:
        hostile.shutdown()
        hostile.server_close()
    assert results == {"mcp-json": "blocked", "mcp-plain": "opaque", "login-json": "blocked", "ws": 4403}
    assert "cross-site request refused" in refused  # the login form's POST: its Origin is not the hub's
    admin = {"Authorization": f"Bearer {mint(root, 'agt-admin', 'admin').to_base64()}"}
    assert httpx.get(f"{server.url}/events/{key}", headers=admin).status_code == 404  # MCP wrote nothing
    own_call = """async (key) => {
      const me = await (await fetch('/auth/session')).json()
      const answer = await fetch('/mcp', { method: 'POST', headers: { 'content-type': 'application/json',
        accept: 'application/json, text/event-stream', 'x-statehub-csrf': me.csrf_token },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/call',
          params: { name: 'add_progress_note',
                    arguments: { ref: 'DEMO-WP-0001-T01', note: 'from the hub page', key } } }) })
      return answer.status }"""
    assert page.evaluate(own_call, key) == 200  # the same call from the hub's own page is allowed
    assert httpx.get(f"{server.url}/events/{key}", headers=admin).status_code == 200
    [still] = [c for c in browser.cookies(server.url) if c["name"] == "statehub_session"]
    assert still["value"] == mine["value"]  # still signed in as cy, not as mallory
    page.reload()
    page.wait_for_selector("#who-actor")
    assert page.inner_text("#who-actor") == "cy"
    page.close()


def test_a_token_that_may_not_act_sees_no_action_buttons_and_its_forged_request_is_refused(
    browser: Any, fleet: tuple[HubServer, KeyPair, GitRepo]
) -> None:
    """Review: a read token (and a write token scoped to another repo) was shown every action form
    and the editor, which the hub then refused or left "connecting" for ever. Now the page offers
    only what the token allows and says why; a request forged with the session is still refused."""
    server, root, _repo = fleet
    page = browser.new_page()
    page.set_viewport_size({"width": 1100, "height": 700})
    page.goto(f"{server.url}/#/")
    page.wait_for_selector("#sign-in-token, #sign-out")
    if page.locator("#sign-out").count():  # the module's browser is still signed in by a test before
        page.click("#sign-out")
    for actor, token in [
        ("rita", mint(root, "rita", "read")),
        ("olga", mint(root, "olga", "edit", ["other"])),  # may write and edit, but not on demo
    ]:
        sign_in(page, token.to_base64())
        page.wait_for_selector("#who-actor")
        assert page.inner_text("#who-actor") == actor
        for address in ("#/tasks/DEMO-WP-0001-T01", "#/workplans/DEMO-WP-0001"):
            page.goto(f"{server.url}/{address}")
            page.wait_for_selector("#act #read-only")
            assert "does not allow write on demo" in page.inner_text("#read-only")
            assert page.locator("#act form, #act button").count() == 0
        page.screenshot(path=str(OUTPUT / f"read-only-{actor}.png"), full_page=True)
        page.goto(f"{server.url}/#/edit/demo/statehub.toml")
        page.wait_for_selector("#edit-refused")
        assert "does not allow edit on demo" in page.inner_text("#edit-refused")
        assert page.locator("#save, .cm-content").count() == 0
        forged = """async () => {
          const me = await (await fetch('/auth/session')).json()
          const answer = await fetch('/events', { method: 'POST',
            headers: { 'content-type': 'application/json', 'x-statehub-csrf': me.csrf_token },
            body: JSON.stringify({ key: 'forged-' + me.actor, actor: me.actor, kind: 'task.status',
              repo: 'demo', workplan: 'DEMO-WP-0001', task: 'T01', status: 'blocked' }) })
          return answer.status }"""
        assert page.evaluate(forged) == 403
        page.click("#sign-out")
        page.wait_for_selector("#sign-in-token")
    admin = {"Authorization": f"Bearer {mint(root, 'agt-admin', 'admin').to_base64()}"}
    for actor in ("rita", "olga"):
        assert httpx.get(f"{server.url}/events/forged-{actor}", headers=admin).status_code == 404

    sign_in(page, mint(root, "ada", "write", ["demo"]).to_base64())  # the same pages offer a writer the forms
    page.wait_for_selector("#who-actor")
    page.goto(f"{server.url}/#/tasks/DEMO-WP-0001-T01")
    page.wait_for_selector("#act form[data-act=status]")
    assert page.locator("#read-only").count() == 0
    page.click("#sign-out")
    page.wait_for_selector("#sign-in-token")
    page.close()
