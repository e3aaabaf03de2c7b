"""The hub's authorization matrix: every route in the OpenAPI schema × every role and anonymous.

Routes come from `app.openapi()`, so a new route without a line in `MATRIX` fails this test
until someone decides who may call it. Calls use placeholder ids and empty bodies: a caller
who is let through gets a 404 or 422 (never acted on), one who is not gets 401/403 with a code.
"""

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hub_support import AppClient, Hub

from hub.auth import organisations as auth_organisations
from hub.auth import tokens as auth_tokens
from hub.auth import users as auth_users
from hub.auth.schemas import OrganisationCreate, RoleScope, UserCreate
from hub.db import init_db, make_engine

ROLES = ("admin", "secretariat", "analyst", "auditor", "steward")
ANY = frozenset(ROLES)
PUBLIC = "public"  # no credential needed (health, login, SSO entry points)
SIGNED = "signed"  # authority is a node signature in the body, checked against its pinned key
WRITERS = frozenset({"admin", "secretariat"})
AUDIT = frozenset({"admin", "auditor"})
ADMIN = frozenset({"admin"})
Allowed = frozenset[str] | str

MATRIX: dict[tuple[str, str], Allowed] = {
    ("GET", "/v1/health"): PUBLIC,
    # federation
    ("GET", "/v1/nodes"): ANY,
    ("POST", "/v1/nodes"): WRITERS,
    ("DELETE", "/v1/nodes/{node_id}"): WRITERS,
    ("GET", "/v1/enrollment-tokens"): WRITERS,
    ("POST", "/v1/enrollment-tokens"): WRITERS,
    ("POST", "/v1/enroll"): SIGNED,
    ("POST", "/v1/nodes/{node_id}/keys"): SIGNED,
    ("GET", "/v1/nodes/{node_id}/keys"): ANY,
    # public contracts: a pull node posts its own (signed); anyone signed in reads them
    ("POST", "/v1/nodes/contracts"): SIGNED,
    ("GET", "/v1/nodes/{node_id}/contracts"): ANY,
    ("POST", "/v1/federation/poll"): SIGNED,
    ("POST", "/v1/federation/releases"): SIGNED,
    ("POST", "/v1/federation/refusals"): SIGNED,
    # agreements
    ("GET", "/v1/agreements"): ANY,
    ("POST", "/v1/agreements"): WRITERS,
    ("POST", "/v1/agreements/drafts"): WRITERS,
    ("PUT", "/v1/agreements/{agreement_id}/versions/{version}"): WRITERS,
    ("GET", "/v1/agreements/{agreement_id}/versions/{version}"): ANY,
    ("POST", "/v1/agreements/{agreement_id}/versions/{version}/propose"): WRITERS,
    ("POST", "/v1/agreements/{agreement_id}/signatures"): SIGNED,
    ("POST", "/v1/agreements/{agreement_id}/notices"): SIGNED,
    ("POST", "/v1/agreements/fetch"): SIGNED,
    ("POST", "/v1/agreements/signatures/deliver"): SIGNED,
    ("POST", "/v1/agreements/{agreement_id}/suspend"): WRITERS,
    ("POST", "/v1/agreements/{agreement_id}/resume"): WRITERS,
    ("POST", "/v1/agreements/{agreement_id}/revoke"): WRITERS,
    ("GET", "/v1/agreements/{agreement_id}"): ANY,
    ("GET", "/v1/agreements/{agreement_id}/versions"): ANY,
    ("GET", "/v1/agreements/{agreement_id}/document.html"): ANY,
    ("GET", "/v1/agreements/{agreement_id}/document.pdf"): ANY,
    # queries (results are filtered by organisation inside; see test_hub_identity)
    ("POST", "/v1/queries"): frozenset({"analyst"}),
    ("GET", "/v1/queries"): ANY,
    ("GET", "/v1/queries/{query_id}"): ANY,
    # audit
    ("GET", "/v1/audit/entries"): AUDIT,
    ("GET", "/v1/audit/verify"): AUDIT,
    ("GET", "/v1/audit/checkpoints"): AUDIT,
    ("GET", "/v1/audit/checkpoints/status"): AUDIT,
    ("GET", "/v1/audit/export"): AUDIT,
    ("POST", "/v1/nodes/{node_id}/audit/checkpoints"): SIGNED,
    # identity and access
    ("GET", "/v1/auth/login-csrf"): PUBLIC,
    ("POST", "/v1/auth/login"): PUBLIC,
    ("GET", "/v1/auth/session"): ANY,
    ("POST", "/v1/auth/logout"): ANY,
    ("GET", "/v1/auth/me"): ANY,
    ("POST", "/v1/auth/password"): ANY,
    ("POST", "/v1/auth/totp"): ANY,
    ("POST", "/v1/auth/totp/confirm"): ANY,
    ("GET", "/v1/auth/oidc"): PUBLIC,
    ("GET", "/v1/auth/oidc/{provider}/login"): PUBLIC,
    ("GET", "/v1/auth/oidc/{provider}/callback"): PUBLIC,
    ("POST", "/v1/organisations"): WRITERS,
    ("GET", "/v1/organisations"): ANY,
    ("POST", "/v1/users"): ADMIN,
    ("GET", "/v1/users"): AUDIT,
    ("GET", "/v1/users/{username}"): AUDIT,
    ("POST", "/v1/users/{username}/roles"): ADMIN,
    ("POST", "/v1/users/{username}/roles/revoke"): ADMIN,
    ("POST", "/v1/users/{username}/disable"): ADMIN,
    ("POST", "/v1/users/{username}/enable"): ADMIN,
    ("POST", "/v1/users/{username}/unlock"): ADMIN,
    ("POST", "/v1/users/{username}/password-reset"): ADMIN,
    ("POST", "/v1/users/{username}/totp-reset"): ADMIN,
    ("POST", "/v1/tokens"): ANY,
    ("GET", "/v1/tokens"): ANY,
    ("DELETE", "/v1/tokens/{token_id}"): ANY,
    # assessments (answers: the service also checks the country team's own country)
    ("GET", "/v1/assessments/templates"): ANY,
    ("POST", "/v1/assessments/templates"): WRITERS,
    ("POST", "/v1/assessments/rounds/plan"): WRITERS,
    ("POST", "/v1/assessments/rounds"): WRITERS,
    ("GET", "/v1/assessments/rounds"): WRITERS | AUDIT,
    ("GET", "/v1/assessments/rounds/{round_id}"): WRITERS | AUDIT,
    ("POST", "/v1/assessments/rounds/{round_id}/close"): WRITERS,
    ("PUT", "/v1/assessments/rounds/{round_id}/answers/{country}/{indicator_id}"): ANY,
    ("GET", "/v1/assessments/rounds/{round_id}/results"): WRITERS | AUDIT,
    ("GET", "/v1/assessments/rounds/{round_id}/comparison"): WRITERS | AUDIT,
    ("GET", "/v1/assessments/rounds/{round_id}/publication"): WRITERS,
    # shared harmonisation modules: public standards; coverage is node-signed metadata
    ("GET", "/v1/modules"): PUBLIC,
    ("GET", "/v1/modules/{name}/versions/{version}"): PUBLIC,
    ("GET", "/v1/modules/{name}/versions/{version}/signed"): PUBLIC,
    ("POST", "/v1/modules/coverage"): SIGNED,
    ("GET", "/v1/modules/{name}/coverage"): ANY,
}
# Codes that mean "refused because of who you are", as opposed to a 404/422 about the call.
DENIALS = {"unauthenticated", "forbidden", "node_scope_forbidden", "csrf_failed"}
PLACEHOLDERS = {
    "node_id": "nobody",
    "agreement_id": "no-such-agreement",
    "version": "1",
    "query_id": str(uuid.UUID(int=1)),
    "username": "nobody",
    "token_id": "999999",
    "provider": "nobody",
    "round_id": "no-such-round",
    "country": "999",
    "indicator_id": "NONE",
    "name": "nobody",
}
UNSAFE = {"POST", "PUT", "PATCH", "DELETE"}
PASSWORD = "matrix admin passphrase"


