"""ADR-022: a save's author cannot be forged, and a presence belongs to the connection that set it.

Against real hub processes: on a hub with tokens the author is the token's
actor (only an admin token names another); on an open hub a save without a
name is authored by the repo's git identity. Names and emails with a line
break, ``<``, ``>`` or a control character are refused wherever they come
from (``?user=``, ``&email=``, awareness, the repo's git config), so no
``Statehub-Event:`` or ``Co-authored-by:`` line can be appended to a commit
message. Awareness entries for another connection's client ids are dropped.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING
from urllib.parse import quote

import pytest
import websockets
from pycrdt import Doc, create_sync_message

from sync import ysync
from tests.statehub.security.editorhub import MANIFEST, EditorHub, editor_hub, refusal, snapshot
from tests.ysync_client import YClient, claim_presence

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture
def open_hub(tmp_path: Path) -> Iterator[EditorHub]:
    with editor_hub(tmp_path) as running:
        yield running


@pytest.fixture(scope="module")
def refusing_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EditorHub]:
    """One open hub for the refusal cases: each asserts it wrote nothing, so they can share it."""
    with editor_hub(tmp_path_factory.mktemp("refusing")) as running:
        yield running


@pytest.fixture
def token_hub(tmp_path: Path) -> Iterator[EditorHub]:
    with editor_hub(tmp_path, tokens=True) as running:
        yield running


def _author(hub: EditorHub) -> str:
    return hub.demo.git("log", "-1", "--format=%an <%ae>").strip()


def _message(hub: EditorHub) -> str:
    return hub.demo.git("log", "-1", "--format=%B")


async def _edit_and_save(url: str, line: str, *, awareness: str | None = None) -> dict[str, object]:
    client = await YClient(url).connect()
    await asyncio.wait_for(client.synced.wait(), 10)
    if awareness is not None:
        await client.set_presence({"user": {"name": awareness}})
    client.text.insert(len(str(client.text)), line)
    await asyncio.sleep(0.3)
    await client.save()
    await client.wait_for(lambda: any(m.get("type") == "save-result" for m in client.hub_messages), 15)
    await client.close()
    return next(m for m in client.hub_messages if m.get("type") == "save-result")


def test_an_open_hub_authors_a_nameless_save_as_the_repos_git_identity(open_hub: EditorHub) -> None:
    result = asyncio.run(_edit_and_save(open_hub.room(), "# no name given\n"))
    assert result["ok"], result
    assert _author(open_hub) == "State Hub tests <tests@statehub.invalid>"
    assert open_hub.demo.read("statehub.toml") == MANIFEST + "# no name given\n"


BAD_NAMES = {
    "newline + trailers": "Eve\nStatehub-Event: 01FAKE\nCo-authored-by: Ada <ada@example.org>",
    "carriage return": "Eve\rStatehub-Event: x",
    "angle brackets": "Eve <eve@evil.example>",
    "lone >": "Eve>",
    "NUL": "Eve\x00",
    "tab": "Eve\tx",
    "unicode line separator": "Eve\u2028Statehub-Event: x",
    "bidi override": "Eve\u202e",
    "too long": "E" * 201,
}


@pytest.mark.parametrize("case", list(BAD_NAMES))
def test_a_bad_name_or_email_is_refused_before_anything_is_written(
    refusing_hub: EditorHub, case: str
) -> None:
    hub = refusing_hub
    before = snapshot(hub.demo)
    bad = quote(BAD_NAMES[case], safe="")
    for params in ({"user": bad}, {"user": "Ada", "email": bad}):
        status, body = refusal(hub.room(**params))
        assert status == 400, body
        # Control characters are refused by the URL check before the room reads the name.
        assert "?user= / &email=" in body or "control character" in body, body
        query = "&".join(f"{k}={v}" for k, v in params.items())
        answer = hub.call("POST", f"/sync/demo/statehub.toml/save?{query}")
        assert answer.status_code == 400, answer.text
    assert snapshot(hub.demo) == before


def test_an_awareness_name_that_is_no_git_identity_is_not_used(open_hub: EditorHub) -> None:
    forged = "Eve\nStatehub-Event: 01FAKE\nCo-authored-by: Ada <ada@example.org>"
    result = asyncio.run(_edit_and_save(open_hub.room(), "# x\n", awareness=forged))
    assert result["ok"], result
    message = _message(open_hub)
    assert "Statehub-Event" not in message and "Co-authored-by" not in message
    assert _author(open_hub) == "State Hub tests <tests@statehub.invalid>"


def test_a_git_identity_with_a_line_break_is_refused(open_hub: EditorHub) -> None:
    hub = open_hub
    hub.demo.git("config", "user.name", "Eve\nStatehub-Event: 01FAKE")
    head = hub.demo.git("rev-parse", "HEAD")
    result = asyncio.run(_edit_and_save(hub.room(), "# x\n"))
    assert not result["ok"]
    assert "git identity cannot author a save" in str(result["message"])
    assert hub.demo.git("rev-parse", "HEAD") == head
    assert hub.demo.read("statehub.toml") == MANIFEST
    assert hub.demo.git("status", "--porcelain") == ""


def test_a_token_hub_authors_saves_as_the_tokens_actor(token_hub: EditorHub) -> None:
    hub = token_hub
    editor = hub.token("agt-ada", "edit", ("demo",))
    # An awareness name does not change who saves on a hub with tokens.
    result = asyncio.run(_edit_and_save(hub.room(token=editor), "# by ada\n", awareness="Mallory"))
    assert result["ok"], result
    assert _author(hub) == "agt-ada <agt-ada@users.statehub.invalid>"
    assert "Mallory" not in _message(hub)


@pytest.mark.parametrize("params", [{"user": "Mallory"}, {"email": "boss@example.org"}])
def test_only_an_admin_token_names_another_author(token_hub: EditorHub, params: dict[str, str]) -> None:
    hub = token_hub
    before = snapshot(hub.demo)
    editor = hub.token("agt-ada", "edit", ("demo",))
    status, body = refusal(hub.room(token=editor, **params))
    assert status == 403, body
    assert "only an admin token may name another author" in body
    query = "&".join(f"{k}={v}" for k, v in params.items())
    answer = hub.call(
        "POST", f"/sync/demo/statehub.toml/save?{query}", headers={"Authorization": f"Bearer {editor}"}
    )
    assert answer.status_code == 403, answer.text
    assert snapshot(hub.demo) == before


def test_an_admin_token_may_name_the_author(token_hub: EditorHub) -> None:
    hub = token_hub
    admin = hub.token("relay-bot", "admin")
    url = hub.room(token=admin, user=quote("Ada Lovelace"), email="ada@example.org")
    result = asyncio.run(_edit_and_save(url, "# relayed\n"))
    assert result["ok"], result
    assert _author(hub) == "Ada Lovelace <ada@example.org>"


def test_awareness_is_bound_to_the_connection_that_set_it(open_hub: EditorHub) -> None:
    hub = open_hub

    async def scenario() -> None:
        ada = await YClient(hub.room(), name="Ada").connect()
        bob = await YClient(hub.room(), name="Bob").connect()
        for client in (ada, bob):
            await asyncio.wait_for(client.synced.wait(), 10)
        await asyncio.sleep(0.3)
        people = hub.call("GET", "/sync").json()["items"][0]["people"]
        assert people == ["Ada", "Bob"]
        # Bob overwrites Ada's presence and then clears it, using her client id.
        mallory = {"user": {"name": "Mallory"}}
        await bob._ws.send(claim_presence({ada.doc.client_id: mallory}, clock=9))
        await bob._ws.send(claim_presence({ada.doc.client_id: None}, clock=10))
        await bob.wait_for(lambda: sum(m.get("type") == "error" for m in bob.hub_messages) >= 2, 10)
        assert "belongs to another connection" in bob.hub_messages[-1]["message"]
        assert hub.call("GET", "/sync").json()["items"][0]["people"] == ["Ada", "Bob"]
        # Ada edits; Bob saves: Ada is credited under her own name.
        ada.text.insert(0, "# ada was here\n")
        await bob.wait_for(lambda: str(bob.text).startswith("# ada was here\n"), 10)
        await bob.save()
        await bob.wait_for(lambda: any(m.get("type") == "save-result" for m in bob.hub_messages), 15)
        for client in (ada, bob):
            await client.close()

    asyncio.run(scenario())
    message = hub.demo.git("log", "-1", "--format=%an%n%B")
    assert message.startswith("Bob\n")
    assert "Co-authored-by: Ada <ada@users.statehub.invalid>" in message
    assert "Mallory" not in message


def test_a_connection_introduces_a_bounded_number_of_presences(open_hub: EditorHub) -> None:
    async def scenario() -> None:
        async with websockets.connect(open_hub.room()) as socket:
            await socket.send(claim_presence({1000 + i: {"user": {"name": f"p{i}"}} for i in range(20)}))
            await socket.send(create_sync_message(Doc()))
            async with asyncio.timeout(10):
                while True:
                    message = await socket.recv()
                    if isinstance(message, bytes) and message[:1] == bytes([ysync.STATEHUB]):
                        assert (
                            "at most 8 awareness client ids" in ysync.read_hub_message(message[1:])["message"]
                        )
                        break
            listed = await asyncio.to_thread(open_hub.call, "GET", "/sync")
            assert listed.json()["items"][0]["people"] == ["p0"]

    asyncio.run(scenario())
