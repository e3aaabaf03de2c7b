"""Steward accounts and tokens in the node's own database: the node never asks the hub.

Accounts follow the hub's password, lockout and TOTP rules (`runtime.credentials`).
A password login returns a bearer session token (not a cookie: the steward API is called
by the CLI and scripts, so there is no ambient credential for a CSRF attack to ride on).
Every login, failure, lockout, token creation and revocation is in the audit chain.
"""

import secrets
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from node.audit import service as audit
from node.auth.exceptions import (
    AccountUnknown,
    LoginFailed,
    PasswordRejected,
    StewardExists,
    TokenExpired,
    TotpInvalid,
    Unauthenticated,
)
from node.auth.models import StewardAccount, StewardToken
from node.auth.schemas import LoginResult, Steward, StewardAccountRead
from node.db import transaction
from node.settings import NodeSettings
from runtime import credentials
from runtime.credentials import TotpSetup

TOKEN_PREFIX = "sauti_node_"  # noqa: S105 - a marker, not a secret


def _now() -> datetime:
    return datetime.now(UTC)


# --- tokens ------------------------------------------------------------------------------------


def create_token(
    *, database_url: str, name: str, expires_in_days: float | None = None, actor: str = "cli"
) -> str:
    """A new random steward token; only its hash is kept, so this is the one time it is seen."""
    token = credentials.new_secret(TOKEN_PREFIX)
    days = expires_in_days if expires_in_days is not None else 365.0
    expires_at = _now() + timedelta(days=days)
    with transaction(database_url) as session:
        row = StewardToken(
            name=name,
            token_hash=credentials.secret_digest(token),
            created_at=_now(),
            expires_at=expires_at,
            kind="token",
        )
        session.add(row)
        session.flush()
        audit.append(
            session,
            actor=actor,
            action="steward_token.created",
            object=f"steward_token:{row.id}",
            details={"name": name, "expires_at": expires_at.isoformat()},
        )
    return token


def revoke_token(*, database_url: str, token_id: int, actor: str = "cli") -> None:
    with transaction(database_url) as session:
        row = session.get(StewardToken, token_id)
        if row is None or row.revoked_at is not None:
            raise Unauthenticated("no such active steward token")
        row.revoked_at = _now()
        audit.append(
            session,
            actor=actor,
            action="steward_token.revoked",
            object=f"steward_token:{token_id}",
            details={},
        )


def list_tokens(*, database_url: str) -> list[dict[str, object]]:
    """Every token and session (never a secret): id, name, kind, created, expiry, revoked."""
    with transaction(database_url) as session:
        return [
            {
                "token_id": r.id,
                "name": r.name,
                "kind": r.kind,
                "created_at": r.created_at.isoformat(),
                "expires_at": r.expires_at.isoformat() if r.expires_at else None,
                "revoked": r.revoked_at is not None,
            }
            for r in session.scalars(select(StewardToken).order_by(StewardToken.id))
        ]


def authenticate(*, database_url: str, token: str | None) -> Steward:
    if not token:
        raise Unauthenticated("a steward bearer token is required")
    now = _now()
    refused: tuple[str, int] | None = None
    with transaction(database_url) as session:
        row = session.scalars(
            select(StewardToken).where(StewardToken.token_hash == credentials.secret_digest(token))
        ).first()
        if row is None:
            raise Unauthenticated("the steward token is not valid")
        account = session.get(StewardAccount, row.account_id) if row.account_id else None
        if row.revoked_at is not None or (account is not None and account.disabled_at):
            refused = ("revoked", row.id)
        elif row.expires_at is not None and row.expires_at <= now:
            refused = ("expired", row.id)
        else:
            return Steward(
                token_id=row.id,
                name=account.username if account is not None else row.name,
                via="session" if row.kind == "session" else "token",
                account_id=account.id if account is not None else None,
                must_change_password=account.must_change_password if account else False,
            )
    # A known credential used after its end is worth a line in the chain (an unknown one is
    # not: anyone could grow the chain with garbage tokens).
    with transaction(database_url) as session:
        audit.append(
            session,
            actor="anonymous",
            action="steward.denied",
            object=f"steward_token:{refused[1]}",
            details={"reason": refused[0]},
        )
    if refused[0] == "expired":
        raise TokenExpired("the steward token or session has expired; log in again")
    raise Unauthenticated("the steward token is not valid")


# --- accounts ------------------------------------------------------------------------------------


def _policy(settings: NodeSettings) -> credentials.PasswordPolicy:
    return credentials.PasswordPolicy(min_length=settings.password_min_length)


def _check_password(password: str, *, username: str, settings: NodeSettings) -> None:
    problems = credentials.password_problems(password, username=username, policy=_policy(settings))
    if problems:
        raise PasswordRejected("the password " + "; ".join(problems))


def _read(row: StewardAccount) -> StewardAccountRead:
    locked = row.locked_until if row.locked_until else None
    return StewardAccountRead(
        account_id=row.id,
        username=row.username,
        display_name=row.display_name,
        must_change_password=row.must_change_password,
        totp_enabled=row.totp_confirmed,
        locked_until=locked if credentials.is_locked(locked, now=_now()) else None,
        disabled=row.disabled_at is not None,
        created_at=row.created_at,
    )


