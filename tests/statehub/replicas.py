"""Several ``statehub serve --profile fleet`` replicas on one PostgreSQL, and the clients that load them.

Used by tests/statehub/test_replicas.py and bench/replicas.py (issue 16):

* :class:`Replicas`: N fleet processes on loopback, each a :class:`~tests.hubserver.HubServer`,
  on one home (the same-host case: one set of checkouts) or on a home each (separate clones of a
  bare remote); one PostgreSQL database for the cache and the durable state (``STATEHUB_DATABASE_URL``
  and ``STATEHUB_STATE_URL``: the write buffer, change log, leases and applier lock are in its state
  schema, canon/ADR-046 and ADR-049); one root key, and an admin token for the clients. ``kill(i)``
  is SIGKILL, ``restart(i)`` starts it again on its port; ``applying()`` and ``leader()`` say which
  replica holds the applier lock and which leads the run-once work (canon/ADR-052).
* :class:`RoundRobin`: a client that sends each request to the next replica, and to the one after
  when a replica does not answer (a killed one), resending the same body (same event keys).
* :class:`StreamReader`: one ``GET /events/stream`` subscriber in a thread, reconnecting with
  ``Last-Event-ID`` when its replica goes away (as an EventSource does); messages are counted whole by
  bench/stream.py's :class:`~bench.stream.Client`, the one SSE parser of the benches and tests.
* :func:`note_events`: events that each change their file (a progress note of its own, a new task),
  so "applied exactly once" is one ``Statehub-Event`` trailer per key.
"""

from __future__ import annotations

import itertools
import random
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from bench.stream import Client
from statehub.auth.keys import init_root_key, load_root_key
from statehub.auth.tokens import mint
from statehub.settings import Settings
from tests.hubserver import HubServer

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from statehub.changes import Stored

__all__ = [
    "Replicas",
    "RoundRobin",
    "StreamReader",
    "change_log",
    "note_events",
    "send_load",
    "with_resends",
]

RETRY_FOR_S = 90.0
"""Seconds a request is retried over the replicas before the client gives up: covers a replica's
restart on a loaded machine (a hub takes up to ~20 s to import and open there)."""


