"""The durable stores on PostgreSQL (canon/ADR-046) against a bare psycopg floor.

Usage: .venv/bin/python bench/state_pg.py [--ops 2000] [--rounds 3]
       [--postgres-url postgresql+psycopg://postgres@127.0.0.1:5432/postgres]

Per round, in a fresh database: ``RoomStore.append`` (what a room does before it broadcasts
an edit) and ``SessionStore.find`` (every cookie request), each timed against the floor of the
same SQL sent bare over one autocommit psycopg connection to the same schema, with the same
durability (``synchronous_commit=off``, as the stores run). Prints per round
the store's and the floor's microseconds an operation and their ratio, then the median ratio
and the spread over the rounds.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from _databases import DEFAULT_POSTGRES_URL, cache_url
from biscuit_auth import KeyPair

from statehub.auth.revocation import RevocationList
from statehub.auth.sessions import SessionStore, _key
from statehub.auth.tokens import mint
from statehub.auth.verify import TokenVerifier
from sync._durable_pg import PgState
from sync.room_store import RoomStore
from sync.seed import seed_doc

if TYPE_CHECKING:
    from collections.abc import Callable

UPDATE = bytes(range(64))  # an edit of a few characters is tens of bytes


def _pair(ops: int, store: Callable[[], object], floor: Callable[[], object]) -> tuple[float, float]:
    """Microseconds an operation of ``store`` and of ``floor``, run in alternating blocks of 50 so
    a burst of load from elsewhere falls on both alike."""
    spent = [0.0, 0.0]
    for _block in range(max(1, ops // 50)):
        for side, run in enumerate((store, floor)):
            start = time.perf_counter()
            for _ in range(50):
                run()
            spent[side] += time.perf_counter() - start
    done = max(1, ops // 50) * 50
    return spent[0] / done * 1e6, spent[1] / done * 1e6


def one_round(url: str, ops: int, tmp: Path) -> dict[str, tuple[float, float]]:
    state = PgState(url)
    found: dict[str, tuple[float, float]] = {}
    with RoomStore(state) as rooms, state.connect(wait_for_flush=False) as bare:
        rooms.begin("d", "", seed_doc(""))
        found["room append"] = _pair(
            ops,
            lambda: rooms.append("d", UPDATE),
            lambda: bare.execute("INSERT INTO room_update (doc, update_blob) VALUES (%s, %s)", ("d", UPDATE)),
        )
    root = KeyPair()
    text = mint(root, "ada", "read").to_base64()
    token = TokenVerifier(root.public_key, RevocationList(tmp / "revoked.txt")).verify(text)
    with SessionStore(state) as sessions, state.connect(wait_for_flush=False) as bare:
        session_id = sessions.create(text, token)
        key = _key(session_id)
        found["session find"] = _pair(
            ops,
            lambda: sessions.find(session_id),
            lambda: bare.execute(
                "SELECT sealed, actor, revocation_ids, created, expires FROM session WHERE key = %s", (key,)
            ).fetchone(),
        )
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--ops", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL)
    args = parser.parse_args()
    ratios: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for round_no in range(1, args.rounds + 1):
            with cache_url(args.postgres_url, Path(tmp)) as url:
                for name, (store, floor) in one_round(url, args.ops, Path(tmp)).items():
                    ratios.setdefault(name, []).append(store / floor)
                    ratio = store / floor
                    print(
                        f"round {round_no} {name:13} store {store:6.1f} us floor {floor:6.1f} us {ratio:.2f}x"
                    )
    for name, values in ratios.items():
        print(
            f"{name:13} median {statistics.median(values):.2f}x of the bare psycopg floor "
            f"(spread {min(values):.2f}-{max(values):.2f}x over {len(values)} rounds)"
        )


if __name__ == "__main__":
    main()