def _account(session: Session, username: str) -> StewardAccount:
    row = session.scalars(
        select(StewardAccount).where(StewardAccount.username == username).with_for_update()
    ).first()
    if row is None:
        raise AccountUnknown("no steward account with this user name")
    return row


def create_account(
    *,
    settings: NodeSettings,
    username: str,
    display_name: str | None = None,
    password: str | None = None,
    actor: str = "cli",
) -> tuple[StewardAccountRead, str | None]:
    """A steward account; without `password` one is generated, shown once, changed at login."""
    initial = None
    if password is None:
        initial = password = secrets.token_urlsafe(15)
    _check_password(password, username=username, settings=settings)
    with transaction(settings.db_url) as session:
        if session.scalars(
            select(StewardAccount).where(StewardAccount.username == username)
        ).first():
            raise StewardExists("a steward account with this user name exists")
        row = StewardAccount(
            username=username,
            display_name=display_name or username,
            password_hash=credentials.hash_password(password),
            must_change_password=initial is not None,
            failed_logins=0,
            created_at=_now(),
        )
        session.add(row)
        session.flush()
        audit.append(
            session,
            actor=actor,
            action="steward_account.created",
            object=f"steward:{username}",
            details={},
        )
        return _read(row), initial


def list_accounts(*, settings: NodeSettings) -> list[StewardAccountRead]:
    with transaction(settings.db_url) as session:
        rows = session.scalars(select(StewardAccount).order_by(StewardAccount.username))
        return [_read(r) for r in rows]


def _end_sessions(session: Session, account_id: int, *, keep: int | None = None) -> int:
    """End the account's live sessions but `keep` (a token id); how many ended."""
    now = _now()
    ended = 0
    for token in session.scalars(
        select(StewardToken).where(
            StewardToken.account_id == account_id, StewardToken.revoked_at.is_(None)
        )
    ):
        if token.id != keep:
            token.revoked_at = now
            ended += 1
    return ended


def reset_password(*, settings: NodeSettings, username: str, actor: str = "cli") -> str:
    """A one-time password (shown once), to be changed at the next login; sessions end."""
    temporary = secrets.token_urlsafe(15)
    with transaction(settings.db_url) as session:
        row = _account(session, username)
        row.password_hash = credentials.hash_password(temporary)
        row.must_change_password = True
        row.failed_logins = 0
        row.locked_until = None
        _end_sessions(session, row.id)
        audit.append(
            session,
            actor=actor,
            action="steward.password_reset",
            object=f"steward:{username}",
            details={},
        )
    return temporary


def change_password(
    *,
    settings: NodeSettings,
    account_id: int,
    current_password: str,
    new_password: str,
    keep_token_id: int | None = None,
) -> None:
    """Change one's own password; every other session of the account ends (`keep_token_id`
    is the session the change was made in)."""
    with transaction(settings.db_url) as session:
        row = session.get(StewardAccount, account_id, with_for_update=True)
        ok = row is not None and credentials.verify_password(row.password_hash, current_password)
    if row is None or not ok:
        with transaction(settings.db_url) as session:
            audit.append(
                session,
                actor=f"steward:{row.username if row else account_id}",
                action="steward.password_change_failed",
                object=f"steward:{row.username if row else account_id}",
                details={},
            )
        raise LoginFailed("the current password is wrong")
    _check_password(new_password, username=row.username, settings=settings)
    if new_password == current_password:
        raise PasswordRejected("the password must differ from the current one")
    with transaction(settings.db_url) as session:
        row = session.get(StewardAccount, account_id, with_for_update=True)
        assert row is not None
        row.password_hash = credentials.hash_password(new_password)
        row.must_change_password = False
        ended = _end_sessions(session, row.id, keep=keep_token_id)
        audit.append(
            session,
            actor=f"steward:{row.username}",
            action="steward.password_changed",
            object=f"steward:{row.username}",
            details={"sessions_ended": ended},
        )


def set_disabled(
    *, settings: NodeSettings, username: str, disabled: bool, actor: str = "cli"
) -> StewardAccountRead:
    with transaction(settings.db_url) as session:
        row = _account(session, username)
        row.disabled_at = _now() if disabled else None
        if disabled:
            _end_sessions(session, row.id)
        audit.append(
            session,
            actor=actor,
            action="steward_account.disabled" if disabled else "steward_account.enabled",
            object=f"steward:{username}",
            details={},
        )
        return _read(row)


def unlock(*, settings: NodeSettings, username: str, actor: str = "cli") -> StewardAccountRead:
    with transaction(settings.db_url) as session:
        row = _account(session, username)
        row.failed_logins = 0
        row.locked_until = None
        audit.append(
            session,
            actor=actor,
            action="steward.unlocked",
            object=f"steward:{username}",
            details={},
        )
        return _read(row)


