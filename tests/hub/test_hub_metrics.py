"""Hub /metrics: off without a token, token-guarded, and what it counts carries no data."""

from typing import Any

from hub_support import AppClient, Hub, SimNode
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr
from sqlalchemy import update

from hub.app import create_app
from hub.db import init_db, make_engine
from hub.queries.models import QueryRow

SPEC: dict[str, Any] = {
    "agreement_id": "lnob-2026",
    "dataset": "lnob_household",
    "measure": "count",
    "group_by": ["sex"],
    "rho": 0.2,
}
# Label names a scrape may carry; their values are ids, codes, statuses and route templates.
ALLOWED_LABELS = {"method", "route", "status", "outcome", "agreement_id", "node_id", "mode", "le"}


def metrics_client(hub: Hub) -> AppClient:
    settings = hub.settings.model_copy(update={"metrics_token": SecretStr("scrape-me")})
    return AppClient(create_app(settings))


def test_metrics_are_off_without_a_token(federation: Hub) -> None:
    response = federation.client.get("/metrics")
    assert response.status_code == 404
    assert response.json()["error"]["code"]


def test_metrics_need_the_token(federation: Hub) -> None:
    client = metrics_client(federation)
    try:
        for headers in ({}, {"Authorization": "Bearer wrong"}, federation.headers("admin")):
            response = client.get("/metrics", headers=headers)
            assert response.status_code == 401
            assert response.json()["error"]["code"] == "unauthenticated"
    finally:
        client.close()


def test_metrics_count_queries_budget_and_node_last_seen(
    federation: Hub, sim_nodes: list[SimNode]
) -> None:
    for _ in range(2):
        response = federation.client.post(
            "/v1/queries", json=SPEC, headers=federation.headers("analyst")
        )
        assert response.status_code == 201, response.text
    # A refused query and an unknown path: counted by template and status, nothing echoed.
    federation.client.post(
        "/v1/queries",
        json={**SPEC, "group_by": ["zz-canary-dim"]},
        headers=federation.headers("analyst"),
    )
    federation.client.get("/v1/queries/zz-canary-path")
    client = metrics_client(federation)
    try:
        response = client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
    finally:
        client.close()
    assert response.status_code == 200
    text = response.text
    assert 'sauti_hub_queries{status="complete"} 2.0' in text
    assert 'sauti_hub_query_tasks{outcome="ok"} 6.0' in text
    assert 'sauti_hub_budget_spent_rho{agreement_id="lnob-2026"} 0.4' in text
    for node in sim_nodes:
        assert f'sauti_hub_node_last_seen_timestamp_seconds{{node_id="{node.node_id}"}}' in text
    assert 'route="/v1/queries",status="201"' in text
    assert (
        'sauti_hub_http_request_duration_seconds_count{method="POST",route="/v1/queries"}' in text
    )
    assert "zz-canary" not in text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            assert set(sample.labels) <= ALLOWED_LABELS, sample


def test_a_stored_spec_with_nul_cannot_break_a_scrape(federation: Hub) -> None:
    """A NUL in a share value was once stored as sent; from then on every scrape failed on
    PostgreSQL. The edge refuses it now, and what is already stored still reads."""
    refused = federation.client.post(
        "/v1/queries",
        json={**SPEC, "measure": "share", "column": "violence_12m", "value": "y\x00es"},
        headers=federation.headers("analyst"),
    )
    assert (refused.status_code, refused.json()["error"]["code"]) == (422, "invalid_request")
    assert "body.value" in refused.json()["error"]["message"]
    stored = federation.client.post("/v1/queries", json=SPEC, headers=federation.headers("analyst"))
    assert stored.status_code == 201, stored.text
    engine = make_engine(federation.settings.effective_database_url)
    try:
        with init_db(engine)() as session:
            # As an older hub stored it: the spec as sent, NUL included, and even escaped.
            session.execute(
                update(QueryRow).values(
                    spec={**SPEC, "value": "y\x00es \\u0000", "bad\x00key": "\x00"}
                )
            )
            session.commit()
    finally:
        engine.dispose()
    client = metrics_client(federation)
    try:
        response = client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
    finally:
        client.close()
    assert response.status_code == 200, response.text
    assert 'sauti_hub_budget_spent_rho{agreement_id="lnob-2026"} 0.2' in response.text
