"""Every request is authorised, item by item, on every path (ADR-016, ADR-021, ADR-022).

One real hub server process that requires tokens, three real git repos (alpha and
beta hold a fleet registry, gamma does not), tokens minted with the hub's root key.
A hypothesis test sends generated batches (mixed repos, actors and kinds, resends
of stored events, reused keys, in-batch duplicates, ``?each`` on and off) with
tokens of every right and scope, and checks against a small model of the policy
that nothing is stored the token does not cover, that nothing covered is refused,
and at the end that every commit in every repo carries only events the buffer
holds for that repo. Explicit tests pin the finding, the actor rule, write routes'
repo scope and the WebSocket close codes.
"""

from __future__ import annotations

import itertools
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from biscuit_auth import BiscuitBuilder, KeyPair
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pycrdt import Doc, create_sync_message
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from statehub.auth.keys import init_root_key, load_root_key
from statehub.auth.tokens import mint
from statehub.errors import BadRequest
from statehub.settings import Settings
from tests.gitfixtures import GitRepo, workplan_text
from tests.statehub.hubprocess import HubProcess

if TYPE_CHECKING:
    from collections.abc import Iterator

    import httpx

FLEET_EXAMPLE = Path(__file__).resolve().parents[2] / "registry" / "fleet_example.toml"
REPOS = ("alpha", "beta", "gamma")
FLEET_REPOS = ("alpha", "beta")
ACTORS = ("ann", "bob")
RANK = {"read": 1, "write": 2, "edit": 3, "admin": 4}
AT = "2026-07-03T10:00:00Z"
KINDS = (
    "task.status",
    "progress.note",
    "task.add",
    "workplan.status",
    "fleet.machine.role",
    "fleet.workload.gate",
)
SEED_KINDS = ("progress.note", "fleet.machine.role")
SCOPES: tuple[tuple[str, ...], ...] = ((), ("alpha",), ("beta",), ("alpha", "beta"), ("gamma",))


@dataclass(frozen=True)
class TokenSpec:
    actor: str
    right: str
    repos: tuple[str, ...]

    def covers(self, repo: str, actor: str, kind: str) -> bool:
        """The policy, restated: scope, then admin for role changes and for others' events, else write."""
        if self.repos and repo not in self.repos:
            return False
        if kind == "fleet.machine.role" or actor != self.actor:
            return self.right == "admin"
        return RANK[self.right] >= RANK["write"]


@dataclass
class SecuredHub:
    server: HubProcess
    root: KeyPair
    repos: dict[str, GitRepo]
    seeds: list[dict[str, Any]]

    def token(self, spec: TokenSpec) -> str:
        return mint(self.root, spec.actor, spec.right, spec.repos).to_base64()

    def headers(self, spec: TokenSpec) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(spec)}"}

    @property
    def admin(self) -> dict[str, str]:
        return self.headers(TokenSpec("test-admin", "admin", ()))

    def post(self, path: str, body: Any, headers: dict[str, str]) -> httpx.Response:
        return self.server.call("POST", path, json=body, headers=headers)

    def stored(self) -> dict[str, tuple[str, str, str]]:
        """Every event in the buffer, read as admin: key -> (repo, actor, kind)."""
        found: dict[str, tuple[str, str, str]] = {}
        offset = 0
        while True:
            page = self.server.call("GET", f"/events?limit=1000&offset={offset}", headers=self.admin)
            assert page.status_code == 200, page.text
            items = page.json()["items"]
            found.update({i["key"]: (i["repo"], i["event"]["actor"], i["kind"]) for i in items})
            if len(items) < 1000:
                return found
            offset += 1000

    def committed(self) -> dict[str, list[str]]:
        """Per repo, the ``Statehub-Event`` trailer values of every commit (git's own trailer parser)."""
        return {
            slug: repo.git("log", "--format=%(trailers:key=Statehub-Event,valueonly)").split()
            for slug, repo in self.repos.items()
        }


