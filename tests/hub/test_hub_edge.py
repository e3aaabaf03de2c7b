"""The hub's edge: body limits on every route, control characters refused, request ids, CSP,
and an OpenAPI document that lists the error answers (issue #20)."""

from collections.abc import AsyncIterator
from typing import Any

import pytest
from hub_support import Hub, make_terms

from runtime.edge.csp import document_policy

BIG = 3_000_000  # over the default HUB_BODY_MAX_BYTES (2 MB)


async def _chunks(total: int) -> AsyncIterator[bytes]:
    """A body without Content-Length (chunked): only counting can refuse it."""
    sent = 0
    while sent < total:
        yield b"x" * 65536
        sent += 65536


JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/v1/auth/login", JSON),
        ("/v1/auth/login", FORM),
        ("/login", FORM),
        ("/v1/queries", JSON),
        ("/v1/agreements", JSON),
        ("/v1/federation/poll", JSON),
        ("/v1/enroll", JSON),
        ("/v1/auth/logout", JSON),  # takes no body at all
    ],
)
def test_bodies_over_the_limit_are_refused_with_a_code(
    federation: Hub, path: str, content_type: str
) -> None:
    declared = federation.client.post(
        path, content=b"{}", headers={"content-type": content_type, "content-length": str(BIG)}
    )
    assert declared.status_code == 413
    assert declared.headers["x-request-id"]
    if path == "/login":  # a page: the refusal is a page too
        assert "413" in declared.text or "too large" in declared.text.lower()
    else:
        assert declared.json()["error"]["code"] == "too_large"
    chunked = federation.client.post(
        path, content=_chunks(BIG), headers={"content-type": content_type}
    )
    if path == "/v1/auth/logout":
        # Never read (refused for want of a session first), so it costs nothing either.
        assert chunked.status_code == 401
        return
    if path == "/login":
        assert chunked.status_code in {400, 413}
        return
    if content_type == FORM:
        # Starlette's form parser refuses one field over 1 MB first: bounded all the same.
        assert (chunked.status_code, chunked.json()["error"]["code"]) in {
            (413, "too_large"),
            (400, "bad_request"),
        }
        return
    assert chunked.status_code == 413
    assert chunked.json()["error"]["code"] == "too_large"


def _refused(response: Any, field: str) -> None:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert f"{field} (control_character)" in error["message"]


def test_nul_and_control_characters_are_refused_at_the_edge(federation: Hub) -> None:
    client, analyst = federation.client, federation.headers("analyst")
    _refused(
        client.post("/v1/auth/login", json={"username": "a\x00b", "password": "x"}), "body.username"
    )
    _refused(
        client.get(
            "/v1/audit/entries", params={"analyst": "a\x00b"}, headers=federation.headers("auditor")
        ),
        "query.analyst",
    )
    _refused(client.get("/v1/nodes/a%00b/keys", headers=analyst), "path.node_id")
    _refused(
        client.get("/v1/queries", params={"status": "done\n"}, headers=analyst), "query.status"
    )
    spec = {
        "agreement_id": "lnob-2026",
        "dataset": "lnob_household",
        "measure": "count",
        "rho": 0.1,
    }
    _refused(
        client.post("/v1/queries", json={**spec, "dataset": "x\x1by"}, headers=analyst),
        "body.dataset",
    )
    # A lone surrogate (a JSON escape) cannot even be encoded for a database.
    raw = b'{"username": "\\ud800", "password": "long enough password"}'
    _refused(
        client.post("/v1/auth/login", content=raw, headers={"content-type": "application/json"}),
        "body.username",
    )
    # Keys are single-line too, and a bad key is named escaped.
    weird = client.post("/v1/queries", json={**spec, "x\ny": 1}, headers=analyst)
    _refused(weird, "body.x\\ny")


def test_free_text_may_hold_tabs_and_newlines_but_nothing_else(federation: Hub) -> None:
    nodes = list(federation.nodes.values())
    multi_line = make_terms(
        nodes, agreement_id="lines", purpose="SDG monitoring\n\tand\r\nreporting"
    )
    assert federation.propose(multi_line)["agreement"]["terms"]["purpose"].count("\n") == 2
    body = make_terms(nodes, agreement_id="nul").model_dump(mode="json")
    body["purpose"] = "SDG\x00monitoring"
    answer = federation.client.post(
        "/v1/agreements", json=body, headers=federation.headers("secretariat")
    )
    _refused(answer, "body.purpose")


def test_web_forms_are_checked_too(federation: Hub) -> None:
    page = federation.client.get("/login")
    token = page.headers["set-cookie"].split("sauti_web_login_csrf=", 1)[1].split(";", 1)[0]
    answer = federation.client.post(
        "/login",
        data={"username": "a\x00b", "password": "x" * 12, "csrf_token": token},
        headers={"cookie": f"sauti_web_login_csrf={token}"},
    )
    assert answer.status_code == 422
    assert "control_character" in answer.text


def test_every_answer_carries_a_request_id(federation: Hub) -> None:
    ok = federation.client.get("/v1/health")
    assert len(ok.headers["x-request-id"]) >= 8
    assert ok.headers["x-content-type-options"] == "nosniff"
    kept = federation.client.get("/v1/health", headers={"x-request-id": "proxy-id-12345678"})
    assert kept.headers["x-request-id"] == "proxy-id-12345678"
    forged = federation.client.get("/v1/health", headers={"x-request-id": "bad id\tinjected"})
    assert forged.headers["x-request-id"] != "bad id\tinjected"
    refused = federation.client.get("/v1/queries")
    assert refused.status_code == 401
    assert refused.headers["x-request-id"]


def test_html_answers_carry_a_content_security_policy(federation: Hub) -> None:
    assert (
        "frame-ancestors 'none'"
        in federation.client.get("/login").headers["content-security-policy"]
    )
    mou = federation.client.get(
        "/v1/agreements/lnob-2026/document.html", headers=federation.headers("secretariat")
    )
    assert mou.status_code == 200
    policy = mou.headers["content-security-policy"]
    assert policy == document_policy(mou.text)
    assert "'sha256-" in policy
    assert "script-src" not in policy  # default-src 'none' covers scripts: none may run
    assert "unsafe-inline" not in policy


def test_the_openapi_document_lists_error_answers_and_file_types(federation: Hub) -> None:
    document = federation.client.get("/openapi.json").json()
    assert "HTTPValidationError" not in document["components"]["schemas"]
    error_ref = {"$ref": "#/components/schemas/ErrorResponse"}
    for path, item in document["paths"].items():
        for method, operation in item.items():
            responses = operation["responses"]
            for status in ("4XX", "500"):
                assert responses[status]["content"]["application/json"]["schema"] == error_ref
            if "requestBody" in operation:
                assert "413" in responses, (method, path)
            if operation.get("security"):
                assert {"401", "403"} <= set(responses), (method, path)
    files = {
        ("get", "/v1/agreements/{agreement_id}/document.pdf"): {"application/pdf"},
        ("get", "/v1/audit/export"): {"application/x-ndjson", "text/csv"},
        ("get", "/v1/agreements/{agreement_id}/document.html"): {"text/html"},
    }
    for (method, path), types in files.items():
        content = document["paths"][path][method]["responses"]["200"]["content"]
        assert set(content) == types, path
    publication = document["paths"]["/v1/assessments/rounds/{round_id}/publication"]["get"]
    assert {"text/html", "application/pdf", "text/csv"} <= set(
        publication["responses"]["200"]["content"]
    )
    assert "application/json" not in publication["responses"]["200"]["content"]
    assert federation.client.get("/docs").status_code == 404
