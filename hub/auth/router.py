"""Auth routes: login/logout, sessions, OIDC, TOTP, own password; organisations, users, tokens."""

import json
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import ValidationError

from hub.auth import oidc, organisations, sessions, tokens, users
from hub.auth.exceptions import CsrfFailed, ScopeInvalid
from hub.auth.schemas import (
    OidcProviderRead,
    OrganisationCreate,
    OrganisationRead,
    PasswordReset,
    RoleScope,
    SessionInfo,
    TokenCreate,
    TokenCreated,
    TokenRead,
    TotpConfirm,
    User,
    UserCreate,
    UserCreated,
    UserRead,
)
from hub.deps import (
    Admin,
    AdminOrAuditor,
    AdminOrSecretariat,
    CurrentUser,
    SessionDep,
    StateDep,
    refuse_text,
)
from hub.exceptions import Invalid
from hub.settings import HubSettings
from runtime import edge
from runtime.credentials import LoginRequest, PasswordChange, TotpSetup

router = APIRouter(tags=["auth"])

LOGIN_CSRF_COOKIE = "sauti_login_csrf"
OIDC_BROWSER_COOKIE = "sauti_oidc"
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


def _actor(user: User) -> str:
    return f"user:{user.name}"


def set_session_cookie(response: Response, settings: HubSettings, cookie: str) -> None:
    response.set_cookie(
        sessions.session_cookie_name(settings),
        cookie,
        max_age=int(settings.session_hours * 3600),
        path="/",
        secure=settings.session_cookie_secure,
        httponly=True,
        samesite="lax",
    )


# --- login and sessions ---


@router.get("/v1/auth/login-csrf")
def login_csrf(state: StateDep, response: Response) -> dict[str, str]:
    """A token for a login *form*: posted back as csrf_token and matched against its cookie."""
    token = sessions.new_csrf_token()
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        max_age=3600,
        path="/v1/auth",
        secure=state.settings.session_cookie_secure,
        httponly=True,
        samesite="strict",
    )
    return {"csrf_token": token}


async def _login_body(request: Request) -> LoginRequest:
    """JSON, or a form post carrying the login CSRF token (double-submit cookie)."""
    content_type = request.headers.get("content-type", "")
    try:
        if content_type.startswith(_FORM_TYPES):
            form = await request.form()
            refuse_text(edge.forbidden_in_form(form.multi_items()))
            cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
            field = form.get("csrf_token")
            if not cookie or not isinstance(field, str) or not sessions.same(field, cookie):
                raise CsrfFailed()
            return LoginRequest.model_validate(
                {k: v for k, v in form.items() if k != "csrf_token" and isinstance(v, str)}
            )
        if not content_type.startswith("application/json"):
            # A cross-site form can post text/plain that parses as JSON: refuse it.
            raise Invalid("send the login as JSON or as a form with its CSRF token")
        try:
            data = json.loads(await request.body())
        except ValueError as exc:
            raise Invalid("the body is not JSON") from exc
        refuse_text(edge.forbidden_in(data))
        return LoginRequest.model_validate(data)
    except ValidationError as exc:
        fields = sorted({".".join(str(p) for p in e["loc"]) or "body" for e in exc.errors()})
        raise Invalid("invalid fields: " + ", ".join(fields)) from exc


@router.post(
    "/v1/auth/login",
    openapi_extra={
        "requestBody": {
            "content": {
                "application/json": {"schema": LoginRequest.model_json_schema()},
                "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
            }
        }
    },
)
def login(
    body: Annotated[LoginRequest, Depends(_login_body)],
    state: StateDep,
    session: SessionDep,
    response: Response,
) -> SessionInfo:
    """Password (and TOTP code) login; sets the session cookie. Failures count to a lockout."""
    cookie, info = sessions.login_password(
        session=session,
        username=body.username,
        password=body.password,
        totp=body.totp,
        settings=state.settings,
    )
    set_session_cookie(response, state.settings, cookie)
    return info


def _session_user(user: User) -> int:
    if user.via != "session" or user.session_id is None:
        raise ScopeInvalid("this needs a browser session, not an API token")
    return user.session_id


@router.get("/v1/auth/session")
def current_session(user: CurrentUser, session: SessionDep) -> SessionInfo:
    """The signed-in user and the CSRF token to send on state-changing requests."""
    return sessions.session_info(session=session, session_id=_session_user(user))


