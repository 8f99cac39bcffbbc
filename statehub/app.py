"""``create_app(settings)``: a fresh hub app; its lifespan opens and closes every resource."""

from __future__ import annotations

from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING

from litestar import Litestar
from litestar.datastructures import State
from litestar.openapi.plugins import JsonRenderPlugin, SwaggerRenderPlugin, YamlRenderPlugin

from statehub.api import web
from statehub.api.canon import CanonController
from statehub.api.claims import ClaimController
from statehub.api.crosssite import CrossSitePolicy, crosssite_middleware
from statehub.api.deps import DEPENDENCIES
from statehub.api.diagnostics import DiagnosticsController
from statehub.api.errorshape import RouteTable, before_handler, exception_handlers
from statehub.api.events import EventController, StreamController
from statehub.api.fleet import FleetController
from statehub.api.health import HealthController
from statehub.api.inputbounds import inputbounds_middleware
from statehub.api.mcp import mcp_endpoint, open_mcp
from statehub.api.metrics import MetricsController
from statehub.api.openapi import ClosedStructSchemas, declare_security, openapi_config
from statehub.api.repos import RepoController
from statehub.api.search import SearchController
from statehub.api.signin import SignInController
from statehub.api.sweeps import SweepController
from statehub.api.sync import SyncController
from statehub.api.tasks import TaskController
from statehub.api.workplans import WorkplanController
from statehub.auth import AuthPolicy, token_guard
from statehub.auth.sessions import SESSION_FILE, SessionStore
from statehub.changes import leader_change
from statehub.claims import LeaseWorker
from statehub.collab import open_rooms
from statehub.errors import LIBRARY_ERRORS, HubError, as_hub_error
from statehub.events import ApplierWorker, EventDesk
from statehub.events.relaying import start_relay
from statehub.hub import Hub
from statehub.metrics import HubMetrics, StateCollector, http_metrics_middleware
from statehub.servermark import mark_server
from statehub.settings import Settings
from statehub.state_stores import leader_of, state_location
from statehub.stream import Broadcaster
from statehub.sweep.records import SWEEPS_FILE, SweepRecords
from statehub.sweep.scheduler import KEEP as SWEEPS_KEPT
from statehub.sweep.scheduler import Sweeper
from statehub.watcher import RepoWatcher

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

__all__ = ["SCHEMA_VIEWERS", "create_app"]

# /schema is Swagger UI from the hub's own static files (web/build.mjs copies them): it renders
# offline, and a page of the hub never loads code from a CDN. /schema/openapi.json and .yaml for tools.
SCHEMA_VIEWERS = [
    SwaggerRenderPlugin(
        path="/swagger",
        js_url="/static/schema/swagger-ui-bundle.js",
        css_url="/static/schema/swagger-ui.css",
        standalone_preset_js_url="/static/schema/swagger-ui-standalone-preset.js",
        favicon="<link rel='icon' href='data:,'>",
    ),
    JsonRenderPlugin(),
    YamlRenderPlugin(),
]


