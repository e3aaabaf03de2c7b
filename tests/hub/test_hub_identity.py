"""Hub identity and access: accounts, passwords, lockout, TOTP, tokens, sessions, CSRF, audit.

Each test runs on SQLite and on the real PostgreSQL (the `db_url` fixture behind `make_hub`).
"""

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from hub_support import AppClient, Hub, SimNode
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from hub.audit import service as audit
from hub.auth import organisations as auth_organisations
from hub.auth import tokens as auth_tokens
from hub.auth import users as auth_users
from hub.auth.models import ApiToken, RoleGrant, UserRow, WebSession
from hub.auth.schemas import OrganisationCreate, RoleScope, UserCreate
from hub.db import init_db, make_engine
from hub.exceptions import HubError
from hub.settings import HubSettings
from runtime import credentials

PASSWORD = "long enough passphrase 42"


def _app_of(hub: Hub) -> Any:
    return hub.client._client._transport.app  # type: ignore[attr-defined]


def browser(hub: Hub) -> AppClient:
    """A second client on the same app (no second lifespan) with https and a cookie jar."""
    client = hub.client
    app = _app_of(hub)
    jar = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="https://hub.test")

    class Browser(AppClient):
        def __init__(self) -> None:  # shares the running portal and lifespan
            self.portal = client.portal
            self._client = jar

        def close(self) -> None:
            self.portal.call(jar.aclose)

    return Browser()


def _entries(settings: HubSettings, action: str) -> list[Any]:
    engine = make_engine(settings.effective_database_url)
    try:
        with init_db(engine)() as s:
            return [e for e in audit.entries(session=s) if e.action == action]
    finally:
        engine.dispose()


def _with_session(settings: HubSettings, work: Callable[[Session], Any]) -> Any:
    engine = make_engine(settings.effective_database_url)
    try:
        with init_db(engine)() as s:
            return work(s)
    finally:
        engine.dispose()


def _person(
    settings: HubSettings,
    username: str,
    *,
    org: str = "nso-kenya",
    roles: tuple[RoleScope, ...] = (RoleScope(role="analyst"),),
    password: str = PASSWORD,
) -> None:
    def work(s: Session) -> None:
        if org not in {o.slug for o in auth_organisations.list_organisations(session=s)}:
            auth_organisations.create_organisation(
                session=s,
                body=OrganisationCreate(slug=org, name=org, kind="nso", country="404"),
                actor="test",
            )
        auth_users.create_user(
            session=s,
            body=UserCreate(username=username, organisation=org, roles=roles),
            actor="test",
            settings=settings,
            password=password,
        )

    _with_session(settings, work)


def _login(client: AppClient, username: str, password: str = PASSWORD, **extra: Any) -> Any:
    return client.post("/v1/auth/login", json={"username": username, "password": password, **extra})


@pytest.fixture
def hub(make_hub: Callable[..., Hub]) -> Hub:
    return make_hub([])


# --- passwords and lockout ---


def test_password_policy_names_rules_never_the_password(hub: Hub) -> None:
    for bad, rule in (
        ("short", "at least 12"),
        ("passwordpassword", "common"),
        ("aaaaaaaaaaaaaaaa", "common"),
        ("wanjiku-is-my-name", "user name"),
    ):
        with pytest.raises(HubError) as info:
            _person(hub.settings, "wanjiku", password=bad)
        assert info.value.code == "password_rejected"
        assert rule in info.value.message
        assert bad not in info.value.message
    _person(hub.settings, "wanjiku")


def test_login_sets_a_secure_session_cookie_and_is_audited(hub: Hub) -> None:
    _person(hub.settings, "amina")
    b = browser(hub)
    response = _login(b, "amina")
    assert response.status_code == 200, response.text
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("__Host-sauti_session=")
    for flag in ("HttpOnly", "Secure", "SameSite=lax", "Path=/"):
        assert flag.lower() in cookie.lower()
    info = response.json()
    assert info["roles"] == ["analyst"]
    assert info["organisation"] == "nso-kenya"
    assert b.get("/v1/auth/me").json()["via"] == "session"
    assert b.get("/v1/queries").status_code == 200
    logins = _entries(hub.settings, "auth.login")
    assert [e.object for e in logins] == ["user:amina"]
    b.close()