class Replicas:
    """``count`` fleet replicas; ``homes`` one home shared by all, or one home per replica.

    ``env`` adds variables to every replica. ``start()`` starts them all at once (the cache's setup
    lock and the state schema's migration lock let one create each, canon/ADR-054)."""

    def __init__(
        self,
        homes: Sequence[Path],
        database_url: str,
        count: int,
        *,
        env: dict[str, str] | None = None,
        logs: Path | None = None,
    ) -> None:
        if len(homes) not in (1, count):
            raise ValueError(f"give one home or {count}, not {len(homes)}")
        self.homes = [homes[0]] * count if len(homes) == 1 else list(homes)
        self.database_url = database_url
        self.env = {
            "STATEHUB_PROFILE": "fleet",
            "STATEHUB_DATABASE_URL": database_url,
            "STATEHUB_STATE_URL": database_url,
            "STATEHUB_STREAM_KEEPALIVE": "1",  # a reader's blocking read ends every second
        } | (env or {})
        key_file = self.homes[0] / "data" / "token-root.key"
        if not key_file.exists():
            init_root_key(key_file)
        for home in dict.fromkeys(self.homes):
            copy = home / "data" / "token-root.key"
            if not copy.exists():
                copy.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(key_file, copy)
        self.token = mint(load_root_key(key_file), "agt-replicas", "admin").to_base64()
        self.servers = [HubServer(home, env=self.env) for home in self.homes]
        self.refused_starts = 0
        """Restarts that exited for want of a PostgreSQL connection slot and were tried again."""
        for number, server in enumerate(self.servers):
            server.log = (logs or self.homes[0].parent) / f"replica-{number}.log"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @property
    def urls(self) -> list[str]:
        return [server.url for server in self.servers]

    def settings(self, number: int = 0) -> Settings:
        """The settings replica ``number`` runs with (for an in-process Hub over the same stores)."""
        return Settings.from_env({"STATEHUB_HOME": str(self.homes[number]), **self.env})

    def register(self, paths: Sequence[Path], number: int | None = None) -> None:
        """Register ``paths`` in-process, before the replicas start (``number``: that replica's home;
        None: every distinct home), as ``statehub repos add`` on the host would."""
        from statehub.hub import Hub

        seen: set[Path] = set()
        for each in [number] if number is not None else range(len(self.homes)):
            if self.homes[each] in seen:
                continue
            seen.add(self.homes[each])
            with Hub(self.settings(each)) as hub:
                for path in paths:
                    hub.register(path)

    def start(self) -> Replicas:
        """Launch every replica at once (one creates the cache, the others wait: canon/ADR-054); one
        PostgreSQL refused for want of connections is started again."""
        sizes = [self._log_size(number) for number in range(len(self.servers))]
        for server in self.servers:
            server.launch()
        for number, server in enumerate(self.servers):
            try:
                server.wait_ready()
            except RuntimeError:
                if not self._refused(number, sizes[number]):
                    raise
                self.refused_starts += 1
                self.restart(number)
        return self

    def kill(self, number: int) -> None:
        """SIGKILL replica ``number`` and reap it: no shutdown runs, its locks go with the process."""
        process = self.servers[number].process
        assert process is not None, f"replica {number} is not running"
        process.send_signal(signal.SIGKILL)
        process.wait(30)
        self.servers[number].process = None

    def applying(self, timeout: float = 10.0, *, among: Sequence[int] | None = None) -> int | None:
        """The replica holding the applier lock, watched for up to ``timeout`` seconds; None when no
        replica (of ``among``, default: any running one) was seen holding it.

        The locks are the state schema's advisory locks, one per repo (canon/ADR-049, ADR-054):
        ``pg_locks`` names the backend holding one, ``pg_stat_activity`` that session's client
        port, and ``/proc`` (Linux) the replica process owning the socket on that port."""
        from sync._durable_pg import STATE_SCHEMA, PgState

        wanted = set(range(len(self.servers)) if among is None else among)
        deadline = time.monotonic() + timeout
        with PgState(self.database_url).connect() as conn:
            while time.monotonic() < deadline:
                rows = conn.execute(  # each registered repo's lock (canon/ADR-054), named by its slug
                    "WITH k AS (SELECT hashtextextended(%s || slug, 0) AS k FROM public.repo) "
                    "SELECT a.client_port FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid, k "
                    "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
                    "AND l.classid::bigint = (k.k >> 32) & 4294967295 AND l.objid::bigint = k.k & 4294967295",
                    (f"{STATE_SCHEMA}:applier:",),
                ).fetchall()
                for (port,) in rows:
                    holder = self._owner_of_port(int(port)) if port is not None else None
                    if holder in wanted:
                        return holder
                time.sleep(0.002)
        return None

    def _owner_of_port(self, port: int) -> int | None:
        """The replica whose process has a TCP socket bound locally to ``port`` (a client's end)."""
        inodes: set[str] = set()
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            for line in Path(table).read_text().split("\n")[1:]:
                fields = line.split()  # sl local_address rem_address st ... uid timeout inode
                if len(fields) > 9 and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(f"socket:[{fields[9]}]")
        for number, server in enumerate(self.servers):
            if server.process is None:
                continue
            try:
                fds = list(Path(f"/proc/{server.process.pid}/fd").iterdir())
            except OSError:
                continue
            for fd in fds:
                try:
                    if str(fd.readlink()) in inodes:
                        return number
                except OSError:
                    continue
        return None

    def leader(self, among: Sequence[int] | None = None, timeout: float = 60.0) -> int:
        """The one replica of ``among`` (default: the running ones) that leads the run-once work
        (``GET /state/diagnostics`` ``hub.leader``, canon/ADR-052), waited for until exactly one does."""
        numbers = [n for n, s in enumerate(self.servers) if s.process is not None] if among is None else among
        deadline = time.monotonic() + timeout
        while True:
            leading = [n for n in numbers if self.leads(n)]
            if len(leading) == 1:
                return leading[0]
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"replicas {leading} of {list(numbers)} lead after {timeout:g} s, not one"
                )
            time.sleep(0.05)

    def leads(self, number: int) -> bool:
        """Whether replica ``number`` says it leads now."""
        return bool(self.leader_status(number)["leader"])

    def leader_status(self, number: int) -> dict[str, Any]:
        """Replica ``number``'s ``hub.leader``: ``leader``, ``since``, ``terms`` (a LeaderStatus)."""
        answer = httpx.get(
            f"{self.urls[number]}/state/diagnostics?probe=false", headers=self.headers, timeout=30
        )
        answer.raise_for_status()
        status: dict[str, Any] = answer.json()["hub"]["leader"]
        return status

    def restart(self, number: int, tries: int = 5) -> None:
        """Start replica ``number`` again on its port, over the same home and database. A start that
        exits because the PostgreSQL server has no connection slot left (``too many clients``: the
        server is shared, and ``max_connections`` is counted over every database) is tried again
        after 2 s, up to ``tries`` times in all, as a supervisor's restart policy would (``start()``
        does the same); :attr:`refused_starts` counts those."""
        server = self.servers[number]
        for attempt in range(tries):
            size = self._log_size(number)
            try:
                server.start()
                return
            except RuntimeError:
                if attempt == tries - 1 or not self._refused(number, size):
                    raise
            server.process = None
            self.refused_starts += 1
            time.sleep(2)

    def _log_size(self, number: int) -> int:
        log = self.servers[number].log
        return log.stat().st_size if log.exists() else 0

    def _refused(self, number: int, size: int) -> bool:
        """Whether replica ``number``'s log, from byte ``size`` on, says PostgreSQL had no slot left."""
        return b"too many clients" in self.servers[number].log.read_bytes()[size:]

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

    def pending(self) -> int:
        """Events still pending, summed over the replicas that answer ``/state/health``: 0 when no
        write buffer holds one, whether the replicas share one buffer or keep one each."""
        counts = []
        for url in self.urls:
            try:
                answer = httpx.get(f"{url}/state/health", headers=self.headers, timeout=30)
            except httpx.TransportError:
                continue
            answer.raise_for_status()
            counts.append(int(answer.json()["buffer"]["pending"]))
        assert counts, "no replica answers /state/health"
        return sum(counts)

    def settle(self, timeout: float = 120.0) -> None:
        """Wait until no event is pending (the appliers, whichever replica runs them, are done)."""
        deadline = time.monotonic() + timeout
        while (left := self.pending()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert left == 0, f"{left} events still pending after {timeout:g} s"

    def __enter__(self) -> Replicas:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()


class RoundRobin:
    """Each request to the next replica; one that does not answer (refused, reset, 502-504) is
    skipped and the same request goes to the next, for up to :data:`RETRY_FOR_S` seconds.
    Thread-safe: several threads may share it. Close it (or use it as a context manager)."""

    def __init__(self, urls: Sequence[str], headers: dict[str, str], timeout: float = 60.0) -> None:
        self.urls = list(urls)
        self.headers = headers
        self.timeout = timeout
        self.retries = 0
        """Requests sent again to another replica (a replica that did not answer)."""
        self._turn = itertools.count()
        self._lock = threading.Lock()
        self._http: httpx.Client | None = None

    def _client(self) -> httpx.Client:
        with self._lock:
            if self._http is None:  # one pool for every thread (httpx.Client is thread-safe)
                self._http = httpx.Client(headers=self.headers, timeout=self.timeout)
            return self._http

    def close(self) -> None:
        if self._http is not None:
            self._http.close()

    def __enter__(self) -> RoundRobin:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def next_replica(self) -> int:
        with self._lock:
            return next(self._turn) % len(self.urls)

    def request(self, method: str, path: str, *, first: int | None = None, **kwargs: Any) -> httpx.Response:
        """``method path`` on the next replica (``first``: on that one first); the answer."""
        start = self.next_replica() if first is None else first
        deadline = time.monotonic() + RETRY_FOR_S
        for attempt in itertools.count():
            url = self.urls[(start + attempt) % len(self.urls)]
            try:
                answer = self._client().request(method, f"{url}{path}", **kwargs)
            except httpx.TransportError:
                answer = None
            if answer is not None and answer.status_code not in (502, 503, 504):
                return answer
            if time.monotonic() > deadline:
                raise AssertionError(f"no replica answered {method} {path} in {RETRY_FOR_S:g} s")
            with self._lock:
                self.retries += 1
            time.sleep(0.05 if (attempt + 1) % len(self.urls) else 0.5)
        raise AssertionError("unreachable")

    def post_events(self, batch: list[dict[str, Any]], *, first: int | None = None) -> list[tuple[str, str]]:
        """``POST /events`` with ``batch``; (key, result) per event: accepted | duplicate | rejected."""
        answer = self.request("POST", "/events", json=batch, first=first)
        assert answer.status_code == 202, f"POST /events answered {answer.status_code}: {answer.text[:500]}"
        return [(item["key"], item["result"]) for item in answer.json()["results"]]


class StreamReader:
    """``GET /events/stream?since=SINCE`` on one replica, read in a thread into a
    :class:`bench.stream.Client` (whole messages: ``ids``, ``seen``, ``dropped``). When the replica goes
    away the reader reconnects every 0.2 s with ``Last-Event-ID`` (its last id), as an EventSource does;
    ``reconnects`` counts the streams it opened after the first."""

    def __init__(self, url: str, headers: dict[str, str], since: int = 0) -> None:
        self.url = url
        self.headers = headers
        self.client = Client()
        self.since = since
        self.reconnects = -1
        self.opened = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"stream-reader {url}", daemon=True)

    def start(self) -> StreamReader:
        self._thread.start()
        if not self.opened.wait(60):
            raise AssertionError(f"{self.url}/events/stream did not open in 60 s")
        return self

    def last(self) -> int:
        return self.client.ids[-1] if self.client.ids else self.since

    def _run(self) -> None:
        timeout = httpx.Timeout(10.0, read=5.0)  # keepalives come every second
        with httpx.Client(headers=self.headers, timeout=timeout) as http:
            while not self._stop.is_set():
                headers = {"Last-Event-ID": str(self.last())}
                try:
                    with http.stream("GET", f"{self.url}/events/stream", headers=headers) as answer:
                        if answer.status_code != 200:
                            time.sleep(0.2)
                            continue
                        self.reconnects += 1
                        self.opened.set()
                        self.client.rest = b""  # a message cut by the lost connection is not counted
                        for chunk in answer.iter_raw():
                            self.client.take(chunk, time.perf_counter())
                            if self._stop.is_set():
                                return
                except httpx.HTTPError:
                    pass
                time.sleep(0.2)

    def wait_for(self, last_id: int, timeout: float = 60.0) -> bool:
        """Wait until this reader has a message with id ``last_id`` or later; whether it does."""
        deadline = time.monotonic() + timeout
        while self.last() < last_id:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)


