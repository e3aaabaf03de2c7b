"""Node steward accounts (no hub involved) and the node's authorization matrix over every route.

Storage-backed tests run on SQLite and PostgreSQL (the `node` fixture's `db_url`).
"""

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from node.audit import service as audit
from node.auth import service as auth
from node.auth.models import StewardToken
from node.db import transaction
from node.exceptions import NodeError
from runtime import credentials
from tests.node.conftest import Node

PASSWORD = "kathmandu monsoon ledger"


def _all(node: Node) -> list[Any]:
    return audit.entries(database_url=node.settings.db_url)


def _login(node: Node, username: str, password: str = PASSWORD, **extra: Any) -> httpx.Response:
    return node.client.post(
        "/v1/steward/login", json={"username": username, "password": password, **extra}
    )


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _account(node: Node, username: str = "sita") -> None:
    account, initial = auth.create_account(
        settings=node.settings, username=username, password=PASSWORD
    )
    assert initial is None
    assert account.username == username


def test_password_login_gives_an_expiring_session_token(node: Node) -> None:
    _account(node)
    response = _login(node, "sita")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token"].startswith("sauti_node_")
    expires = datetime.fromisoformat(body["expires_at"])
    assert expires <= datetime.now(UTC) + timedelta(hours=node.settings.steward_session_hours)
    headers = _bearer(body["token"])
    me = node.client.request("GET", "/v1/steward/me", headers=headers).json()
    assert (me["name"], me["via"]) == ("sita", "session")
    assert node.client.request("GET", "/v1/steward/budget", headers=headers).status_code == 200
    assert node.client.request("POST", "/v1/steward/logout", headers=headers).status_code == 204
    after = node.client.request("GET", "/v1/steward/budget", headers=headers)
    assert after.status_code == 401
    actions = [e.action for e in _all(node)]
    # The use of the ended session is itself logged.
    assert actions[-4:] == [
        "steward_account.created",
        "steward.login",
        "steward.logout",
        "steward.denied",
    ]


def test_brute_force_locks_the_steward_account(node: Node) -> None:
    _account(node)
    codes = [
        _login(node, "sita", "wrong wrong wrong").json()["error"]["code"]
        for _ in range(node.settings.login_max_failures)
    ]
    assert codes == ["login_failed"] * node.settings.login_max_failures
    locked = _login(node, "sita")
    unknown = _login(node, "nobody-by-this-name")
    # Locked answers exactly as an unknown name does: nothing tells names apart.
    assert (locked.status_code, locked.json()) == (unknown.status_code, unknown.json())
    assert locked.json()["error"]["code"] == "login_failed"
    assert len([e for e in _all(node) if e.action == "steward.locked"]) == 1
    failures = [e for e in _all(node) if e.action == "steward.login_failed"]
    assert [f.details["reason"] for f in failures][-2:] == ["locked", "unknown_user"]
    assert "wrong wrong" not in str([f.details for f in failures])
    auth.unlock(settings=node.settings, username="sita")
    assert _login(node, "sita").status_code == 200
    unknown = _login(node, "nobody")
    assert unknown.json() == _login(node, "sita", "bad password here").json()


def test_a_password_change_ends_the_stewards_other_sessions(node: Node) -> None:
    _account(node)
    first = _bearer(_login(node, "sita").json()["token"])
    second = _bearer(_login(node, "sita").json()["token"])
    changed = node.client.post(
        "/v1/steward/password",
        json={"current_password": PASSWORD, "new_password": "a different long passphrase"},
        headers=first,
    )
    assert changed.status_code == 204, changed.text
    assert node.client.request("GET", "/v1/steward/me", headers=first).status_code == 200
    assert node.client.request("GET", "/v1/steward/me", headers=second).status_code == 401
    (entry,) = [e for e in _all(node) if e.action == "steward.password_changed"]
    assert entry.details == {"sessions_ended": 1}


def test_login_name_is_trimmed_and_the_password_taken_as_typed(node: Node) -> None:
    _account(node)
    assert _login(node, " sita  ").status_code == 200
    assert _login(node, "sita", f" {PASSWORD}").status_code == 401


def test_reset_password_forces_a_change_and_policy_applies(node: Node) -> None:
    _account(node)
    temporary = auth.reset_password(settings=node.settings, username="sita")
    token = _login(node, "sita", temporary).json()["token"]
    blocked = node.client.request("GET", "/v1/steward/budget", headers=_bearer(token))
    assert (blocked.status_code, blocked.json()["error"]["code"]) == (
        403,
        "password_change_required",
    )
    weak = node.client.post(
        "/v1/steward/password",
        json={"current_password": temporary, "new_password": "short"},
        headers=_bearer(token),
    )
    assert (weak.status_code, weak.json()["error"]["code"]) == (422, "password_rejected")
    assert "short" not in weak.json()["error"]["message"].replace("at least", "")
    ok = node.client.post(
        "/v1/steward/password",
        json={"current_password": temporary, "new_password": "a brand new passphrase"},
        headers=_bearer(token),
    )
    assert ok.status_code == 204
    assert (
        node.client.request("GET", "/v1/steward/budget", headers=_bearer(token)).status_code == 200
    )
    with pytest.raises(NodeError) as info:
        auth.create_account(settings=node.settings, username="sita", password=PASSWORD)
    assert info.value.code == "steward_exists"