def _event(n: int, kind: str, repo: str, actor: str, *, omit_repo: bool = False) -> dict[str, Any]:
    """A valid event of ``kind`` for ``repo`` (unless the kind needs what the repo lacks), key ``hx-n``."""
    body: dict[str, Any] = {"key": f"hx-{n}", "kind": kind, "actor": actor, "at": AT, "repo": repo}
    plan = f"{repo.upper()}-WP-0001"
    if kind == "task.status":
        body |= {"workplan": plan, "task": "T01", "status": ("todo", "in-progress", "done")[n % 3]}
    elif kind == "progress.note":
        body |= {"workplan": plan, "task": "T01", "note": f"note {n}"}
    elif kind == "task.add":
        body |= {"workplan": plan, "task": f"T{100 + n}", "title": f"added {n}"}
    elif kind == "workplan.status":
        body |= {"workplan": plan, "status": ("active", "blocked")[n % 2]}
    elif kind == "fleet.machine.role":
        body |= {"machine": "workstation", "role": ("experimental", "build", "production-home")[n % 3]}
    elif kind == "fleet.workload.gate":
        body |= {"workload": "state-hub-api", "gate": {"operator_approval": f"ok {n}"}}
    if omit_repo and "workplan" in body:
        del body["repo"]  # the hub finds the repo from the workplan
    return body


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredHub]:
    base = tmp_path_factory.mktemp("authorization")
    repos = {}
    for slug in REPOS:
        repo = GitRepo(base / "repos" / slug)
        repo.write("statehub.toml", f'[repo]\nslug = "{slug}"\n')
        plan = f"{slug.upper()}-WP-0001"
        repo.write(f"workplans/{plan}.md", workplan_text(plan, [{"id": "T01", "title": "one"}]))
        if slug in FLEET_REPOS:
            (repo.root / "registry").mkdir()
            shutil.copy(FLEET_EXAMPLE, repo.root / "registry" / "fleet.toml")
        repo.commit()
        repos[slug] = repo
    home = base / "hub-home"
    root_key = Settings.from_env({"STATEHUB_HOME": str(home)}).root_key_file
    init_root_key(root_key)
    server = HubProcess(home, base / "hub.log")
    server.start(STATEHUB_AUTH="required")
    try:
        hub = SecuredHub(server, load_root_key(root_key), repos, [])
        for repo in repos.values():
            added = hub.post("/repos", {"path": str(repo.root)}, hub.admin)
            assert added.status_code == 201, added.text
        for number, (slug, actor, kind) in enumerate(itertools.product(REPOS, ACTORS, SEED_KINDS)):
            if kind.startswith("fleet.") and slug not in FLEET_REPOS:
                continue
            seed = _event(number, kind, slug, actor) | {"key": f"seed-{slug}-{actor}-{kind}"}
            hub.seeds.append(seed)
        stored = hub.post("/events", hub.seeds, hub.admin)  # an admin may send for anyone (ADR-021)
        assert stored.status_code == 202, stored.text
        server.wait_settled()
        yield hub
    finally:
        server.stop()


# -- the generated batches ------------------------------------------------------------------------


@dataclass(frozen=True)
class New:
    kind: str
    repo: str
    actor: str
    omit_repo: bool


@dataclass(frozen=True)
class Resend:
    seed: int
    changed: bool
    """True: the same key with a different note (a reused key); False: exactly as stored."""


@dataclass(frozen=True)
class Again:
    of: int
    """A duplicate, in the same batch, of an earlier item (index modulo the items so far)."""


tokens = st.builds(
    TokenSpec,
    actor=st.sampled_from(ACTORS),
    right=st.sampled_from(tuple(RANK)),
    repos=st.sampled_from(SCOPES),
)
items = st.one_of(
    st.builds(
        New,
        kind=st.sampled_from(KINDS),
        repo=st.sampled_from(REPOS),
        actor=st.sampled_from((*ACTORS, "agt-other")),
        omit_repo=st.booleans(),
    ),
    st.builds(Resend, seed=st.integers(0, 100), changed=st.booleans()),
    st.builds(Again, of=st.integers(0, 10)),
)
batches = st.lists(items, min_size=1, max_size=6)
numbers = itertools.count(1)