def test_brute_force_locks_the_account_and_each_failure_is_logged(hub: Hub) -> None:
    _person(hub.settings, "juma")
    b = browser(hub)
    for _ in range(hub.settings.login_max_failures - 1):
        wrong = _login(b, "juma", "not the password at all")
        assert wrong.status_code == 401
        assert wrong.json()["error"]["code"] == "login_failed"
    locking = _login(b, "juma", "not the password at all")
    unknown = _login(b, "nobody-by-this-name", "not the password at all")
    # Locking and locked answer exactly as an unknown name does: nothing tells names apart.
    assert (locking.status_code, locking.json()) == (unknown.status_code, unknown.json())
    assert locking.json()["error"]["code"] == "login_failed"
    # Locked: even the right password is refused now, with the same answer.
    right = _login(b, "juma")
    assert (right.status_code, right.json()) == (unknown.status_code, unknown.json())
    failures = _entries(hub.settings, "auth.login_failed")
    assert len(failures) == hub.settings.login_max_failures + 2
    assert failures[-1].details["reason"] == "locked"
    assert "not the password" not in str([f.details for f in failures])
    assert len(_entries(hub.settings, "auth.locked")) == 1
    # An admin unlocks (over the API, logged) and the right password works again.
    unlocked = hub.client.post("/v1/users/juma/unlock", headers=hub.headers("admin"))
    assert unlocked.status_code == 200
    assert _login(b, "juma").status_code == 200
    assert _entries(hub.settings, "auth.unlocked")[0].actor == "user:admin"
    b.close()


def test_unknown_user_and_wrong_password_look_the_same(hub: Hub) -> None:
    _person(hub.settings, "kofi")
    unknown = _login(hub.client, "nobody-here")
    wrong = _login(hub.client, "kofi", "wrong password here")
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json() == wrong.json()


def test_admin_reset_forces_a_password_change(hub: Hub) -> None:
    _person(hub.settings, "neema")
    reset = hub.client.post("/v1/users/neema/password-reset", headers=hub.headers("admin"))
    temporary = reset.json()["temporary_password"]
    b = browser(hub)
    login = _login(b, "neema", temporary)
    assert login.json()["must_change_password"] is True
    csrf = login.json()["csrf_token"]
    blocked = b.get("/v1/queries")
    assert blocked.status_code == 403
    assert blocked.json()["error"]["code"] == "password_change_required"
    changed = b.post(
        "/v1/auth/password",
        json={"current_password": temporary, "new_password": "a fresh long passphrase"},
        headers={"X-CSRF-Token": csrf},
    )
    assert changed.status_code == 204, changed.text
    assert b.get("/v1/queries").status_code == 200
    assert _entries(hub.settings, "auth.password_reset")[0].actor == "user:admin"
    b.close()


def test_totp_is_required_once_confirmed_and_codes_cannot_be_replayed(hub: Hub) -> None:
    _person(hub.settings, "thu")
    b = browser(hub)
    csrf = _login(b, "thu").json()["csrf_token"]
    setup = b.post("/v1/auth/totp", headers={"X-CSRF-Token": csrf}).json()
    assert setup["uri"].startswith("otpauth://totp/")
    code = credentials.totp_code(setup["secret"], now=datetime.now(UTC))
    confirm = b.post("/v1/auth/totp/confirm", json={"code": code}, headers={"X-CSRF-Token": csrf})
    assert confirm.status_code == 204
    no_code = _login(hub.client, "thu")
    assert no_code.json()["error"]["code"] == "login_failed"
    replayed = _login(hub.client, "thu", totp=code)
    assert replayed.json()["error"]["code"] == "login_failed"
    later = credentials.totp_code(setup["secret"], now=datetime.now(UTC) + timedelta(seconds=30))
    assert _login(hub.client, "thu", totp=later).status_code == 200
    reasons = [e.details["reason"] for e in _entries(hub.settings, "auth.login_failed")]
    assert reasons == ["bad_totp", "bad_totp"]
    b.close()


