"""Who may start a sweep and what each token reads of one (``/sweeps``, canon/ADR-045).

Starting a sweep needs ``admin`` on every repo it names, hub-wide when it names none: a token
scoped to a repo sweeps that repo only. A repo-scoped token reads the results of its repos only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.statehub.sweeping import follow_sweep

if TYPE_CHECKING:
    from tests.statehub.auth.conftest import SecuredHub


def test_admin_per_named_repo_starts_a_sweep_and_a_scoped_reader_sees_its_repos_only(
    secured: SecuredHub,
) -> None:
    client = secured.client
    hub_admin = secured.bearer(secured.token("boss", "admin"))
    alpha_admin = secured.bearer(secured.token("ann", "admin", ("alpha",)))
    writer = secured.bearer(secured.token("wes", "write"))
    alpha_reader = secured.bearer(secured.token("rae", "read", ("alpha",)))

    assert client.post("/sweeps", json={"repos": ["alpha"]}).status_code == 401
    refused = client.post("/sweeps", json={"repos": ["alpha"]}, headers=writer)
    assert refused.status_code == 403 and "admin" in refused.json()["error"], refused.text
    for body in ({}, {"repos": ["beta"]}, {"repos": ["alpha", "beta"]}):
        answer = client.post("/sweeps", json=body, headers=alpha_admin)
        assert answer.status_code == 403, (body, answer.text)
    assert client.get("/sweeps", headers=writer).json()["sweeps"] == []  # nothing was queued

    mine = client.post("/sweeps", json={"repos": ["alpha"]}, headers=alpha_admin)
    assert mine.status_code == 202, mine.text
    assert mine.json()["requested_by"] == "ann"
    assert (
        follow_sweep(lambda path: client.get(path, headers=writer), mine.json()["id"])["state"] == "finished"
    )

    everything = client.post("/sweeps", json={}, headers=hub_admin).json()
    whole = follow_sweep(lambda path: client.get(path, headers=hub_admin), everything["id"])
    assert [r["repo"] for r in whole["repos"]] == ["alpha", "beta", "gamma"]
    seen = follow_sweep(lambda path: client.get(path, headers=alpha_reader), everything["id"])
    assert seen["targets"] == ["alpha"] and [r["repo"] for r in seen["repos"]] == ["alpha"]
    assert seen["totals"]["repos"] == 1
    listed = client.get("/sweeps", headers=alpha_reader).json()["sweeps"]
    assert [run["targets"] for run in listed] == [["alpha"], ["alpha"]]
    latest = client.get("/sweeps/latest", headers=alpha_reader).json()
    assert [r["repo"] for r in latest["repos"]] == ["alpha"] and latest["totals"]["repos"] == 1
