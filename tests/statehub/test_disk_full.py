"""A full disk under the write buffer (issue 12, item 1): events are answered 507 with the reason
and ``Retry-After``, health says ``degraded``, the hub recovers by itself once there is room, and
nothing accepted is lost. On a real server whose data dir is a small tmpfs."""

from __future__ import annotations

import os
import subprocess
import time
from typing import TYPE_CHECKING, Any

import pytest

from tests.statehub.eventfixtures import event, plan_repo, trailer_counts
from tests.statehub.hubprocess import HubProcess

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from tests.gitfixtures import GitRepo


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs, or a skip saying why there cannot be one here."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root, and these tests do not run as root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip() or done.returncode}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True, check=False)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[HubProcess]:
    process = HubProcess(tmp_path / "hub-home", tmp_path / "hub.log")
    yield process
    process.stop()


def _fill(disk: Path) -> Path:
    """Write a file until the disk has no byte left; the file."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 16, 1 << 12, 1 << 9, 1):
            try:
                while True:
                    os.write(fd, b"\0" * size)
            except OSError:
                continue
    finally:
        os.close(fd)
    return filler


def _batch(start: int, count: int) -> list[dict[str, Any]]:
    return [
        event(f"FULL{start + n:05d}", kind="progress.note", note=f"note {start + n} " + "x" * 400)
        for n in range(count)
    ]


def test_a_full_disk_answers_507_degrades_health_and_recovers_losing_nothing(
    server: HubProcess, small_disk: Path, make_repo: Callable[[str], GitRepo]
) -> None:
    repo = plan_repo(make_repo)
    server.start(STATEHUB_DATA_DIR=str(small_disk / "data"))
    assert server.call("POST", "/repos", json={"path": str(repo.root)}).status_code == 201
    accepted: list[str] = []
    first = _batch(0, 10)
    assert server.call("POST", "/events", json=first).status_code == 202
    accepted += [e["key"] for e in first]
    server.wait_settled()

    filler = _fill(small_disk)
    refused: list[dict[str, Any]] = []
    for number in range(1, 200):  # the WAL may still have room for a few: send until it has none
        batch = _batch(number * 50, 50)
        answer = server.call("POST", "/events", json=batch)
        if answer.status_code == 202:
            accepted += [e["key"] for e in batch]
            continue
        assert answer.status_code == 507, answer.text
        refused = batch
        break
    assert refused, "the buffer never ran out of room"
    body = answer.json()
    assert body["status_code"] == 507
    assert "is full" in body["error"] and "nothing of it was kept" in body["error"]
    assert answer.headers["Retry-After"] == "10"
    assert server.call("GET", f"/events/{refused[0]['key']}").status_code == 404  # not half stored
    health = server.call("GET", "/state/health").json()
    assert health["status"] == "degraded"
    assert any("is full" in problem for problem in health["problems"]), health["problems"]

    filler.unlink()  # someone makes room; nobody restarts anything
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        health = server.call("GET", "/state/health").json()
        if health["status"] == "ok":
            break
        time.sleep(0.1)
    assert health["status"] == "ok" and health["problems"] == [], health
    again = server.call("POST", "/events", json=refused)
    assert again.status_code == 202, again.text
    accepted += [e["key"] for e in refused]
    server.wait_settled()
    listed = server.call("GET", "/events?state=applied&limit=1000").json()
    assert listed["total"] == len(accepted)
    assert trailer_counts(repo) == dict.fromkeys(accepted, 1)
