"""How long a lease may last: the bounds a claim's ``lease_s`` is checked against.

Kept apart from :mod:`sync.leases` (the lease store, which loads the write
buffer) so the CLI's ``next --lease-s`` option can name them without loading
the write path on every read (canon/ADR-033).
"""

from __future__ import annotations

__all__ = ["DEFAULT_LEASE_S", "MAX_LEASE_S"]

DEFAULT_LEASE_S = 900
"""Seconds a lease lasts when the claim does not say (15 minutes)."""
MAX_LEASE_S = 86_400
"""The longest lease a claim or heartbeat may ask for (a day): an agent that vanishes frees its
task within this, whatever it asked."""
