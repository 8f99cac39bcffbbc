"""Browser sessions over real HTTP against a real fleet hub process (ADR-040).

A token is exchanged for a cookie with exactly the attributes the ADR names;
the cookie reads; it does what its token allows and nothing more (read-only,
repo scope); wrong, expired, revoked and garbage tokens get 401/400 and no
cookie; revoking the token ends its sessions at once; a cookie-authenticated
write without the CSRF token, with a wrong one, or from a hostile origin is
refused and writes nothing; sign-out ends the session; a restart keeps it; a
socket authenticates from the cookie only with an Origin; Secure follows TLS
as a trusted proxy reports it, and only then.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import websockets
from biscuit_auth import KeyPair
from pycrdt import Doc, create_sync_message

from statehub.auth.keys import init_root_key, load_root_key
from statehub.auth.revocation import add_revocation
from statehub.auth.sessions import MAX_SESSIONS_PER_TOKEN, SESSION_LIFETIME
from statehub.auth.tokens import attenuate, mint
from tests.gitfixtures import GitRepo, workplan_text
from tests.hubserver import HubServer

if TYPE_CHECKING:
    from collections.abc import Iterator

COOKIE = re.compile(
    r"^(?P<name>(?:__Host-)?statehub_session)=(?P<id>[A-Za-z0-9_-]{43}); Path=/; Max-Age=(?P<age>\d+); "
    r"HttpOnly(?P<secure>; Secure)?; SameSite=Strict$"
)
REPOS = ("alpha", "beta")


@dataclass
class Fleet:
    server: HubServer
    root: KeyPair

    def token(self, actor: str, right: str, repos: tuple[str, ...] = (), **kw: Any) -> str:
        return mint(self.root, actor, right, list(repos), **kw).to_base64()

    def url(self, path: str) -> str:
        return self.server.url + path

    def sign_in(self, token: str) -> tuple[str, dict[str, Any], httpx.Response]:
        answer = httpx.post(self.url("/auth/session"), json={"token": token}, timeout=30)
        assert answer.status_code == 201, answer.text
        match = COOKIE.match(answer.headers["set-cookie"])
        assert match, answer.headers["set-cookie"]
        return match.group("id"), answer.json(), answer

    def revoke(self, token: str) -> None:
        ids = list(mint_ids(token, self.root))
        add_revocation(self.server.home / "config" / "revoked-tokens.txt", ids[0], "test")


def mint_ids(token: str, root: KeyPair) -> list[str]:
    from statehub.auth.tokens import read_token

    return list(read_token(token, root.public_key).revocation_ids)


def cookie(session_id: str) -> dict[str, str]:
    return {"Cookie": f"statehub_session={session_id}"}


def note(key: str, repo: str, actor: str) -> dict[str, Any]:
    return {
        "key": key,
        "kind": "progress.note",
        "workplan": f"{repo.upper()}-WP-0001",
        "task": "T01",
        "note": "from the browser",
        "actor": actor,
        "at": "2026-07-03T22:29:55Z",
    }


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    base = tmp_path_factory.mktemp("sessions")
    home = base / "home"
    init_root_key(home / "data" / "token-root.key")
    root = load_root_key(home / "data" / "token-root.key")
    admin = mint(root, "agt-admin", "admin").to_base64()
    with HubServer(home, env={"STATEHUB_PROFILE": "fleet"}) as server:
        for slug in REPOS:
            repo = GitRepo(base / slug)
            repo.write("statehub.toml", f'[repo]\nslug = "{slug}"\nprefixes = ["{slug.upper()}"]\n')
            repo.write(
                f"workplans/{slug.upper()}-WP-0001.md",
                workplan_text(f"{slug.upper()}-WP-0001", [{"id": "T01", "title": "one"}]),
            )
            repo.commit()
            answer = httpx.post(
                f"{server.url}/repos",
                json={"path": str(repo.root)},
                headers={"Authorization": f"Bearer {admin}"},
                timeout=60,
            )
            assert answer.status_code == 201, answer.text
        yield Fleet(server, root)


def stored(fleet: Fleet, key: str) -> int:
    admin = fleet.token("agt-admin", "admin")
    return httpx.get(fleet.url(f"/events/{key}"), headers={"Authorization": f"Bearer {admin}"}).status_code


def test_sign_in_sets_the_cookie_as_required_and_reads_work_with_it(fleet: Fleet) -> None:
    token = fleet.token("ada", "write", ttl=dt.timedelta(hours=1))
    assert httpx.get(fleet.url("/")).status_code == 200  # the page loads without a token: it signs in
    assert httpx.get(fleet.url("/tasks")).status_code == 401
    session_id, me, answer = fleet.sign_in(token)
    assert answer.headers["cache-control"] == "no-store"
    age = int(COOKIE.match(answer.headers["set-cookie"]).group("age"))  # type: ignore[union-attr]
    assert 3500 < age <= 3600  # it expires with the token, not after the 12 h cap
    assert COOKIE.match(answer.headers["set-cookie"]).group("secure") is None  # type: ignore[union-attr]
    assert me["actor"] == "ada" and me["right"] == "write" and me["rights"] == ["read", "write"]
    assert me["repos"] is None and me["tokens"] is True
    assert me["expires"] == me["session_expires"] and me["expires"] is not None
    assert len(me["csrf_token"]) == 43 and me["csrf_token"] != session_id
    tasks = httpx.get(fleet.url("/tasks"), headers=cookie(session_id))
    assert tasks.status_code == 200 and len(tasks.json()["items"]) == 2
    assert httpx.get(fleet.url("/auth/session"), headers=cookie(session_id)).json() == me
    # a token without an expiry: the session lasts the cap
    _, forever, answer = fleet.sign_in(fleet.token("ada", "read"))
    age = int(COOKIE.match(answer.headers["set-cookie"]).group("age"))  # type: ignore[union-attr]
    assert SESSION_LIFETIME.total_seconds() - 60 < age <= SESSION_LIFETIME.total_seconds()
    assert forever["expires"] is None


def test_wrong_expired_revoked_and_garbage_tokens_get_a_clear_refusal_and_no_cookie(fleet: Fleet) -> None:
    revoked = fleet.token("ada", "write")
    fleet.revoke(revoked)
    past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=2)
    cases: list[tuple[Any, int, str]] = [
        ({"token": mint(KeyPair(), "ada", "admin").to_base64()}, 401, "does not verify"),  # another hub's
        ({"token": fleet.token("ada", "read", ttl=dt.timedelta(hours=1), now=past)}, 401, "expired"),
        ({"token": revoked}, 401, "revoked"),
        ({"token": "not a token at all"}, 401, "not a Biscuit token"),
        ({"token": "\u00e9" * 500}, 401, "not a Biscuit token"),
        ({"token": "A" * 20_000}, 400, "over the 16,384"),
        ({"token": "A" * 2_000_000}, 400, "over the 16,384"),
        ({"token": "   "}, 400, "give the token"),
        ({"token": 42}, 400, ""),
        ({"tokens": "x"}, 400, ""),
        ({"token": "x", "extra": 1}, 400, ""),
        ([1, 2], 400, ""),
    ]
    for body, status, words in cases:
        answer = httpx.post(fleet.url("/auth/session"), json=body, timeout=30)
        assert answer.status_code == status, (str(body)[:80], answer.text[:300])
        assert words in answer.json()["error"], answer.text[:300]
        assert "set-cookie" not in answer.headers
    for raw, status in [(b"{not json", 400), (b"token=abc", 415)]:
        kind = "text/plain" if status == 415 else "application/json"
        answer = httpx.post(fleet.url("/auth/session"), content=raw, headers={"Content-Type": kind})
        assert answer.status_code == status and "set-cookie" not in answer.headers
    expired = fleet.token("ada", "read", ttl=dt.timedelta(hours=1), now=past)
    answer = httpx.get(fleet.url("/auth/session"), headers={"Authorization": f"Bearer {expired}"})
    assert answer.status_code == 401 and "expired" in answer.json()["error"]
    # a cookie naming no session, or not even shaped like one
    for value in ("A" * 43, "garbage", "x" * 5000):
        assert httpx.get(fleet.url("/tasks"), headers=cookie(value)).status_code == 401


def test_revoking_the_token_ends_its_sessions_at_once(fleet: Fleet) -> None:
    token = fleet.token("bob", "write")
    first, _, _ = fleet.sign_in(token)
    second, _, _ = fleet.sign_in(attenuate(token, fleet.root.public_key, right="read").to_base64())
    assert httpx.get(fleet.url("/tasks"), headers=cookie(first)).status_code == 200
    assert httpx.get(fleet.url("/tasks"), headers=cookie(second)).status_code == 200
    fleet.revoke(token)
    for session_id in (first, second):  # the narrowed token's session too: its parent is revoked
        answer = httpx.get(fleet.url("/tasks"), headers=cookie(session_id))
        assert answer.status_code == 401 and "revoked" in answer.json()["error"]
        again = httpx.get(fleet.url("/auth/session"), headers=cookie(session_id))
        assert again.status_code == 401 and "session has ended" in again.json()["error"]  # forgotten


def test_a_cookie_write_needs_the_csrf_token_and_a_wrong_one_writes_nothing(fleet: Fleet) -> None:
    session_id, me, _ = fleet.sign_in(fleet.token("cleo", "write"))
    for headers in ({}, {"X-StateHub-CSRF": "A" * 43}, {"X-StateHub-CSRF": me["csrf_token"][:-1]}):
        key = f"csrf-{uuid.uuid4().hex}"
        answer = httpx.post(
            fleet.url("/events"), json=note(key, "alpha", "cleo"), headers=cookie(session_id) | headers
        )
        assert answer.status_code == 403 and "X-StateHub-CSRF" in answer.json()["error"], answer.text
        assert stored(fleet, key) == 404
    key = f"csrf-{uuid.uuid4().hex}"
    answer = httpx.post(
        fleet.url("/events"),
        json=note(key, "alpha", "cleo"),
        headers=cookie(session_id) | {"X-StateHub-CSRF": me["csrf_token"]},
    )
    assert answer.status_code == 202, answer.text
    assert stored(fleet, key) == 200
    # another session's CSRF token is not this one's
    other_id, other, _ = fleet.sign_in(fleet.token("cleo", "write"))
    key = f"csrf-{uuid.uuid4().hex}"
    answer = httpx.post(
        fleet.url("/events"),
        json=note(key, "alpha", "cleo"),
        headers=cookie(session_id) | {"X-StateHub-CSRF": other["csrf_token"]},
    )
    assert answer.status_code == 403 and stored(fleet, key) == 404
    assert other_id != session_id


def test_a_hostile_origin_cannot_use_the_session(fleet: Fleet) -> None:
    session_id, me, _ = fleet.sign_in(fleet.token("dan", "write"))
    good = cookie(session_id) | {"X-StateHub-CSRF": me["csrf_token"]}
    for hostile in (
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Origin": f"http://localhost:{fleet.server.port}", "Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "cross-site"},
    ):
        key = f"xs-{uuid.uuid4().hex}"
        answer = httpx.post(fleet.url("/events"), json=note(key, "alpha", "dan"), headers=good | hostile)
        assert answer.status_code == 403 and "cross-site" in answer.json()["error"], answer.text
        assert stored(fleet, key) == 404
        assert httpx.delete(fleet.url("/auth/session"), headers=good | hostile).status_code == 403
    assert httpx.get(fleet.url("/tasks"), headers=cookie(session_id)).status_code == 200  # still signed in


def test_a_read_only_session_cannot_write_and_a_scoped_one_only_its_repos(fleet: Fleet) -> None:
    reader_id, reader, _ = fleet.sign_in(fleet.token("eve", "read"))
    assert reader["rights"] == ["read"]
    key = f"ro-{uuid.uuid4().hex}"
    answer = httpx.post(
        fleet.url("/events"),
        json=note(key, "alpha", "eve"),
        headers=cookie(reader_id) | {"X-StateHub-CSRF": reader["csrf_token"]},
    )
    assert answer.status_code == 403 and stored(fleet, key) == 404
    scoped_id, scoped, _ = fleet.sign_in(fleet.token("fay", "edit", ("alpha",)))
    assert scoped["repos"] == ["alpha"] and scoped["rights"] == ["read", "write", "edit"]
    headers = cookie(scoped_id) | {"X-StateHub-CSRF": scoped["csrf_token"]}
    key = f"scope-{uuid.uuid4().hex}"
    answer = httpx.post(fleet.url("/events"), json=note(key, "beta", "fay"), headers=headers)
    assert answer.status_code == 403 and stored(fleet, key) == 404
    answer = httpx.post(fleet.url("/repos/beta/refresh"), headers=headers)
    assert answer.status_code == 403
    key = f"scope-{uuid.uuid4().hex}"
    answer = httpx.post(fleet.url("/events"), json=note(key, "alpha", "fay"), headers=headers)
    assert answer.status_code == 202 and stored(fleet, key) == 200
    # a session acts as its token's actor, never as another
    key = f"scope-{uuid.uuid4().hex}"
    answer = httpx.post(fleet.url("/events"), json=note(key, "alpha", "someone-else"), headers=headers)
    assert answer.status_code == 403 and stored(fleet, key) == 404


def test_sign_out_ends_the_session(fleet: Fleet) -> None:
    session_id, me, _ = fleet.sign_in(fleet.token("gus", "read"))
    refused = httpx.delete(fleet.url("/auth/session"), headers=cookie(session_id))
    assert refused.status_code == 403  # no CSRF token: the session goes on
    assert httpx.get(fleet.url("/tasks"), headers=cookie(session_id)).status_code == 200
    answer = httpx.delete(
        fleet.url("/auth/session"), headers=cookie(session_id) | {"X-StateHub-CSRF": me["csrf_token"]}
    )
    assert answer.status_code == 204
    cleared = answer.headers.get_list("set-cookie")
    assert "statehub_session=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict" in cleared
    assert any(c.startswith('__Host-statehub_session=""') and "Secure" in c for c in cleared), cleared
    assert httpx.get(fleet.url("/tasks"), headers=cookie(session_id)).status_code == 401
    assert httpx.delete(fleet.url("/auth/session")).status_code == 204  # nothing to end: still 204


def test_sessions_are_bounded_per_token(fleet: Fleet) -> None:
    token = fleet.token("hal", "read")
    ids = [fleet.sign_in(token)[0] for _ in range(MAX_SESSIONS_PER_TOKEN + 1)]
    assert httpx.get(fleet.url("/tasks"), headers=cookie(ids[0])).status_code == 401  # the oldest ended
    assert all(httpx.get(fleet.url("/tasks"), headers=cookie(i)).status_code == 200 for i in ids[1:])


def test_a_socket_authenticates_from_the_cookie_with_an_origin(fleet: Fleet) -> None:
    session_id, _, _ = fleet.sign_in(fleet.token("ida", "edit"))
    reader_id, _, _ = fleet.sign_in(fleet.token("jon", "read"))
    url = f"{fleet.server.ws_url}/sync/alpha/statehub.toml"
    own = fleet.server.url

    async def first_frame(headers: dict[str, str]) -> tuple[str, Any]:
        async with websockets.connect(url, additional_headers=headers) as ws:
            try:
                await ws.send(create_sync_message(Doc()))  # y-sync step 1: the room answers
                return "open", await asyncio.wait_for(ws.recv(), 10)
            except websockets.ConnectionClosed as closed:
                return "closed", closed.rcvd.code if closed.rcvd else None

    kind, _frame = asyncio.run(first_frame(cookie(session_id) | {"Origin": own}))
    assert kind == "open"  # the room answers: the cookie's token may edit
    assert asyncio.run(first_frame(cookie(session_id))) == ("closed", 4403)  # no Origin
    assert asyncio.run(first_frame(cookie(session_id) | {"Origin": "https://evil.example"})) == (
        "closed",
        4403,
    )
    assert asyncio.run(first_frame(cookie(reader_id) | {"Origin": own})) == ("closed", 4403)  # read only
    assert asyncio.run(first_frame(cookie("B" * 43) | {"Origin": own})) == ("closed", 4401)


def test_a_restart_keeps_sessions(fleet: Fleet) -> None:
    session_id, _, _ = fleet.sign_in(fleet.token("kim", "read"))
    fleet.server.restart()
    assert httpx.get(fleet.url("/tasks"), headers=cookie(session_id)).status_code == 200
    store = fleet.server.home / "data" / "sessions.sqlite3"
    assert store.stat().st_mode & 0o077 == 0
    assert session_id.encode() not in store.read_bytes()  # the store holds no id and no token


def test_the_cookie_is_secure_over_tls_as_a_trusted_proxy_reports_it(fleet: Fleet, tmp_path: Path) -> None:
    token = fleet.token("lea", "read")
    forwarded = {"X-Forwarded-Proto": "https"}
    untrusted = httpx.post(fleet.url("/auth/session"), json={"token": token}, headers=forwarded)
    assert COOKIE.match(untrusted.headers["set-cookie"]).group("secure") is None  # type: ignore[union-attr]
    home = tmp_path / "proxied"
    init_root_key(home / "data" / "token-root.key")
    root = load_root_key(home / "data" / "token-root.key")
    env = {"STATEHUB_PROFILE": "fleet", "STATEHUB_TRUSTED_PROXIES": "127.0.0.1"}
    with HubServer(home, env=env) as proxied:
        own = mint(root, "lea", "read").to_base64()
        answer = httpx.post(f"{proxied.url}/auth/session", json={"token": own}, headers=forwarded)
        assert answer.status_code == 201, answer.text
        secure = COOKIE.match(answer.headers["set-cookie"])
        assert secure is not None and secure.group("secure") == "; Secure"
        assert secure.group("name") == "__Host-statehub_session"  # over TLS: a name no other site can set
        session_id = secure.group("id")
        plain = httpx.post(f"{proxied.url}/auth/session", json={"token": own})
        assert COOKIE.match(plain.headers["set-cookie"]).group("secure") is None  # type: ignore[union-attr]
        assert COOKIE.match(plain.headers["set-cookie"]).group("name") == "statehub_session"  # type: ignore[union-attr]
        tasks = f"{proxied.url}/tasks"
        as_tls = forwarded | {"Cookie": f"__Host-statehub_session={session_id}"}
        assert httpx.get(tasks, headers=as_tls).status_code == 200
        # Over TLS the plain name is not read: a sibling site or a forged plain-HTTP answer can set it.
        planted = forwarded | {"Cookie": f"statehub_session={session_id}"}
        assert httpx.get(tasks, headers=planted).status_code == 401


def test_an_open_socket_ends_at_sign_out_and_at_revocation(fleet: Fleet) -> None:
    """Review finding: a socket opened with a session (or ?token=) kept editing the room after
    sign-out or the token's revocation; now each message is checked first and the socket closes 4401."""
    url = f"{fleet.server.ws_url}/sync/alpha/statehub.toml"
    own = fleet.server.url

    async def edit_after(headers: dict[str, str], query: str, end: Any) -> tuple[int | None, str]:
        async with websockets.connect(url + query, additional_headers=headers) as ws:
            await ws.send(create_sync_message(Doc()))
            await asyncio.wait_for(ws.recv(), 10)  # the room answered: the socket is open and allowed
            await asyncio.to_thread(end)
            doc = Doc()
            try:
                await ws.send(create_sync_message(doc))
                while True:
                    await asyncio.wait_for(ws.recv(), 10)
            except websockets.ConnectionClosed as closed:
                return (closed.rcvd.code, closed.rcvd.reason) if closed.rcvd else (None, "")

    session_id, me, _ = fleet.sign_in(fleet.token("ivy", "edit"))

    def sign_out() -> None:
        answer = httpx.delete(
            fleet.url("/auth/session"), headers=cookie(session_id) | {"X-StateHub-CSRF": me["csrf_token"]}
        )
        assert answer.status_code == 204

    code, reason = asyncio.run(edit_after(cookie(session_id) | {"Origin": own}, "", sign_out))
    assert code == 4401 and "session has ended" in reason

    token = fleet.token("ivo", "edit")
    code, reason = asyncio.run(edit_after({"Origin": own}, f"?token={token}", lambda: fleet.revoke(token)))
    assert code == 4401 and "revoked" in reason


