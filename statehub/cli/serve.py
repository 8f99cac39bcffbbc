"""``statehub serve``: run the hub's HTTP server."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import click

from statehub.cli._context import HubCommandError, load_settings
from statehub.cli._output import say
from statehub.errors import HubError
from statehub.settings import PROFILES, Settings

if TYPE_CHECKING:
    import uvicorn
    from litestar import Litestar

    from statehub.stream import Broadcaster


@click.command()
@click.option("--host", default=None, help="Address to bind (default 127.0.0.1).")
@click.option("--port", default=None, type=int, help="Port to bind (default 8750).")
@click.option("--profile", type=click.Choice(PROFILES), default=None, help="dev (laptop) or fleet (server).")
def serve(host: str | None, port: int | None, profile: str | None) -> None:
    """Serve the API and web UI.

    Example: statehub serve --host 127.0.0.1 --port 8750
    """
    from statehub.app import create_app

    settings = load_settings(profile)
    settings = settings.with_overrides(host=host or settings.host, port=port or settings.port)
    try:
        app = create_app(settings)
    except HubError as error:
        raise HubCommandError(error) from None
    auth = "tokens required" if app.state.auth.required else "open, no tokens (loopback only)"
    say(f"State Hub ({settings.profile}, {auth}) on http://{settings.host}:{settings.port}/")
    run_server(app, settings)


def run_server(app: Litestar, settings: Settings) -> None:
    """Run ``app`` with uvicorn until it stops: how ``serve`` and ``make dev-hub`` run the hub.

    A startup that fails with a hub or library error (the lifespan's ``startup_error``: an
    unreadable hub.toml, a store written by a newer State Hub) is raised as
    :class:`HubCommandError`, one line and its exit code, instead of uvicorn's traceback.
    """
    import uvicorn

    server = uvicorn.Server(server_config(app, settings))
    stop = server.handle_exit

    def handle_exit(sig: int, frame: Any) -> None:
        """On SIGINT/SIGTERM, end the change streams first (a final ``dropped`` message each):
        uvicorn waits for every open response before it stops, and a stream never ends by itself."""
        stream: Broadcaster | None = app.state.get("stream")
        if stream is not None:
            stream.end_all("the hub is stopping; reconnect with Last-Event-ID")
        stop(sig, frame)

    server.handle_exit = handle_exit  # type: ignore[method-assign]
    quiet = _StartupFailure(app)
    uvicorn_log = logging.getLogger("uvicorn.error")
    uvicorn_log.addFilter(quiet)
    try:
        server.run()
    except SystemExit:  # uvicorn's exit when the lifespan failed to open something
        failed: HubError | None = app.state.get("startup_error")
        if failed is not None:
            raise HubCommandError(failed) from None
        raise
    finally:
        uvicorn_log.removeFilter(quiet)


class _StartupFailure(logging.Filter):
    """Hides uvicorn's report of a startup that failed with a hub error (the lifespan's whole
    traceback, then "Application startup failed"): ``serve`` says it in one line with its exit
    code instead, as every command does. Any other failure is logged as uvicorn logs it."""

    def __init__(self, app: Litestar) -> None:
        super().__init__()
        self.app = app

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno < logging.ERROR or self.app.state.get("startup_error") is None


def server_config(app: Litestar, settings: Settings) -> uvicorn.Config:
    """How ``serve`` runs uvicorn. No access log, and tokens redacted from what is logged:
    a WebSocket upgrade may carry its token in the URL. Forwarded headers are read only from
    ``STATEHUB_TRUSTED_PROXIES``."""
    import uvicorn

    from statehub.auth.redact import install_redaction

    # Forwarded headers only from the proxies named in STATEHUB_TRUSTED_PROXIES (ADR-040): they
    # decide whether a request came over TLS, and so whether a session cookie is Secure.
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,
        proxy_headers=bool(settings.trusted_proxies),
        forwarded_allow_ips=list(settings.trusted_proxies) or None,
        timeout_graceful_shutdown=10,  # then open responses are cancelled (a stream a client holds)
    )
    install_redaction()
    return config
