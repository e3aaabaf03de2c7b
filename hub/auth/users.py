"""Users, their role grants, passwords and TOTP at the hub.

Every role change, lock, reset and TOTP change is appended to the hub's audit chain in the
same transaction as the change itself.
"""

import secrets
from typing import cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.audit import service as audit
from hub.auth._accounts import (
    check_password,
    end_sessions,
    end_tokens,
    grants_of,
    scope_for,
    user_row,
    utc_now,
)
from hub.auth.exceptions import (
    LoginFailed,
    NodeScopeForbidden,
    OrganisationNotFound,
    PasswordRejected,
    ScopeInvalid,
    TotpInvalid,
    UserExists,
)
from hub.auth.models import Organisation, RoleGrant, UserRow
from hub.auth.organisations import org_row
from hub.auth.schemas import (
    GrantRead,
    PasswordReset,
    Role,
    RoleScope,
    User,
    UserCreate,
    UserCreated,
    UserKind,
    UserRead,
)
from hub.settings import HubSettings
from runtime import credentials
from runtime.credentials import TotpSetup


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
            for g in grants_of(session, row.id)
        ),
        has_password=row.password_hash is not None,
        must_change_password=row.must_change_password,
        totp_enabled=row.totp_confirmed,
        locked_until=locked if credentials.is_locked(locked, now=utc_now()) else None,
        disabled=row.disabled_at is not None,
        oidc_provider=row.oidc_provider,
        created_at=row.created_at,
    )


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
    org = org_row(session, body.organisation)
    if org is None:
        raise OrganisationNotFound()
    initial: str | None = None
    password_hash: str | None = None
    if body.kind == "person":
        if password is None:
            initial = password = secrets.token_urlsafe(15)
        check_password(password, username=body.username, settings=settings)
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
        created_at=utc_now(),
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
        add_grant(session, row, org.slug, grant.role, grant.node_id, actor=actor, source="local")
    session.commit()
    return UserCreated(user=_user_read(session, row), initial_password=initial)


def add_grant(
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
    session.add(
        RoleGrant(user_id=row.id, role=role, scope=scope, source=source, granted_at=utc_now())
    )
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
    end_tokens(session, row, actor=actor, reason="role_regranted", role=role, scope=scope)
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
    end_tokens(session, row, actor=actor, reason="role_revoked", role=grant.role, scope=grant.scope)


def grant_role(
    *, session: Session, username: str, role: str, node_id: str | None, actor: str
) -> UserRead:
    row = user_row(session, username, lock=True)
    org = session.get(Organisation, row.organisation_id)
    assert org is not None
    add_grant(session, row, org.slug, role, node_id, actor=actor, source="local")
    session.commit()
    return _user_read(session, row)


def revoke_role(
    *, session: Session, username: str, role: str, node_id: str | None, actor: str
) -> UserRead:
    """Remove a grant; the user's tokens acting in that role stop working at once."""
    row = user_row(session, username, lock=True)
    org = session.get(Organisation, row.organisation_id)
    assert org is not None
    scope = scope_for(role, organisation=org.slug, node_id=node_id)
    for grant in grants_of(session, row.id):
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
    for grant in grants_of(session, row.id):
        if grant.source == source and (grant.role, grant.scope) not in wanted_scopes:
            _ungrant(session, row, grant, actor=actor)
    for w in wanted:
        add_grant(session, row, org.slug, w.role, w.node_id, actor=actor, source=source)


def list_users(*, session: Session, organisation: str | None = None) -> list[UserRead]:
    stmt = select(UserRow).order_by(UserRow.username)
    if organisation is not None:
        org = org_row(session, organisation)
        if org is None:
            raise OrganisationNotFound()
        stmt = stmt.where(UserRow.organisation_id == org.id)
    result = [_user_read(session, r) for r in session.scalars(stmt)]
    session.rollback()
    return result


def get_user(*, session: Session, username: str) -> UserRead:
    result = _user_read(session, user_row(session, username))
    session.rollback()
    return result


def set_disabled(*, session: Session, username: str, disabled: bool, actor: str) -> UserRead:
    """A disabled user cannot log in; their sessions end and their tokens are revoked for good.

    Enabling them again brings back no session and no token: they log in and issue new ones.
    """
    row = user_row(session, username, lock=True)
    was_disabled = row.disabled_at is not None
    row.disabled_at = utc_now() if disabled else None
    audit.append(
        session=session,
        actor=actor,
        action="user.disabled" if disabled else "user.enabled",
        object=f"user:{username}",
        details={},
    )
    if disabled:
        end_sessions(session, row.id)
        end_tokens(session, row, actor=actor, reason="user_disabled")
    elif was_disabled:
        # Tokens of a user disabled before tokens were revoked with them stay dead too.
        end_tokens(session, row, actor=actor, reason="user_disabled")
    session.commit()
    return _user_read(session, row)


def unlock(*, session: Session, username: str, actor: str) -> UserRead:
    row = user_row(session, username, lock=True)
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
    row = user_row(session, username, lock=True)
    if row.kind != "person":
        raise ScopeInvalid("service accounts have no password; issue a new API token instead")
    temporary = secrets.token_urlsafe(15)
    row.password_hash = credentials.hash_password(temporary)
    row.must_change_password = True
    row.failed_logins = 0
    row.locked_until = None
    end_sessions(session, row.id)
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
    check_password(new_password, username=row.username, settings=settings)
    if credentials.verify_password(row.password_hash, new_password):
        raise PasswordRejected(["must differ from the current one"])
    row.password_hash = credentials.hash_password(new_password)
    row.must_change_password = False
    ended = end_sessions(session, row.id, keep=keep_session_id)
    audit.append(
        session=session,
        actor=f"user:{row.username}",
        action="auth.password_changed",
        object=f"user:{row.username}",
        details={"sessions_ended": ended},
    )
    session.commit()


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
    step = credentials.totp_step(row.totp_secret, code, now=utc_now(), last_step=row.totp_last_step)
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
    row = user_row(session, username, lock=True)
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


def user_row_id(*, session: Session, username: str) -> int:
    return user_row(session, username).id


def check_node_scope(user: User | None, node_id: str) -> None:
    """A caller acting only as a steward may act for the nodes of their grants, no other."""
    if user is None or any(user.has(r) for r in ("admin", "secretariat")):
        return
    if user.has("steward") and node_id not in user.node_ids:
        raise NodeScopeForbidden()
