"""``statehub watch``: follow the hub's change stream (``GET /events/stream``, canon/ADR-038) in a terminal.

The stream is read over HTTP from a running server, this home's (its address is in
``server.json``, statehub/servermark.py) or any hub given by ``--url`` /
``$STATEHUB_URL``, sending ``$STATEHUB_TOKEN`` as a bearer token when set. Server-sent
events are parsed here (:func:`_messages`), bounded: the server may be hostile, so a message
over :data:`MAX_MESSAGE_CHARS` or whose data is not JSON ends the command with an error
rather than growing without bound or failing with a traceback. When the connection ends (the hub restarts, the
network drops, the hub drops a subscriber that fell behind), the command connects again
with ``Last-Event-ID``, so it misses nothing the hub's log still holds; a ``reset``
says the log no longer holds what was missed.

Output: one line per message for people (``id time type repo what``), or with
``--json`` one JSON object per line (JSON Lines): ``{"schema_version", "id", "event",
"data"}``, ``data`` exactly as the stream sent it.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from typing import TYPE_CHECKING, Any

import click

from statehub.cli._context import handle_errors, load_settings
from statehub.cli._output import JSON_SCHEMA_VERSION, clean, say
from statehub.errors import BadRequest, Unavailable, error_for_status

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    import httpx

__all__ = ["describe", "watch"]

RETRY_S = (0.5, 1.0, 2.0, 5.0)
"""Waits before connecting again after a lost connection, the last one repeated."""

CONNECT_TIMEOUT_S = 10.0

MAX_MESSAGE_CHARS = 16 * 1024 * 1024
"""The most characters one server-sent message may take (its lines together); a hub's messages are
far smaller (each names a change; lists in them are cut at 200 entries, statehub/changes.py)."""


@click.command()
@click.option("--repo", "repos", multiple=True, help="Only this repo's changes (repeatable).")
@click.option("--workplan", help="Only this workplan's changes, e.g. OPS-WP-0003.")
@click.option("--owner", help="Only changes to tasks or workplans this person or agent owns or owned.")
@click.option("--types", help="Comma-separated type prefixes, e.g. task,claim. or event.applied.")
@click.option("--since", type=click.IntRange(min=0), help="Replay what came after this message id first.")
@click.option("--max", "most", type=click.IntRange(min=1), help="Stop after this many messages.")
@click.option("--url", help="The hub to follow (default: $STATEHUB_URL, else this home's running server).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per message (JSON Lines).")
@handle_errors
def watch(
    repos: tuple[str, ...],
    workplan: str | None,
    owner: str | None,
    types: str | None,
    since: int | None,
    most: int | None,
    url: str | None,
    as_json: bool,
) -> None:
    """Follow the hub's changes as they happen: tasks, workplans, canon, events, claims, saves.

    Reconnects by itself after a lost connection and replays what it missed. Ctrl-C stops.

    Example: statehub watch --repo ops --types task,claim.
    """
    base = _hub_url(url)
    params: list[tuple[str, str]] = [("repo", r) for r in repos]
    params += [(k, v) for k, v in (("workplan", workplan), ("owner", owner), ("types", types)) if v]
    last = since
    shown = 0
    try:
        for message_id, event, data in _follow(base, params, last):
            if message_id is not None:
                last = message_id
            _show(message_id, event, data, as_json)
            shown += 1
            if most is not None and shown >= most:
                return
    except KeyboardInterrupt:
        return


def _hub_url(given: str | None) -> str:
    """Where to connect: ``--url``, ``$STATEHUB_URL`` or this home's running server."""
    found = given or os.environ.get("STATEHUB_URL")
    if not found:
        from statehub.servermark import running_server

        mark = running_server(load_settings())
        if mark is None or mark.url is None:
            raise Unavailable(
                "no State Hub server runs on this home: start one with `statehub serve`, "
                "or give the hub to follow with --url or $STATEHUB_URL"
            )
        found = mark.url
    if not found.startswith(("http://", "https://")):
        raise BadRequest(f"--url {found!r}: give the hub's address, like http://127.0.0.1:8750")
    return found.rstrip("/")


