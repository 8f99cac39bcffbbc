"""The rules of editing a manifest together, for ``/sync``: who edits, who may, what the rooms are.

The controller (``statehub.api.sync``) reads the request and calls these:

- :func:`open_edit`: the manifest a room is for (``<repo slug>/<path>``,
  ``statehub.manifests.resolve_doc``), whether this token may edit it (the
  fleet registry needs ``admin``, like a role change: it can change what
  machines may host) and who the edits and saves are by (:func:`editor`).
- :func:`save_target`: ``POST /sync/<slug>/<path>/save`` is the one POST under
  ``/sync``; anything else is NotFound.
- :func:`save_room`: validate and commit a room's text, as the answer and its status.
- :func:`list_rooms`: every editable manifest of every registered repo, who has
  it open and whether it has unsaved edits.

Who you are (ADR-022): on a hub with tokens, the token's actor; only an admin
token may name another author with ``?user=NAME`` (and ``&email=ADDRESS``).
On an open hub, ``?user=NAME`` (and ``&email=``), else the room asks the
client's own awareness state, else the saver uses the repo's git identity.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import msgspec

from statehub.answers import Page
from statehub.auth import VerifiedToken, authorize_request
from statehub.auth.verify import repos_in_scope
from statehub.collab import ManifestFiles
from statehub.errors import (
    BadRequest,
    Forbidden,
    HubError,
    NotFound,
    as_hub_error,
)
from statehub.manifests import EDITABLE, ManifestDoc, resolve_doc
from sync.saving import Person, RoomError, RoomInputError
from workplans import FLEET_PATH

if TYPE_CHECKING:
    from statehub.hub import Hub
    from sync.rooms import Rooms

__all__ = [
    "RoomItem",
    "SaveAnswer",
    "SaveProblem",
    "editor",
    "list_rooms",
    "open_edit",
    "save_room",
    "save_target",
]

SAVE_SUFFIX = "/save"


class RoomItem(msgspec.Struct, frozen=True, kw_only=True):
    """An editable manifest in ``GET /sync``.

    ``doc`` is ``<slug>/<path>``; ``kind`` ``repo manifest`` or ``fleet registry``;
    ``error`` (left out when none) says why the editor would refuse the file;
    ``people`` are the names of who has it open (on a fleet hub, through any live replica:
    canon/ADR-051 addendum); ``unsaved`` counts drafts kept for
    rooms nobody has open (a closed tab, a restarted hub), not only open rooms.
    """

    doc: str
    repo: str
    path: str
    kind: str
    exists: bool
    error: str | msgspec.UnsetType = msgspec.UNSET
    people: list[str]
    unsaved: bool


class SaveProblem(msgspec.Struct, frozen=True):
    """A problem in the manifest that stopped a save: 1-based line and column, or None."""

    line: int | None
    column: int | None
    message: str


class SaveAnswer(msgspec.Struct, frozen=True):
    """``POST /sync/<doc>/save``: whether the room's text was committed, and as what."""

    doc: str
    ok: bool
    message: str
    errors: list[SaveProblem]
    """Empty unless the manifest is invalid (422)."""
    commit: str | None


def editor(token: VerifiedToken | None, repo: str, user: str | None, email: str | None) -> Person | None:
    """Who this connection edits and saves as (ADR-022); Forbidden / BadRequest when it may not say so.

    A token hub: the token's actor, or, for an admin token on ``repo`` only, the
    ``user`` / ``email`` it names. An open hub: ``user`` / ``email`` or None (the
    room then asks awareness, the saver the repo's git identity). Names and emails
    are one line without ``<``, ``>`` or control characters.
    """
    name = user.strip() if user and user.strip() else None
    address = email.strip() if email and email.strip() else None
    try:
        if token is None:
            if address is not None and name is None:
                raise BadRequest("&email= needs ?user=NAME with it")
            return Person(name, address) if name else None
        if (name is None or name == token.actor) and address is None:
            return Person(token.actor)
        try:
            authorize_request(token, "admin", repo)
        except HubError:
            raise Forbidden(
                f"this token acts as {token.actor!r}: saves are authored by it; only an admin token may "
                "name another author (drop ?user= and &email=)"
            ) from None
        return Person(name or token.actor, address)
    except RoomInputError as error:
        raise BadRequest(f"?user= / &email=: {error.message}") from None


