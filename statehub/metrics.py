"""The hub's Prometheus metrics (``GET /metrics``, ADR-035).

Each app has its own ``CollectorRegistry`` (:class:`HubMetrics`, made by
``create_app`` and handed to its :class:`statehub.hub.Hub`), never the library's
global one, so several hubs in one process (the tests) do not collide. A hub
opened by a CLI command has none (``Hub.metrics`` is None) and counts nothing. Two kinds of metric live there:

- counters and histograms updated where things happen: events by state
  (intake, write-back), write-back duration (one repo's pass), index duration
  per repo (``Hub.refresh``), index lag per repo (the watcher: a file's change
  to the cache showing it) and HTTP request duration by route template, method
  and status (:func:`http_metrics_middleware`);
- gauges read at scrape time from what the hub holds now
  (:class:`StateCollector`): the cache's counts, the write buffer, the relay
  queue, the watcher, the rooms, the fleet registries.

docs/architecture.md "Metrics" lists every family with its type, labels and
meaning; tests/statehub/test_metrics.py checks that list against a scrape.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import TYPE_CHECKING, Any

from litestar.enums import ScopeType
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import generate_latest
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from registry import unmet_gate_items
from statehub.cache.fleet_index import registry_from_rows
from statehub.cache.schema import FILE_ERRORS, REPOS, SOURCE_FILES, TASKS, WORKPLANS
from workplans import WorkloadState

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator

    from litestar.types import ASGIApp, Message, Receive, Scope, Send
    from prometheus_client.metrics import Histogram as HistogramType

    from statehub.events import EventDesk
    from statehub.watcher import RepoWatcher
    from sync.leader import Leader
    from sync.rooms import Rooms

__all__ = [
    "CONTENT_TYPE",
    "DURATION_BUCKETS",
    "SWEEP_BUCKETS",
    "UNMATCHED_ROUTE",
    "HubMetrics",
    "StateCollector",
    "http_metrics_middleware",
]

CONTENT_TYPE = "text/plain; version=0.0.4"
"""The classic text exposition format every Prometheus scrapes (the framework adds ``charset=utf-8``)."""
DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""Seconds: from a cached read (about a millisecond) to a slow write-back in a large repo."""
SWEEP_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)
"""Seconds: from one small local repo to a fleet of repos behind slow remotes."""
UNMATCHED_ROUTE = "unmatched"
"""The ``route`` label of a request without a route template: raw paths never become labels.
(Litestar runs app middleware once a route matched, so an unknown path is not timed at all.)"""

# No ``*_created`` series (a family per counter and histogram saying when it was made): the hub has
# no use for them. Process-wide: the library keeps this switch global.
disable_created_metrics()  # type: ignore[no-untyped-call]