def _follow(
    base: str, params: list[tuple[str, str]], since: int | None
) -> Iterator[tuple[int | None, str, Any]]:
    """Every message of the stream as ``(id, event, data)``, connecting again (with the last id seen)
    whenever the connection ends or the hub drops the stream (``dropped`` is said on stderr, not
    yielded); a hub that refuses the request (4xx, 503) ends it with that error."""
    import httpx

    headers = {"Accept": "text/event-stream"}
    token = os.environ.get("STATEHUB_TOKEN")
    if token:
        headers["Authorization"] = f"Bearer {token}"
    timeout = httpx.Timeout(CONNECT_TIMEOUT_S, read=None)
    last = since
    failures = 0
    connected = False
    with httpx.Client(timeout=timeout, headers=headers) as client:
        while True:
            query = list(params) + ([("since", str(last))] if last is not None else [])
            try:
                with client.stream("GET", f"{base}/events/stream", params=tuple(query)) as response:
                    _refused(response)
                    connected, failures = True, 0
                    for ident, event, data in _messages(base, response):
                        if event == "dropped":  # the hub ends this stream; the next one replays
                            reason = data.get("reason") if isinstance(data, dict) else None
                            say(
                                (f"the hub ended the stream ({reason}); connecting again", "dim"), file=_err()
                            )
                            break
                        message_id = int(ident) if ident and ident.isdigit() and len(ident) <= 18 else None
                        if message_id is not None:
                            last = message_id
                        yield message_id, event, data
            except httpx.TransportError as error:
                if not connected and isinstance(error, httpx.ConnectError):
                    raise Unavailable(f"cannot reach the hub at {base}: {error}") from None
                note = f"connection to {base} lost ({error.__class__.__name__}); connecting again"
                say((note, "dim"), file=_err())
            wait = RETRY_S[min(failures, len(RETRY_S) - 1)]
            failures += 1
            time.sleep(wait)


_NEWLINE = re.compile(r"\r\n|\r|\n")


def _lines(base: str, chunks: Iterable[str]) -> Iterator[str]:
    """The lines of ``chunks`` (ended by CRLF, CR or LF, as the SSE format says), none longer than
    :data:`MAX_MESSAGE_CHARS`: Unavailable for a longer one, before it is held whole."""
    parts: list[str] = []
    size = 0
    skip_lf = False  # a CR ended the last chunk: an LF starting this one belongs to it
    for text in chunks:
        if skip_lf and text.startswith("\n"):
            text = text[1:]
        skip_lf = text.endswith("\r")
        pieces = _NEWLINE.split(text)
        for piece in pieces[:-1]:
            parts.append(piece)
            yield "".join(parts)
            parts, size = [], 0
        if pieces[-1]:
            parts.append(pieces[-1])
            size += len(pieces[-1])
            if size > MAX_MESSAGE_CHARS:
                raise _not_a_stream(base, f"a line longer than {MAX_MESSAGE_CHARS} characters")
    if parts:
        yield "".join(parts)


def _messages(base: str, response: httpx.Response) -> Iterator[tuple[str | None, str, Any]]:
    """Each message of a server-sent event stream as ``(id, event, data decoded from JSON)``.

    Unavailable when the answer is not ``text/event-stream``, a message (its lines together) is
    longer than :data:`MAX_MESSAGE_CHARS`, or its data is not JSON: what no State Hub sends."""
    kind = response.headers.get("content-type", "").partition(";")[0].strip()
    if kind != "text/event-stream":
        raise _not_a_stream(base, f"an answer of type {kind!r}")
    ident: str | None = None
    event, size = "", 0
    data: list[str] = []
    for line in _lines(base, response.iter_text()):
        if not line:
            if data:
                joined = "\n".join(data)
                try:
                    decoded = json.loads(joined)
                except ValueError:
                    raise _not_a_stream(base, f"a message ({event!r}) whose data is not JSON") from None
                yield ident, event or "message", decoded
            event, data, size = "", [], 0
            continue
        size += len(line)
        if size > MAX_MESSAGE_CHARS:
            raise _not_a_stream(base, f"a message longer than {MAX_MESSAGE_CHARS} characters")
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
        elif name == "id" and "\0" not in value:
            ident = value


