"""Organisations, users, roles, passwords, API tokens and browser sessions at the hub.

Every login, failure, lockout, token creation or revocation and role change is appended
to the hub's audit chain in the same transaction as the change itself.
"""

import secrets
from datetime import UTC, datetime, timedelta
from typing import cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.audit import service as audit
from hub.auth.exceptions import (
    LoginFailed,
    NodeScopeForbidden,
    OrganisationExists,
    OrganisationNotFound,
    PasswordRejected,
    RoleUnknown,
    ScopeInvalid,
    SessionInvalid,
    TokenExpired,
    TokenNotFound,
    TokenRevoked,
    TokenUnknown,
    TotpInvalid,
    UserExists,
    UserNotFound,
)
from hub.auth.models import ApiToken, Organisation, RoleGrant, UserRow, WebSession
from hub.auth.schemas import (
    ROLE_PRECEDENCE,
    ROLES,
    GrantRead,
    OrganisationCreate,
    OrganisationRead,
    OrgKind,
    PasswordReset,
    Role,
    RoleScope,
    SessionInfo,
    TokenCreated,
    TokenRead,
    User,
    UserCreate,
    UserCreated,
    UserKind,
    UserRead,
)
from hub.exceptions import Forbidden
from hub.settings import HubSettings
from runtime import credentials
from runtime.credentials import TotpSetup

TOKEN_PREFIX = "sauti_"  # noqa: S105 - a marker, not a secret
# Sessions are touched at most this often, so reads do not each cost a write.
SESSION_TOUCH_SECONDS = 60


def _now() -> datetime:
    return datetime.now(UTC)


def _password_policy(settings: HubSettings | None) -> credentials.PasswordPolicy:
    return credentials.PasswordPolicy(min_length=settings.password_min_length if settings else 12)


def _lockout_policy(settings: HubSettings | None) -> credentials.LockoutPolicy:
    if settings is None:
        return credentials.LockoutPolicy()
    return credentials.LockoutPolicy(
        max_failures=settings.login_max_failures, lock_minutes=settings.login_lock_minutes
    )


# --- organisations ---


def _org_read(row: Organisation) -> OrganisationRead:
    return OrganisationRead(
        slug=row.slug,
        name=row.name,
        kind=cast(OrgKind, row.kind),
        country=row.country,
        created_at=row.created_at,
    )


def create_organisation(
    *, session: Session, body: OrganisationCreate, actor: str
) -> OrganisationRead:
    if _org(session, body.slug) is not None:
        raise OrganisationExists()
    row = Organisation(
        slug=body.slug, name=body.name, kind=body.kind, country=body.country, created_at=_now()
    )
    session.add(row)
    session.flush()
    audit.append(
        session=session,
        actor=actor,
        action="org.created",
        object=f"org:{row.slug}",
        details={"kind": row.kind, "country": row.country},
    )
    session.commit()
    return _org_read(row)


def list_organisations(*, session: Session) -> list[OrganisationRead]:
    rows = session.scalars(select(Organisation).order_by(Organisation.slug))
    result = [_org_read(r) for r in rows]
    session.rollback()
    return result


def _org(session: Session, slug: str) -> Organisation | None:
    return session.scalars(select(Organisation).where(Organisation.slug == slug)).first()


def _org_or_create(session: Session, slug: str, *, actor: str) -> Organisation:
    """The organisation, created as kind `other` when a script names one not yet registered."""
    row = _org(session, slug)
    if row is not None:
        return row
    row = Organisation(slug=slug, name=slug, kind="other", country=None, created_at=_now())
    session.add(row)
    session.flush()
    audit.append(
        session=session,
        actor=actor,
        action="org.created",
        object=f"org:{slug}",
        details={"kind": "other", "implicit": True},
    )
    return row


# --- users and roles ---


def _user(session: Session, username: str, *, lock: bool = False) -> UserRow:
    stmt = select(UserRow).where(UserRow.username == username)
    row = session.scalars(stmt.with_for_update() if lock else stmt).first()
    if row is None:
        raise UserNotFound()
    return row


def _grants(session: Session, user_id: int) -> list[RoleGrant]:
    return list(
        session.scalars(
            select(RoleGrant).where(RoleGrant.user_id == user_id).order_by(RoleGrant.id)
        )
    )


