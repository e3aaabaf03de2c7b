"""Node /metrics: off without a token, token-guarded, query outcomes and budget per agreement."""

import socket
import urllib.request

from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from node import metrics
from node.app import create_app
from tests.node.conftest import AppClient, Node

ALLOWED_LABELS = {"method", "route", "status", "outcome", "result", "agreement_id", "le", "code"}


def scrape(node: Node, token: str | None = "scrape-me") -> tuple[int, str]:
    settings = node.settings.model_copy(update={"metrics_token": SecretStr("scrape-me")})
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = AppClient(create_app(settings)).request("GET", "/metrics", headers=headers)
    return response.status_code, response.text


def test_metrics_are_off_without_a_token(node: Node) -> None:
    response = node.client.get("/metrics")
    assert response.status_code == 404
    assert response.json()["error"]["code"]


def test_metrics_need_the_token(node: Node) -> None:
    assert scrape(node, token=None)[0] == 401
    status, body = scrape(node, token="wrong")
    assert status == 401
    assert '"unauthenticated"' in body


def test_metrics_count_outcomes_and_budget(node: Node) -> None:
    before = metrics.QUERIES.labels(outcome="released")._value.get()
    refused_before = metrics.QUERIES.labels(outcome="wrong_node")._value.get()
    assert node.post(node.request()).status_code == 200
    assert node.post(node.request(node_id="someone-else")).status_code == 403
    status, text = scrape(node)
    assert status == 200
    assert metrics.QUERIES.labels(outcome="released")._value.get() == before + 1
    assert metrics.QUERIES.labels(outcome="wrong_node")._value.get() == refused_before + 1
    assert 'sauti_node_budget_spent_rho{agreement_id="mou-1"} 0.1' in text
    assert 'sauti_node_budget_queries{agreement_id="mou-1"} 1.0' in text
    assert 'sauti_node_queries_total{outcome="wrong_node"}' in text
    assert 'route="/v1/queries",status="200"' in text
    assert "someone-else" not in text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            assert set(sample.labels) <= ALLOWED_LABELS, sample


def test_pull_mode_serves_metrics_on_its_own_port(sqlite_node: Node) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    settings = sqlite_node.settings.model_copy(update={"metrics_port": port})
    stop = metrics.serve_separately(settings)
    assert stop is not None
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            body = response.read().decode()
    finally:
        stop()
    assert "sauti_node_budget_spent_rho" in body
