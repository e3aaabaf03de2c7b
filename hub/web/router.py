"""Routes of the web pages: thin; view models come from `hub.web.service`.

Every state-changing form posts the session's CSRF token (checked by the hub's own
`get_current_user`); the login form uses a double-submit cookie, as the login API does.
"""

from pathlib import Path
from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import ValidationError
from starlette.datastructures import FormData

from contracts.agreement_rules import plain_language
from hub.agreements import service as agreements
from hub.auth import sessions as auth_sessions
from hub.auth import users
from hub.auth.router import set_session_cookie
from hub.deps import SessionDep, StateDep, VersionPath
from hub.exceptions import HubError
from hub.nodes import service as federation
from hub.web import analyst, audit, guides, service
from hub.web.deps import (
    AnyViewer,
    Form,
    SecretariatViewer,
    StewardViewer,
    Viewer,
    mark_web,
)
from hub.web.exceptions import FormInvalid
from hub.web.i18n import LANGUAGE_COOKIE, LANGUAGES
from hub.web.templating import render
from runtime.credentials import LoginRequest

STATIC_DIR = Path(__file__).parent / "static"
STATIC_PATH = "/static/hub"
LOGIN_CSRF_COOKIE = "sauti_web_login_csrf"
LANGUAGE_COOKIE_DAYS = 365
# How often the result page asks for progress while nodes are still answering.
POLL_SECONDS = 1

router = APIRouter(dependencies=[Depends(mark_web)], include_in_schema=False)


def install(app: FastAPI) -> None:
    """Register the pages and their vendored static files on the hub's app."""
    app.include_router(router)
    app.include_router(analyst.router)
    app.include_router(audit.router)
    guides.install(app)
    app.mount(STATIC_PATH, StaticFiles(directory=STATIC_DIR), name="hub-static")


def _local(path: str | None) -> str:
    """Only paths on this site are followed after login or a language switch."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path


def _see_other(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


def _page(request: Request, viewer: Viewer | None, template: str, **context: object) -> Response:
    status = context.pop("status_code", 200)
    assert isinstance(status, int)
    return render(request, template, {"viewer": viewer, **context}, status_code=status)


# --- login, logout, language, password --------------------------------------------------


@router.get("/login")
def login_page(
    request: Request,
    state: StateDep,
    next_path: Annotated[str | None, Query(alias="next", max_length=500)] = None,
) -> Response:
    return _login_form(request, state, next_path=_local(next_path))


def _login_form(
    request: Request,
    state: StateDep,
    *,
    next_path: str,
    error: str | None = None,
    status: int = 200,
) -> Response:
    token = auth_sessions.new_csrf_token()
    providers = [
        {"title": p.title or p.name, "url": f"/v1/auth/oidc/{p.name}/login?next={quote(next_path)}"}
        for p in state.settings.oidc_providers
    ]
    response = _page(
        request,
        None,
        "login.html",
        csrf_token=token,
        next_path=next_path,
        providers=providers,
        error=error,
        status_code=status,
    )
    response.set_cookie(
        LOGIN_CSRF_COOKIE,
        token,
        max_age=3600,
        path="/login",
        secure=state.settings.session_cookie_secure,
        httponly=True,
        samesite="strict",
    )
    return response


@router.post("/login")
def login(request: Request, form: Form, state: StateDep, session: SessionDep) -> Response:
    next_path = _local(_field(form, "next"))
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    presented = _field(form, "csrf_token")
    if not cookie or not presented or not auth_sessions.same(presented, cookie):
        return _login_form(request, state, next_path=next_path, error="csrf_failed", status=403)
    # The API's own model and the service's own normalisation: a page accepts exactly what
    # the API accepts (a password is never stripped or cut short).
    try:
        body = LoginRequest.model_validate(
            {
                "username": _raw(form, "username"),
                "password": _raw(form, "password"),
                "totp": _field(form, "totp") or None,
            }
        )
    except ValidationError:
        return _login_form(request, state, next_path=next_path, error="missing", status=422)
    try:
        value, info = auth_sessions.login_password(
            session=session,
            username=body.username,
            password=body.password,
            totp=body.totp,
            settings=state.settings,
        )
    except HubError as exc:
        return _login_form(
            request, state, next_path=next_path, error=exc.code, status=exc.status_code
        )
    response = _see_other("/password" if info.must_change_password else next_path)
    set_session_cookie(response, state.settings, value)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


def _field(form: FormData, name: str) -> str:
    return _raw(form, name).strip()


def _raw(form: FormData, name: str) -> str:
    """A field as typed: passwords are never stripped."""
    value = form.get(name)
    return value if isinstance(value, str) else ""


@router.post("/logout")
def logout(viewer: AnyViewer, state: StateDep, session: SessionDep) -> Response:
    if viewer.user.session_id is not None:
        auth_sessions.logout(session=session, session_id=viewer.user.session_id)
    response = _see_other("/login")
    response.delete_cookie(
        auth_sessions.session_cookie_name(state.settings),
        path="/",
        secure=state.settings.session_cookie_secure,
        httponly=True,
        samesite="lax",
    )
    return response


@router.get("/language")
def language(
    lang: Annotated[str, Query(max_length=10)],
    next_path: Annotated[str | None, Query(alias="next", max_length=500)] = None,
) -> Response:
    """Remember the reader's language (a preference, not a change of any record)."""
    response = _see_other(_local(next_path))
    if lang in LANGUAGES:
        response.set_cookie(
            LANGUAGE_COOKIE,
            lang,
            max_age=LANGUAGE_COOKIE_DAYS * 86400,
            path="/",
            httponly=True,
            samesite="lax",
        )
    return response


