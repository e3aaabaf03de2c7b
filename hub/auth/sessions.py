"""Password login and browser sessions at the hub: lockout, TOTP, cookies, CSRF tokens.

Every login, failure and lockout is appended to the hub's audit chain.
"""

import secrets
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.audit import service as audit
from hub.auth._accounts import (
    lockout_policy,
    principal_of,
    utc_now,
)
from hub.auth.exceptions import (
    LoginFailed,
    SessionInvalid,
)
from hub.auth.models import UserRow, WebSession
from hub.auth.schemas import (
    SessionInfo,
    User,
)
from hub.settings import HubSettings
from runtime import credentials

# Sessions are touched at most this often, so reads do not each cost a write.
SESSION_TOUCH_SECONDS = 60


def _login_failed(session: Session, username: str, reason: str) -> None:
    audit.append(
        session=session,
        actor="anonymous",
        action="auth.login_failed",
        object=f"user:{username}",
        details={"method": "password", "reason": reason},
    )
    session.commit()


def login_password(
    *,
    session: Session,
    username: str,
    password: str,
    totp: str | None,
    settings: HubSettings,
    now: datetime | None = None,
) -> tuple[str, SessionInfo]:
    """Check the password (and TOTP code) with lockout; a new session cookie value + info.

    Every failure, a locked account included, is the same `login_failed` after the same
    argon2 work, so neither the answer nor its time tells which user names exist.
    """
    now = now or utc_now()
    username = credentials.login_name(username)
    row = session.scalars(
        select(UserRow).where(UserRow.username == username).with_for_update()
    ).first()
    if row is None or row.kind != "person" or row.password_hash is None:
        credentials.verify_password(None, password)  # same time as a real check
        _login_failed(session, username, "unknown_user" if row is None else "no_password")
        raise LoginFailed()
    locked = row.locked_until
    if credentials.is_locked(locked, now=now):
        credentials.verify_password(row.password_hash, password)  # same time, no answer
        _login_failed(session, username, "locked")
        raise LoginFailed()
    password_ok = credentials.verify_password(row.password_hash, password)
    step: int | None = None
    if password_ok and row.totp_confirmed and row.totp_secret:
        step = credentials.totp_step(row.totp_secret, totp, now=now, last_step=row.totp_last_step)
    totp_ok = not row.totp_confirmed or step is not None
    if not (password_ok and totp_ok) or row.disabled_at is not None:
        reason = "bad_password" if not password_ok else "bad_totp" if not totp_ok else "disabled"
        if reason != "disabled":
            row.failed_logins, row.locked_until = credentials.after_failure(
                failures=row.failed_logins, now=now, policy=lockout_policy(settings)
            )
        _login_failed(session, username, reason)
        if row.locked_until is not None and reason != "disabled":
            audit.append(
                session=session,
                actor="anonymous",
                action="auth.locked",
                object=f"user:{username}",
                details={"failures": row.failed_logins, "until": row.locked_until.isoformat()},
            )
            session.commit()
        raise LoginFailed()
    row.failed_logins = 0
    row.locked_until = None
    if step is not None:
        row.totp_last_step = step
    if credentials.needs_rehash(row.password_hash):
        row.password_hash = credentials.hash_password(password)
    return create_session(session=session, user_id=row.id, method="password", settings=settings)


def create_session(
    *, session: Session, user_id: int, method: str, settings: HubSettings
) -> tuple[str, SessionInfo]:
    """A new session (logged as a login) in the caller's transaction, then committed."""
    row = session.get(UserRow, user_id)
    assert row is not None
    now = utc_now()
    cookie = secrets.token_urlsafe(32)
    web = WebSession(
        session_hash=credentials.secret_digest(cookie),
        user_id=user_id,
        csrf_token=secrets.token_urlsafe(32),
        method=method,
        created_at=now,
        expires_at=now + timedelta(hours=settings.session_hours),
        last_seen_at=now,
    )
    session.add(web)
    session.flush()
    audit.append(
        session=session,
        actor=f"user:{row.username}",
        action="auth.login",
        object=f"user:{row.username}",
        details={"method": method, "session": web.id},
    )
    session.commit()
    return cookie, _session_info(session, web, row)


def _session_info(session: Session, web: WebSession, row: UserRow) -> SessionInfo:
    principal = principal_of(session, row, via="session", session_id=web.id)
    return SessionInfo(
        user=row.username,
        organisation=principal.organisation,
        roles=principal.roles,
        node_ids=principal.node_ids,
        csrf_token=web.csrf_token,
        expires_at=web.expires_at,
        must_change_password=row.must_change_password,
        method=web.method,
    )


def authenticate_session(
    *, session: Session, cookie: str, settings: HubSettings, now: datetime | None = None
) -> tuple[User, str, bool]:
    """The session's principal, its CSRF token and whether a password change is pending."""
    now = now or utc_now()
    web = session.scalars(
        select(WebSession).where(WebSession.session_hash == credentials.secret_digest(cookie))
    ).first()
    if web is None or web.revoked_at is not None:
        raise SessionInvalid()
    idle = timedelta(minutes=settings.session_idle_minutes)
    if web.expires_at <= now or web.last_seen_at + idle <= now:
        raise SessionInvalid(f"session:{web.id}")
    row = session.get(UserRow, web.user_id)
    if row is None or row.disabled_at is not None:
        raise SessionInvalid()
    if (now - web.last_seen_at).total_seconds() > SESSION_TOUCH_SECONDS:
        web.last_seen_at = now
        session.commit()
    user = principal_of(session, row, via="session", session_id=web.id)
    return user, web.csrf_token, row.must_change_password


def session_info(*, session: Session, session_id: int) -> SessionInfo:
    web = session.get(WebSession, session_id)
    assert web is not None
    row = session.get(UserRow, web.user_id)
    assert row is not None
    info = _session_info(session, web, row)
    session.rollback()
    return info


def logout(*, session: Session, session_id: int) -> None:
    web = session.get(WebSession, session_id)
    if web is None or web.revoked_at is not None:
        return
    web.revoked_at = utc_now()
    row = session.get(UserRow, web.user_id)
    audit.append(
        session=session,
        actor=f"user:{row.username if row else web.user_id}",
        action="auth.logout",
        object=f"session:{web.id}",
        details={},
    )
    session.commit()


def session_cookie_name(settings: HubSettings) -> str:
    """`__Host-` binds the cookie to this exact origin over HTTPS (no Domain, Path=/)."""
    return "__Host-sauti_session" if settings.session_cookie_secure else "sauti_session"


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def same(presented: str, expected: str) -> bool:
    """Constant-time comparison of two tokens."""
    return secrets.compare_digest(presented.encode(), expected.encode())
