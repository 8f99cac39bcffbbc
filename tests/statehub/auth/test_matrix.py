"""The token matrix: rights x repos x expiry x attenuation chains, against the real app.

A small model of the contract (statehub/auth/contract.py) predicts each answer:
401 when any block's expiry has passed, else 403 unless the minted right covers
the operation and every block's limits allow it, else success. Runs on both
cache backends through the ``secured`` fixture.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from statehub.auth.contract import RIGHTS, includes
from statehub.auth.tokens import attenuate, mint
from tests.statehub.auth.conftest import REPOS, SecuredHub

NOW = dt.datetime.now(dt.UTC)
PAST = NOW - dt.timedelta(hours=3)
"""Minting or narrowing 'at PAST' with a 1h ttl gives a token that expired two hours ago."""


@dataclass(frozen=True)
class Limits:
    right: str | None
    repos: tuple[str, ...]
    expiry: str | None  # None | "past" | "future"

    @property
    def expired(self) -> bool:
        return self.expiry == "past"

    def allows(self, operation: str, repo: str | None) -> bool:
        if self.right is not None and not includes(self.right, operation):
            return False
        return not self.repos or operation == "read" or repo in self.repos


repo_sets = st.lists(st.sampled_from(REPOS), unique=True, max_size=2).map(tuple)
expiries = st.sampled_from([None, "past", "future"])
minted = st.builds(Limits, right=st.sampled_from(RIGHTS), repos=repo_sets, expiry=expiries)
narrowing = st.builds(
    Limits, right=st.none() | st.sampled_from(RIGHTS), repos=repo_sets, expiry=expiries
).filter(lambda limits: limits.right is not None or limits.repos or limits.expiry is not None)
requests = st.sampled_from(RIGHTS).flatmap(
    lambda op: st.tuples(
        st.just(op), st.sampled_from(REPOS) if op in ("write", "edit") else st.none() | st.sampled_from(REPOS)
    )
)


def _ttl(expiry: str | None) -> tuple[dt.timedelta | None, dt.datetime | None]:
    if expiry is None:
        return None, None
    return dt.timedelta(hours=1), PAST if expiry == "past" else NOW


def _send(hub: SecuredHub, token: str, operation: str, repo: str | None) -> int:
    headers = hub.bearer(token)
    if operation == "read":
        return hub.client.get("/tasks", params={"repo": repo} if repo else None, headers=headers).status_code
    if operation == "write":
        event = {"repo": repo, "actor": "agt-matrix"}
        return hub.client.post("/probe/events", json=[event], headers=headers).status_code
    if operation == "edit":
        return hub.client.post(f"/probe/save/{repo}", headers=headers).status_code
    if repo is None:
        path = str(hub.client.app.state.hub.repo("alpha").path)
        return hub.client.post("/repos", json={"path": path}, headers=headers).status_code
    return hub.client.post(f"/repos/{repo}/refresh", headers=headers).status_code


@hypothesis_settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(base=minted, chain=st.lists(narrowing, max_size=3), request=requests)
def test_token_matrix(
    secured: SecuredHub, base: Limits, chain: list[Limits], request: tuple[str, str | None]
) -> None:
    operation, repo = request
    ttl, at = _ttl(base.expiry)
    token = mint(secured.root, "agt-matrix", base.right, base.repos, ttl, at).to_base64()
    for limits in chain:
        ttl, at = _ttl(limits.expiry)
        token = attenuate(token, secured.root.public_key, limits.repos, limits.right, ttl, at).to_base64()

    blocks = [Limits(None, base.repos, base.expiry), *chain]
    if any(b.expired for b in blocks):
        expected = 401
    elif includes(base.right, operation) and all(b.allows(operation, repo) for b in blocks):
        expected = 200
    else:
        expected = 403

    written_before = len(secured.written)
    status = _send(secured, token, operation, repo)
    assert (status if status >= 400 else 200) == expected, (base, chain, operation, repo, status)
    if expected != 200:
        assert len(secured.written) == written_before