@router.post("/v1/auth/logout", status_code=204)
def logout(user: CurrentUser, state: StateDep, session: SessionDep) -> Response:
    sessions.logout(session=session, session_id=_session_user(user))
    response = Response(status_code=204)
    response.delete_cookie(
        sessions.session_cookie_name(state.settings),
        path="/",
        secure=state.settings.session_cookie_secure,
        httponly=True,
        samesite="lax",
    )
    return response


@router.get("/v1/auth/me")
def me(user: CurrentUser) -> User:
    """Who the hub thinks is calling: name, organisation, roles, nodes, token or session."""
    return user


@router.post("/v1/auth/password", status_code=204)
def change_password(
    body: PasswordChange, user: CurrentUser, state: StateDep, session: SessionDep
) -> Response:
    if user.user_id is None:
        raise ScopeInvalid("this token has no user account")
    users.change_password(
        session=session,
        user_id=user.user_id,
        current_password=body.current_password,
        new_password=body.new_password,
        settings=state.settings,
        keep_session_id=user.session_id,
    )
    return Response(status_code=204)


@router.post("/v1/auth/totp", status_code=201)
def totp_begin(user: CurrentUser, state: StateDep, session: SessionDep) -> TotpSetup:
    """Start TOTP: a secret for the authenticator app, active once a code confirms it."""
    if user.user_id is None:
        raise ScopeInvalid("this token has no user account")
    return users.totp_begin(session=session, user_id=user.user_id, settings=state.settings)


@router.post("/v1/auth/totp/confirm", status_code=204)
def totp_confirm(body: TotpConfirm, user: CurrentUser, session: SessionDep) -> Response:
    if user.user_id is None:
        raise ScopeInvalid("this token has no user account")
    users.totp_confirm(session=session, user_id=user.user_id, code=body.code)
    return Response(status_code=204)


# --- single sign-on ---


def _redirect_uri(request: Request, settings: HubSettings, name: str) -> str:
    base = settings.public_url or str(request.base_url)
    return f"{base.rstrip('/')}/v1/auth/oidc/{name}/callback"


@router.get("/v1/auth/oidc")
def oidc_providers(state: StateDep) -> list[OidcProviderRead]:
    """Identity providers this hub accepts, for a login page's buttons."""
    return [
        OidcProviderRead(
            name=p.name, title=p.title or p.name, login_url=f"/v1/auth/oidc/{p.name}/login"
        )
        for p in state.settings.oidc_providers
    ]


@router.get("/v1/auth/oidc/{provider}/login", status_code=302)
def oidc_login(
    provider: str,
    request: Request,
    state: StateDep,
    session: SessionDep,
    next_path: Annotated[str | None, Query(alias="next", max_length=500)] = None,
) -> RedirectResponse:
    """Send the browser to the IdP (authorization code flow with PKCE, state and nonce)."""
    url, browser = oidc.start_login(
        session=session,
        settings=state.settings,
        provider_name=provider,
        redirect_uri=_redirect_uri(request, state.settings, provider),
        next_path=next_path,
    )
    response = RedirectResponse(url, status_code=302)
    response.set_cookie(
        OIDC_BROWSER_COOKIE,
        browser,
        max_age=oidc.LOGIN_TTL_SECONDS,
        path="/v1/auth/oidc",
        secure=state.settings.session_cookie_secure,
        httponly=True,
        # Lax: the IdP's redirect back is a top-level GET navigation, which Lax allows.
        samesite="lax",
    )
    return response


@router.get("/v1/auth/oidc/{provider}/callback", status_code=303)
def oidc_callback(
    provider: str, request: Request, state: StateDep, session: SessionDep
) -> RedirectResponse:
    """The IdP sends the browser back here; on success a session starts."""
    cookie, _info, next_path = oidc.finish_login(
        session=session,
        settings=state.settings,
        provider_name=provider,
        redirect_uri=_redirect_uri(request, state.settings, provider),
        params=dict(request.query_params),
        browser=request.cookies.get(OIDC_BROWSER_COOKIE),
    )
    response = RedirectResponse(next_path, status_code=303)
    set_session_cookie(response, state.settings, cookie)
    response.delete_cookie(OIDC_BROWSER_COOKIE, path="/v1/auth/oidc")
    return response


# --- organisations and users (admins; secretariat registers organisations) ---


@router.post("/v1/organisations", status_code=201)
def create_organisation(
    body: OrganisationCreate, user: AdminOrSecretariat, session: SessionDep
) -> OrganisationRead:
    return organisations.create_organisation(session=session, body=body, actor=_actor(user))