def totp_begin(*, settings: NodeSettings, username: str, issuer: str) -> TotpSetup:
    with transaction(settings.db_url) as session:
        row = _account(session, username)
        if row.totp_confirmed:
            raise TotpInvalid("TOTP is already on; reset it first")
        row.totp_secret = credentials.new_totp_secret()
        row.totp_last_step = None
        return TotpSetup(
            secret=row.totp_secret,
            uri=credentials.totp_uri(row.totp_secret, account=username, issuer=issuer),
        )


def totp_confirm(*, settings: NodeSettings, username: str, code: str) -> None:
    with transaction(settings.db_url) as session:
        row = _account(session, username)
        if row.totp_secret is None or row.totp_confirmed:
            raise TotpInvalid("start TOTP setup first")
        step = credentials.totp_step(
            row.totp_secret, code, now=_now(), last_step=row.totp_last_step
        )
        if step is None:
            raise TotpInvalid("the one-time code is wrong or was already used")
        row.totp_confirmed = True
        row.totp_last_step = step
        audit.append(
            session,
            actor=f"steward:{username}",
            action="steward.totp_enabled",
            object=f"steward:{username}",
            details={},
        )


def totp_reset(*, settings: NodeSettings, username: str, actor: str = "cli") -> None:
    with transaction(settings.db_url) as session:
        row = _account(session, username)
        row.totp_secret = None
        row.totp_confirmed = False
        row.totp_last_step = None
        audit.append(
            session,
            actor=actor,
            action="steward.totp_disabled",
            object=f"steward:{username}",
            details={},
        )


# --- login ---------------------------------------------------------------------------------------


def login(
    *,
    settings: NodeSettings,
    username: str,
    password: str,
    totp: str | None = None,
    now: datetime | None = None,
) -> LoginResult:
    """Password (+ TOTP) login with lockout; a bearer session token, shown once.

    Every failure, a locked account included, is the same `login_failed` after the same
    argon2 work, so neither the answer nor its time tells which user names exist.
    """
    now = now or _now()
    username = credentials.login_name(username)
    policy = credentials.LockoutPolicy(
        max_failures=settings.login_max_failures, lock_minutes=settings.login_lock_minutes
    )
    failure: str | None = None
    locked_now = False
    with transaction(settings.db_url) as session:
        row = session.scalars(
            select(StewardAccount).where(StewardAccount.username == username).with_for_update()
        ).first()
        if row is None:
            credentials.verify_password(None, password)
            failure = "unknown_user"
        elif credentials.is_locked(row.locked_until if row.locked_until else None, now=now):
            credentials.verify_password(row.password_hash, password)  # same time, no answer
            failure = "locked"
        else:
            password_ok = credentials.verify_password(row.password_hash, password)
            step = None
            if password_ok and row.totp_confirmed and row.totp_secret:
                step = credentials.totp_step(
                    row.totp_secret, totp, now=now, last_step=row.totp_last_step
                )
            if not password_ok or (row.totp_confirmed and step is None):
                failure = "bad_password" if not password_ok else "bad_totp"
                row.failed_logins, row.locked_until = credentials.after_failure(
                    failures=row.failed_logins, now=now, policy=policy
                )
                locked_now = row.locked_until is not None
            elif row.disabled_at is not None:
                failure = "disabled"
            else:
                row.failed_logins = 0
                row.locked_until = None
                if step is not None:
                    row.totp_last_step = step
                if credentials.needs_rehash(row.password_hash):
                    row.password_hash = credentials.hash_password(password)
                token = credentials.new_secret(TOKEN_PREFIX)
                expires_at = now + timedelta(hours=settings.steward_session_hours)
                session_row = StewardToken(
                    name=f"session:{username}",
                    token_hash=credentials.secret_digest(token),
                    created_at=now,
                    expires_at=expires_at,
                    kind="session",
                    account_id=row.id,
                )
                session.add(session_row)
                session.flush()
                audit.append(
                    session,
                    actor=f"steward:{username}",
                    action="steward.login",
                    object=f"steward:{username}",
                    details={"session": session_row.id},
                )
                return LoginResult(
                    token=token,
                    expires_at=expires_at,
                    username=username,
                    must_change_password=row.must_change_password,
                )
        audit.append(
            session,
            actor="anonymous",
            action="steward.login_failed",
            object=f"steward:{username}",
            details={"reason": failure},
        )
        if locked_now:
            assert row is not None
            assert row.locked_until is not None
            audit.append(
                session,
                actor="anonymous",
                action="steward.locked",
                object=f"steward:{username}",
                details={"failures": row.failed_logins, "until": row.locked_until.isoformat()},
            )
    raise LoginFailed(
        "user name, password or one-time code is wrong, or the account is locked after too"
        " many failed logins"
    )


def logout(*, settings: NodeSettings, steward: Steward) -> None:
    with transaction(settings.db_url) as session:
        row = session.get(StewardToken, steward.token_id)
        if row is None or row.revoked_at is not None:
            return
        row.revoked_at = _now()
        audit.append(
            session,
            actor=f"steward:{steward.name}",
            action="steward.logout",
            object=f"steward_token:{row.id}",
            details={"kind": row.kind},
        )