def test_a_planted_second_cookie_is_refused_and_signing_in_again_ends_the_old_session(fleet: Fleet) -> None:
    """Review findings: with two session cookies (the victim's and one another site planted, with a
    Domain or a longer Path) the hub read the last, so a planter could sign a visitor in as itself;
    and signing in again left the browser's previous session alive, unreachable, until its end."""
    victim_id, _, _ = fleet.sign_in(fleet.token("una", "write"))
    planted_id, _, _ = fleet.sign_in(fleet.token("mallory", "read"))
    both = {"Cookie": f"statehub_session={victim_id}; statehub_session={planted_id}"}
    answer = httpx.get(fleet.url("/auth/session"), headers=both)
    assert answer.status_code == 401 and "2 statehub_session cookies" in answer.json()["error"]
    assert httpx.get(fleet.url("/auth/session"), headers=cookie(victim_id)).json()["actor"] == "una"
    signed_out = httpx.delete(fleet.url("/auth/session"), headers=both)
    assert signed_out.status_code == 204  # sign-out still clears the cookie; neither session is ended
    assert httpx.get(fleet.url("/tasks"), headers=cookie(planted_id)).status_code == 200

    again = httpx.post(
        fleet.url("/auth/session"), json={"token": fleet.token("una", "write")}, headers=cookie(victim_id)
    )
    assert again.status_code == 201
    assert httpx.get(fleet.url("/tasks"), headers=cookie(victim_id)).status_code == 401  # the old one ended
    new_id = COOKIE.match(again.headers["set-cookie"]).group("id")  # type: ignore[union-attr]
    assert httpx.get(fleet.url("/tasks"), headers=cookie(new_id)).status_code == 200