def _user_read(session: Session, row: UserRow) -> UserRead:
    org = session.get(Organisation, row.organisation_id)
    assert org is not None
    locked = row.locked_until
    return UserRead(
        user_id=row.id,
        username=row.username,
        display_name=row.display_name,
        organisation=org.slug,
        kind=cast(UserKind, row.kind),
        roles=tuple(
            GrantRead(
                role=cast(Role, g.role),
                scope=g.scope,
                source=g.source,
                granted_at=g.granted_at,
            )
            for g in _grants(session, row.id)
        ),
        has_password=row.password_hash is not None,
        must_change_password=row.must_change_password,
        totp_enabled=row.totp_confirmed,
        locked_until=locked if credentials.is_locked(locked, now=_now()) else None,
        disabled=row.disabled_at is not None,
        oidc_provider=row.oidc_provider,
        created_at=row.created_at,
    )


def scope_for(role: str, *, organisation: str, node_id: str | None) -> str:
    """Organisation roles act for the user's organisation; a steward for one node."""
    if role not in ROLES:
        raise RoleUnknown()
    if role == "steward":
        if not node_id:
            raise ScopeInvalid("a steward role needs the node it governs (node_id)")
        return f"node:{node_id}"
    if node_id:
        raise ScopeInvalid("only the steward role is scoped to a node")
    return f"org:{organisation}"


def create_user(
    *,
    session: Session,
    body: UserCreate,
    actor: str,
    settings: HubSettings | None = None,
    password: str | None = None,
) -> UserCreated:
    """A person (with a password: given, or generated and shown once) or a service account."""
    if session.scalars(select(UserRow).where(UserRow.username == body.username)).first():
        raise UserExists()
    org = _org(session, body.organisation)
    if org is None:
        raise OrganisationNotFound()
    initial: str | None = None
    password_hash: str | None = None
    if body.kind == "person":
        if password is None:
            initial = password = secrets.token_urlsafe(15)
        _check_password(password, username=body.username, settings=settings)
        password_hash = credentials.hash_password(password)
    row = UserRow(
        username=body.username,
        display_name=body.display_name or body.username,
        organisation_id=org.id,
        kind=body.kind,
        password_hash=password_hash,
        # A generated password was seen by whoever ran the command: the user replaces it.
        must_change_password=initial is not None,
        failed_logins=0,
        created_at=_now(),
    )
    session.add(row)
    session.flush()
    audit.append(
        session=session,
        actor=actor,
        action="user.created",
        object=f"user:{row.username}",
        details={"organisation": org.slug, "kind": body.kind},
    )
    for grant in body.roles:
        _grant(session, row, org.slug, grant.role, grant.node_id, actor=actor, source="local")
    session.commit()
    return UserCreated(user=_user_read(session, row), initial_password=initial)


def _check_password(password: str, *, username: str, settings: HubSettings | None) -> None:
    problems = credentials.password_problems(
        password, username=username, policy=_password_policy(settings)
    )
    if problems:
        raise PasswordRejected(problems)


def _grant(
    session: Session,
    row: UserRow,
    org_slug: str,
    role: str,
    node_id: str | None,
    *,
    actor: str,
    source: str,
) -> bool:
    """Add one grant (False if held already), logged as a role change."""
    scope = scope_for(role, organisation=org_slug, node_id=node_id)
    existing = session.scalars(
        select(RoleGrant).where(
            RoleGrant.user_id == row.id, RoleGrant.role == role, RoleGrant.scope == scope
        )
    ).first()
    if existing is not None:
        return False
    session.add(RoleGrant(user_id=row.id, role=role, scope=scope, source=source, granted_at=_now()))
    session.flush()
    audit.append(
        session=session,
        actor=actor,
        action="role.granted",
        object=f"user:{row.username}",
        details={"role": role, "scope": scope, "source": source},
    )
    # A token in this role from before the grant was lost (revoked before tokens ended with
    # their role) must not come back with it: a new grant starts with no token.
    _end_tokens(session, row, actor=actor, reason="role_regranted", role=role, scope=scope)
    return True


def _ungrant(session: Session, row: UserRow, grant: RoleGrant, *, actor: str) -> None:
    session.delete(grant)
    session.flush()
    audit.append(
        session=session,
        actor=actor,
        action="role.revoked",
        object=f"user:{row.username}",
        details={"role": grant.role, "scope": grant.scope, "source": grant.source},
    )
    _end_tokens(
        session, row, actor=actor, reason="role_revoked", role=grant.role, scope=grant.scope
    )