def open_edit(
    hub: Hub, token: VerifiedToken | None, doc: str, user: str | None, email: str | None
) -> tuple[ManifestDoc, Person | None]:
    """The manifest ``doc`` names and who edits it; BadRequest, NotFound or Forbidden when refused.

    Editing the fleet registry needs ``admin`` on its repo, like a role change.
    """
    manifest = resolve_doc(hub, doc)
    if manifest.path == FLEET_PATH:
        authorize_request(token, "admin", manifest.repo.slug)
    return manifest, editor(token, manifest.repo.slug, user, email)


def save_target(doc: str) -> str:
    """The room a ``POST /sync/{doc}`` saves: ``doc`` without its ``/save``; NotFound for any other POST."""
    name = doc.strip("/")
    if not name.endswith(SAVE_SUFFIX):
        raise NotFound(f"POST /sync/{name} is not a route: save a room with POST /sync/<slug>/<path>/save")
    return name.removesuffix(SAVE_SUFFIX)


async def save_room(
    hub: Hub, rooms: Rooms, token: VerifiedToken | None, doc: str, user: str | None, email: str | None
) -> tuple[SaveAnswer, int]:
    """Validate and commit the room's text: the answer and its HTTP status.

    200 when saved; 422 with ``errors`` when the manifest is invalid (nothing
    written); 409 when the file could not be written (it moved on disk, or holds
    somebody's uncommitted change); another status when the room says so.
    """
    manifest, person = open_edit(hub, token, doc, user, email)
    try:
        outcome = await rooms.save(manifest.name, person)
    except RoomError as error:
        raise as_hub_error(error) from None
    status = 200 if outcome.ok else outcome.status or (422 if outcome.errors else 409)
    answer = SaveAnswer(
        doc=manifest.name,
        ok=outcome.ok,
        message=outcome.message,
        errors=[msgspec.convert(e, SaveProblem) for e in outcome.errors],
        commit=outcome.commit,
    )
    return answer, status


def _files(hub: Hub, token: VerifiedToken | None) -> list[tuple[str, str, str, str, bool, str | None]]:
    """Each editable manifest of the repos ``token`` may read (None: all): (doc, repo, path, kind,
    whether it exists, why the editor would refuse it or None). Nothing is read, only looked at."""
    files = ManifestFiles(hub)
    found = []
    registered = hub.repos()
    scope = None if token is None else set(repos_in_scope(token, [r.slug for r in registered]))
    for repo in registered:
        if scope is not None and repo.slug not in scope:
            continue
        for path, kind in EDITABLE.items():
            name = f"{repo.slug}/{path}"
            try:
                exists, problem = files.problem(name)
            except RoomError as error:
                exists, problem = False, error.message
            found.append((name, repo.slug, path, kind, exists, problem))
    return found


async def list_rooms(hub: Hub, rooms: Rooms, token: VerifiedToken | None = None) -> Page[RoomItem]:
    """Every editable manifest of every registered repo, by repo then path, with its people and drafts.

    A repo-scoped token sees its repos' manifests only (who edits what and the drafts are
    like the stream's room messages and the diagnostics: its own repos'). The files are
    looked at in a worker thread.
    """
    found = await asyncio.to_thread(_files, hub, token)
    drafts = await rooms.drafts()
    people = await rooms.people()  # on a fleet hub: the members on every live replica
    items = []
    for doc, repo, path, kind, exists, problem in found:
        items.append(
            RoomItem(
                doc=doc,
                repo=repo,
                path=path,
                kind=kind,
                exists=exists,
                error=problem if problem else msgspec.UNSET,
                people=people.get(doc, []),
                unsaved=doc in drafts,
            )
        )
    return Page(items, len(items))