@router.get("/v1/organisations")
def list_organisations(_user: CurrentUser, session: SessionDep) -> list[OrganisationRead]:
    return organisations.list_organisations(session=session)


@router.post("/v1/users", status_code=201)
def create_user(body: UserCreate, user: Admin, state: StateDep, session: SessionDep) -> UserCreated:
    """A person (initial password generated, shown once, to change at first login) or service."""
    return users.create_user(
        session=session, body=body, actor=_actor(user), settings=state.settings
    )


@router.get("/v1/users")
def list_users(
    _user: AdminOrAuditor,
    session: SessionDep,
    organisation: Annotated[str | None, Query(max_length=200)] = None,
) -> list[UserRead]:
    return users.list_users(session=session, organisation=organisation)


@router.get("/v1/users/{username}")
def get_user(username: str, _user: AdminOrAuditor, session: SessionDep) -> UserRead:
    return users.get_user(session=session, username=username)


@router.post("/v1/users/{username}/roles")
def grant_role(username: str, body: RoleScope, user: Admin, session: SessionDep) -> UserRead:
    return users.grant_role(
        session=session, username=username, role=body.role, node_id=body.node_id, actor=_actor(user)
    )


@router.post("/v1/users/{username}/roles/revoke")
def revoke_role(username: str, body: RoleScope, user: Admin, session: SessionDep) -> UserRead:
    return users.revoke_role(
        session=session, username=username, role=body.role, node_id=body.node_id, actor=_actor(user)
    )


@router.post("/v1/users/{username}/disable")
def disable_user(username: str, user: Admin, session: SessionDep) -> UserRead:
    return users.set_disabled(session=session, username=username, disabled=True, actor=_actor(user))


@router.post("/v1/users/{username}/enable")
def enable_user(username: str, user: Admin, session: SessionDep) -> UserRead:
    return users.set_disabled(
        session=session, username=username, disabled=False, actor=_actor(user)
    )


@router.post("/v1/users/{username}/unlock")
def unlock_user(username: str, user: Admin, session: SessionDep) -> UserRead:
    return users.unlock(session=session, username=username, actor=_actor(user))


@router.post("/v1/users/{username}/password-reset")
def reset_password(
    username: str, user: Admin, state: StateDep, session: SessionDep
) -> PasswordReset:
    """A one-time password, shown once; the user must change it at the next login."""
    return users.reset_password(
        session=session, username=username, actor=_actor(user), settings=state.settings
    )


@router.post("/v1/users/{username}/totp-reset")
def reset_totp(username: str, user: Admin, session: SessionDep) -> UserRead:
    return users.totp_reset(session=session, username=username, actor=_actor(user))


# --- API tokens ---


@router.post("/v1/tokens", status_code=201)
def create_token(
    body: TokenCreate, user: CurrentUser, state: StateDep, session: SessionDep
) -> TokenCreated:
    """A token for yourself (a role you hold), or, as an admin, for any user. Shown once."""
    username = body.username or user.name
    if username != user.name and not user.has("admin"):
        raise ScopeInvalid("only an admin issues tokens for another user")
    if user.user_id is None and username == user.name:
        raise ScopeInvalid("this token has no user account to issue tokens for")
    if user.via == "token" and username == user.name and body.role != user.role:
        # A token may not mint a token with more power than itself.
        raise ScopeInvalid("a token can only issue tokens acting in its own role")
    return tokens.issue_token(
        session=session,
        username=username,
        name=body.name,
        role=body.role,
        node_id=body.node_id,
        expires_in_days=body.expires_in_days,
        actor=_actor(user),
        settings=state.settings,
    )


@router.get("/v1/tokens")
def list_tokens(user: CurrentUser, session: SessionDep) -> list[TokenRead]:
    """Admins and auditors see every token (never a secret); others their own."""
    if user.has("admin") or user.has("auditor"):
        return tokens.list_tokens(session=session)
    return tokens.list_tokens(session=session, username=user.name)


@router.delete("/v1/tokens/{token_id}")
def revoke_token(token_id: int, user: CurrentUser, session: SessionDep) -> TokenRead:
    """Revoke at once: your own tokens, or any token as an admin."""
    owner = None if user.has("admin") else (user.user_id if user.user_id is not None else -1)
    return tokens.revoke_token(
        session=session, token_id=token_id, actor=_actor(user), owner_id=owner
    )
