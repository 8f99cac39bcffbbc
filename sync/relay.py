"""The relay loop: deliver a dev hub's accepted events to its upstream hub, exactly once (ADR-018).

A thread (every step blocks: SQLite, HTTP) that, in acceptance order, sends
queued events in batches to ``POST {upstream}/events?each=true`` and records
each event's answer: stored upstream -> ``sent``, applied upstream ->
``confirmed``, refused -> ``parked`` with the upstream's reason. Events already
sent are sent again (the same key and body, so the upstream answers
``duplicate`` with their state) until the upstream has applied them.

Exactly once rests on the upstream's buffer, which never forgets a key
(ADR-019): resending after a crash on either side is always safe.

Failures: a network error, a 5xx or a 429 waits with full-jitter exponential
backoff (1 s doubling, capped at 60 s) or the ``Retry-After`` the upstream
asked for, then resends the same batch. A 401/403 pauses the relay with a clear
message and keeps every event; the token is read again before each attempt, so
writing a new token file resumes it at once (the same token is tried again once
per backoff cap, in case the upstream's side was fixed). Any other 4xx for a whole batch
is narrowed down by halving the batch until the one event the upstream refuses
is parked with its answer.

Replicas (canon/ADR-052): on a hub whose state is on PostgreSQL every replica runs
this loop, but only the leader's sends or renews anything; the others wait.

Leases (ADR-032, ADR-037): a claim made here is relayed as its ``task.claim``
event, and the upstream holds it under its default lease from when it arrived;
heartbeats here make no event. So the relay also keeps the upstream's lease in
step with this hub's: at most once per ``renew_every`` seconds it asks
``POST {upstream}/tasks/{ref}/heartbeat`` (no event, no commit upstream) for each
live lease whose claim the upstream has stored and whose end moved here since it
last did (at most :data:`RENEWALS_PER_ROUND`, the longest unrenewed first), with
``lease_s`` = the seconds left here. Any number of heartbeats here between two
rounds make one request (coalesced). A 409 (the upstream no longer holds it for
that actor) is logged and not asked again until the lease
here moves again; a network error or 5xx ends the round and the next one tries.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import random
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

from sync.errors import SyncError
from sync.leases import MAX_LEASE_S
from sync.relay_queue import RelayedLease, RelayItem, RelayQueue, RelayState

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from sync.leader import Leader

__all__ = ["RENEWALS_PER_ROUND", "Relay", "TokenSource", "backoff_delay", "retry_after"]

log = logging.getLogger(__name__)


def backoff_delay(
    attempt: int, base: float = 1.0, cap: float = 60.0, rand: Callable[[], float] = random.random
) -> float:
    """Full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
    return float(rand() * min(cap, base * 2 ** min(attempt, 30)))


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds asked for by a ``Retry-After`` header (delta seconds or an HTTP date), else None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


@dataclass(frozen=True, slots=True)
class TokenSource:
    """The upstream token: from a file (read again before every attempt, so replacing the file
    takes effect without a restart), else a fixed value (``STATEHUB_UPSTREAM_TOKEN``)."""

    value: str | None = None
    file: Path | None = None

    def read(self) -> str | None:
        if self.file is not None:
            try:
                text = self.file.read_text(encoding="utf-8").strip()
            except OSError:
                text = ""
            if text:
                return text
        return self.value


RENEWALS_PER_ROUND = 100
"""At most this many lease renewals a round, so a round never holds up the events for long."""


class _Pause(SyncError):
    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class _Transient(SyncError):
    def __init__(self, message: str, wait: float | None = None) -> None:
        super().__init__(message)
        self.wait = wait


class _Refused(SyncError):
    """A 4xx (not 401/403/429) for the whole batch."""


