"""What a browser session costs over a bearer token, in one run (ADR-040).

Two measurements, each beside its floor:

1. In process: authenticating by cookie (``SessionStore.find`` + verifying the
   unsealed token) against verifying the token alone (what a bearer request pays).
2. Over HTTP: a real fleet hub (``statehub serve`` in a subprocess, loopback),
   ``GET /auth/session`` sent with the cookie against the same request with
   ``Authorization: Bearer``, alternating request by request, sequential.

Target: the cookie path costs at most 1.5x the bearer path over HTTP.

    .venv/bin/python bench/sessions.py [--requests 500] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from statehub.auth.keys import init_root_key, load_root_key  # noqa: E402
from statehub.auth.revocation import RevocationList  # noqa: E402
from statehub.auth.sessions import SessionStore  # noqa: E402
from statehub.auth.tokens import mint  # noqa: E402
from statehub.auth.verify import TokenVerifier  # noqa: E402
from tests.hubserver import HubServer  # noqa: E402

if TYPE_CHECKING:
    from collections.abc import Callable

TARGET = 1.5


def _per_call_us(call: Callable[[], object], count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        call()
    return (time.perf_counter() - start) / count * 1e6


def in_process(base: Path, count: int) -> tuple[float, float]:
    init_root_key(base / "root.key")
    root = load_root_key(base / "root.key")
    text = mint(root, "ada", "write", ["ops"]).to_base64()
    verifier = TokenVerifier(root.public_key, RevocationList(base / "revoked.txt"))
    with SessionStore(base / "sessions.sqlite3") as store:
        session_id = store.create(text, verifier.verify(text))

        def by_cookie() -> None:
            found = store.find(session_id)
            assert found is not None
            verifier.verify(found.token)

        bearer = _per_call_us(lambda: verifier.verify(text), count)
        cookie = _per_call_us(by_cookie, count)
    return bearer, cookie


def over_http(base: Path, requests: int, rounds: int) -> tuple[float, float]:
    home = base / "home"
    init_root_key(home / "data" / "token-root.key")
    root = load_root_key(home / "data" / "token-root.key")
    token = mint(root, "ada", "write").to_base64()
    with (
        HubServer(home, env={"STATEHUB_PROFILE": "fleet"}) as server,
        httpx.Client(base_url=server.url) as client,
    ):
        signed = client.post("/auth/session", json={"token": token})
        assert signed.status_code == 201, signed.text
        cookie = {"Cookie": f"statehub_session={signed.headers['set-cookie'].split(';')[0].split('=', 1)[1]}"}
        bearer = {"Authorization": f"Bearer {token}"}
        client.cookies.clear()
        times: dict[str, list[float]] = {"bearer": [], "cookie": []}
        for _ in range(rounds * requests):  # alternate request by request: the machine's load hits both
            for name, headers in (("bearer", bearer), ("cookie", cookie)):
                start = time.perf_counter()
                answer = client.get("/auth/session", headers=headers)
                times[name].append(time.perf_counter() - start)
                assert answer.status_code == 200, answer.text
    return statistics.median(times["bearer"]) * 1000, statistics.median(times["cookie"]) * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="statehub-bench-sessions-") as tmp:
        base = Path(tmp)
        bearer_us, cookie_us = in_process(base, args.requests * args.rounds)
        print(
            f"in process: verify a token {bearer_us:.1f} us (floor); find session + verify {cookie_us:.1f} us"
        )
        print(f"  ratio {cookie_us / bearer_us:.2f}x")
        bearer_ms, cookie_ms = over_http(base, args.requests, args.rounds)
        ratio = cookie_ms / bearer_ms
        print(
            f"over HTTP, GET /auth/session median: bearer {bearer_ms:.2f} ms (floor); "
            f"cookie {cookie_ms:.2f} ms"
        )
        print(f"  ratio {ratio:.2f}x (target <= {TARGET}x): {'ok' if ratio <= TARGET else 'MISSED'}")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