def routes(app: Any) -> list[tuple[str, str]]:
    return sorted(
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        for method in operations
    )


def url(path: str) -> str:
    for name, value in PLACEHOLDERS.items():
        path = path.replace("{" + name + "}", value)
    return path


def _code(response: httpx.Response) -> str | None:
    if response.status_code < 400 or not response.content:
        return None
    body = response.json()
    return body.get("error", {}).get("code") if isinstance(body, dict) else None


def call(client: AppClient, method: str, path: str, headers: dict[str, str]) -> httpx.Response:
    kwargs: dict[str, Any] = {"headers": headers}
    if method in UNSAFE:
        kwargs["json"] = {}
    return client.request(method, url(path), **kwargs)


@pytest.fixture
def matrix_hub(make_hub: Callable[..., Hub]) -> Hub:
    hub = make_hub([])
    engine = make_engine(hub.settings.effective_database_url)
    with init_db(engine)() as s:
        auth_organisations.create_organisation(
            session=s,
            body=OrganisationCreate(slug="cso-a", name="CSO A", kind="cso", country="524"),
            actor="test",
        )
        auth_users.create_user(
            session=s,
            body=UserCreate(
                username="steward-a",
                organisation="cso-a",
                kind="service",
                roles=(RoleScope(role="steward", node_id="np-a"),),
            ),
            actor="test",
        )
        hub.tokens["steward"] = auth_tokens.issue_token(
            session=s,
            username="steward-a",
            name="matrix",
            role="steward",
            node_id="np-a",
            expires_in_days=1,
            actor="test",
            settings=hub.settings,
        ).token
        auth_users.create_user(
            session=s,
            body=UserCreate(username="root", organisation="sec", roles=(RoleScope(role="admin"),)),
            actor="test",
            settings=hub.settings,
            password=PASSWORD,
        )
    engine.dispose()
    return hub


