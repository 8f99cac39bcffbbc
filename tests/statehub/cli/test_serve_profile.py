"""``statehub serve --profile fleet`` is the fleet profile whole: its durable state on PostgreSQL too.

Found by review16b: ``--profile fleet`` without ``STATEHUB_PROFILE`` in the environment changed the
profile after the settings were read, so the defaults derived from it when reading
(``STATEHUB_STATE_URL``: the cache's database on a fleet hub) stayed the dev profile's. Two such
replicas on one PostgreSQL each kept a write buffer of its own in its data dir (their events,
leases and claims unseen by the other) and both led, while everything else said "fleet".
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from typing import TYPE_CHECKING

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.statehub.hubprocess import _free_port

if TYPE_CHECKING:
    from pathlib import Path


@pytest.mark.postgres
def test_serve_profile_fleet_keeps_its_state_in_the_cache_database(
    tmp_path: Path, postgres_database: str
) -> None:
    home = tmp_path / "home"
    env = {name: value for name, value in os.environ.items() if not name.startswith("STATEHUB_")}
    env |= {"STATEHUB_HOME": str(home), "STATEHUB_WATCH": "0", "STATEHUB_DATABASE_URL": postgres_database}
    subprocess.run(
        [sys.executable, "-m", "statehub", "token", "init"], env=env, check=True, capture_output=True
    )
    port = _free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [sys.executable, "-m", "statehub", "serve", "--profile", "fleet", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert server.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/state/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        engine = create_engine(postgres_database)
        try:
            with engine.connect() as conn:
                stores = conn.execute(
                    text("SELECT store FROM statehub_state.migration WHERE version = 1 ORDER BY store")
                ).scalars()
                assert {"buffer", "changes", "rooms", "sessions"} <= set(stores)
        finally:
            engine.dispose()
        assert not (home / "data" / "buffer.sqlite3").exists()
    finally:
        server.terminate()
        server.wait(timeout=30)