def _end_tokens(
    session: Session,
    row: UserRow,
    *,
    actor: str,
    reason: str,
    role: str | None = None,
    scope: str | None = None,
) -> None:
    """Revoke the user's live API tokens (of one role and scope, or all) for good, logged."""
    stmt = select(ApiToken).where(ApiToken.user_id == row.id, ApiToken.revoked_at.is_(None))
    if role is not None:
        stmt = stmt.where(ApiToken.role == role, ApiToken.scope == scope)
    now = _now()
    for token in session.scalars(stmt):
        token.revoked_at = now
        audit.append(
            session=session,
            actor=actor,
            action="token.revoked",
            object=f"token:{token.id}",
            details={"name": token.name, "role": token.role, "reason": reason},
        )


def grant_role(
    *, session: Session, username: str, role: str, node_id: str | None, actor: str
) -> UserRead:
    row = _user(session, username, lock=True)
    org = session.get(Organisation, row.organisation_id)
    assert org is not None
    _grant(session, row, org.slug, role, node_id, actor=actor, source="local")
    session.commit()
    return _user_read(session, row)


def revoke_role(
    *, session: Session, username: str, role: str, node_id: str | None, actor: str
) -> UserRead:
    """Remove a grant; the user's tokens acting in that role stop working at once."""
    row = _user(session, username, lock=True)
    org = session.get(Organisation, row.organisation_id)
    assert org is not None
    scope = scope_for(role, organisation=org.slug, node_id=node_id)
    for grant in _grants(session, row.id):
        if grant.role == role and grant.scope == scope:
            _ungrant(session, row, grant, actor=actor)
    session.commit()
    return _user_read(session, row)


def sync_grants(
    *,
    session: Session,
    row: UserRow,
    wanted: list[RoleScope],
    source: str,
    actor: str,
) -> None:
    """Make the grants that came from `source` (an IdP) exactly `wanted`; local ones stay."""
    org = session.get(Organisation, row.organisation_id)
    assert org is not None
    wanted_scopes = {
        (w.role, scope_for(w.role, organisation=org.slug, node_id=w.node_id)) for w in wanted
    }
    for grant in _grants(session, row.id):
        if grant.source == source and (grant.role, grant.scope) not in wanted_scopes:
            _ungrant(session, row, grant, actor=actor)
    for w in wanted:
        _grant(session, row, org.slug, w.role, w.node_id, actor=actor, source=source)


def list_users(*, session: Session, organisation: str | None = None) -> list[UserRead]:
    stmt = select(UserRow).order_by(UserRow.username)
    if organisation is not None:
        org = _org(session, organisation)
        if org is None:
            raise OrganisationNotFound()
        stmt = stmt.where(UserRow.organisation_id == org.id)
    result = [_user_read(session, r) for r in session.scalars(stmt)]
    session.rollback()
    return result


def get_user(*, session: Session, username: str) -> UserRead:
    result = _user_read(session, _user(session, username))
    session.rollback()
    return result


def set_disabled(*, session: Session, username: str, disabled: bool, actor: str) -> UserRead:
    """A disabled user cannot log in; their sessions end and their tokens are revoked for good.

    Enabling them again brings back no session and no token: they log in and issue new ones.
    """
    row = _user(session, username, lock=True)
    was_disabled = row.disabled_at is not None
    row.disabled_at = _now() if disabled else None
    audit.append(
        session=session,
        actor=actor,
        action="user.disabled" if disabled else "user.enabled",
        object=f"user:{username}",
        details={},
    )
    if disabled:
        _end_sessions(session, row.id)
        _end_tokens(session, row, actor=actor, reason="user_disabled")
    elif was_disabled:
        # Tokens of a user disabled before tokens were revoked with them stay dead too.
        _end_tokens(session, row, actor=actor, reason="user_disabled")
    session.commit()
    return _user_read(session, row)


def unlock(*, session: Session, username: str, actor: str) -> UserRead:
    row = _user(session, username, lock=True)
    row.failed_logins = 0
    row.locked_until = None
    audit.append(
        session=session, actor=actor, action="auth.unlocked", object=f"user:{username}", details={}
    )
    session.commit()
    return _user_read(session, row)