def test_every_route_is_declared(matrix_hub: Hub) -> None:
    app = matrix_hub.client._client._transport.app  # type: ignore[attr-defined]
    found = set(routes(app))
    assert found - MATRIX.keys() == set(), "new routes: declare who may call them in MATRIX"
    assert MATRIX.keys() - found == set(), "routes gone: remove them from MATRIX"


def test_every_route_with_every_role_and_anonymous(matrix_hub: Hub) -> None:
    hub = matrix_hub
    app = hub.client._client._transport.app  # type: ignore[attr-defined]
    problems: list[str] = []
    for method, path in routes(app):
        allowed = MATRIX[(method, path)]
        anonymous = call(hub.client, method, path, {})
        where = f"{method} {path}"
        if allowed == PUBLIC:
            if anonymous.status_code in (401, 403):
                problems.append(f"{where}: public but refused anonymous")
            continue
        body = anonymous.json()
        if allowed == SIGNED:
            # Node-signed routes: no token makes an unsigned call acceptable.
            for headers in ({}, hub.headers("admin")):
                for payload in ({}, {"jws": "not.a.jws"}):
                    r = hub.client.request(method, url(path), json=payload, headers=headers)
                    if r.status_code < 400 or _code(r) is None:
                        problems.append(f"{where}: unsigned call got {r.status_code}")
            continue
        if anonymous.status_code != 401 or body["error"]["code"] != "unauthenticated":
            problems.append(f"{where}: anonymous got {anonymous.status_code}")
        for role in ROLES:
            response = call(hub.client, method, path, hub.headers(role))
            code = _code(response)
            denied = response.status_code in (401, 403) and code in DENIALS
            if role in allowed and denied:
                problems.append(f"{where}: {role} should pass, got {response.status_code} {code}")
            if role not in allowed and not (response.status_code == 403 and code == "forbidden"):
                problems.append(
                    f"{where}: {role} should get 403 forbidden, got {response.status_code}"
                )
    assert problems == []


def test_every_state_changing_route_needs_csrf_in_a_browser_session(matrix_hub: Hub) -> None:
    hub = matrix_hub
    app = hub.client._client._transport.app  # type: ignore[attr-defined]
    jar = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://hub.test")

    def send(method: str, path: str, **kwargs: Any) -> httpx.Response:
        async def go() -> httpx.Response:
            return await jar.request(method, path, **kwargs)

        return hub.client.portal.call(go)

    login = send("POST", "/v1/auth/login", json={"username": "root", "password": PASSWORD})
    assert login.status_code == 200, login.text
    problems = []
    for method, path in routes(app):
        allowed = MATRIX[(method, path)]
        if method not in UNSAFE or allowed in (PUBLIC, SIGNED):
            continue
        response = send(method, url(path), json={})
        code = _code(response)
        if (response.status_code, code) != (403, "csrf_failed"):
            problems.append(f"{method} {path}: {response.status_code} {code}")
    hub.client.portal.call(jar.aclose)
    assert problems == []
