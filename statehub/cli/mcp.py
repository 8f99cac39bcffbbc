"""``statehub mcp``: the hub as an MCP server over stdio, for a coding agent on this host (ADR-034).

The agent's MCP client starts ``statehub mcp`` and speaks JSON-RPC on its stdin and
stdout; the hub's logs go to stderr. Reads answer from the cache, which it keeps up
with file changes like a server does (unless a server on the same hub home already
watches: the cache is shared); writes are events in the same write buffer a running
server uses, applied at once unless that server is applying (then it applies them within
a second). Litestar is never imported here.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from statehub.cli._context import handle_errors, load_settings, setup_error

if TYPE_CHECKING:
    from statehub.events import EventDesk
    from statehub.hub import Hub
    from statehub.watcher import RepoWatcher

__all__ = ["mcp"]


@click.command("mcp")
@click.option(
    "--actor", help="Who the agent acts as in every event (default: $STATEHUB_ACTOR, else your login name)."
)
@click.option(
    "--config",
    "print_config",
    is_flag=True,
    help="Print the JSON snippet an MCP client needs to start this server, and exit.",
)
@click.option("--url", help="With --config: the snippet for a hub's /mcp over HTTP at this URL instead.")
@handle_errors
def mcp(actor: str | None, print_config: bool, url: str | None) -> None:
    """Serve the hub's MCP tools and resources over stdio (JSON-RPC on stdin/stdout).

    Example: statehub mcp --config   (then paste the snippet into the agent's MCP settings)
    """
    from statehub.events.intake import default_actor

    acting = actor or default_actor()
    if print_config:
        click.echo(json.dumps(config_snippet(acting, url), indent=2))
        return
    if url is not None:
        raise click.UsageError("--url goes with --config")
    serve_stdio(acting)


def config_snippet(actor: str, url: str | None) -> dict[str, Any]:
    """``{"mcpServers": {"statehub": ...}}``: a stdio server with the actor (and ``STATEHUB_HOME``
    when set), or
    (``url``) a streamable HTTP server sending the token from ``$STATEHUB_TOKEN`` and the actor
    in ``X-Statehub-Actor`` (what an open hub acts as; a token's own actor wins over it)."""
    if url is not None:
        server: dict[str, Any] = {
            "type": "http",
            "url": url,
            # The token says who acts on a hub with tokens; an open hub (no tokens) acts as the
            # X-Statehub-Actor header, else as the server's own login: agents sharing one actor
            # would each renew the others' claims instead of being refused (ADR-034).
            "headers": {"Authorization": "Bearer ${STATEHUB_TOKEN}", "X-Statehub-Actor": actor},
        }
    else:
        env = {"STATEHUB_ACTOR": actor}
        home = os.environ.get("STATEHUB_HOME")
        if home:  # otherwise the server finds the same per-user directories this command does
            env["STATEHUB_HOME"] = str(Path(home).resolve())
        server = {
            "type": "stdio",
            "command": shutil.which("statehub") or str(Path(sys.argv[0]).resolve()),
            "args": ["mcp"],
            "env": env,
        }
    return {"mcpServers": {"statehub": server}}


class LocalAccess:
    """The hub opened by this process; the event desk opened at the first write."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self._desk: EventDesk | None = None

    def desk(self) -> EventDesk:
        if self._desk is None:
            from statehub.events import EventDesk

            self._desk = EventDesk(self.hub)
        return self._desk

    def close(self) -> None:
        if self._desk is not None:
            self._desk.close()


def _watch(hub: Hub) -> RepoWatcher | None:
    """Follow file changes while serving, unless a server on this hub home already does (it keeps
    the shared cache fresh) or watching is off (``STATEHUB_WATCH=0``); call in the event loop.
    Sets ``hub.watching``, what the answers' freshness says: this watcher alive, or that server
    running."""
    from statehub.servermark import running_server
    from statehub.watcher import RepoWatcher

    server = running_server(hub.settings)
    if not hub.settings.watch:
        return None
    if server is not None and server.watch:
        # answers say changes are followed while that server runs (as the CLI's reads say)
        hub.watching = lambda: (mark := running_server(hub.settings)) is not None and mark.watch
        return None
    watcher = RepoWatcher(hub)
    watcher.start()
    hub.watching = lambda: watcher.alive
    return watcher


def serve_stdio(actor: str) -> None:
    """Run the MCP server on stdin/stdout until the client closes stdin."""
    import anyio
    from mcp.server.stdio import stdio_server

    from statehub.auth.event_policy import LOCAL_COMMAND
    from statehub.hub import Hub
    from statehub.mcpserver import Caller, build_server, read_anything

    try:
        hub = Hub(load_settings())
    except ValueError as error:  # an unreadable hub.toml
        raise setup_error(error) from None
    caller = Caller(actor=actor, authorise=LOCAL_COMMAND, may_read=read_anything)
    with hub:
        access = LocalAccess(hub)
        server = build_server(access, lambda _ctx: caller)

        async def run() -> None:
            watcher = _watch(hub)
            try:
                async with stdio_server() as (read, write):
                    await server.run(read, write, server.create_initialization_options())
            finally:
                if watcher is not None:
                    await watcher.stop()

        try:
            anyio.run(run)
        except KeyboardInterrupt:  # pragma: no cover - a person pressing Ctrl-C
            pass
        finally:
            access.close()
