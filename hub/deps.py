"""FastAPI dependencies declared once: state, sessions, the current user and role checks."""

import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Annotated, Any

import anyio.to_thread
import httpx
from fastapi import Depends, Path, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from joserfc.jwk import OKPKey
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from contracts.v1.base import MAX_VERSION
from hub.auth.exceptions import CsrfFailed, PasswordChangeRequired, RoleForbidden
from hub.auth.schemas import Role, User
from hub.auth.sessions import authenticate_session, session_cookie_name
from hub.auth.tokens import authenticate, authenticate_on
from hub.db import read_only
from hub.home import HubIdentity
from hub.queries.dispatch import Dispatcher
from hub.queries.recorder import Recorder
from hub.queries.signals import Signals
from hub.settings import HubSettings
from runtime import edge
from runtime.db import READ_ONLY_OPTION


@dataclass
class HubState:
    """What the app holds for its lifetime; `client` exists only while the lifespan runs."""

    settings: HubSettings
    identity: HubIdentity
    key: OKPKey
    sessions: sessionmaker[Session]
    engine: Engine  # the sessions' (for the token lookup, which needs no ORM session)
    client: httpx.AsyncClient | None = None
    # Push deliveries and deadlines (in process, or on Celery); set while the lifespan runs.
    dispatcher: Dispatcher | None = None
    # Group commit of node answers (push outcomes and pull answers); set while it runs.
    recorder: Recorder | None = None
    signals: Signals = field(default_factory=Signals)


def refuse_text(locations: Iterable[edge.Location]) -> None:
    """422 `invalid_request` naming each field with a control character (runtime.edge.text)."""
    if errors := edge.validation_errors(locations):
        raise RequestValidationError(errors)


async def check_request_text(request: Request) -> None:
    """Every route's first dependency: control characters in its parameters or parsed body.

    Routes that parse their own body (forms of the web pages, node-signed messages, the
    login) check what they parse with `refuse_text`.
    """
    refuse_text(await edge.forbidden_in_request(request))


async def get_state(request: Request) -> HubState:  # async: no thread hop
    state: HubState = request.app.state.hub
    return state


StateDep = Annotated[HubState, Depends(get_state)]


async def get_session(state: StateDep) -> AsyncIterator[Session]:
    """A session for the request. Async, so that making it and closing it costs no hop to the
    thread pool; it is closed there only if a transaction is still open (I/O)."""
    session = state.sessions()
    try:
        yield session
    finally:
        if session.in_transaction():
            await anyio.to_thread.run_sync(session.close)
        else:
            session.close()


SessionDep = Annotated[Session, Depends(get_session)]

_bearer = HTTPBearer(auto_error=False)
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
# What a session whose password was reset by an admin may still do.
_PASSWORD_CHANGE_PATHS = frozenset(
    {"/v1/auth/password", "/v1/auth/logout", "/v1/auth/session", "/password", "/logout"}
)


async def _form_csrf(request: Request) -> str | None:
    """The csrf_token field of a form post (the form is parsed once and cached by Starlette)."""
    if request.method in _SAFE_METHODS:
        return None
    if not request.headers.get("content-type", "").startswith(_FORM_TYPES):
        return None
    form = await request.form()
    refuse_text(edge.forbidden_in_form(form.multi_items()))
    value = form.get("csrf_token")
    return value if isinstance(value, str) else None


def get_current_user(
    request: Request,
    state: StateDep,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    form_csrf: Annotated[str | None, Depends(_form_csrf)],
) -> User:
    """A bearer API token, else the browser session cookie (with CSRF on state changes)."""
    cookie = request.cookies.get(session_cookie_name(state.settings))
    if credentials is not None or not cookie:
        # A token lookup only reads: on SQLite it takes no write lock (the route's own
        # transaction, after the rollback below, begins as usual).
        if not session.in_transaction():
            read_only(session)
        user = authenticate(session=session, token=credentials.credentials if credentials else None)
    else:
        user, csrf, must_change = authenticate_session(
            session=session, cookie=cookie, settings=state.settings
        )
        request.state.sauti_user = user
        if request.method not in _SAFE_METHODS:
            # Cookies ride along on cross-site requests; a bearer token never does, so only
            # cookie-authenticated state changes must prove they come from our own pages.
            presented = request.headers.get("x-csrf-token") or form_csrf or ""
            if not secrets.compare_digest(presented.encode(), csrf.encode()):
                raise CsrfFailed()
        if must_change and request.url.path not in _PASSWORD_CHANGE_PATHS:
            raise PasswordChangeRequired()
    request.state.sauti_user = user
    # Release the read transaction (and SQLite's write lock) before the route's own work.
    session.rollback()
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