@router.get("/password")
def password_page(request: Request, viewer: AnyViewer) -> Response:
    return _page(request, viewer, "password.html")


@router.post("/password")
def change_password(
    request: Request, form: Form, viewer: AnyViewer, state: StateDep, session: SessionDep
) -> Response:
    if viewer.user.user_id is None:
        return _page(request, viewer, "password.html", error="no_account", status_code=422)
    new = _raw(form, "new_password")
    if new != _raw(form, "confirm_password"):
        return _page(request, viewer, "password.html", error="mismatch", status_code=422)
    try:
        users.change_password(
            session=session,
            user_id=viewer.user.user_id,
            # Empty: wrong (current) or rejected (new) by the service, as the API would be.
            current_password=_raw(form, "current_password") or "-",
            new_password=new or "-",
            settings=state.settings,
            keep_session_id=viewer.user.session_id,
        )
    except HubError as exc:
        return _page(
            request,
            viewer,
            "password.html",
            error=exc.code,
            message=exc.message,
            status_code=exc.status_code,
        )
    return _see_other("/")


# --- home -------------------------------------------------------------------------------


@router.get("/")
def home(request: Request, viewer: AnyViewer) -> Response:
    return _page(request, viewer, "home.html")


# --- steward ----------------------------------------------------------------------------


@router.get("/steward")
def steward_page(request: Request, viewer: StewardViewer, session: SessionDep) -> Response:
    items = service.steward_agreements(session=session, user=viewer.user)
    return _page(request, viewer, "steward.html", items=items, s=service)


# --- secretariat ------------------------------------------------------------------------


@router.get("/secretariat")
def secretariat_page(request: Request, viewer: SecretariatViewer, session: SessionDep) -> Response:
    overview = service.secretariat_overview(session=session)
    return _page(request, viewer, "secretariat.html", overview=overview)


@router.post("/secretariat/enrollment-tokens")
def create_enrollment_token(
    request: Request,
    form: Form,
    viewer: SecretariatViewer,
    state: StateDep,
    session: SessionDep,
) -> Response:
    node_id = _field(form, "node_id") or None
    note = _field(form, "note")[:200]
    invalid = []
    try:
        ttl_hours = float(_field(form, "ttl_hours") or "72")
        if not 0 < ttl_hours <= 24 * 30:
            raise ValueError
    except ValueError:
        invalid.append("ttl_hours")
    if node_id and not service.valid_node_id(node_id):
        invalid.append("node_id")
    if invalid:
        overview = service.secretariat_overview(session=session)
        return _page(
            request,
            viewer,
            "secretariat.html",
            overview=overview,
            invalid=tuple(invalid),
            values={"node_id": node_id or "", "note": note, "ttl_hours": _field(form, "ttl_hours")},
            status_code=422,
        )
    issued = federation.create_enrollment_token(
        session=session,
        identity=state.identity,
        actor=f"user:{viewer.user.name}",
        node_id=node_id,
        note=note,
        ttl_hours=ttl_hours,
    )
    return _page(request, viewer, "token_issued.html", issued=issued)


@router.get("/secretariat/agreements/new")
def agreement_form(request: Request, viewer: SecretariatViewer) -> Response:
    return _page(request, viewer, "agreement_form.html", values={}, measures=_MEASURES)


_MEASURES = ("count", "share", "sum", "mean", "quantile", "histogram")


@router.post("/secretariat/agreements")
def create_agreement(
    request: Request,
    form: Form,
    viewer: SecretariatViewer,
    state: StateDep,
    session: SessionDep,
) -> Response:
    try:
        terms = service.terms_from_form(form, hub_id=state.identity.hub_id)
        read = agreements.create_draft(
            session=session,
            terms=terms,
            identity=state.identity,
            actor=f"user:{viewer.user.name}",
        )
    except HubError as exc:
        if exc.status_code >= 500:
            raise
        values = {k: v for k, v in form.items() if isinstance(v, str)}
        values["measures"] = " ".join(v for v in form.getlist("measures") if isinstance(v, str))
        fields = exc.fields if isinstance(exc, FormInvalid) else ()
        return _page(
            request,
            viewer,
            "agreement_form.html",
            values=values,
            measures=_MEASURES,
            # A form field's own problem is marked at it; the service's refusal is said whole.
            error=None if fields else exc.message,
            invalid=fields,
            status_code=exc.status_code,
        )
    return _page(
        request,
        viewer,
        "agreement_draft.html",
        read=read,
        sections=plain_language(read.agreement.terms),
    )


@router.post("/secretariat/agreements/{agreement_id}/versions/{version}/propose")
def propose_agreement(
    agreement_id: str,
    version: VersionPath,
    viewer: SecretariatViewer,
    state: StateDep,
    session: SessionDep,
) -> Response:
    agreements.propose(
        session=session,
        agreement_id=agreement_id,
        version=version,
        identity=state.identity,
        key=state.key,
        actor=f"user:{viewer.user.name}",
    )
    return _see_other("/secretariat#agreements")