# --- sessions and CSRF ---


def test_csrf_less_posts_in_a_session_are_refused_and_logged(hub: Hub) -> None:
    _person(hub.settings, "ops", org="sec", roles=(RoleScope(role="secretariat"),))
    b = browser(hub)
    csrf = _login(b, "ops").json()["csrf_token"]
    body = {"node_id": "np-x"}
    refused = b.post("/v1/enrollment-tokens", json=body)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "csrf_failed"
    wrong = b.post("/v1/enrollment-tokens", json=body, headers={"X-CSRF-Token": "guess"})
    assert wrong.json()["error"]["code"] == "csrf_failed"
    ok = b.post("/v1/enrollment-tokens", json=body, headers={"X-CSRF-Token": csrf})
    assert ok.status_code == 201, ok.text
    denied = _entries(hub.settings, "auth.denied")
    assert [(d.actor, d.details["code"]) for d in denied] == [("user:ops", "csrf_failed")] * 2
    # Logging out needs the token too, then the cookie no longer works.
    assert b.post("/v1/auth/logout").status_code == 403
    assert b.post("/v1/auth/logout", headers={"X-CSRF-Token": csrf}).status_code == 204
    assert b.get("/v1/auth/me").status_code == 401
    b.close()


def test_login_form_needs_its_double_submit_token(hub: Hub) -> None:
    _person(hub.settings, "form-user")
    b = browser(hub)
    form = {"username": "form-user", "password": PASSWORD}
    refused = b.post("/v1/auth/login", data=form)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "csrf_failed"
    plain = b.post(
        "/v1/auth/login",
        content=f'{{"username": "form-user", "password": "{PASSWORD}"}}',
        headers={"content-type": "text/plain"},
    )
    assert plain.status_code == 422
    token = b.get("/v1/auth/login-csrf").json()["csrf_token"]
    ok = b.post("/v1/auth/login", data={**form, "csrf_token": token})
    assert ok.status_code == 200, ok.text
    # A session form post carries its CSRF token as a field.
    csrf = ok.json()["csrf_token"]
    assert b.post("/v1/auth/logout", data={"csrf_token": csrf}).status_code == 204
    b.close()


def test_expired_and_idle_sessions_are_refused(hub: Hub) -> None:
    _person(hub.settings, "idle")
    b = browser(hub)
    assert _login(b, "idle").status_code == 200

    def age(s: Session, **values: Any) -> None:
        s.execute(update(WebSession).values(**values))
        s.commit()

    past = datetime.now(UTC) - timedelta(minutes=hub.settings.session_idle_minutes + 1)
    _with_session(hub.settings, lambda s: age(s, last_seen_at=past))
    idle = b.get("/v1/auth/me")
    assert idle.status_code == 401
    assert idle.json()["error"]["code"] == "session_expired"
    assert _login(b, "idle").status_code == 200
    _with_session(hub.settings, lambda s: age(s, expires_at=datetime.now(UTC)))
    assert b.get("/v1/auth/me").json()["error"]["code"] == "session_expired"
    assert _entries(hub.settings, "auth.denied")[-1].object.startswith("session:")
    b.close()


# --- API tokens ---


