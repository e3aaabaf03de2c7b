"""What the auth sections share: lookups, policies, the principal a grant gives, and
ending a user's sessions and tokens (by role or all)."""

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.audit import service as audit
from hub.auth.exceptions import (
    PasswordRejected,
    RoleUnknown,
    ScopeInvalid,
    UserNotFound,
)
from hub.auth.models import ApiToken, Organisation, RoleGrant, UserRow, WebSession
from hub.auth.schemas import (
    ROLE_PRECEDENCE,
    ROLES,
    User,
)
from hub.exceptions import Forbidden
from hub.settings import HubSettings
from runtime import credentials


def utc_now() -> datetime:
    return datetime.now(UTC)


def password_policy(settings: HubSettings | None) -> credentials.PasswordPolicy:
    return credentials.PasswordPolicy(min_length=settings.password_min_length if settings else 12)


def lockout_policy(settings: HubSettings | None) -> credentials.LockoutPolicy:
    if settings is None:
        return credentials.LockoutPolicy()
    return credentials.LockoutPolicy(
        max_failures=settings.login_max_failures, lock_minutes=settings.login_lock_minutes
    )


def user_row(session: Session, username: str, *, lock: bool = False) -> UserRow:
    stmt = select(UserRow).where(UserRow.username == username)
    row = session.scalars(stmt.with_for_update() if lock else stmt).first()
    if row is None:
        raise UserNotFound()
    return row


def grants_of(session: Session, user_id: int) -> list[RoleGrant]:
    return list(
        session.scalars(
            select(RoleGrant).where(RoleGrant.user_id == user_id).order_by(RoleGrant.id)
        )
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


def check_password(password: str, *, username: str, settings: HubSettings | None) -> None:
    problems = credentials.password_problems(
        password, username=username, policy=password_policy(settings)
    )
    if problems:
        raise PasswordRejected(problems)


def end_tokens(
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
    now = utc_now()
    for token in session.scalars(stmt):
        token.revoked_at = now
        audit.append(
            session=session,
            actor=actor,
            action="token.revoked",
            object=f"token:{token.id}",
            details={"name": token.name, "role": token.role, "reason": reason},
        )


def end_sessions(session: Session, user_id: int, *, keep: int | None = None) -> int:
    """End the user's live sessions but `keep`; how many ended."""
    now = utc_now()
    ended = 0
    for web in session.scalars(
        select(WebSession).where(WebSession.user_id == user_id, WebSession.revoked_at.is_(None))
    ):
        if web.id != keep:
            web.revoked_at = now
            ended += 1
    return ended


def principal_of(
    session: Session,
    row: UserRow,
    *,
    via: str,
    session_id: int | None = None,
) -> User:
    org = session.get(Organisation, row.organisation_id)
    assert org is not None
    grants = grants_of(session, row.id)
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