def _not_a_stream(base: str, what: str) -> Unavailable:
    return Unavailable(f"{base} sent {what}: it is not a State Hub change stream")


def _refused(response: httpx.Response) -> None:
    """Raise the hub's error (its ErrorBody ``error`` sentence and status) for a refused stream."""
    if response.status_code < 400:
        return
    response.read()
    try:
        message = str(response.json().get("error") or response.reason_phrase)
    except (ValueError, AttributeError):
        message = response.reason_phrase
    raise error_for_status(response.status_code, f"the hub refused the stream: {message}")


def _err() -> Any:
    from statehub.cli._output import err_console

    return err_console()


def _show(message_id: int | None, event: str, data: Any, as_json: bool) -> None:
    if as_json:
        line = {"schema_version": JSON_SCHEMA_VERSION, "id": message_id, "event": event, "data": data}
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()
        return
    stamp = str(data.get("at", ""))[11:19] if isinstance(data, dict) else ""
    repo = data.get("repo") if isinstance(data, dict) else None
    ident = "-" if message_id is None else str(message_id)
    said = clean(f"{ident:>7} {stamp} {event:<16} {repo or '-':<14} {describe(event, data)}")
    sys.stdout.write(said.replace("\n", "\\n") + "\n")  # one line per message, whatever data holds
    sys.stdout.flush()


def _fields(data: dict[str, Any]) -> str:
    changed = data.get("fields") or {}
    parts = []
    for name, values in changed.items():
        if isinstance(values, dict):
            parts.append(f"{name} {values.get('old')!s} -> {values.get('new')!s}")
    return "; ".join(parts)


def describe(event: str, data: Any) -> str:
    """One line saying what a message tells, e.g. ``OPS-WP-0003-T02 changed: status todo -> done
    (file-edit)``; empty for a type it does not know (a newer hub's)."""
    if not isinstance(data, dict):
        return ""
    cause = f" ({data['cause']})" if data.get("cause") else ""
    if event == "task.changed":
        return f"{data.get('ref')} {data.get('change')}: {_fields(data)}{cause}"
    if event == "workplan.changed":
        return f"{data.get('workplan')} {data.get('change')}: {_fields(data)}{cause}"
    if event == "canon.changed":
        return f"{data.get('id')} {data.get('change')}: {_fields(data)}{cause}"
    if event == "repo.indexed":
        counts = data.get("counts") or {}
        return (
            f"indexed at {str(data.get('commit') or '')[:12]}: {counts.get('workplans')} workplans, "
            f"{counts.get('tasks')} tasks, {counts.get('file_errors')} file errors{cause}"
        )
    if event.startswith("event."):
        reason = f": {data['reason']}" if data.get("reason") else ""
        task, plan = data.get("task"), data.get("workplan")
        target = f"{plan}-{task} " if task else f"{plan} " if plan else ""
        return f"{data.get('kind')} {target}by {data.get('actor')} [{data.get('key')}]{reason}"
    if event.startswith("claim."):
        by = f" by {data['by']}" if data.get("by") else ""
        return f"{data.get('ref')} held by {data.get('actor')}{by}"
    if event == "room.saved":
        return f"{data.get('path')} saved by {data.get('author')} at {str(data.get('commit') or '')[:12]}"
    if event == "room.changed":
        people = ", ".join(str(p) for p in data.get("people") or []) or "nobody"
        state = f"open, {people} editing" if data.get("open") else "closed"
        return f"{data.get('path')} {state}{', unsaved draft' if data.get('unsaved') else ''}"
    if event in ("reset", "dropped"):
        return str(data.get("reason", ""))
    if event == "relay.state":
        state = "reachable" if data.get("reachable") else "unreachable"
        return f"upstream {data.get('upstream')} {state}{' (paused)' if data.get('paused') else ''}"
    if event == "sweep.finished":
        return (
            f"sweep {'in step' if data.get('in_step') else 'found problems'}, {data.get('findings')} findings"
        )
    if event == "hub.leader":
        return f"{data.get('replica')} {'is now' if data.get('leader') else 'is no longer'} the leader"
    if event == "fleet.changed":
        return f"{data.get('path')}: {len(data.get('entries') or [])} entries changed{cause}"
    return ""