def test_tokens_are_scoped_expiring_revocable_and_shown_once(hub: Hub) -> None:
    _person(
        hub.settings,
        "multi",
        roles=(RoleScope(role="analyst"), RoleScope(role="auditor")),
    )
    b = browser(hub)
    csrf = {"X-CSRF-Token": _login(b, "multi").json()["csrf_token"]}
    created = b.post("/v1/tokens", json={"name": "notebook", "role": "analyst"}, headers=csrf)
    assert created.status_code == 201, created.text
    token = created.json()["token"]
    info = created.json()["info"]
    assert info["scope"] == "org:nso-kenya"
    assert datetime.fromisoformat(info["expires_at"]) > datetime.now(UTC) + timedelta(days=89)
    auth = {"Authorization": f"Bearer {token}"}
    # Scoped: the token acts as analyst only, though its user is an auditor too.
    assert hub.client.get("/v1/queries", headers=auth).status_code == 200
    assert hub.client.get("/v1/audit/verify", headers=auth).status_code == 403
    # Listed without the secret; stored only hashed.
    listed = b.get("/v1/tokens").json()
    assert token not in str(listed)
    stored = _with_session(hub.settings, lambda s: s.scalars(select(ApiToken.token_hash)).all())
    assert token not in stored
    # A token cannot mint a stronger one, nor one past the hub's maximum life.
    stronger = hub.client.post("/v1/tokens", json={"name": "x", "role": "auditor"}, headers=auth)
    assert stronger.status_code == 422
    assert stronger.json()["error"]["code"] == "scope_invalid"
    too_long = b.post(
        "/v1/tokens", json={"name": "x", "role": "analyst", "expires_in_days": 5000}, headers=csrf
    )
    assert too_long.json()["error"]["code"] == "scope_invalid"
    # Revoked: refused at once, with its own code, and the use is logged.
    revoked = b.request("DELETE", f"/v1/tokens/{info['token_id']}", headers=csrf)
    assert revoked.status_code == 200
    refused = hub.client.get("/v1/queries", headers=auth)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "token_revoked"
    assert _entries(hub.settings, "token.revoked")[0].actor == "user:multi"
    assert _entries(hub.settings, "auth.denied")[-1].object == f"token:{info['token_id']}"
    b.close()


def test_expired_tokens_and_removed_roles_stop_tokens(hub: Hub) -> None:
    token = _with_session(
        hub.settings,
        lambda s: auth_tokens.create_token(
            session=s, name="bot", organisation="nso-x", role="analyst"
        ),
    )
    auth = {"Authorization": f"Bearer {token}"}
    assert hub.client.get("/v1/queries", headers=auth).status_code == 200

    def expire(s: Session) -> None:
        s.execute(
            update(ApiToken).where(ApiToken.name == "bot").values(expires_at=datetime.now(UTC))
        )
        s.commit()

    _with_session(hub.settings, expire)
    expired = hub.client.get("/v1/queries", headers=auth)
    assert expired.status_code == 401
    assert expired.json()["error"]["code"] == "token_expired"
    fresh = _with_session(
        hub.settings,
        lambda s: auth_tokens.create_token(
            session=s, name="bot", organisation="nso-x", role="analyst"
        ),
    )
    fresh_auth = {"Authorization": f"Bearer {fresh}"}
    assert hub.client.get("/v1/queries", headers=fresh_auth).status_code == 200
    revoke = hub.client.post(
        "/v1/users/bot/roles/revoke", json={"role": "analyst"}, headers=hub.headers("admin")
    )
    assert revoke.status_code == 200
    assert hub.client.get("/v1/queries", headers=fresh_auth).json()["error"]["code"] == (
        "token_revoked"
    )
    changes = [(e.action, e.details["role"]) for e in _entries(hub.settings, "role.revoked")]
    assert changes == [("role.revoked", "analyst")]
    created = _entries(hub.settings, "token.created")
    assert fresh not in str([e.details for e in created])