def _concrete(
    hub: SecuredHub, plan: list[New | Resend | Again]
) -> list[tuple[dict[str, Any], tuple[str, ...]]]:
    """Each item as sent, with every (repo, actor, kind) it must be authorised for."""
    built: list[tuple[dict[str, Any], tuple[str, ...]]] = []
    for item in plan:
        if isinstance(item, New):
            body = _event(next(numbers), item.kind, item.repo, item.actor, omit_repo=item.omit_repo)
            built.append((body, (item.repo, item.actor, item.kind)))
        elif isinstance(item, Resend):
            seed = hub.seeds[item.seed % len(hub.seeds)]
            body = dict(seed)
            if item.changed:
                body = body | {"note": f"changed {next(numbers)}"}
            built.append((body, (seed["repo"], seed["actor"], seed["kind"])))
        elif built:
            built.append(built[item.of % len(built)])
    return built or [
        (_event(next(numbers), "progress.note", "alpha", "ann"), ("alpha", "ann", "progress.note"))
    ]


def test_nothing_is_stored_or_committed_that_the_token_does_not_cover(secured: SecuredHub) -> None:
    @hypothesis_settings(max_examples=60, deadline=None, database=None)
    @given(token=tokens, plan=batches, each=st.booleans())
    def one_batch(token: TokenSpec, plan: list[New | Resend | Again], each: bool) -> None:
        sent = _concrete(secured, plan)
        before = secured.stored()
        answer = secured.post(
            f"/events?each={str(each).lower()}", [b for b, _ in sent], secured.headers(token)
        )
        after = secured.stored()
        new = {key: who for key, who in after.items() if key not in before}
        assert answer.status_code != 500, answer.text
        for key, (repo, actor, kind) in new.items():
            assert token.covers(repo, actor, kind), (token, key, repo, actor, kind, answer.text)
        covered = [token.covers(*who) for _, who in sent]
        if answer.status_code in (401, 403):
            assert not new, answer.text
            assert "event #" in answer.json()["error"]  # names the event it refused
        if all(covered):
            assert answer.status_code not in (401, 403), (token, answer.text)
        if answer.status_code == 202:
            results = answer.json()["results"]
            for (body, _), ok, result in zip(sent, covered, results, strict=True):
                # accepted, or answered with a stored event's state: only for events the token covers
                if result["result"] in ("accepted", "duplicate"):
                    assert ok, (token, body, result)

    one_batch()
    secured.server.wait_settled()
    stored = secured.stored()
    for slug, keys in secured.committed().items():
        for key in keys:
            assert key in stored and stored[key][0] == slug, (slug, key)


# -- the finding and its variants ------------------------------------------------------------------


def _role_change(key: str, repo: str = "beta", actor: str = "mallory") -> dict[str, Any]:
    return {
        "key": key,
        "kind": "fleet.machine.role",
        "repo": repo,
        "actor": actor,
        "at": AT,
        "machine": "workstation",
        "role": "production-home",
    }


@pytest.mark.parametrize("each", [True, False])
@pytest.mark.parametrize(
    ("right", "scope", "resent_from"),
    [
        ("read", (), "alpha"),  # the finding: a read-only token
        ("write", ("alpha",), "alpha"),  # a writer for alpha, resending its own event
        ("write", (), "beta"),  # a writer everywhere, but the role change needs admin
        ("admin", ("alpha",), "alpha"),  # an admin of alpha only
    ],
)
def test_a_resend_does_not_open_the_rest_of_the_batch(
    secured: SecuredHub, right: str, scope: tuple[str, ...], resent_from: str, each: bool
) -> None:
    token = TokenSpec("ann", right, scope)
    seed = next(s for s in secured.seeds if s["repo"] == resent_from and s["actor"] == "ann")
    key = f"finding-{right}-{'-'.join(scope)}-{each}"
    secured.server.wait_settled()
    beta_before = secured.repos["beta"].git("rev-parse", "HEAD")
    fleet_before = secured.repos["beta"].read("registry/fleet.toml")
    before = secured.stored()
    answer = secured.post(
        f"/events?each={str(each).lower()}", [seed, _role_change(key)], secured.headers(token)
    )
    assert answer.status_code == 403, answer.text
    refused = 0 if right == "read" else 1  # the first item the token does not cover is named
    assert f"event #{refused} (key '{[seed, _role_change(key)][refused]['key']}'" in answer.json()["error"]
    assert "results" not in answer.json()  # not even the resent event's state
    assert secured.stored() == before
    secured.server.wait_settled()
    assert secured.repos["beta"].git("rev-parse", "HEAD") == beta_before
    assert secured.repos["beta"].read("registry/fleet.toml") == fleet_before


