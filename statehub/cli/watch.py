"""``statehub watch``: follow the hub's change stream (``GET /events/stream``, canon/ADR-038) in a terminal.

The stream is read over HTTP from a running server, this home's (its address is in
``server.json``, statehub/servermark.py) or any hub given by ``--url`` /
``$STATEHUB_URL``, sending ``$STATEHUB_TOKEN`` as a bearer token when set. Server-sent
events are parsed by httpx-sse. When the connection ends (the hub restarts, the
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
import sys
import time
from typing import TYPE_CHECKING, Any

import click

from statehub.cli._context import handle_errors, load_settings
from statehub.cli._output import JSON_SCHEMA_VERSION, clean, say
from statehub.errors import BadRequest, Unavailable, error_for_status

if TYPE_CHECKING:
    from collections.abc import Iterator

    import httpx

__all__ = ["describe", "watch"]

RETRY_S = (0.5, 1.0, 2.0, 5.0)
"""Waits before connecting again after a lost connection, the last one repeated."""

CONNECT_TIMEOUT_S = 10.0


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
    from httpx_sse import SSEError, connect_sse

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
                with connect_sse(client, "GET", f"{base}/events/stream", params=query) as source:
                    _refused(source.response)
                    connected, failures = True, 0
                    for sse in source.iter_sse():
                        data = json.loads(sse.data) if sse.data else None
                        if sse.event == "dropped":  # the hub ends this stream; the next one replays
                            reason = data.get("reason") if isinstance(data, dict) else None
                            say(
                                (f"the hub ended the stream ({reason}); connecting again", "dim"), file=_err()
                            )
                            break
                        message_id = int(sse.id) if sse.id and sse.id.isdigit() else None
                        if message_id is not None:
                            last = message_id
                        yield message_id, sse.event, data
            except (httpx.TransportError, SSEError) as error:
                if not connected and isinstance(error, httpx.ConnectError):
                    raise Unavailable(f"cannot reach the hub at {base}: {error}") from None
                note = f"connection to {base} lost ({error.__class__.__name__}); connecting again"
                say((note, "dim"), file=_err())
            wait = RETRY_S[min(failures, len(RETRY_S) - 1)]
            failures += 1
            time.sleep(wait)


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
    sys.stdout.write(
        clean(f"{ident:>7} {stamp} {event:<16} {repo or '-':<14} {describe(event, data)}") + "\n"
    )
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
    if event in ("reset", "dropped"):
        return str(data.get("reason", ""))
    if event == "relay.state":
        state = "reachable" if data.get("reachable") else "unreachable"
        return f"upstream {data.get('upstream')} {state}{' (paused)' if data.get('paused') else ''}"
    if event == "sweep.finished":
        return (
            f"sweep {'in step' if data.get('in_step') else 'found problems'}, {data.get('findings')} findings"
        )
    if event == "fleet.changed":
        return f"{data.get('path')}: {len(data.get('entries') or [])} entries changed{cause}"
    return ""
