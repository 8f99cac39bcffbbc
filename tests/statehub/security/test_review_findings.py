"""ADR-022, findings of a fresh review of the trust boundaries, each tried against a real hub.

Every test here failed before its fix: the input, what the hub did, what it must do.
"""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING

import pytest

from tests.statehub.security.boundshub import Target, bounds_hub

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    yield from bounds_hub(tmp_path_factory.mktemp("review"))


# --- JSON nested deeper than the decoders go was a 500 (RecursionError) on typed bodies.

DEEP_ARRAYS = b"[" * 100_000 + b"]" * 100_000
DEEP_OBJECTS = b'{"a":' * 50_000 + b"1" + b"}" * 50_000
DEEP_WITH_NUL = b'{"a":' * 50_000 + b'"\\u0000"' + b"}" * 50_000
"""With a ``\\u0000`` escape the body is decoded by the input bounds check itself."""


@pytest.mark.parametrize("path", ["/repos", "/sweeps", "/events", "/events?each=true"])
@pytest.mark.parametrize("body", [DEEP_ARRAYS, DEEP_OBJECTS, DEEP_WITH_NUL], ids=["arrays", "objects", "nul"])
def test_deeply_nested_json_is_a_400_never_a_500(target: Target, path: str, body: bytes) -> None:
    answer = target.post_json(path, body)
    assert answer.status_code == 400, answer.text[:300]
    assert "error" in answer.json() or "detail" in answer.json()
    target.assert_untouched()


# --- A 15 MiB body holding a valid surrogate-pair escape was checked character by character
#     on the event loop: every other request waited about 3 s.


def test_a_big_body_does_not_hold_the_event_loop(target: Target) -> None:
    body = b'{"x":"\\ud83d\\ude00' + b"a" * (15 * 1024 * 1024) + b'"}'
    done = threading.Event()
    statuses: list[int] = []

    took: list[float] = []

    def send() -> None:
        started = time.monotonic()
        try:
            statuses.append(target.post_json("/events", body).status_code)
        finally:
            took.append(time.monotonic() - started)
            done.set()

    sender = threading.Thread(target=send)
    sender.start()
    slowest = 0.0
    try:
        while not done.is_set():
            started = time.monotonic()
            assert target.hub.call("GET", "/state/health").status_code == 200
            slowest = max(slowest, time.monotonic() - started)
            time.sleep(0.02)
    finally:
        sender.join(timeout=120)
    assert statuses and statuses[0] < 500
    # Held, the loop made every request wait out the whole check (about 3 s); free, a health
    # answer takes a fraction of the POST however loaded the machine is.
    bound = max(1.0, took[0] / 2)
    assert slowest < bound, f"/state/health waited {slowest:.2f} s while a {took[0]:.2f} s body check ran"
    target.assert_untouched()


# --- A hard link is a regular file whose bytes live at another name, maybe outside the repo:
#     the hub indexed and served it (a workplan), and the editor would open it (a manifest).

OUTSIDE_PLAN = (
    "+++\n"
    'id = "CUST-WP-0777"\n'
    'title = "Lives outside the repo"\n'
    'status = "active"\n'
    'owner = "someone-else"\n'
    "+++\n"
    "\n"
    "Secret text from outside the repo.\n"
)


def test_a_hard_linked_file_is_never_read(target: Target, tmp_path: Path) -> None:
    outside = tmp_path / "outside.md"
    outside.write_text(OUTSIDE_PLAN, encoding="utf-8")
    linked = target.repo.root / "workplans" / "CUST-WP-0777.md"
    os.link(outside, linked)
    try:
        answer = target.hub.call("POST", "/repos/the-custodian/refresh")
        assert answer.status_code == 200, answer.text[:300]
        assert target.hub.call("GET", "/workplans/CUST-WP-0777").status_code == 404
        assert "Secret text" not in target.hub.call("GET", "/workplans?limit=1000").text
        errors = target.hub.call("GET", "/repos/the-custodian").json()["errors"]
        assert any("CUST-WP-0777.md" in str(e) and "hard links" in str(e) for e in errors), errors
    finally:
        linked.unlink()
        target.hub.call("POST", "/repos/the-custodian/refresh")
    assert outside.read_text(encoding="utf-8") == OUTSIDE_PLAN
    target.assert_untouched()


def test_a_hard_linked_manifest_is_refused_by_the_editor(target: Target, tmp_path: Path) -> None:
    manifest = target.repo.root / "statehub.toml"
    assert not manifest.exists()
    outside = tmp_path / "outside.toml"
    outside.write_text(
        '[repo]\nslug = "the-custodian"\nprefixes = ["CUST"]\n# a secret outside the repo\n', encoding="utf-8"
    )
    os.link(outside, manifest)
    try:
        rooms = target.hub.call("GET", "/sync").json()["items"]
        room = next(r for r in rooms if r["doc"] == "the-custodian/statehub.toml")
        assert "hard links" in room.get("error", ""), room
        saved = target.hub.call("POST", "/sync/the-custodian/statehub.toml/save")
        assert saved.status_code == 400, saved.text[:300]
        assert "hard links" in saved.json()["error"]
    finally:
        manifest.unlink()
    target.assert_untouched()
