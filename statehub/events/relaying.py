"""Wiring the upstream relay (``sync.relay``) into a hub: settings in, a running thread out."""

from __future__ import annotations

from typing import TYPE_CHECKING

import msgspec

from sync.relay import Relay, TokenSource

if TYPE_CHECKING:
    from statehub.events.service import EventDesk
    from sync.leader import Leader
    from sync.relay_queue import RelayStatus

__all__ = ["relay_status", "start_relay"]


def start_relay(desk: EventDesk, leader: Leader | None = None) -> Relay | None:
    """Start relaying accepted events upstream when the settings name an upstream; with replicas,
    only while ``leader`` leads (canon/ADR-052; None: always)."""
    settings = desk.hub.settings
    if settings.upstream is None or desk.relay_queue is None:
        return None
    token = TokenSource(settings.upstream_token, settings.upstream_token_path)
    relay = Relay(
        desk.relay_queue,
        settings.upstream,
        token,
        cap=settings.relay_backoff_cap,
        batch=settings.relay_batch,
        leader=leader,
    )
    desk.on_accepted.append(relay.wake.set)
    if leader is not None:
        leader.on_change.append(lambda leading: relay.wake.set() if leading else None)
    relay.start()
    return relay


def relay_status(desk: EventDesk) -> RelayStatus | None:
    """What ``/state/health`` and ``statehub buffer status`` show; None without an upstream.

    ``upstream`` is this hub's setting (the queue keeps what the relay loop last used).
    """
    if desk.relay_queue is None:
        return None
    return msgspec.structs.replace(desk.relay_queue.status(), upstream=desk.hub.settings.upstream)
