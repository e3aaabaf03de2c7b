"""The node's edge: body limits on every route but data uploads, control characters refused
(also inside hub-signed messages), request ids, CSP and documented errors (issue #20)."""

from collections.abc import AsyncIterator
from typing import Any

from node.app import create_app
from node.auth import service as auth
from node.ledger import service as ledger
from tests.node.conftest import AppClient, Node

LIMIT = 4096


def _small_limit(node: Node) -> AppClient:
    return AppClient(create_app(node.settings.model_copy(update={"body_max_bytes": LIMIT})))


async def _chunks(total: int) -> AsyncIterator[bytes]:
    for _ in range(0, total, 1024):
        yield b"x" * 1024


def test_bodies_over_the_limit_are_refused_before_they_are_read(node: Node) -> None:
    client = _small_limit(node)
    for path in ("/v1/queries", "/v1/steward/login", "/v1/secure/offers", "/v1/steward/logout"):
        declared = client.post(
            path,
            content=b"{}",
            headers={"content-type": "application/json", "content-length": str(10 * LIMIT)},
        )
        assert (declared.status_code, declared.json()["error"]["code"]) == (413, "too_large")
    for path in ("/v1/queries", "/v1/steward/login"):
        chunked = client.post(
            path, content=_chunks(10 * LIMIT), headers={"content-type": "application/json"}
        )
        assert (chunked.status_code, chunked.json()["error"]["code"]) == (413, "too_large")


def test_data_uploads_have_their_own_limit(node: Node) -> None:
    client = _small_limit(node)
    token = auth.create_token(database_url=node.settings.db_url, name="Sita")
    rows = "".join(f"r{i},+0001,fine,female,north,dalit,no,{20 + i % 50}\n" for i in range(400))
    data = ("respondent,phone,comment,sex,district,group,disability,age\n" + rows).encode()
    assert len(data) > LIMIT
    report = client.request(
        "POST",
        "/v1/steward/datasets/survey/validate?filename=survey.csv",
        headers={"Authorization": f"Bearer {token}"},
        content=data,
    )
    assert report.status_code == 200, report.text
    assert report.json()["ok"] is True


def _refused(response: Any, field: str) -> None:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert f"{field} (control_character)" in error["message"]


def test_control_characters_are_refused_at_the_edge(node: Node) -> None:
    client = node.client
    login = {"username": "a\x00b", "password": "long enough password"}
    _refused(client.post("/v1/steward/login", json=login), "body.username")
    _refused(client.get("/v1/steward/audit/entries?action=a%00b"), "query.action")
    page = client.get("/steward/fonts/a%0Ab")  # a page route: refused with a page
    assert page.status_code == 422
    assert "text/html" in page.headers["content-type"]


def test_a_hub_signed_message_with_a_nul_is_refused_and_charges_nothing(node: Node) -> None:
    before = ledger.budget_report(home=node.home, settings=node.settings)
    for overrides in ({"analyst": "ana\x00lyst"}, {"analyst_organisation": "NSO\x01Nepal"}):
        answer = node.post(node.request(**overrides))
        assert answer.status_code == 422, answer.text
        assert answer.json()["error"]["code"] == "invalid_request"
        assert "control_character" in answer.json()["error"]["message"]
    after = ledger.budget_report(home=node.home, settings=node.settings)
    assert after == before


def test_answers_carry_request_ids_and_pages_a_policy(node: Node) -> None:
    health = node.client.get("/v1/health")
    assert health.headers["x-request-id"]
    assert health.headers["x-content-type-options"] == "nosniff"
    page = node.client.get("/steward/login")
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert node.client.get("/docs").status_code == 404


def test_the_openapi_document_lists_error_answers(node: Node) -> None:
    document = node.client.get("/openapi.json").json()
    assert "HTTPValidationError" not in document["components"]["schemas"]
    for path, item in document["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            assert {"4XX", "500"} <= set(responses), (method, path)
            if "requestBody" in operation:
                assert "413" in responses, (method, path)
    export = document["paths"]["/v1/steward/audit/export"]["get"]["responses"]["200"]
    assert set(export["content"]) == {"application/x-ndjson", "text/csv"}
