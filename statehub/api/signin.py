"""``/auth/session``: sign a browser in with a token, say who it is, sign it out (ADR-040).

- ``POST /auth/session {"token": "..."}`` verifies the token (signature,
  revocation, expiry) and answers 201 with who you are, the session's CSRF
  token and a cookie: ``statehub_session``, ``HttpOnly``, ``SameSite=Strict``,
  ``Path=/``, ``Max-Age`` until the session ends (the token's expiry or 12 h);
  over TLS (to the hub, or to a proxy in ``STATEHUB_TRUSTED_PROXIES``) it is
  ``__Host-statehub_session`` and ``Secure``, which no other site can plant.
  The session the browser's cookie named before, if any, ends. A wrong, expired or revoked token is 401 and
  sets no cookie; a token over 16 KiB is 400 unread.
- ``GET /auth/session``: who you are (actor, right, the rights the token allows,
  its repo scope, when it and the session end) and, for a session, its CSRF
  token. A bearer token may ask too. On an open hub: ``tokens: false`` and
  nothing else to say; the web UI then shows no sign-in.
- ``DELETE /auth/session``: sign-out. Ends the cookie's session (the CSRF token
  is required while the session lives) and clears the cookie; 204 whether or
  not there was one.

The session's rules (what the store holds, its bounds) are :mod:`statehub.auth.sessions`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import Any

import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.params import JSONBody
from litestar.status_codes import HTTP_201_CREATED, HTTP_204_NO_CONTENT

from statehub.api.errorshape import WRITE_STATUSES, error_responses
from statehub.auth import AUTHENTICATED, OPEN, VerifiedToken, authorize, session_of, token_of
from statehub.auth.contract import RIGHTS
from statehub.auth.guard import is_secure, session_cookie
from statehub.auth.sessions import (
    COOKIE_NAME,
    CSRF_HEADER,
    MAX_TOKEN_CHARS,
    SECURE_COOKIE_NAME,
    SessionStore,
    csrf_matches,
    csrf_token,
    token_expiry,
)
from statehub.auth.verify import token_scope
from statehub.errors import BadRequest, Forbidden, HubError, Unauthorized

__all__ = ["SessionAnswer", "SignIn", "SignInController"]


class SignIn(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``POST /auth/session``'s body."""

    token: str
    """The token text ``statehub token mint`` printed (at most 16 KiB)."""


class SessionAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """Who is asking, and what their token may do (``GET`` and ``POST /auth/session``).

    On an open hub only ``tokens`` (false) is meaningful: every request may act.
    """

    tokens: bool
    """Whether this hub requires tokens; false on an open dev hub (no sign-in)."""
    actor: str | None = None
    """Who the token acts as: the author of events and of the editor's saves."""
    right: str | None = None
    """The highest right the token was minted with (read | write | edit | admin)."""
    rights: list[str] = []
    """The rights it allows now on at least one repo in its scope, after every narrowing block."""
    repos: list[str] | None = None
    """The repos it is scoped to for anything but reading; None: every repo."""
    expires: str | None = None
    """When the token expires (UTC, ISO 8601); None when it does not."""
    session_expires: str | None = None
    """When this browser session ends (UTC); None for a bearer token."""
    csrf_token: str | None = None
    """Send it in ``X-StateHub-CSRF`` with every cookie-authenticated POST, PUT, PATCH or DELETE."""


def _iso(moment: dt.datetime | None) -> str | None:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ") if moment is not None else None


def _unexpired(token: VerifiedToken) -> None:
    """Unauthorized when the token has expired (whatever form its time check takes); what else it
    allows is said per request."""
    with contextlib.suppress(Forbidden):
        authorize(token, "read")


def _answer(token: VerifiedToken, session_id: str | None, session_ends: dt.datetime | None) -> SessionAnswer:
    scope = token_scope(token)
    where: list[str | None] = [*sorted(scope)] if scope is not None else [None]
    rights = []
    for right in RIGHTS:
        for repo in where:
            try:
                authorize(token, right, repo)
            except HubError:
                continue
            rights.append(right)
            break
    return SessionAnswer(
        tokens=True,
        actor=token.actor,
        right=token.right,
        rights=rights,
        repos=sorted(scope) if scope is not None else None,
        expires=_iso(token_expiry(token)),
        session_expires=_iso(session_ends),
        csrf_token=csrf_token(session_id) if session_id else None,
    )