def create_app(settings: Settings | None = None) -> Litestar:
    settings = settings or Settings.from_env()
    auth = AuthPolicy.from_settings(settings)
    """Refuses (SetupError) a configuration that must not serve, e.g. fleet without a token key."""
    metrics = HubMetrics()  # this app's own registry (ADR-035): several apps in one process never collide

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        # Each resource joins the stack as soon as it is open: leaving, or failing to open
        # the next one, closes those already open, newest first.
        # A hub or library error while opening (an unreadable hub.toml, a store written by a
        # newer State Hub) is kept as ``startup_error``: ``statehub serve`` says it in one line.
        async with AsyncExitStack() as stack:
            try:
                hub = app.state.hub = stack.enter_context(Hub(settings, metrics=metrics))
                hub.freshness_memo.start()  # reads never wait for the stat walk of every repo (ADR-047)
                stack.callback(hub.freshness_memo.stop)
                # Who runs the run-once work (ADR-052); stopped after every worker that asks it.
                leader = app.state.leader = leader_of(settings)
                leader.on_change.append(lambda _leading: hub.announce([leader_change(leader.status())]))
                leader.start()
                stack.callback(leader.stop)
                hub.changes.prune()  # a log left for weeks shrinks before anyone replays it
                stream = app.state.stream = Broadcaster(
                    hub.changes,
                    queue=settings.stream_queue,
                    poll_s=settings.stream_poll_s,
                    capacity=settings.stream_subscribers,
                    per_actor=settings.stream_per_actor,
                    metrics=metrics,
                )
                await stream.start()
                stack.push_async_callback(stream.stop)
                if auth.required:  # browser sessions (ADR-040); an open hub has no sign-in
                    sessions = SessionStore(state_location(settings, SESSION_FILE))  # ADR-046: or PostgreSQL
                    app.state.sessions = stack.enter_context(sessions)
                app.state.rooms = await stack.enter_async_context(open_rooms(hub))
                watcher = app.state.watcher = RepoWatcher(hub)
                if settings.watch:
                    watcher.start()
                    hub.watching = lambda: watcher.alive  # answers say whether changes are followed
                    stack.push_async_callback(watcher.stop)
                    hub.on_repos_changed.append(watcher.repos_changed)
                stack.enter_context(mark_server(settings, watch=settings.watch))  # statehub doctor reads it
                desk = app.state.events = stack.enter_context(EventDesk(hub))
                app.state.mcp = await stack.enter_async_context(open_mcp(hub, desk))
                applier = ApplierWorker(desk)
                applier.start()
                stack.callback(applier.stop)
                leases = LeaseWorker(desk, leader=leader)  # releases run-out leases (ADR-032), leader only
                leases.start()
                stack.callback(leases.stop)
                relay = start_relay(desk, leader)  # sends upstream, leader only
                if relay is not None:
                    stack.callback(relay.stop)
                records = stack.enter_context(  # every replica answers GET /sweeps/{id} (ADR-052)
                    SweepRecords(state_location(settings, SWEEPS_FILE), keep=SWEEPS_KEPT)
                )
                sweeper = app.state.sweeper = Sweeper(  # ADR-045
                    desk, settings.sweep_every, leader=leader, records=records
                )
                sweeper.start()
                stack.callback(sweeper.stop)
                stack.callback(
                    metrics.watch(
                        StateCollector(desk, watcher if settings.watch else None, app.state.rooms, leader)
                    )
                )
            except (HubError, *LIBRARY_ERRORS) as error:
                app.state.startup_error = as_hub_error(error)
                raise
            yield

    routes = RouteTable()
    app = Litestar(
        route_handlers=[
            HealthController,
            SignInController,
            MetricsController,
            DiagnosticsController,
            RepoController,
            WorkplanController,
            TaskController,
            ClaimController,
            CanonController,
            SearchController,
            EventController,
            StreamController,
            SweepController,
            FleetController,
            SyncController,
            mcp_endpoint,
            *web.ROUTES,
        ],
        dependencies=DEPENDENCIES,
        # One error shape for the hub's errors, the framework's and bugs (docs/architecture.md "Errors").
        exception_handlers=exception_handlers(LIBRARY_ERRORS, settings.max_body_bytes, routes),
        before_request=before_handler(routes),
        guards=[token_guard],
        # Request timing first, so refusals are timed too (route templates only, ADR-035), then
        # cross-site checks (Host, Origin, JSON only), then size and character bounds (ADR-022).
        middleware=[
            http_metrics_middleware(metrics),
            crosssite_middleware(CrossSitePolicy.from_settings(settings)),
            inputbounds_middleware(settings.max_body_bytes),
        ],
        request_max_body_size=settings.max_body_bytes,
        state=State({"auth": auth}),
        lifespan=[lifespan],
        openapi_config=openapi_config(tokens=auth.verifier is not None, render_plugins=SCHEMA_VIEWERS),
        plugins=[ClosedStructSchemas()],
    )
    routes.fill(app)
    declare_security(app)
    return app