@pytest.mark.parametrize("each", [True, False])
def test_a_resend_of_another_repos_event_is_refused_not_answered(secured: SecuredHub, each: bool) -> None:
    """Answering with the stored event's state would be a read of a repo the token does not cover."""
    seed = next(s for s in secured.seeds if s["repo"] == "beta" and s["actor"] == "ann")
    token = TokenSpec("ann", "write", ("alpha",))
    for body in (seed, seed | {"note": "same key, other words"}):
        answer = secured.post(f"/events?each={str(each).lower()}", [body], secured.headers(token))
        assert answer.status_code == 403, answer.text
        error = answer.json()["error"]
        assert "repo 'beta'" in error and "results" not in answer.json()
    # the same key claimed for alpha: the stored event decides, not the claim
    claimed = _event(next(numbers), "progress.note", "alpha", "ann") | {"key": seed["key"]}
    answer = secured.post(f"/events?each={str(each).lower()}", [claimed], secured.headers(token))
    assert answer.status_code == 403 and "repo 'beta'" in answer.json()["error"], answer.text


def test_an_admin_relays_for_anyone_a_writer_only_for_itself(secured: SecuredHub) -> None:
    """ADR-021 kept: the behaviour that moved from the controller into statehub.auth.event_policy."""
    relayed = [_event(next(numbers), "progress.note", "alpha", actor) for actor in ("ann", "bob", "agt-x")]
    relay = TokenSpec("hub-laptop", "admin", ("alpha",))
    assert secured.post("/events?each=true", relayed, secured.headers(relay)).status_code == 202
    mine = _event(next(numbers), "progress.note", "alpha", "ann")
    writer = secured.headers(TokenSpec("ann", "write", ("alpha",)))
    assert secured.post("/events", [mine], writer).status_code == 202
    other = _event(next(numbers), "progress.note", "alpha", "bob")
    refused = secured.post("/events", [other], writer)
    assert refused.status_code == 403
    assert "is not this token's actor 'ann'" in refused.json()["error"]
    stored = secured.stored()
    assert all(e["key"] in stored for e in [*relayed, mine]) and other["key"] not in stored


# -- one actor rule for tokens and events ----------------------------------------------------------


def test_a_token_actor_and_an_event_actor_accept_the_same_lengths(secured: SecuredHub) -> None:
    longest = "a" * 128
    token = TokenSpec(longest, "write", ("alpha",))
    event = _event(next(numbers), "progress.note", "alpha", longest)
    answer = secured.post("/events", [event], secured.headers(token))
    assert answer.status_code == 202, answer.text  # 65..128 characters: refused by events before
    secured.server.wait_settled()
    assert event["key"] in secured.committed()["alpha"]

    with pytest.raises(BadRequest, match="at most 128"):
        mint(secured.root, "a" * 129, "write")
    admin = secured.admin
    for actor in ("a" * 129, "ann\n", "ann\nCo-authored-by: x", "", "-ann", "ann bob"):
        too_long = _event(next(numbers), "progress.note", "alpha", actor)
        refused = secured.post("/events", [too_long], admin)
        assert refused.status_code == 422, (actor, refused.text)
        assert "actor" in refused.text
        assert too_long["key"] not in secured.stored()


@pytest.mark.parametrize("actor", ["a" * 129, "ann\nCo-authored-by: Eve <eve@example.com>", "ann bob"])
def test_a_token_whose_actor_no_event_could_carry_is_refused(secured: SecuredHub, actor: str) -> None:
    """Minted with another Biscuit library and the root key, bypassing 'statehub token mint'."""
    builder = BiscuitBuilder("actor({actor}); right({right});", {"actor": actor, "right": "admin"})
    token = builder.build(secured.root.private_key).to_base64()
    before = secured.stored()
    event = _event(next(numbers), "progress.note", "alpha", actor)
    answer = secured.post("/events", [event], {"Authorization": f"Bearer {token}"})
    assert answer.status_code == 401, answer.text
    assert "is not an actor name" in answer.json()["error"]
    assert secured.stored() == before


# -- write routes act on the repo their path names, never on ?repo= --------------------------------


