"""API tokens at the hub: issued for one role a user holds, expiring, revocable; and the
principal a bearer token stands for."""

from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Connection, bindparam, exists, select
from sqlalchemy.orm import Session

from hub.audit import service as audit
from hub.auth._accounts import (
    grants_of,
    scope_for,
    user_row,
    utc_now,
)
from hub.auth.exceptions import (
    RoleUnknown,
    ScopeInvalid,
    TokenExpired,
    TokenNotFound,
    TokenRevoked,
    TokenUnknown,
    UserExists,
)
from hub.auth.models import ApiToken, Organisation, RoleGrant, UserRow
from hub.auth.organisations import org_or_create
from hub.auth.schemas import (
    ROLES,
    Role,
    TokenCreated,
    TokenRead,
    User,
)
from hub.auth.users import add_grant
from hub.settings import HubSettings
from runtime import credentials

TOKEN_PREFIX = "sauti_"  # noqa: S105 - a marker, not a secret


def create_token(*, session: Session, name: str, organisation: str, role: str) -> str:
    """A token for the service account `name` of `organisation` acting as `role`.

    Kept for scripts, the demo and tests: the organisation and the service account are
    created on first use, the role is granted to it, and the token expires after the
    hub's default (90 days).
    """
    if role not in ROLES or role == "steward":
        raise RoleUnknown()
    org = org_or_create(session, organisation, actor="cli")
    row = session.scalars(select(UserRow).where(UserRow.username == name)).first()
    if row is None:
        row = UserRow(
            username=name,
            display_name=name,
            organisation_id=org.id,
            kind="service",
            failed_logins=0,
            created_at=utc_now(),
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
    add_grant(session, row, organisation, role, None, actor="cli", source="local")
    created = _issue(
        session,
        row=row,
        organisation=organisation,
        name=name,
        role=role,
        scope=f"org:{organisation}",
        expires_at=utc_now()
        + timedelta(days=HubSettings.model_fields["token_default_days"].default),
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
    row = user_row(session, username)
    if row.disabled_at is not None:
        raise ScopeInvalid("the user is disabled")
    org = session.get(Organisation, row.organisation_id)
    assert org is not None
    scope = scope_for(role, organisation=org.slug, node_id=node_id)
    if not any(g.role == role and g.scope == scope for g in grants_of(session, row.id)):
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
        expires_at=utc_now() + timedelta(days=days),
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
        created_at=utc_now(),
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
        stmt = stmt.where(ApiToken.user_id == user_row(session, username).id)
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
        row.revoked_at = utc_now()
        audit.append(
            session=session,
            actor=actor,
            action="token.revoked",
            object=f"token:{token_id}",
            details={"name": row.name, "role": row.role},
        )
    session.commit()
    return _token_read(session, row)


_LOOKUP = (
    select(
        ApiToken.id,
        ApiToken.name,
        ApiToken.organisation,
        ApiToken.role,
        ApiToken.scope,
        ApiToken.revoked_at,
        ApiToken.expires_at,
        ApiToken.user_id,
        UserRow.username,
        UserRow.disabled_at,
        Organisation.slug,
        exists()
        .where(
            RoleGrant.user_id == ApiToken.user_id,
            RoleGrant.role == ApiToken.role,
            RoleGrant.scope.is_not_distinct_from(ApiToken.scope),
        )
        .label("held"),
    )
    .outerjoin(UserRow, UserRow.id == ApiToken.user_id)
    .outerjoin(Organisation, Organisation.id == UserRow.organisation_id)
    .where(ApiToken.token_hash == bindparam("digest"))
    .limit(1)
)


def authenticate(*, session: Session, token: str | None, now: datetime | None = None) -> User:
    """The principal behind a bearer token: acting only as the token's role and scope."""
    return authenticate_on(session.connection(), token=token, now=now)


def authenticate_on(
    connection: Connection, *, token: str | None, now: datetime | None = None
) -> User:
    """`authenticate` on a connection (Core: no ORM session is needed to read one row)."""
    if not token:
        raise TokenUnknown()
    # One statement, every request: the token, its user, organisation and whether the user
    # still holds the token's role (read each time: revocation takes effect at once).
    row = connection.execute(_LOOKUP, {"digest": credentials.secret_digest(token)}).first()
    if row is None:
        raise TokenUnknown()
    now = now or utc_now()
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
    if row.username is None or row.disabled_at is not None or not row.held:
        # The user was disabled or lost the role since: the token no longer acts for them.
        raise TokenRevoked(f"token:{row.id}")
    assert row.slug is not None
    scope = row.scope or ""
    return User(
        token_id=row.id,
        user_id=row.user_id,
        name=row.username,
        organisation=row.slug,
        role=cast(Role, row.role),
        roles=(cast(Role, row.role),),
        node_ids=(scope.removeprefix("node:"),) if scope.startswith("node:") else (),
        via="token",
    )