def reset_password(
    *, session: Session, username: str, actor: str, settings: HubSettings | None = None
) -> PasswordReset:
    """A random one-time password (shown once); the user must change it at the next login."""
    row = _user(session, username, lock=True)
    if row.kind != "person":
        raise ScopeInvalid("service accounts have no password; issue a new API token instead")
    temporary = secrets.token_urlsafe(15)
    row.password_hash = credentials.hash_password(temporary)
    row.must_change_password = True
    row.failed_logins = 0
    row.locked_until = None
    _end_sessions(session, row.id)
    audit.append(
        session=session,
        actor=actor,
        action="auth.password_reset",
        object=f"user:{username}",
        details={},
    )
    session.commit()
    return PasswordReset(username=username, temporary_password=temporary)


def change_password(
    *,
    session: Session,
    user_id: int,
    current_password: str,
    new_password: str,
    settings: HubSettings | None = None,
    keep_session_id: int | None = None,
) -> None:
    """Change one's own password; every other browser session of the user ends.

    `keep_session_id` is the session the change was made in (None: made with an API token,
    so every session ends). API tokens are credentials of their own and stay.
    """
    row = session.get(UserRow, user_id, with_for_update=True)
    if row is None or not credentials.verify_password(row.password_hash, current_password):
        audit.append(
            session=session,
            actor=f"user:{row.username if row else user_id}",
            action="auth.password_change_failed",
            object=f"user:{row.username if row else user_id}",
            details={"reason": "bad_password"},
        )
        session.commit()
        raise LoginFailed()
    _check_password(new_password, username=row.username, settings=settings)
    if credentials.verify_password(row.password_hash, new_password):
        raise PasswordRejected(["must differ from the current one"])
    row.password_hash = credentials.hash_password(new_password)
    row.must_change_password = False
    ended = _end_sessions(session, row.id, keep=keep_session_id)
    audit.append(
        session=session,
        actor=f"user:{row.username}",
        action="auth.password_changed",
        object=f"user:{row.username}",
        details={"sessions_ended": ended},
    )
    session.commit()


# --- TOTP ---


def totp_begin(*, session: Session, user_id: int, settings: HubSettings) -> TotpSetup:
    """A new secret for the user's authenticator app; active once a code confirms it."""
    row = session.get(UserRow, user_id, with_for_update=True)
    assert row is not None
    if row.totp_confirmed:
        raise TotpInvalid("TOTP is already on; an admin can reset it")
    row.totp_secret = credentials.new_totp_secret()
    row.totp_last_step = None
    session.commit()
    return TotpSetup(
        secret=row.totp_secret,
        uri=credentials.totp_uri(
            row.totp_secret, account=row.username, issuer=settings.totp_issuer
        ),
    )


def totp_confirm(*, session: Session, user_id: int, code: str) -> None:
    row = session.get(UserRow, user_id, with_for_update=True)
    assert row is not None
    if row.totp_secret is None or row.totp_confirmed:
        raise TotpInvalid("start TOTP setup first")
    step = credentials.totp_step(row.totp_secret, code, now=_now(), last_step=row.totp_last_step)
    if step is None:
        raise TotpInvalid()
    row.totp_confirmed = True
    row.totp_last_step = step
    audit.append(
        session=session,
        actor=f"user:{row.username}",
        action="auth.totp_enabled",
        object=f"user:{row.username}",
        details={},
    )
    session.commit()


def totp_reset(*, session: Session, username: str, actor: str) -> UserRead:
    """An admin turns TOTP off for a user who lost their device."""
    row = _user(session, username, lock=True)
    row.totp_secret = None
    row.totp_confirmed = False
    row.totp_last_step = None
    audit.append(
        session=session,
        actor=actor,
        action="auth.totp_disabled",
        object=f"user:{username}",
        details={},
    )
    session.commit()
    return _user_read(session, row)


# --- password login ---


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
    now = now or _now()
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
                failures=row.failed_logins, now=now, policy=_lockout_policy(settings)
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


# --- sessions ---


def create_session(
    *, session: Session, user_id: int, method: str, settings: HubSettings
) -> tuple[str, SessionInfo]:
    """A new session (logged as a login) in the caller's transaction, then committed."""
    row = session.get(UserRow, user_id)
    assert row is not None
    now = _now()
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
    principal = _principal(session, row, via="session", session_id=web.id)
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
    now = now or _now()
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
    user = _principal(session, row, via="session", session_id=web.id)
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
    web.revoked_at = _now()
    row = session.get(UserRow, web.user_id)
    audit.append(
        session=session,
        actor=f"user:{row.username if row else web.user_id}",
        action="auth.logout",
        object=f"session:{web.id}",
        details={},
    )
    session.commit()