def get_optional_user(
    request: Request,
    state: StateDep,
    session: SessionDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    form_csrf: Annotated[str | None, Depends(_form_csrf)],
) -> User | None:
    """The caller if a token or session is given (a wrong one is still refused); else None.

    For routes whose body carries its own authority, such as a node-signed message.
    """
    if credentials is None and not request.cookies.get(session_cookie_name(state.settings)):
        return None
    return get_current_user(request, state, session, credentials, form_csrf)


OptionalUser = Annotated[User | None, Depends(get_optional_user)]


def require(*roles: Role) -> Callable[[User], Awaitable[User]]:
    """A dependency that lets only `roles` through (403 `forbidden` otherwise)."""

    async def check(user: CurrentUser) -> User:  # async: no thread hop
        if not any(user.has(role) for role in roles):
            raise RoleForbidden(roles)
        return user

    return check


def _authenticated(
    request: Request,
    state: HubState,
    credentials: HTTPAuthorizationCredentials | None,
    form_csrf: str | None,
) -> User:
    """`get_current_user` with a session of its own; a bearer token is looked up on a bare
    connection in a read-only transaction (an ORM session's set-up and teardown cost twice
    the statement: measured ≈0.15 ms of ≈0.3 ms per request)."""
    if credentials is not None or not request.cookies.get(session_cookie_name(state.settings)):
        # Closing the connection ends its read transaction (the pool rolls it back).
        with state.engine.connect() as connection:
            user = authenticate_on(
                connection.execution_options(**{READ_ONLY_OPTION: True}),
                token=credentials.credentials if credentials else None,
            )
        request.state.sauti_user = user
        return user
    with state.sessions() as session:
        return get_current_user(request, state, session, credentials, form_csrf)


@dataclass(frozen=True)
class Caller:
    """A request's credentials, not checked yet: a route whose work needs a thread hop anyway
    checks them there (`user`), before that work, instead of in a hop of their own."""

    request: Request
    state: HubState
    credentials: HTTPAuthorizationCredentials | None
    form_csrf: str | None

    def user(self, *roles: Role) -> User:
        """What `CurrentUser` (and `require(*roles)`) gives, checked now (blocking: run it in
        a worker thread)."""
        user = _authenticated(self.request, self.state, self.credentials, self.form_csrf)
        if roles and not any(user.has(role) for role in roles):
            raise RoleForbidden(roles)
        return user


async def get_caller(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Caller:
    caller = Caller(request, request.app.state.hub, credentials, await _form_csrf(request))
    request.state.sauti_caller = caller  # for `checked_first`: the dependencies were solved
    return caller


CallerDep = Annotated[Caller, Depends(get_caller)]


def checked_first(*roles: Role) -> type[APIRoute]:
    """The route class of a route that takes a `CallerDep` and checks it in its own hop.

    Keeps `CurrentUser`'s order of refusals: a body or parameter that does not validate,
    which FastAPI refuses after solving the dependencies (so after `CurrentUser`), is refused
    as unauthenticated or forbidden first if it is either; what FastAPI refuses before
    them (a body that is not JSON; control characters, the app's first dependency) is
    refused as it was, before any authentication.
    """

    class CheckedFirst(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def checked(request: Request) -> Response:
                try:
                    return await handler(request)
                except RequestValidationError:
                    caller = getattr(request.state, "sauti_caller", None)
                    if isinstance(caller, Caller):
                        await anyio.to_thread.run_sync(partial(caller.user, *roles))
                    raise

            return checked

    return CheckedFirst


AdminOrSecretariat = Annotated[User, Depends(require("admin", "secretariat"))]
Secretariat = Annotated[User, Depends(require("secretariat", "admin"))]
Analyst = Annotated[User, Depends(require("analyst"))]
# Read-only access to the audit log, its checkpoints and exports.
Auditor = Annotated[User, Depends(require("auditor", "admin"))]
# Accounts and roles; reading them is open to auditors too.
Admin = Annotated[User, Depends(require("admin"))]
AdminOrAuditor = Annotated[User, Depends(require("admin", "auditor"))]

# A version in a route's path: a number the database can hold, or a 422 at the edge.
VersionPath = Annotated[int, Path(ge=1, le=MAX_VERSION)]