class Relay:
    def __init__(
        self,
        queue: RelayQueue,
        upstream: str,
        token: TokenSource,
        *,
        batch: int = 1000,
        base: float = 1.0,
        cap: float = 60.0,
        poll: float = 0.2,
        confirm_poll: float = 0.5,
        timeout: float = 60.0,
        renew_every: float = 1.0,
        leader: Leader | None = None,
    ) -> None:
        self.queue = queue
        self.leader = leader
        """Only the leader sends and renews (canon/ADR-052); None: this process always does."""
        self.upstream = upstream.rstrip("/")
        self.token = token
        self.batch_size = batch
        self.base = base
        self.cap = cap
        self.poll = poll
        self.confirm_poll = confirm_poll
        """Between rounds of asking the upstream about sent events it has not applied yet."""
        self._client = httpx.Client(timeout=timeout)
        self._stop = threading.Event()
        self.wake = threading.Event()
        """Set when events were accepted here, so the relay sends them at once."""
        self._thread = threading.Thread(target=self._run, name="statehub-relay", daemon=True)
        self._failures = 0
        self._refused_token: str | None = None
        self._confirm_after = 0
        self._paused_at = 0.0
        self.renew_every = renew_every
        """Seconds between rounds of relaying lease renewals (see the module docstring)."""
        self._renew_at = 0.0
        self._renewed: dict[str, float] = {}
        """claim key -> the lease end here last relayed (or refused) upstream."""

    def start(self) -> None:
        self.queue.set_status(upstream=self.upstream, reachable=None, paused=None, last_error=None)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self.wake.set()
        self._thread.join(timeout=30)
        self._client.close()

    # the loop ----------------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                wait = self.step()
            except Exception:  # the relay must outlive any one bad answer
                log.exception("relay step failed; retrying")
                wait = self._fail("internal error in the relay, see the hub log")
            if wait > 0:
                self._sleep(wait)

    def _sleep(self, seconds: float) -> None:
        """Wait, but wake early on stop, on new events (when not backing off), or a new token."""
        deadline = time.monotonic() + seconds
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            if self._refused_token is not None and self.token.read() != self._refused_token:
                return
            if self._failures == 0 and self._refused_token is None and self.wake.wait(min(left, 0.5)):
                self.wake.clear()
                return
            self._stop.wait(min(left, 0.5))

    def step(self) -> float:
        """One send: queued events first, else sent ones to confirm. Returns seconds to wait.

        A replica that does not lead sends nothing and asks again after ``poll`` seconds."""
        if self.leader is not None and not self.leader.is_leader:
            return self.poll
        if self._refused_token is not None and self.token.read() == self._refused_token:
            left = self._paused_at + self.cap - time.monotonic()
            if left > 0:  # the same refused token: ask again once per cap, not in a storm
                return left
        self.queue.enqueue_new()
        if time.monotonic() >= self._renew_at:
            self._renew_at = time.monotonic() + self.renew_every
            self.renew_leases()
        items = self.queue.batch(RelayState.QUEUED, self.batch_size)
        if not items:  # ask about sent events, a batch at a time round the whole list
            items = self.queue.batch(RelayState.SENT, self.batch_size, after=self._confirm_after)
            self._confirm_after = items[-1].seq if len(items) == self.batch_size else 0
            if not items:
                return self.poll
        try:
            self._deliver(items)
        except _Pause as pause:
            self._refused_token = self.token.read()
            self._paused_at = time.monotonic()
            self.queue.set_status(reachable=True, paused=str(pause), last_error=str(pause))
            log.error("%s", pause)
            self._failures = 0
            return self.cap
        except _Transient as error:
            return self._fail(str(error), error.wait)
        if self._failures or self._refused_token is not None:
            log.info("relay to %s resumed", self.upstream)
        self._failures = 0
        self._refused_token = None
        self.queue.set_status(reachable=True, paused=None, last_error=None)
        # events the upstream stored but has not applied yet: ask again soon, not in a busy loop
        if items[0].state is RelayState.QUEUED:
            return 0.0
        return self.confirm_poll if self._confirm_after == 0 else 0.0

    def _fail(self, message: str, asked: float | None = None) -> float:
        self._failures += 1
        wait = asked if asked is not None else backoff_delay(self._failures - 1, self.base, self.cap)
        self.queue.set_status(reachable=False, last_error=message, retry_in_s=round(wait, 3))
        log.warning("relay to %s failed (%s); retrying in %.1f s", self.upstream, message, wait)
        return wait

    # lease renewals ----------------------------------------------------------------------------

    def renew_leases(self) -> int:
        """One round of lease renewals upstream (see the module docstring); how many it renewed."""
        now = time.time()
        leases = self.queue.relayed_leases(now)
        live = {lease.claim_key for lease in leases}
        self._renewed = {key: end for key, end in self._renewed.items() if key in live}
        due = [lease for lease in leases if lease.expires_at - self._renewed.get(lease.claim_key, 0.0) >= 1.0]
        # those whose end upstream comes first (never renewed: the claim's default), at most a round's worth
        due.sort(key=lambda lease: self._renewed.get(lease.claim_key, 0.0))
        renewed = 0
        for lease in due[:RENEWALS_PER_ROUND]:
            left = min(MAX_LEASE_S, round(lease.expires_at - time.time()))
            if left < 1:
                continue
            status, said = self._renew(lease, left)
            if status is None or status == 429 or status >= 500:
                log.info("relaying the lease on %s upstream failed (%s); next round", lease.ref, said)
                break
            self._renewed[lease.claim_key] = lease.expires_at
            if status == 200:
                renewed += 1
            else:
                log.warning(
                    "the upstream did not renew %s's lease on %s (claim %s): %s %s",
                    lease.actor,
                    lease.ref,
                    lease.claim_key,
                    status,
                    said,
                )
        return renewed

    def _authorization(self) -> dict[str, str]:
        """The upstream token's header, read afresh each request (the file may be replaced); none
        without a token."""
        token = self.token.read()
        return {"Authorization": f"Bearer {token}"} if token else {}

    def _renew(self, lease: RelayedLease, lease_s: int) -> tuple[int | None, str]:
        """(the upstream's status or None when unreachable, what it said) for one renewal."""
        headers = self._authorization()
        try:
            response = self._client.post(
                f"{self.upstream}/tasks/{lease.ref}/heartbeat",
                json={"actor": lease.actor, "lease_s": lease_s},
                headers=headers,
            )
        except httpx.HTTPError as error:
            return None, f"{type(error).__name__}: {error}"
        return response.status_code, "" if response.status_code == 200 else _error_text(response)

    # one batch ---------------------------------------------------------------------------------

    def _deliver(self, items: Sequence[RelayItem]) -> None:
        try:
            answers = self._post(items)
        except _Refused as refused:
            if len(items) == 1:
                self.queue.record(parked={items[0].key: f"upstream refused it: {refused}"})
                return
            half = len(items) // 2
            self._deliver(items[:half])
            self._deliver(items[half:])
            return
        sent: list[str] = []
        confirmed: list[str] = []
        parked: dict[str, str] = {}
        for item, answer in zip(items, answers, strict=True):
            result, state = answer.get("result"), answer.get("state")
            if result == "rejected" or state == "rejected":
                parked[item.key] = f"upstream rejected it: {answer.get('reason') or 'no reason given'}"
            elif state == "applied":
                confirmed.append(item.key)
            elif result in ("accepted", "duplicate"):
                sent.append(item.key)
            else:
                parked[item.key] = f"upstream answered {answer!r}, which this hub does not understand"
        self.queue.record(sent=sent, confirmed=confirmed, parked=parked)
        for key, reason in parked.items():
            log.warning("relay parked event %s: %s", key, reason)

    def _post(self, items: Sequence[RelayItem]) -> list[dict[str, Any]]:
        headers = self._authorization()
        try:
            response = self._client.post(
                f"{self.upstream}/events",
                params={"each": "true"},
                json=[item.body for item in items],
                headers=headers,
            )
        except httpx.HTTPError as error:
            raise _Transient(
                f"upstream {self.upstream} unreachable: {type(error).__name__}: {error}"
            ) from None
        status = response.status_code
        if status in (401, 403):
            said = (
                "refused the upstream token (401)"
                if status == 401
                else "the upstream token may not send events (403)"
            )
            raise _Pause(
                f"relay paused: upstream {self.upstream} {said}: {_error_text(response)}; "
                "every event is kept. "
                "Put a valid token in the upstream token file (or set STATEHUB_UPSTREAM_TOKEN and restart)",
                status,
            )
        if status == 429 or status >= 500:
            raise _Transient(
                f"upstream answered {status}: {_error_text(response)}",
                retry_after(response.headers.get("Retry-After")),
            )
        if status >= 400:
            raise _Refused(f"{status}: {_error_text(response)}")
        try:
            results = response.json()["results"]
        except (ValueError, KeyError, TypeError):
            raise _Transient(f"upstream answered {status} without per-event results") from None
        if not isinstance(results, list) or len(results) != len(items):
            raise _Transient("upstream answered a different number of results than events sent")
        return [r if isinstance(r, dict) else {} for r in results]


def _error_text(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    if isinstance(body, dict) and "error" in body:
        return str(body["error"])[:500]
    return str(body)[:300]