def _end_sessions(session: Session, user_id: int, *, keep: int | None = None) -> int:
    """End the user's live sessions but `keep`; how many ended."""
    now = _now()
    ended = 0
    for web in session.scalars(
        select(WebSession).where(WebSession.user_id == user_id, WebSession.revoked_at.is_(None))
    ):
        if web.id != keep:
            web.revoked_at = now
            ended += 1
    return ended


# --- principals ---


def _principal(
    session: Session,
    row: UserRow,
    *,
    via: str,
    session_id: int | None = None,
) -> User:
    org = session.get(Organisation, row.organisation_id)
    assert org is not None
    grants = _grants(session, row.id)
    roles = tuple(r for r in ROLE_PRECEDENCE if any(g.role == r for g in grants))
    node_ids = tuple(sorted(g.scope.removeprefix("node:") for g in grants if g.role == "steward"))
    if not roles:
        raise Forbidden("this account holds no role yet; ask an admin", code="no_role")
    return User(
        user_id=row.id,
        name=row.username,
        organisation=org.slug,
        role=roles[0],
        roles=roles,
        node_ids=node_ids,
        via="session" if via == "session" else "token",
        session_id=session_id,
    )


# --- API tokens ---


def create_token(*, session: Session, name: str, organisation: str, role: str) -> str:
    """A token for the service account `name` of `organisation` acting as `role`.

    Kept for scripts, the demo and tests: the organisation and the service account are
    created on first use, the role is granted to it, and the token expires after the
    hub's default (90 days).
    """
    if role not in ROLES or role == "steward":
        raise RoleUnknown()
    org = _org_or_create(session, organisation, actor="cli")
    row = session.scalars(select(UserRow).where(UserRow.username == name)).first()
    if row is None:
        row = UserRow(
            username=name,
            display_name=name,
            organisation_id=org.id,
            kind="service",
            failed_logins=0,
            created_at=_now(),
        )
        session.add(row)
        session.flush()
        audit.append(
            session=session,
            actor="cli",
            action="user.created",
            object=f"user:{name}",
            details={"organisation": organisation, "kind": "service"},
        )
    elif row.organisation_id != org.id:
        raise UserExists()
    _grant(session, row, organisation, role, None, actor="cli", source="local")
    created = _issue(
        session,
        row=row,
        organisation=organisation,
        name=name,
        role=role,
        scope=f"org:{organisation}",
        expires_at=_now() + timedelta(days=HubSettings.model_fields["token_default_days"].default),
        actor="cli",
    )
    session.commit()
    return created.token


def issue_token(
    *,
    session: Session,
    username: str,
    name: str,
    role: str,
    node_id: str | None,
    expires_in_days: float | None,
    actor: str,
    settings: HubSettings,
) -> TokenCreated:
    """A token acting as one role the user holds, expiring (never later than the hub's max)."""
    row = _user(session, username)
    if row.disabled_at is not None:
        raise ScopeInvalid("the user is disabled")
    org = session.get(Organisation, row.organisation_id)
    assert org is not None
    scope = scope_for(role, organisation=org.slug, node_id=node_id)
    if not any(g.role == role and g.scope == scope for g in _grants(session, row.id)):
        raise ScopeInvalid("a token can only act in a role its user holds, in that role's scope")
    days = expires_in_days if expires_in_days is not None else settings.token_default_days
    if days > settings.token_max_days:
        raise ScopeInvalid(f"tokens expire within {settings.token_max_days:g} days on this hub")
    created = _issue(
        session,
        row=row,
        organisation=org.slug,
        name=name,
        role=role,
        scope=scope,
        expires_at=_now() + timedelta(days=days),
        actor=actor,
    )
    session.commit()
    return created


def _issue(
    session: Session,
    *,
    row: UserRow,
    organisation: str,
    name: str,
    role: str,
    scope: str,
    expires_at: datetime,
    actor: str,
) -> TokenCreated:
    token = credentials.new_secret(TOKEN_PREFIX)
    api = ApiToken(
        name=name,
        organisation=organisation,
        role=role,
        token_hash=credentials.secret_digest(token),
        created_at=_now(),
        user_id=row.id,
        scope=scope,
        expires_at=expires_at,
        created_by=actor,
    )
    session.add(api)
    session.flush()
    audit.append(
        session=session,
        actor=actor,
        action="token.created",
        object=f"token:{api.id}",
        details={
            "name": name,
            "user": row.username,
            "organisation": organisation,
            "role": role,
            "scope": scope,
            "expires_at": expires_at.isoformat(),
        },
    )
    return TokenCreated(token=token, info=_token_read(session, api))


