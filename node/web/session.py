"""Browser sessions of the steward pages: a signed cookie around a node session token, and CSRF.

A password login goes through `node.auth.service.login` (lockout, TOTP and audit as for the
API) and yields the same kind of bearer session token the API hands out. The browser keeps it
in an HttpOnly, SameSite=Strict cookie signed with a key of this node home, next to a random
CSRF token that every state-changing form must echo. Logging out, an account being disabled
or a password reset ends the session server-side, whatever the cookie says.
"""

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from fastapi import Request, Response
from itsdangerous import BadSignature, URLSafeTimedSerializer

from node.auth import service as auth
from node.auth.exceptions import Unauthenticated
from node.auth.schemas import Steward
from node.settings import NodeSettings
from node.web.exceptions import CsrfRejected, LoginRequired

SESSION_COOKIE = "sauti_node_session"
LOGIN_CSRF_COOKIE = "sauti_node_login_csrf"
LANGUAGE_COOKIE = "sauti_lang"
KEY_FILE = "web-session.key"
PREFIX = "/steward"
_SALT = "sauti-node-steward-web"
_LOGIN_SALT = "sauti-node-steward-login"
# A login form is good for this long; then the page is simply reloaded.
LOGIN_FORM_SECONDS = 3600


@dataclass(frozen=True)
class BrowserSession:
    steward: Steward
    csrf: str


def _key(home: Path) -> bytes:
    """This home's cookie-signing key, made on first use (owner-only file)."""
    path = home / KEY_FILE
    if not path.exists():
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another worker made it first
        else:
            with os.fdopen(fd, "w", encoding="ascii") as f:
                f.write(secrets.token_hex(32))
    return path.read_text(encoding="ascii").strip().encode()


def _serializer(settings: NodeSettings, salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(_key(settings.home), salt=salt)


def _set(response: Response, settings: NodeSettings, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=settings.web_cookie_secure,
    )


def start(response: Response, *, settings: NodeSettings, token: str) -> None:
    """Put a fresh session token (and a new CSRF token) in the browser's cookie."""
    value = _serializer(settings, _SALT).dumps({"t": token, "c": secrets.token_urlsafe(24)})
    _set(response, settings, SESSION_COOKIE, value, int(settings.steward_session_hours * 3600))
    response.delete_cookie(LOGIN_CSRF_COOKIE, path=PREFIX)


def end(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path=PREFIX)


def current(request: Request, settings: NodeSettings) -> BrowserSession:
    """The logged-in steward of this browser, checked against the node's tokens each time."""
    raw = request.cookies.get(SESSION_COOKIE)
    if not raw:
        raise LoginRequired("log in to see the steward pages")
    max_age = int(settings.steward_session_hours * 3600)
    try:
        data = _serializer(settings, _SALT).loads(raw, max_age=max_age)
        token, csrf = str(data["t"]), str(data["c"])
    except (BadSignature, KeyError, TypeError) as exc:
        raise LoginRequired("the session cookie is not valid; log in again") from exc
    try:
        steward = auth.authenticate(database_url=settings.db_url, token=token)
    except Unauthenticated as exc:
        raise LoginRequired("the session has ended; log in again") from exc
    if steward.via != "session":
        raise LoginRequired("log in with a steward account")
    return BrowserSession(steward=steward, csrf=csrf)


def check_csrf(session: BrowserSession, submitted: str) -> None:
    if not submitted or not secrets.compare_digest(submitted.encode(), session.csrf.encode()):
        raise CsrfRejected("the form is out of date or was not sent from this site; reload it")


def login_csrf(request: Request, settings: NodeSettings) -> tuple[str, str | None]:
    """The login form's CSRF token, and a new signed cookie value if the browser had none."""
    serializer = _serializer(settings, _LOGIN_SALT)
    raw = request.cookies.get(LOGIN_CSRF_COOKIE)
    if raw:
        try:
            return str(serializer.loads(raw, max_age=LOGIN_FORM_SECONDS)), None
        except BadSignature:
            pass
    token = secrets.token_urlsafe(24)
    return token, serializer.dumps(token)


def set_login_cookie(response: Response, settings: NodeSettings, value: str) -> None:
    _set(response, settings, LOGIN_CSRF_COOKIE, value, LOGIN_FORM_SECONDS)


def check_login_csrf(request: Request, settings: NodeSettings, submitted: str) -> None:
    raw = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    try:
        expected = str(_serializer(settings, _LOGIN_SALT).loads(raw, max_age=LOGIN_FORM_SECONDS))
    except BadSignature as exc:
        raise CsrfRejected("the login form is out of date; reload it") from exc
    if not submitted or not secrets.compare_digest(submitted.encode(), expected.encode()):
        raise CsrfRejected("the login form is out of date; reload it")
