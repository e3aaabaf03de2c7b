"""Create API tokens (shown once) and resolve a presented token to its user."""

import hashlib
import secrets
from datetime import UTC, datetime
from typing import cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.audit import service as audit
from hub.auth.exceptions import RoleUnknown, TokenUnknown
from hub.auth.models import ApiToken
from hub.auth.schemas import ROLES, Role, User

TOKEN_PREFIX = "sauti_"  # noqa: S105 - a marker, not a secret


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(*, session: Session, name: str, organisation: str, role: str) -> str:
    """A new random token; only its hash is stored, so this is the one time it is seen."""
    if role not in ROLES:
        raise RoleUnknown()
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        name=name,
        organisation=organisation,
        role=role,
        token_hash=_hash(token),
        created_at=datetime.now(UTC),
    )
    session.add(row)
    session.flush()
    audit.append(
        session=session,
        actor="cli",
        action="token.created",
        object=f"token:{row.id}",
        details={"name": name, "organisation": organisation, "role": role},
    )
    session.commit()
    return token


def authenticate(*, session: Session, token: str | None) -> User:
    if not token:
        raise TokenUnknown()
    row = session.scalars(select(ApiToken).where(ApiToken.token_hash == _hash(token))).first()
    if row is None:
        raise TokenUnknown()
    return User(
        token_id=row.id, name=row.name, organisation=row.organisation, role=cast(Role, row.role)
    )