def _token_read(session: Session, row: ApiToken) -> TokenRead:
    user = session.get(UserRow, row.user_id) if row.user_id is not None else None
    return TokenRead(
        token_id=row.id,
        name=row.name,
        username=user.username if user else None,
        organisation=row.organisation,
        role=cast(Role, row.role),
        scope=row.scope,
        created_at=row.created_at,
        expires_at=row.expires_at if row.expires_at else None,
        revoked_at=row.revoked_at if row.revoked_at else None,
    )


def list_tokens(*, session: Session, username: str | None = None) -> list[TokenRead]:
    stmt = select(ApiToken).order_by(ApiToken.id)
    if username is not None:
        stmt = stmt.where(ApiToken.user_id == _user(session, username).id)
    result = [_token_read(session, r) for r in session.scalars(stmt)]
    session.rollback()
    return result


def revoke_token(
    *, session: Session, token_id: int, actor: str, owner_id: int | None = None
) -> TokenRead:
    """Revoke at once. With `owner_id`, only that user's own tokens (not an admin's call)."""
    row = session.get(ApiToken, token_id, with_for_update=True)
    if row is None or (owner_id is not None and row.user_id != owner_id):
        raise TokenNotFound()
    if row.revoked_at is None:
        row.revoked_at = _now()
        audit.append(
            session=session,
            actor=actor,
            action="token.revoked",
            object=f"token:{token_id}",
            details={"name": row.name, "role": row.role},
        )
    session.commit()
    return _token_read(session, row)


def authenticate(*, session: Session, token: str | None, now: datetime | None = None) -> User:
    """The principal behind a bearer token: acting only as the token's role and scope."""
    if not token:
        raise TokenUnknown()
    row = session.scalars(
        select(ApiToken).where(ApiToken.token_hash == credentials.secret_digest(token))
    ).first()
    if row is None:
        raise TokenUnknown()
    now = now or _now()
    if row.revoked_at is not None:
        raise TokenRevoked(f"token:{row.id}")
    if row.expires_at is not None and row.expires_at <= now:
        raise TokenExpired(f"token:{row.id}")
    if row.user_id is None:
        # A token made before accounts existed: its own name, organisation and role.
        return User(
            token_id=row.id,
            name=row.name,
            organisation=row.organisation,
            role=cast(Role, row.role),
            roles=(cast(Role, row.role),),
        )
    user = session.get(UserRow, row.user_id)
    held = user is not None and any(
        g.role == row.role and g.scope == row.scope for g in _grants(session, row.user_id)
    )
    if user is None or user.disabled_at is not None or not held:
        # The user was disabled or lost the role since: the token no longer acts for them.
        raise TokenRevoked(f"token:{row.id}")
    org = session.get(Organisation, user.organisation_id)
    assert org is not None
    scope = row.scope or ""
    return User(
        token_id=row.id,
        user_id=user.id,
        name=user.username,
        organisation=org.slug,
        role=cast(Role, row.role),
        roles=(cast(Role, row.role),),
        node_ids=(scope.removeprefix("node:"),) if scope.startswith("node:") else (),
        via="token",
    )


def user_row_id(*, session: Session, username: str) -> int:
    return _user(session, username).id


def session_cookie_name(settings: HubSettings) -> str:
    """`__Host-` binds the cookie to this exact origin over HTTPS (no Domain, Path=/)."""
    return "__Host-sauti_session" if settings.session_cookie_secure else "sauti_session"


def new_csrf_token() -> str:
    return secrets.token_urlsafe(32)


def same(presented: str, expected: str) -> bool:
    """Constant-time comparison of two tokens."""
    return secrets.compare_digest(presented.encode(), expected.encode())


def check_node_scope(user: User | None, node_id: str) -> None:
    """A caller acting only as a steward may act for the nodes of their grants, no other."""
    if user is None or any(user.has(r) for r in ("admin", "secretariat")):
        return
    if user.has("steward") and node_id not in user.node_ids:
        raise NodeScopeForbidden()
