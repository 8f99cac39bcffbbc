"""GET /metrics on a hub with tokens: a read token is enough (Prometheus sends it as a bearer token)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from litestar.testing import TestClient
from prometheus_client.parser import text_string_to_metric_families

from statehub.app import create_app
from statehub.auth.keys import init_root_key, load_root_key
from statehub.auth.tokens import mint

if TYPE_CHECKING:
    from statehub.settings import Settings
    from tests.statehub.auth.conftest import SecuredHub


def test_metrics_need_a_read_token_where_tokens_are_required(secured: SecuredHub) -> None:
    refused = secured.client.get("/metrics")
    assert refused.status_code == 401
    assert refused.json()["status_code"] == 401
    assert refused.headers["www-authenticate"] == 'Bearer realm="statehub"'
    answer = secured.client.get("/metrics", headers=secured.bearer(secured.token(right="read")))
    assert answer.status_code == 200
    names = {family.name for family in text_string_to_metric_families(answer.text)}
    assert {"statehub_repos", "statehub_events", "statehub_http_request_duration_seconds"} <= names
    assert secured.client.get("/metrics", headers=secured.bearer("not-a-token")).status_code == 401


def test_a_fleet_hub_answers_metrics_to_a_read_token_only(settings: Settings) -> None:
    fleet = settings.with_overrides(profile="fleet")
    init_root_key(fleet.root_key_file)
    token = mint(load_root_key(fleet.root_key_file), "prometheus", "read", ()).to_base64()
    with TestClient(create_app(fleet)) as client:
        assert client.get("/metrics").status_code == 401
        answer = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 200, answer.text
        assert "statehub_repos 0.0" in answer.text.splitlines()


def test_a_dev_hub_answers_metrics_without_a_token(client: TestClient) -> None:  # type: ignore[type-arg]
    assert client.get("/metrics").status_code == 200
