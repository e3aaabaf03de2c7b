"""Create (shown once), revoke and resolve steward tokens in the node's own database."""

import hashlib
import secrets
from datetime import UTC, datetime

from sqlalchemy import select

from node.audit import service as audit
from node.auth.exceptions import Unauthenticated
from node.auth.models import StewardToken
from node.auth.schemas import Steward
from node.db import transaction

TOKEN_PREFIX = "sauti_node_"  # noqa: S105 - a marker, not a secret


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(*, database_url: str, name: str) -> str:
    """A new random steward token; only its hash is kept, so this is the one time it is seen."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction(database_url) as session:
        row = StewardToken(name=name, token_hash=_hash(token), created_at=datetime.now(UTC))
        session.add(row)
        session.flush()
        audit.append(
            session,
            actor="cli",
            action="steward_token.created",
            object=f"steward_token:{row.id}",
            details={"name": name},
        )
    return token


def revoke_token(*, database_url: str, token_id: int) -> None:
    with transaction(database_url) as session:
        row = session.get(StewardToken, token_id)
        if row is None or row.revoked_at is not None:
            raise Unauthenticated("no such active steward token")
        row.revoked_at = datetime.now(UTC)
        audit.append(
            session,
            actor="cli",
            action="steward_token.revoked",
            object=f"steward_token:{token_id}",
            details={},
        )


def authenticate(*, database_url: str, token: str | None) -> Steward:
    if not token:
        raise Unauthenticated("a steward bearer token is required")
    with transaction(database_url) as session:
        row = session.scalars(
            select(StewardToken).where(StewardToken.token_hash == _hash(token))
        ).first()
        if row is None or row.revoked_at is not None:
            raise Unauthenticated("the steward token is not valid")
        return Steward(token_id=row.id, name=row.name)