def test_a_revoked_tokens_open_socket_cannot_save(fleet: Fleet) -> None:
    """Review finding (high): saves travel over the socket, so before the per-message check a socket
    opened before its token was revoked could still commit the room's text as its actor."""
    from tests.ysync_client import YClient

    admin = fleet.token("agt-admin", "admin")
    path = httpx.get(fleet.url("/repos/beta"), headers={"Authorization": f"Bearer {admin}"}).json()["path"]
    before = GitRepo(Path(path), init=False).git("rev-parse", "HEAD")
    token = fleet.token("rex", "edit")
    url = f"{fleet.server.ws_url}/sync/beta/statehub.toml"

    async def scenario() -> tuple[int, str] | None:
        rex = await YClient(f"{url}?token={token}").connect()
        watcher = await YClient(f"{url}?token={admin}").connect()
        await asyncio.wait_for(rex.synced.wait(), 10)
        await asyncio.wait_for(watcher.synced.wait(), 10)
        rex.text.insert(0, "# after revocation\n")
        await watcher.wait_for(lambda: "# after revocation" in str(watcher.text), 10)  # the room has it
        await asyncio.to_thread(fleet.revoke, token)
        await rex.save()
        await rex.wait_for(lambda: rex.closed is not None, 10)
        await watcher.close()
        return rex.closed

    closed = asyncio.run(scenario())
    assert closed is not None and closed[0] == 4401 and "revoked" in closed[1]
    assert GitRepo(Path(path), init=False).git("rev-parse", "HEAD") == before  # nothing was committed
    assert "# after revocation" not in Path(path, "statehub.toml").read_text()


def test_a_token_pasted_with_its_bearer_prefix_gets_the_way_out(fleet: Fleet) -> None:
    """Review (newcomer): 'Bearer <token>' copied from a curl line was 401 "not a Biscuit token"."""
    token = fleet.token("sam", "read")
    answer = httpx.post(fleet.url("/auth/session"), json={"token": f"Bearer {token}"})
    assert answer.status_code == 400 and "without 'Bearer '" in answer.json()["error"]
    assert "set-cookie" not in answer.headers


def test_a_token_wrapped_across_lines_when_pasted_signs_in(fleet: Fleet) -> None:
    """Review (newcomer): a token copied from a terminal or a mail that wrapped it came with line
    breaks inside, and sign-in said its signature does not verify ("altered")."""
    token = fleet.token("wren", "read")
    wrapped = "\n".join(token[i : i + 76] for i in range(0, len(token), 76)) + "\r\n"
    _session, answer, _response = fleet.sign_in(" " + wrapped)
    assert answer["actor"] == "wren"