def _cookie(request: Request[Any, Any, Any], value: str, max_age: int) -> str:
    """The ``Set-Cookie`` value of the session cookie. Over TLS (:func:`is_secure`) it is
    ``__Host-statehub_session`` and ``Secure``; over plain HTTP ``statehub_session``."""
    if is_secure(request):
        return f"{SECURE_COOKIE_NAME}={value}; Path=/; Max-Age={max_age}; HttpOnly; Secure; SameSite=Strict"
    return f"{COOKIE_NAME}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Strict"


async def _clear_cookie(response: Response[Any]) -> Response[Any]:
    """Sign-out's answer clears the cookie, by either name (a browser ignores the ``__Host-`` one
    over plain HTTP): a hook, so the document says 204 with no content."""
    response.headers["Set-Cookie"] = f"{COOKIE_NAME}=; Path=/; Max-Age=0; HttpOnly; SameSite=Strict"
    response.set_cookie(
        SECURE_COOKIE_NAME, "", max_age=0, path="/", httponly=True, secure=True, samesite="strict"
    )
    return response


class SignInController(Controller):
    path = "/auth/session"
    tags = ["auth"]

    @post(
        "/",
        opt=OPEN,
        status_code=HTTP_201_CREATED,
        sync_to_thread=True,
        responses=error_responses(503, *WRITE_STATUSES),
    )
    def sign_in(self, request: Request[Any, Any, Any], data: JSONBody[SignIn]) -> Response[SessionAnswer]:
        """Exchange a token for a session cookie; 401 (and no cookie) for a wrong, expired or revoked one."""
        verifier = request.app.state.auth.verifier
        if verifier is None:
            raise BadRequest("this hub is open (no tokens): there is nothing to sign in to; open / instead")
        # A token has no whitespace: drop what a terminal or a mail wrapped it with, inside as well.
        text = "".join(data.token.split())
        if not text:
            raise BadRequest('give the token: {"token": "<the text statehub token mint printed>"}')
        if data.token.strip()[:7].lower() == "bearer ":
            raise BadRequest(
                "paste the token alone, without 'Bearer ' (that is how the Authorization header carries it)"
            )
        if len(text) > MAX_TOKEN_CHARS:
            raise BadRequest(
                f"the token is {len(text):,} characters, over the {MAX_TOKEN_CHARS:,} a hub token can be; "
                "check what was pasted"
            )
        token = verifier.verify(text)
        _unexpired(token)
        sessions: SessionStore = request.app.state.sessions
        with contextlib.suppress(Unauthorized):  # two planted cookies: nothing of ours to end
            previous = session_cookie(request)
            if previous:  # the browser's cookie is replaced: its session ends rather than linger
                sessions.end(previous)
        session_id = sessions.create(text, token)
        session = sessions.find(session_id)
        if session is None:  # it ended as it began: the token expires this very second
            raise Unauthorized(f"the token for {token.actor} has expired; ask for a new one")
        seconds = max(1, int((session.expires - dt.datetime.now(dt.UTC)).total_seconds()))
        return Response(
            _answer(token, session_id, session.expires),
            status_code=HTTP_201_CREATED,
            headers={"Cache-Control": "no-store", "Set-Cookie": _cookie(request, session_id, seconds)},
        )

    @get("/", opt=AUTHENTICATED, sync_to_thread=False, responses=error_responses())
    def who_am_i(self, request: Request[Any, Any, Any]) -> Response[SessionAnswer]:
        """Who you are and what your token may do; ``tokens: false`` on an open hub."""
        token = token_of(request)
        if token is None:
            return Response(SessionAnswer(tokens=False), headers={"Cache-Control": "no-store"})
        _unexpired(token)
        session_id = session_of(request)
        ends = None
        if session_id is not None:
            session = request.app.state.sessions.find(session_id)
            ends = session.expires if session is not None else None
        return Response(_answer(token, session_id, ends), headers={"Cache-Control": "no-store"})

    @delete(
        "/",
        opt=OPEN,
        after_request=_clear_cookie,
        status_code=HTTP_204_NO_CONTENT,
        sync_to_thread=False,
        responses=error_responses(*WRITE_STATUSES),
    )
    def sign_out(self, request: Request[Any, Any, Any]) -> None:
        """End this browser's session and clear its cookie; 204 whether or not there was one."""
        session_id = None
        with contextlib.suppress(Unauthorized):  # planted cookies: there is no one session to end
            session_id = session_cookie(request)
        sessions: SessionStore | None = getattr(request.app.state, "sessions", None)
        if session_id and sessions is not None and sessions.find(session_id) is not None:
            if not csrf_matches(session_id, request.headers.get(CSRF_HEADER)):
                raise Forbidden(
                    "signing out needs the session's CSRF token in X-StateHub-CSRF (GET /auth/session "
                    "answers it); the session goes on"
                )
            sessions.end(session_id)
