"""Follow a sweep the server runs in the background (``POST /sweeps`` answers 202 with its id)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    import httpx

__all__ = ["ENDED", "follow_sweep", "sweep_over_http"]

ENDED = ("finished", "failed")
FOLLOW_TIMEOUT = 120.0
"""Seconds a sweep may take before the test gives up on it: only a guard against a hung sweep,
never a timing assertion."""


def follow_sweep(get: Callable[[str], httpx.Response], sweep_id: str) -> dict[str, Any]:
    """Poll ``GET /sweeps/{id}`` until the sweep ended; its last answer."""
    deadline = time.monotonic() + FOLLOW_TIMEOUT
    while True:
        answer = get(f"/sweeps/{sweep_id}")
        assert answer.status_code == 200, answer.text
        run: dict[str, Any] = answer.json()
        if run["state"] in ENDED:
            return run
        assert time.monotonic() < deadline, f"sweep {sweep_id} did not end: {run}"
        time.sleep(0.05)


def sweep_over_http(
    post: Callable[..., httpx.Response], get: Callable[[str], httpx.Response], repos: list[str] | None = None
) -> dict[str, Any]:
    """``POST /sweeps`` (202), then follow it to its end; the ended sweep (``repos``, ``totals``)."""
    answer = post("/sweeps", json={"repos": repos or []})
    assert answer.status_code == 202, answer.text
    assert answer.headers["location"] == f"/sweeps/{answer.json()['id']}"
    return follow_sweep(get, answer.json()["id"])
