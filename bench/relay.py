"""Relay benchmark: 10,000 events buffered by a dev hub while its upstream (fleet) hub is down;
the time from the upstream coming up until every event is applied and committed upstream.

    .venv/bin/python bench/relay.py            # target: >= 500 events/s

Two real hub servers (``python -m statehub serve``) on free 127.0.0.1 ports, each under its own
STATEHUB_HOME with its own copy of a 74-repo synthetic corpus. The dev hub relays with
``STATEHUB_RELAY_BACKOFF_CAP=1`` (so its retry wait while the upstream was down is at most 1 s of
the measured time, not up to 60 s) and its default batch of 1,000 events. Exactly once is checked
by counting ``Statehub-Event`` trailers in the upstream's repos.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _events_corpus import make_corpus, make_events
from _hubs import count_trailers, free_port, start_hub

if TYPE_CHECKING:
    import subprocess

TARGET = 500.0


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    process.wait(timeout=60)


def _wait(check: Any, what: str, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.02)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--repos", type=int, default=74)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="statehub-bench-relay-") as tmp:
        root = Path(tmp)
        fleet_corpus = make_corpus(root / "fleet-repos", repos=args.repos)
        dev_corpus = make_corpus(root / "dev-repos", repos=args.repos)
        events, unique = make_events(dev_corpus, args.events, duplicates=0.0)
        fleet_port, dev_port = free_port(), free_port()
        fleet_url, dev_url = f"http://127.0.0.1:{fleet_port}", f"http://127.0.0.1:{dev_port}"
        fleet = start_hub(root / "fleet-home", fleet_port, root / "fleet.log")
        with httpx.Client(base_url=fleet_url, timeout=120) as client:
            for repo in fleet_corpus.repos:
                client.post("/repos", json={"path": str(repo)}).raise_for_status()
        _stop(fleet)  # the upstream is down from here on
        dev = start_hub(
            root / "dev-home",
            dev_port,
            root / "dev.log",
            STATEHUB_UPSTREAM=fleet_url,
            STATEHUB_RELAY_BACKOFF_CAP="1",
        )
        fleet = None
        try:
            with httpx.Client(base_url=dev_url, timeout=120) as dev_client:
                for repo in dev_corpus.repos:
                    dev_client.post("/repos", json={"path": str(repo)}).raise_for_status()
                for i in range(0, len(events), 500):
                    answer = dev_client.post("/events", json=events[i : i + 500])
                    if answer.status_code != 202:
                        raise SystemExit(
                            f"dev POST /events answered {answer.status_code}: {answer.text[:500]}"
                        )

                def relay() -> dict[str, Any]:
                    found: dict[str, Any] = dev_client.get("/state/health").json()["relay"]
                    return found

                _wait(lambda: relay()["counts"]["queued"] == unique, "the dev hub to queue every event")
                _wait(lambda: relay()["reachable"] is False, "the dev hub to find the upstream down")
                buffered = relay()
                fleet = start_hub(root / "fleet-home", fleet_port, root / "fleet.log")
                started = time.perf_counter()  # the upstream answers: it is up
                with httpx.Client(base_url=fleet_url, timeout=120) as fleet_client:

                    def upstream_done() -> bool:
                        buffer = fleet_client.get("/state/health").json()["buffer"]
                        return bool(
                            buffer["applied"] + buffer["rejected"] == unique and buffer["pending"] == 0
                        )

                    _wait(upstream_done, "the upstream to apply every event")
                    elapsed = time.perf_counter() - started
                    upstream_buffer = fleet_client.get("/state/health").json()["buffer"]
                _wait(
                    lambda: relay()["counts"]["confirmed"] == unique,
                    "the dev hub to see every event confirmed",
                )
                confirmed = time.perf_counter() - started
                final = relay()
        finally:
            _stop(dev)
            if fleet is not None:
                _stop(fleet)
        counts = count_trailers(fleet_corpus.repos)
    exactly_once = len(counts) == unique and set(counts.values()) == {1}
    rate = unique / elapsed
    print(f"events: {unique} buffered by the dev hub over {args.repos} repos while the upstream was down")
    print(f"dev relay while down: {buffered['pending']} pending, reachable={buffered['reachable']}")
    print(f"upstream buffer after the run: {upstream_buffer}")
    print(f"dev relay after the run: {final['counts']}")
    print(
        f"trailers upstream: {len(counts)} keys, {sum(counts.values())} trailers; "
        f"exactly once: {exactly_once}"
    )
    print(
        f"upstream up -> all applied and committed upstream: {elapsed:.2f} s; "
        f"dev saw all confirmed at {confirmed:.2f} s"
    )
    print(f"throughput: {rate:.0f} events/s (target >= {TARGET:.0f}; ratio {rate / TARGET:.2f}x)")
    ok = (
        exactly_once
        and upstream_buffer["rejected"] == 0
        and final["counts"]["parked"] == 0
        and rate >= TARGET
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