def change_log(settings: Settings, after: int = 0) -> list[Stored]:
    """Every message the hub's change log holds after id ``after``, in id order, read in-process from
    wherever these settings keep it (a file in the data dir, or the state schema once ported)."""
    from statehub.hub import Hub

    found: list[Stored] = []
    with Hub(settings) as hub:
        while page := hub.changes.after(after, 1000):
            found += page
            after = page[-1].id
    return found


def note_events(
    plans: Sequence[tuple[str, Sequence[str]]], count: int, *, prefix: str = "bench-load", seed: int = 16
) -> list[dict[str, Any]]:
    """``count`` events over ``plans`` ((workplan id, its task ids) each), every one changing its file
    whatever the order they are applied in: 90% progress notes of their own, 10% new tasks. Keys are
    ``<prefix>-<n>`` (bench/stream.py's ``Client.seen`` finds ``bench-<word>-<n>`` markers)."""
    rng = random.Random(seed)
    events: list[dict[str, Any]] = []
    for number in range(count):
        plan, tasks = rng.choice(plans)
        base = {
            "key": f"{prefix}-{number}",
            "workplan": plan,
            "actor": f"agt-{number % 7}",
            "at": "2026-12-01T19:00:00Z",
        }
        if rng.random() < 0.9:
            events.append(
                base | {"kind": "progress.note", "task": rng.choice(tasks), "note": f"step {number}"}
            )
        else:
            events.append(base | {"kind": "task.add", "task": f"T{100 + number}", "title": f"Added {number}"})
    return events


