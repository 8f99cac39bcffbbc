"""``statehub serve``: run the hub's HTTP server."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from statehub.cli._context import HubCommandError, setup_error
from statehub.cli._output import console
from statehub.errors import HubError
from statehub.settings import PROFILES, Settings

if TYPE_CHECKING:
    import uvicorn
    from litestar import Litestar


@click.command()
@click.option("--host", default=None, help="Address to bind (default 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port to bind (default 8750).")
@click.option("--profile", type=click.Choice(PROFILES), default=None, help="dev (laptop) or fleet (server).")
def serve(host: str | None, port: int | None, profile: str | None) -> None:
    """Serve the API and web UI.

    Example: statehub serve --host 127.0.0.1 --port 8750
    """
    import uvicorn

    from statehub.app import create_app

    try:
        settings = Settings.from_env()
    except ValueError as error:
        raise setup_error(error) from None
    settings = settings.with_overrides(
        host=host or settings.host, port=port or settings.port, profile=profile or settings.profile
    )
    try:
        app = create_app(settings)
    except HubError as error:
        raise HubCommandError(error) from None
    auth = "tokens required" if app.state.auth.required else "open, no tokens (loopback only)"
    console.print(f"State Hub ({settings.profile}, {auth}) on http://{settings.host}:{settings.port}/")
    uvicorn.Server(server_config(app, settings)).run()


def server_config(app: Litestar, settings: Settings) -> uvicorn.Config:
    """How ``serve`` runs uvicorn. No access log, and tokens redacted from what is logged:
    a WebSocket upgrade may carry its token in the URL."""
    import uvicorn

    from statehub.auth.redact import install_redaction

    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level="warning", access_log=False
    )
    install_redaction()
    return config