def test_malformed_and_missing_credentials(hub: Hub) -> None:
    for headers in (
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic abc"},
        {"Authorization": "Bearer sauti_not-a-token"},
    ):
        response = hub.client.get("/v1/queries", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthenticated"
        assert response.headers["www-authenticate"] == "Bearer"
    # Anonymous garbage is not chained (anyone could grow the chain), only logged.
    assert _entries(hub.settings, "auth.denied") == []


# --- role escalation ---


def test_steward_signing_for_another_node_is_refused_and_logged(
    federation: Hub, sim_nodes: list[SimNode]
) -> None:
    _person(
        federation.settings,
        "sita",
        org="cso-ke-a",
        roles=(RoleScope(role="steward", node_id="ke-a"),),
    )
    b = browser(federation)
    csrf = {"X-CSRF-Token": _login(b, "sita").json()["csrf_token"]}
    digest = federation.client.get(
        "/v1/agreements/lnob-2026", headers=federation.headers("admin")
    ).json()["agreement"]["digest"]
    other = sim_nodes[1].sign_agreement("lnob-2026", 1, digest).model_dump(mode="json")
    refused = b.post("/v1/agreements/lnob-2026/signatures", json=other, headers=csrf)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "node_scope_forbidden"
    denied = _entries(federation.settings, "auth.denied")[-1]
    assert (denied.actor, denied.details["code"]) == ("user:sita", "node_scope_forbidden")
    # Their own node's agreements are visible to them; nothing else is.
    assert [a["agreement"]["terms"]["agreement_id"] for a in b.get("/v1/agreements").json()] == [
        "lnob-2026"
    ]
    b.close()


def test_analyst_reading_another_organisations_result_is_refused_and_logged(
    federation: Hub,
) -> None:
    body = {
        "agreement_id": "lnob-2026",
        "dataset": "lnob_household",
        "measure": "count",
        "group_by": ["sex"],
        "rho": 0.1,
    }
    created = federation.client.post(
        "/v1/queries", json=body, headers=federation.headers("analyst")
    )
    assert created.status_code == 201, created.text
    query_id = created.json()["query_id"]
    other = federation.client.get(f"/v1/queries/{query_id}", headers=federation.headers("outsider"))
    assert other.status_code == 403
    assert other.json()["error"]["code"] == "forbidden"
    denied = _entries(federation.settings, "auth.denied")[-1]
    assert (denied.actor, denied.details["organisation"]) == ("user:out", "other-org")
    assert denied.details["route"] == "/v1/queries/{query_id}"


# --- accounts over the API ---


def test_admin_manages_organisations_users_and_roles(hub: Hub) -> None:
    admin = hub.headers("admin")
    org = hub.client.post(
        "/v1/organisations",
        json={"slug": "np-dalit", "name": "Dalit rights org", "kind": "cso", "country": "524"},
        headers=admin,
    )
    assert org.status_code == 201, org.text
    assert (
        hub.client.post(
            "/v1/organisations",
            json={"slug": "np-dalit", "name": "again", "kind": "cso"},
            headers=admin,
        ).json()["error"]["code"]
        == "organisation_exists"
    )
    bad = hub.client.post(
        "/v1/organisations", json={"slug": "x", "name": "y", "kind": "church"}, headers=admin
    )
    assert bad.status_code == 422
    user = hub.client.post(
        "/v1/users",
        json={"username": "maya", "organisation": "np-dalit", "roles": [{"role": "steward"}]},
        headers=admin,
    )
    assert user.json()["error"]["code"] == "scope_invalid"
    user = hub.client.post(
        "/v1/users",
        json={
            "username": "maya",
            "organisation": "np-dalit",
            "roles": [{"role": "steward", "node_id": "np-dalit-node"}],
        },
        headers=admin,
    )
    assert user.status_code == 201, user.text
    initial = user.json()["initial_password"]
    assert user.json()["user"]["must_change_password"] is True
    grant = hub.client.post("/v1/users/maya/roles", json={"role": "analyst"}, headers=admin).json()
    assert {(g["role"], g["scope"]) for g in grant["roles"]} == {
        ("steward", "node:np-dalit-node"),
        ("analyst", "org:np-dalit"),
    }
    assert _login(hub.client, "maya", initial).json()["must_change_password"] is True
    # Not admins: refused with a code; auditors may read accounts.
    assert (
        hub.client.post(
            "/v1/users",
            json={"username": "z", "organisation": "np-dalit"},
            headers=hub.headers("secretariat"),
        ).status_code
        == 403
    )
    assert hub.client.get("/v1/users", headers=hub.headers("auditor")).status_code == 200
    actions = [e.action for e in _entries(hub.settings, "role.granted")]
    assert len(actions) >= 2


# --- sessions and tokens end for good (issue #20) ---


def _bot_token(hub: Hub) -> dict[str, str]:
    token = _with_session(
        hub.settings,
        lambda s: auth_tokens.create_token(
            session=s, name="bot", organisation="nso-x", role="analyst"
        ),
    )
    return {"Authorization": f"Bearer {token}"}


def test_disabling_a_user_ends_their_tokens_for_good(hub: Hub) -> None:
    auth = _bot_token(hub)
    assert hub.client.get("/v1/queries", headers=auth).status_code == 200
    admin = hub.headers("admin")
    assert hub.client.post("/v1/users/bot/disable", headers=admin).status_code == 200
    assert hub.client.get("/v1/queries", headers=auth).status_code == 401
    assert hub.client.post("/v1/users/bot/enable", headers=admin).status_code == 200
    back = hub.client.get("/v1/queries", headers=auth)
    assert (back.status_code, back.json()["error"]["code"]) == (401, "token_revoked")
    revoked = _entries(hub.settings, "token.revoked")
    assert [e.details["reason"] for e in revoked] == ["user_disabled"]


def test_revoking_a_role_ends_its_tokens_for_good(hub: Hub) -> None:
    auth = _bot_token(hub)
    admin = hub.headers("admin")
    revoke = hub.client.post("/v1/users/bot/roles/revoke", json={"role": "analyst"}, headers=admin)
    assert revoke.status_code == 200
    regrant = hub.client.post("/v1/users/bot/roles", json={"role": "analyst"}, headers=admin)
    assert regrant.status_code in (200, 201), regrant.text
    back = hub.client.get("/v1/queries", headers=auth)
    assert (back.status_code, back.json()["error"]["code"]) == (401, "token_revoked")
    assert [e.details["reason"] for e in _entries(hub.settings, "token.revoked")] == [
        "role_revoked"
    ]


def test_tokens_dormant_from_before_come_back_neither_on_enable_nor_on_regrant(hub: Hub) -> None:
    """A token left unrevoked by an older hub (user disabled, role lost) stays dead."""
    auth = _bot_token(hub)

    def dormant(s: Session) -> None:
        row = s.scalars(select(UserRow).where(UserRow.username == "bot")).one()
        row.disabled_at = datetime.now(UTC)
        s.execute(delete(RoleGrant).where(RoleGrant.user_id == row.id))
        s.commit()

    _with_session(hub.settings, dormant)
    admin = hub.headers("admin")
    assert hub.client.post("/v1/users/bot/enable", headers=admin).status_code == 200
    assert hub.client.post("/v1/users/bot/roles", json={"role": "analyst"}, headers=admin)
    assert hub.client.get("/v1/queries", headers=auth).json()["error"]["code"] == "token_revoked"


def test_a_password_change_ends_the_users_other_sessions(hub: Hub) -> None:
    _person(hub.settings, "asha")
    first, second = browser(hub), browser(hub)
    csrf = _login(first, "asha").json()["csrf_token"]
    _login(second, "asha")
    assert second.get("/v1/auth/me").status_code == 200
    changed = first.post(
        "/v1/auth/password",
        json={"current_password": PASSWORD, "new_password": "another long passphrase here"},
        headers={"X-CSRF-Token": csrf},
    )
    assert changed.status_code == 204, changed.text
    assert first.get("/v1/auth/me").status_code == 200  # the session that changed it stays
    assert second.get("/v1/auth/me").status_code == 401
    assert _entries(hub.settings, "auth.password_changed")[0].details == {"sessions_ended": 1}
    first.close()
    second.close()


def test_page_and_api_normalise_a_login_alike(hub: Hub) -> None:
    """User names lose surrounding spaces on both; passwords are never stripped."""
    _person(hub.settings, "lina")
    api = _login(hub.client, "  lina ", PASSWORD)
    assert api.status_code == 200
    assert _login(hub.client, "lina", f" {PASSWORD} ").status_code == 401
    b = browser(hub)
    for password, expected in ((f" {PASSWORD} ", 401), (PASSWORD, 303)):
        page = b.get("/login")
        token = page.headers["set-cookie"].split("sauti_web_login_csrf=", 1)[1].split(";", 1)[0]
        answer = b.post(
            "/login",
            data={"username": " lina ", "password": password, "csrf_token": token, "next": "/"},
        )
        assert answer.status_code == expected, answer.text
    b.close()