def with_resends(events: list[dict[str, Any]], share: float, *, seed: int = 16) -> list[dict[str, Any]]:
    """``events`` with a ``share`` of them sent again (an exact copy, same key) later in the list."""
    rng = random.Random(seed)
    out = list(events)
    for _ in range(round(len(events) * share)):
        position = rng.randrange(len(events))
        out.insert(rng.randrange(position + 1, len(out) + 1), dict(events[position]))
    return out


def send_load(
    client: RoundRobin,
    events: list[dict[str, Any]],
    *,
    batch: int = 20,
    threads: int = 3,
    on_batch: Callable[[int], None] | None = None,
) -> dict[str, list[str]]:
    """Post ``events`` in batches of ``batch`` from ``threads`` threads, each batch to the next replica;
    every result per key, in the order answered. ``on_batch(n)`` is called after the n-th batch."""
    batches = [events[i : i + batch] for i in range(0, len(events), batch)]
    results: dict[str, list[str]] = {}
    lock = threading.Lock()
    done = itertools.count(1)

    def work(lane: list[list[dict[str, Any]]]) -> None:
        for each in lane:
            answered = client.post_events(each)
            with lock:
                for key, result in answered:
                    results.setdefault(key, []).append(result)
                number = next(done)
            if on_batch is not None:
                on_batch(number)

    lanes = [batches[i::threads] for i in range(threads)]
    errors: list[BaseException] = []

    def guarded(lane: list[list[dict[str, Any]]]) -> None:
        try:
            work(lane)
        except BaseException as error:
            errors.append(error)
            raise

    workers = [threading.Thread(target=guarded, args=(lane,)) for lane in lanes]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    if errors:
        raise errors[0]
    return results