def test_totp_on_the_node(node: Node) -> None:
    _account(node)
    setup = auth.totp_begin(settings=node.settings, username="sita", issuer="Sauti node")
    now = datetime.now(UTC)
    auth.totp_confirm(
        settings=node.settings, username="sita", code=credentials.totp_code(setup.secret, now=now)
    )
    assert _login(node, "sita").json()["error"]["code"] == "login_failed"
    later = credentials.totp_code(setup.secret, now=now + timedelta(seconds=30))
    assert _login(node, "sita", totp=later).status_code == 200
    assert _login(node, "sita", totp=later).json()["error"]["code"] == "login_failed"  # replay


def test_expired_tokens_and_disabled_accounts(node: Node) -> None:
    token = auth.create_token(database_url=node.settings.db_url, name="script", expires_in_days=1)
    assert (
        node.client.request("GET", "/v1/steward/budget", headers=_bearer(token)).status_code == 200
    )
    with transaction(node.settings.db_url) as session:
        session.execute(update(StewardToken).values(expires_at=datetime.now(UTC)))
    expired = node.client.request("GET", "/v1/steward/budget", headers=_bearer(token))
    assert (expired.status_code, expired.json()["error"]["code"]) == (401, "token_expired")
    assert [e.details for e in _all(node) if e.action == "steward.denied"] == [
        {"reason": "expired"}
    ]
    _account(node)
    session_token = _login(node, "sita").json()["token"]
    auth.set_disabled(settings=node.settings, username="sita", disabled=True)
    gone = node.client.request("GET", "/v1/steward/budget", headers=_bearer(session_token))
    assert gone.status_code == 401
    assert _login(node, "sita").json()["error"]["code"] == "login_failed"


# --- the node's authorization matrix ---

PUBLIC = "public"
SIGNED = "signed"
STEWARD = "steward"
MATRIX = {
    ("GET", "/v1/info"): PUBLIC,
    # The node's published contracts, signed by the node: public by design.
    ("GET", "/v1/contracts"): PUBLIC,
    ("GET", "/v1/health"): PUBLIC,
    ("POST", "/v1/steward/login"): PUBLIC,
    ("POST", "/v1/queries"): SIGNED,
    ("POST", "/v1/secure/offers"): SIGNED,
    ("POST", "/v1/secure/contributions"): SIGNED,
}
# "Refused because of who you are", as opposed to a 403 about the agreement asked for.
DENIALS = {"unauthenticated", "token_expired", "password_change_required"}
PLACEHOLDERS = {"name": "nosuch", "version": "9", "agreement_id": "no-such-agreement"}


def _routes(node: Node) -> list[tuple[str, str]]:
    return sorted(
        (m.upper(), p) for p, ops in node.client.app.openapi()["paths"].items() for m in ops
    )


def _url(path: str) -> str:
    for name, value in PLACEHOLDERS.items():
        path = path.replace("{" + name + "}", value)
    return path


def test_node_authorization_matrix(node: Node) -> None:
    """Every route from the OpenAPI schema: stewards only under /v1/steward, except login."""
    _account(node)
    problems = []
    for method, path in _routes(node):
        kind = MATRIX.get((method, path), STEWARD if path.startswith("/v1/steward/") else None)
        if kind is None:
            problems.append(f"{method} {path}: not declared")
            continue
        kwargs: dict[str, Any] = {"json": {}} if method in {"POST", "PUT", "DELETE"} else {}
        anonymous = node.client.request(method, _url(path), **kwargs)
        code = (
            anonymous.json().get("error", {}).get("code") if anonymous.status_code >= 400 else None
        )
        if kind == PUBLIC:
            if anonymous.status_code in (401, 403):
                problems.append(f"{method} {path}: public but refused")
            continue
        if kind == SIGNED:
            if (anonymous.status_code, code) != (401, "unsigned"):
                problems.append(f"{method} {path}: unsigned got {anonymous.status_code}")
            continue
        if (anonymous.status_code, code) != (401, "unauthenticated"):
            problems.append(f"{method} {path}: anonymous got {anonymous.status_code} {code}")
        bad = node.client.request(method, _url(path), headers=_bearer("sauti_node_nope"), **kwargs)
        if bad.status_code != 401:
            problems.append(f"{method} {path}: unknown token got {bad.status_code}")
        # A fresh credential per call: one of the routes is logout.
        for token in (
            auth.create_token(database_url=node.settings.db_url, name="matrix"),
            _login(node, "sita").json()["token"],
        ):
            ok = node.client.request(method, _url(path), headers=_bearer(token), **kwargs)
            denied = ok.status_code in (401, 403) and ok.json()["error"]["code"] in DENIALS
            if denied:
                problems.append(f"{method} {path}: steward got {ok.status_code} {ok.text}")
    assert problems == []
