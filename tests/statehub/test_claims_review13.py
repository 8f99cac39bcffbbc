"""Claims met by people (issue 13 review): a hand edit made while a claim is held wins over the
hub's release of the run-out lease."""

from __future__ import annotations

from typing import TYPE_CHECKING

from statehub import claims
from statehub.auth import LOCAL_COMMAND
from statehub.events import EventDesk
from statehub.hub import Hub
from tests.statehub.test_claims import PATH, T04, _plan_repo, _raw, _wait

if TYPE_CHECKING:
    from collections.abc import Callable

    from statehub.settings import Settings
    from tests.gitfixtures import GitRepo


def test_a_person_marking_a_held_task_done_is_not_undone_when_the_lease_runs_out(
    settings: Settings, make_repo: Callable[[str], GitRepo]
) -> None:
    repo = _plan_repo(make_repo)
    with Hub(settings) as hub, EventDesk(hub) as desk:
        hub.register(repo.root)
        claims.claim(desk, T04, "agt-a", 1, authorise=LOCAL_COMMAND)
        desk.apply_pending()
        text = _raw(repo)
        assert 'owner = "agt-a"' in text
        # a person finishes the task by hand while the agent's lease is live
        edited = text.replace(
            'title = "Fourth"\r\nstatus = "in-progress"\r\nowner = "agt-a"',
            'title = "Fourth"\r\nstatus = "done"\r\nowner = "alice"',
        )
        assert edited != text
        (repo.root / PATH).write_bytes(edited.encode())
        repo.commit("alice finished it")
        hub.refresh()
        _wait(lambda: not claims.claim_state(desk, T04).held, "the lease ran out")
        claims.expire_leases(desk)
        desk.apply_pending()
        after = _raw(repo)
        assert 'title = "Fourth"\r\nstatus = "done"\r\nowner = "alice"' in after, after