def test_a_write_route_is_not_narrowed_by_a_repo_query(secured: SecuredHub, tmp_path: Path) -> None:
    alpha_admin = secured.headers(TokenSpec("ann", "admin", ("alpha",)))
    extra = GitRepo(tmp_path / "delta")
    extra.write("statehub.toml", '[repo]\nslug = "delta"\n')
    extra.commit()
    before = secured.server.call("GET", "/repos", headers=alpha_admin).json()["total"]
    register = secured.post("/repos?repo=alpha", {"path": str(extra.root)}, alpha_admin)
    assert register.status_code == 403, register.text
    assert secured.server.call("GET", "/repos", headers=alpha_admin).json()["total"] == before
    # POST /sweeps checks admin on each repo its body names (canon/ADR-045); it takes no ?repo=
    sweep = secured.post("/sweeps?repo=alpha", {"repos": ["beta"]}, alpha_admin)
    assert sweep.status_code == 400 and "unknown query parameter 'repo'" in sweep.text, sweep.text
    for body in ({"repos": ["beta"]}, {"repos": ["alpha", "beta"]}, {}):
        sweep = secured.post("/sweeps", body, alpha_admin)
        assert sweep.status_code == 403, sweep.text
    listed = secured.server.call("GET", "/sweeps", headers=secured.admin).json()["sweeps"]
    assert [run for run in listed if run["requested_by"] == "ann"] == []  # nothing was queued
    heads = {slug: repo.git("rev-parse", "HEAD") for slug, repo in secured.repos.items()}
    for method, path in [("DELETE", "/repos/beta?repo=alpha"), ("POST", "/repos/beta/refresh?repo=alpha")]:
        answer = secured.server.call(method, path, headers=alpha_admin)
        assert answer.status_code == 403 and "repo 'beta'" in answer.json()["error"], answer.text
    assert secured.server.call("GET", "/repos/beta", headers=alpha_admin).status_code == 200
    assert {slug: repo.git("rev-parse", "HEAD") for slug, repo in secured.repos.items()} == heads
    own = secured.server.call("POST", "/repos/alpha/refresh", headers=alpha_admin)
    assert own.status_code == 200, own.text


# -- refused WebSocket upgrades close with 4401/4403 and the reason --------------------------------


def _closed(url: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    with (
        connect(url, additional_headers=headers, open_timeout=10) as socket,
        pytest.raises(ConnectionClosed) as closed,
    ):
        socket.recv(timeout=10)
    received = closed.value.rcvd
    assert received is not None
    return received.code, received.reason


def test_refused_websocket_upgrades_close_with_4401_or_4403_and_the_reason(secured: SecuredHub) -> None:
    ws = secured.server.url.replace("http://", "ws://")
    room = f"{ws}/sync/alpha/statehub.toml"
    fleet_room = f"{ws}/sync/alpha/registry/fleet.toml"
    forged = secured.token(TokenSpec("ann", "edit", ()))[:-8] + "AAAAAAAA"
    alpha_editor = secured.token(TokenSpec("ann", "edit", ("alpha",)))
    manifest = secured.repos["alpha"].read("statehub.toml")
    cases = [
        (room, None, 4401, "this hub requires a token"),
        (f"{room}?token={forged}", None, 4401, "the token"),
        (room, {"Authorization": "Basic abc"}, 4401, "Authorization: Bearer"),
        (f"{room}?token={secured.token(TokenSpec('ann', 'read', ()))}", None, 4403, "needs edit"),
        (f"{room}?token={secured.token(TokenSpec('ann', 'edit', ('beta',)))}", None, 4403, "repo 'alpha'"),
        (f"{fleet_room}?token={alpha_editor}", None, 4403, "needs admin"),
    ]
    for url, headers, code, said in cases:
        got, reason = _closed(url, headers)
        assert (got, said in reason) == (code, True), (url.split("?")[0], got, reason)
        assert len(reason.encode()) <= 123
    with connect(f"{room}?token={alpha_editor}&user=ann", open_timeout=10) as socket:
        socket.send(create_sync_message(Doc()))
        assert socket.recv(timeout=10)  # the room answers: this upgrade was accepted
    time.sleep(0.2)
    assert secured.repos["alpha"].read("statehub.toml") == manifest
    assert secured.repos["alpha"].git("status", "--porcelain") == ""