class HubMetrics:
    """The hub's registry and the metrics updated where things happen.

    Every method is safe from any thread (the library locks each child) and costs
    a dictionary lookup and a lock: cheap enough for the request path.
    """

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.events = Counter(
            "statehub_events",
            "Events by what happened to them: accepted (stored by intake), duplicate, rejected "
            "(refused by intake or by write-back), applied (in a file, committed, visible), "
            "waited (a write-back pass left them pending, counted at each such pass).",
            ["state"],
            registry=self.registry,
        )
        self.writeback_seconds = Histogram(
            "statehub_writeback_duration_seconds",
            "Seconds one write-back pass took in one repo (files written, committed), re-index excluded.",
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.index_seconds = Histogram(
            "statehub_index_duration_seconds",
            "Seconds re-indexing one repo took (a refresh: after a file change, an event, a request).",
            ["repo"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.index_lag_seconds = Histogram(
            "statehub_index_lag_seconds",
            "Seconds from a file's change on disk (its inode change time) to the cache showing it.",
            ["repo"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self.http_seconds = Histogram(
            "statehub_http_request_duration_seconds",
            "Seconds from a request's arrival to its answer's last byte, by route template, method, status.",
            ["route", "method", "status"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )
        self._http_children: dict[tuple[str, str, int], HistogramType] = {}
        self.stream_subscribers = Gauge(
            "statehub_stream_subscribers",
            "Clients subscribed to GET /events/stream now.",
            registry=self.registry,
        )
        self.stream_drops = Counter(
            "statehub_stream_drops",
            "Stream subscribers dropped because more messages waited for them than the hub keeps "
            "(STATEHUB_STREAM_QUEUE); each got a final dropped message.",
            registry=self.registry,
        )

        self.sweeps = Counter(
            "statehub_sweeps",
            "Sweeps the server ran (POST /sweeps, the schedule) by how they ended: finished (every "
            "repo swept) or failed (stopped before the end).",
            ["outcome"],
            registry=self.registry,
        )
        self.sweep_seconds = Histogram(
            "statehub_sweep_duration_seconds",
            "Seconds one sweep the server ran took, from its start to its last repo.",
            buckets=SWEEP_BUCKETS,
            registry=self.registry,
        )
        self.repo_sweeps = Counter(
            "statehub_repo_sweeps",
            "Repos swept by the server, by outcome: in_step, not_in_step (a person must act), "
            "error (the repo's sweep failed unexpectedly).",
            ["outcome"],
            registry=self.registry,
        )

    def count_sweep(self, outcome: str, seconds: float) -> None:
        """A sweep the server ran ended (``finished`` or ``failed``) after ``seconds``."""
        self.sweeps.labels(outcome).inc()
        self.sweep_seconds.observe(seconds)

    def count_repo_sweep(self, swept: Any) -> None:
        """One repo's sweep ended (a ``statehub.sweep.RepoSweep``)."""
        outcome = "error" if isinstance(swept.error, str) else "in_step" if swept.in_step else "not_in_step"
        self.repo_sweeps.labels(outcome).inc()

    def count_events(self, state: str, amount: int) -> None:
        """Add ``amount`` events that reached ``state`` (nothing when 0)."""
        if amount:
            self.events.labels(state).inc(amount)

    def observe_http(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method, status)
        child = self._http_children.get(key)
        if child is None:
            child = self._http_children[key] = self.http_seconds.labels(route, method, str(status))
        child.observe(seconds)

    def exposition(self) -> bytes:
        """Every family in the text format (:data:`CONTENT_TYPE`, UTF-8)."""
        return generate_latest(self.registry)

    def watch(self, collector: Collector) -> Callable[[], None]:
        """Register ``collector``; the answer unregisters it (the app's lifespan calls it on leaving)."""
        self.registry.register(collector)
        return lambda: self.registry.unregister(collector)


class StateCollector(Collector):
    """Gauges read at scrape time from what the hub holds now (docs/architecture.md "Metrics").

    One cache connection with a handful of grouped counts, the buffer's counts,
    the relay queue's status, the rooms in memory and every fleet registry's
    workloads: a scrape costs a few milliseconds, whatever the hub's size.
    """

    def __init__(
        self, desk: EventDesk, watcher: RepoWatcher | None, rooms: Rooms | None, leader: Leader | None = None
    ) -> None:
        self.desk = desk
        self.watcher = watcher
        self.rooms = rooms
        self.leader = leader

    def describe(self) -> Iterable[Metric]:
        return []  # families depend on what the hub holds; nothing to check at registration

    def collect(self) -> Iterator[Metric]:
        yield from self._cache()
        yield from self._buffer()
        yield from self._relay()
        yield from self._claims()
        yield from self._live()
        yield from self._fleet()
        yield from self._sweeps()

    def _sweeps(self) -> Iterator[Metric]:
        from statehub.sweep import last_sweeps

        hub = self.desk.hub
        try:
            registered = {r.slug for r in hub.repos()}
        except ValueError:  # a half-saved hub.toml: health says so
            registered = set()
        stamps = [
            (slug, _epoch(entry.last_in_step_at))
            for slug, entry in sorted(last_sweeps(hub.settings).items())
            if slug in registered and entry.last_in_step_at is not None
        ]
        yield _by(
            "statehub_sweep_last_in_step_timestamp_seconds",
            "When a sweep (the server's or statehub sweep's) last left a repo in step with its remote "
            "(Unix time); no series for a repo never swept in step.",
            "repo",
            stamps,
        )

    def _cache(self) -> Iterator[Metric]:
        hub = self.desk.hub
        with hub.engine.connect() as conn:
            repos = int(conn.execute(select(func.count()).select_from(REPOS)).scalar_one())
            workplans = conn.execute(
                select(WORKPLANS.c.status, func.count()).group_by(WORKPLANS.c.status)
            ).all()
            tasks = conn.execute(select(TASKS.c.status, func.count()).group_by(TASKS.c.status)).all()
            errors = conn.execute(select(FILE_ERRORS.c.repo, func.count()).group_by(FILE_ERRORS.c.repo)).all()
        yield _gauge("statehub_repos", "Repos in the cache (registered and indexed).", repos)
        yield _by(
            "statehub_workplans",
            "Workplans in the cache by status.",
            "status",
            [(r[0], r[1]) for r in workplans],
        )
        yield _by("statehub_tasks", "Tasks in the cache by status.", "status", [(r[0], r[1]) for r in tasks])
        yield _by(
            "statehub_file_errors",
            "Files the index could not read or that break a rule, by repo.",
            "repo",
            [(r[0], r[1]) for r in errors],
        )
        try:
            listed = hub.repos()
        except ValueError:  # a half-saved hub.toml: health says so; the gauge shows no repo stopped
            listed = []
        from statehub.health import writes_stopped  # not at the top: health imports the hub

        stopped = writes_stopped(hub, listed)
        failing = set(self.desk.applier.failing)
        problems = [
            (slug, len(stopped.get(slug, [])) + (slug in failing))
            for slug in sorted({r.slug for r in listed})
        ]
        yield _by(
            "statehub_repo_write_problems",
            "Problems that stop writes in a repo now (its git state, a failing write-back); 0 when none.",
            "repo",
            problems,
        )
        forge = self.desk.applier.forge
        unpushed = dict(forge.unpushed) if forge is not None else {}
        yield _by(
            "statehub_forge_unpushed_commits",
            "Commits in a repo the forge has not taken yet, with forge sync on (canon/ADR-053); 0 when none.",
            "repo",
            [
                (slug, unpushed[slug].commits if slug in unpushed else 0)
                for slug in sorted({r.slug for r in listed})
            ],
        )

    def _buffer(self) -> Iterator[Metric]:
        counts = self.desk.buffer.counts()
        yield _gauge(
            "statehub_events_pending",
            "Events in the write buffer not yet applied or rejected.",
            counts.pending,
        )
        oldest = self.desk.buffer.oldest_pending_at()
        yield _gauge(
            "statehub_events_oldest_pending_age_seconds",
            "Seconds since the oldest pending event was accepted; 0 when none waits.",
            _age(oldest),
        )

    def _claims(self) -> Iterator[Metric]:
        with self.desk.leases.reading() as tx:
            live = len(tx.live_refs(time.time()))
        yield _gauge(
            "statehub_claims_active", "Tasks held under a lease that has not run out (ADR-032).", live
        )

    def _relay(self) -> Iterator[Metric]:
        from statehub.events.relaying import relay_status  # not at the top: it imports the hub

        status = relay_status(self.desk)  # None without an upstream: every relay gauge is 0 then
        yield _gauge(
            "statehub_relay_pending",
            "Events queued for the upstream hub, not yet confirmed.",
            status.pending if status else 0,
        )
        yield _gauge(
            "statehub_relay_oldest_pending_age_seconds",
            "Seconds the oldest unconfirmed relayed event has waited; 0 when none.",
            (status.oldest_pending_age_s or 0.0) if status else 0.0,
        )
        yield _gauge(
            "statehub_relay_parked",
            "Events the upstream refused for good (parked).",
            status.parked if status else 0,
        )
        yield _gauge(
            "statehub_relay_upstream_up",
            "1 when the last try reached the upstream hub; 0 when it failed, is paused or there is none.",
            1 if status is not None and status.reachable and status.paused is None else 0,
        )

    def _live(self) -> Iterator[Metric]:
        watcher = self.watcher
        yield _gauge(
            "statehub_watcher_up",
            "1 when the file watcher runs; 0 when it stopped (or the hub runs without watching).",
            1 if watcher is not None and watcher.alive else 0,
        )
        rooms = list(self.rooms.rooms.values()) if self.rooms is not None else []
        yield _gauge("statehub_rooms_open", "CRDT editing rooms open in memory.", len(rooms))
        yield _gauge(
            "statehub_leader",
            "1 while this process leads the run-once work (run-out leases, the relay, scheduled "
            "sweeps; ADR-052): always on files, the holder of the advisory lock on PostgreSQL.",
            1 if self.leader is None or self.leader.is_leader else 0,
        )
        yield _gauge(
            "statehub_room_clients", "Clients connected to CRDT rooms.", sum(len(r.members) for r in rooms)
        )
        yield CounterMetricFamily(
            "statehub_change_log_lost",
            "Changes this process could not store in the change log (logged; not streamed): a full "
            "disk, or PostgreSQL unreachable through every retry of the append (canon/ADR-050).",
            value=self.desk.hub.changes_lost,
        )

    def _fleet(self) -> Iterator[Metric]:
        by_state: dict[tuple[str, str], int] = {}
        unmet: list[tuple[str, str, int]] = []
        with self.desk.hub.engine.connect() as conn:
            found = conn.execute(
                select(SOURCE_FILES.c.repo, SOURCE_FILES.c.path).where(SOURCE_FILES.c.kind == "fleet")
            ).all()
            broken = {
                (r.repo, r.path)
                for r in conn.execute(select(FILE_ERRORS.c.repo, FILE_ERRORS.c.path).distinct())
            }
            for slug, path in found:
                if (slug, path) in broken:
                    continue  # the file error says it; its workloads are not known
                for workload in registry_from_rows(conn, slug, path).workloads:
                    key = (slug, workload.state.value)
                    by_state[key] = by_state.get(key, 0) + 1
                    if workload.state is WorkloadState.MIGRATED:
                        unmet.append((slug, workload.name, len(unmet_gate_items(workload))))
        states = GaugeMetricFamily(
            "statehub_fleet_workloads",
            "Fleet workloads by registry repo and state.",
            labels=["repo", "state"],
        )
        for (slug, state), count in sorted(by_state.items()):
            states.add_metric([slug, state], count)
        yield states
        gates = GaugeMetricFamily(
            "statehub_fleet_gate_unmet",
            "Promotion gate items still missing for each migrated workload (0: it may be promoted).",
            labels=["repo", "workload"],
        )
        for slug, name, count in unmet:
            gates.add_metric([slug, name], count)
        yield gates


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _by(name: str, documentation: str, label: str, rows: list[tuple[Any, Any]]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, documentation, labels=[label])
    for key, count in sorted((str(k), int(v)) for k, v in rows):
        family.add_metric([key], count)
    return family


def _epoch(stamp: str) -> int:
    """Unix seconds of a sweep stamp (``%Y-%m-%dT%H:%M:%SZ``, UTC); 0 for a bad one."""
    try:
        return int(dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC).timestamp())
    except ValueError:
        return 0


def _age(stamp: str | None) -> float:
    """Seconds since a buffer stamp (``%Y-%m-%dT%H:%M:%S.%fZ``, UTC); 0 for None or a bad stamp."""
    if stamp is None:
        return 0.0
    try:
        then = dt.datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
    except ValueError:
        return 0.0
    return max(0.0, (dt.datetime.now(dt.UTC) - then).total_seconds())


def http_metrics_middleware(metrics: HubMetrics) -> Callable[[ASGIApp], ASGIApp]:
    """ASGI middleware timing every HTTP request into ``statehub_http_request_duration_seconds``.

    The ``route`` label is the matched route's template (``/tasks/{ref:str}``), or
    :data:`UNMATCHED_ROUTE`; never the raw path, so the label's values stay as few
    as the hub's routes. WebSockets are not timed.
    """

    def middleware(app: ASGIApp) -> ASGIApp:
        async def timed(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != ScopeType.HTTP:
                await app(scope, receive, send)
                return
            started = time.perf_counter()
            status = 500

            async def sending(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                await send(message)

            try:
                await app(scope, receive, sending)
            finally:
                route = scope.get("path_template") or UNMATCHED_ROUTE
                metrics.observe_http(route, scope["method"], status, time.perf_counter() - started)

        return timed

    return middleware
