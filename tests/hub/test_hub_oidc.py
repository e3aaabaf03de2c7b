"""Single sign-on end to end against a real OIDC provider on localhost (tests/hub/oidc_provider.py).

The hub talks to the provider over real sockets (discovery, JWKS, token endpoint); the
browser is an httpx client following each redirect by hand, so every hop is checked.
"""

from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from hub_support import AppClient
from oidc_provider import CLIENT_ID, CLIENT_SECRET, Provider
from pydantic import SecretStr

from hub.app import create_app
from hub.audit import service as audit
from hub.auth import oidc, organisations
from hub.auth.schemas import OrganisationCreate
from hub.db import init_db, make_engine
from hub.settings import HubSettings, OidcProviderSettings
from sauti.serve import serve_in_thread

NAME = "kenya-gov"


@pytest.fixture
def provider() -> Iterator[Provider]:
    p = Provider(
        claims={
            "sub": "u-123",
            "preferred_username": "wanjiru",
            "name": "Wanjiru K.",
            "org": "KNBS",
            "groups": ["sauti-analysts", "staff"],
        }
    )
    with serve_in_thread(p.app()) as server:
        p.issuer = server.url
        oidc.clear_cache()
        yield p
    oidc.clear_cache()


class Browser:
    """One browser: a cookie jar on https://hub.test (the hub app in process)."""

    def __init__(self, hub: AppClient, app: Any) -> None:
        self.hub = hub
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="https://hub.test"
        )

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            return await self.client.get(url, **kwargs)

        return self.hub.portal.call(send)

    def close(self) -> None:
        self.hub.portal.call(self.client.aclose)

    def login(self, *, next_path: str = "/v1/auth/me") -> httpx.Response:
        """Start at the hub, pass through the real provider, come back; the callback's answer."""
        start = self.get(f"/v1/auth/oidc/{NAME}/login", params={"next": next_path})
        assert start.status_code == 302, start.text
        at_idp = httpx.get(start.headers["location"], timeout=10)
        assert at_idp.status_code == 302, at_idp.text
        back = urlsplit(at_idp.headers["location"])
        assert back.netloc == "hub.test"
        return self.get(f"{back.path}?{back.query}")


@pytest.fixture
def sso(
    provider: Provider, hub_settings: HubSettings
) -> Iterator[tuple[HubSettings, AppClient, Callable[[], Browser]]]:
    settings = hub_settings.model_copy(
        update={
            "oidc_providers": (
                OidcProviderSettings(
                    name=NAME,
                    title="Government of Kenya",
                    issuer=provider.issuer,
                    client_id=CLIENT_ID,
                    client_secret=SecretStr(CLIENT_SECRET),
                    scopes=("openid", "profile"),
                    organisation_claim="org",
                    organisation_map={"KNBS": "knbs"},
                    roles_claim="groups",
                    role_map={
                        "sauti-analysts": ("analyst",),
                        "sauti-admins": ("admin",),
                        "sauti-auditors": ("auditor",),
                    },
                ),
            )
        }
    )
    engine = make_engine(settings.effective_database_url)
    with init_db(engine)() as s:
        organisations.create_organisation(
            session=s,
            body=OrganisationCreate(slug="knbs", name="KNBS", kind="nso", country="404"),
            actor="test",
        )
    engine.dispose()
    app = create_app(settings)
    hub = AppClient(app)
    browsers: list[Browser] = []

    def new_browser() -> Browser:
        b = Browser(hub, app)
        browsers.append(b)
        return b

    yield settings, hub, new_browser
    for b in browsers:
        b.close()
    hub.close()


def _entries(settings: HubSettings, action: str) -> list[Any]:
    engine = make_engine(settings.effective_database_url)
    try:
        with init_db(engine)() as s:
            return [e for e in audit.entries(session=s) if e.action == action]
    finally:
        engine.dispose()


def test_sign_in_maps_claims_to_organisation_and_roles(
    sso: tuple[HubSettings, AppClient, Callable[[], Browser]], provider: Provider
) -> None:
    settings, hub, new_browser = sso
    listed = hub.get("/v1/auth/oidc").json()
    assert listed == [
        {"name": NAME, "title": "Government of Kenya", "login_url": f"/v1/auth/oidc/{NAME}/login"}
    ]
    b = new_browser()
    done = b.login(next_path="/v1/queries")
    assert done.status_code == 303, done.text
    assert done.headers["location"] == "/v1/queries"
    assert "__Host-sauti_session=" in done.headers["set-cookie"]
    me = b.get("/v1/auth/me").json()
    assert (me["name"], me["organisation"], me["roles"], me["via"]) == (
        f"{NAME}:wanjiru",
        "knbs",
        ["analyst"],
        "session",
    )
    assert b.get("/v1/queries").status_code == 200
    # What the hub sent the IdP: code flow, PKCE S256, a state and a nonce.
    sent = provider.seen[-1]
    assert sent["response_type"] == "code"
    assert sent["code_challenge_method"] == "S256"
    assert len(sent["state"]) >= 32
    assert len(sent["nonce"]) >= 32
    assert sent["redirect_uri"] == f"https://hub.test/v1/auth/oidc/{NAME}/callback"
    login = _entries(settings, "auth.login")[-1]
    assert login.details["method"] == f"oidc:{NAME}"
    granted = _entries(settings, "role.granted")[-1]
    assert (granted.actor, granted.details["role"]) == (f"oidc:{NAME}", "analyst")


def test_idp_group_changes_change_roles_at_next_login(
    sso: tuple[HubSettings, AppClient, Callable[[], Browser]], provider: Provider
) -> None:
    settings, _hub, new_browser = sso
    assert new_browser().login().status_code == 303
    provider.claims["groups"] = ["sauti-auditors"]
    b = new_browser()
    assert b.login().status_code == 303
    assert b.get("/v1/auth/me").json()["roles"] == ["auditor"]
    revoked = _entries(settings, "role.revoked")
    assert [(e.details["role"], e.actor) for e in revoked] == [("analyst", f"oidc:{NAME}")]


@pytest.mark.parametrize(
    ("mode", "code"),
    [
        ("expired", "oidc_token_expired"),
        ("tampered", "oidc_token_invalid"),
        ("unknown_key", "oidc_token_invalid"),
        ("wrong_aud", "oidc_token_invalid"),
        ("wrong_iss", "oidc_token_invalid"),
        ("wrong_nonce", "oidc_nonce_mismatch"),
        ("no_nonce", "oidc_nonce_mismatch"),
    ],
)
def test_bad_id_tokens_are_refused_and_logged(
    sso: tuple[HubSettings, AppClient, Callable[[], Browser]],
    provider: Provider,
    mode: str,
    code: str,
) -> None:
    settings, _hub, new_browser = sso
    provider.mode = mode
    b = new_browser()
    refused = b.login()
    assert refused.status_code == 401, refused.text
    assert refused.json()["error"]["code"] == code
    assert (
        "set-cookie" not in refused.headers or "sauti_session" not in refused.headers["set-cookie"]
    )
    assert b.get("/v1/auth/me").status_code == 401
    failed = _entries(settings, "auth.login_failed")[-1]
    assert failed.details == {"method": f"oidc:{NAME}", "reason": code}
    assert _entries(settings, "auth.login") == []


def test_bad_state_replay_and_another_browser_are_refused(
    sso: tuple[HubSettings, AppClient, Callable[[], Browser]],
) -> None:
    settings, _hub, new_browser = sso
    b = new_browser()
    start = b.get(f"/v1/auth/oidc/{NAME}/login")
    at_idp = httpx.get(start.headers["location"], timeout=10)
    back = urlsplit(at_idp.headers["location"])
    params = parse_qs(back.query)
    # A forged state.
    forged = b.get(back.path, params={"code": params["code"][0], "state": "forged"})
    assert forged.json()["error"]["code"] == "oidc_state_invalid"
    # The callback delivered to another browser (login CSRF): no binding cookie there.
    other = new_browser().get(f"{back.path}?{back.query}")
    assert other.status_code == 401
    assert other.json()["error"]["code"] == "oidc_state_invalid"
    # The state is single use: the stolen attempt above burnt it.
    again = b.get(f"{back.path}?{back.query}")
    assert again.json()["error"]["code"] == "oidc_state_invalid"
    # An IdP error answer.
    b2 = new_browser()
    start = b2.get(f"/v1/auth/oidc/{NAME}/login")
    state = parse_qs(urlsplit(start.headers["location"]).query)["state"][0]
    denied = b2.get(back.path, params={"error": "access_denied", "state": state})
    assert denied.json()["error"]["code"] == "oidc_idp_error"
    reasons = [e.details["reason"] for e in _entries(settings, "auth.login_failed")]
    assert reasons == ["oidc_state_invalid"] * 3 + ["oidc_idp_error"]


def test_unmapped_people_and_unknown_providers_get_nothing(
    sso: tuple[HubSettings, AppClient, Callable[[], Browser]], provider: Provider
) -> None:
    settings, hub, new_browser = sso
    provider.claims["groups"] = ["staff"]
    refused = new_browser().login()
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "oidc_no_roles"
    provider.claims.update(groups=["sauti-analysts"], org="Somewhere else")
    refused = new_browser().login()
    assert refused.json()["error"]["code"] == "oidc_no_organisation"
    unknown = hub.get("/v1/auth/oidc/nobody/login")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "oidc_provider_unknown"
    assert len(_entries(settings, "auth.login_failed")) == 2


def test_next_is_only_ever_a_local_path() -> None:
    assert oidc.safe_next("/v1/queries?x=1") == "/v1/queries?x=1"
    for hostile in ("https://evil.example", "//evil.example", "/\\evil", "javascript:x", None):
        assert oidc.safe_next(hostile) == "/"
