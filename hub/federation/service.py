"""The node registry: enrollment with one-time tokens, pinned keys, rotation and removal."""

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from joserfc.jwk import OKPKey
from pydantic import BaseModel, ValidationError
from sqlalchemy import delete, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from contracts import signing
from contracts.errors import ContractError, KeyInvalid
from contracts.v1 import (
    EnrollmentAccepted,
    EnrollmentRequest,
    EnrollmentSubmission,
    KeyRotation,
    KeyRotationSubmission,
    Signed,
)
from contracts.v1.federation import ENROLLMENT_TOKEN_PREFIX
from hub.audit import service as audit
from hub.federation.exceptions import (
    EnrollmentInvalid,
    EnrollmentTokenInvalid,
    NodeExists,
    NodeKeyInvalid,
    NodeMessageRejected,
    NodeNotFound,
    NodeRemoved,
    ReplayedMessage,
)
from hub.federation.models import EnrollmentToken, Node, NodeNonce
from hub.federation.schemas import EnrollmentTokenIssued, EnrollmentTokenRead, NodeRead
from hub.home import HubIdentity

M = TypeVar("M", bound=BaseModel)


def register_node(
    *,
    session: Session,
    node_id: str,
    name: str,
    country: str,
    url: str,
    public_jwk: dict[str, Any],
    actor: str = "system",
) -> NodeRead:
    """Pin the node's key. Re-registering the same key updates name/URL; another key is refused."""
    try:
        key = signing.load_public_key(public_jwk)
    except KeyInvalid as exc:
        raise NodeKeyInvalid() from exc
    kid = signing.key_id(key)
    url = url.rstrip("/")
    node = session.get(Node, node_id)
    if node is not None and node.status == "removed":
        raise NodeRemoved()
    if node is not None and node.kid != kid:
        raise NodeExists()
    if node is None:
        node = Node(
            node_id=node_id,
            name=name,
            country=country,
            url=url,
            public_jwk=signing.public_jwk(key),
            kid=kid,
            registered_at=datetime.now(UTC),
            mode="push",
            status="active",
        )
        session.add(node)
    else:
        node.name, node.country, node.url = name, country, url
    session.flush()
    audit.append(
        session=session,
        actor=actor,
        action="node.registered",
        object=f"node:{node_id}",
        details={"kid": kid, "country": country},
    )
    session.commit()
    return to_read(node)


def list_nodes(*, session: Session) -> list[NodeRead]:
    return [to_read(n) for n in session.scalars(select(Node).order_by(Node.node_id))]


def get_node(*, session: Session, node_id: str) -> NodeRead:
    node = session.get(Node, node_id)
    if node is None:
        raise NodeNotFound()
    return to_read(node)


def to_read(node: Node) -> NodeRead:
    return NodeRead(
        node_id=node.node_id,
        name=node.name,
        country=node.country,
        url=node.url,
        kid=node.kid,
        public_jwk=node.public_jwk,
        registered_at=node.registered_at,
        mode="pull" if node.mode == "pull" else "push",
        status="removed" if node.status == "removed" else "active",
        previous_kid=node.previous_kid,
        previous_valid_until=node.previous_valid_until,
    )


# --- enrollment ---------------------------------------------------------------------------


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_enrollment_token(
    *,
    session: Session,
    identity: HubIdentity,
    actor: str,
    node_id: str | None = None,
    note: str = "",
    ttl_hours: float = 72,
    now: datetime | None = None,
) -> EnrollmentTokenIssued:
    """A one-time token naming the hub key to pin; only its hash is stored."""
    now = now or datetime.now(UTC)
    token = f"{ENROLLMENT_TOKEN_PREFIX}.{identity.kid}.{secrets.token_urlsafe(32)}"
    row = EnrollmentToken(
        token_hash=_token_hash(token),
        node_id=node_id,
        note=note,
        created_by=actor,
        created_at=now,
        expires_at=now + timedelta(hours=ttl_hours),
    )
    session.add(row)
    session.flush()
    audit.append(
        session=session,
        actor=actor,
        action="enrollment_token.created",
        object=f"enrollment_token:{row.token_id}",
        details={"node_id": node_id, "expires_at": row.expires_at.isoformat()},
    )
    session.commit()
    return EnrollmentTokenIssued(token=token, **_token_read(row).model_dump())


def list_enrollment_tokens(*, session: Session) -> list[EnrollmentTokenRead]:
    rows = session.scalars(select(EnrollmentToken).order_by(EnrollmentToken.token_id))
    return [_token_read(r) for r in rows]


def _token_read(row: EnrollmentToken) -> EnrollmentTokenRead:
    return EnrollmentTokenRead(
        token_id=row.token_id,
        node_id=row.node_id,
        note=row.note,
        created_by=row.created_by,
        created_at=row.created_at,
        expires_at=row.expires_at,
        used_at=row.used_at,
        used_by=row.used_by,
    )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def enroll(
    *,
    session: Session,
    identity: HubIdentity,
    key: OKPKey,
    submission: EnrollmentSubmission,
    skew_seconds: int,
    now: datetime | None = None,
) -> Signed:
    """Use the token once: pin the node's key and answer with the hub key the token names."""
    now = now or datetime.now(UTC)
    row = session.scalars(
        select(EnrollmentToken)
        .where(EnrollmentToken.token_hash == _token_hash(submission.token))
        .with_for_update()
    ).one_or_none()
    if row is None or row.used_at is not None or _aware(row.expires_at) <= now:
        raise EnrollmentTokenInvalid()
    request = _self_signed_enrollment(submission.jws)
    parts = submission.token.split(".")
    if request.hub_kid != identity.kid or len(parts) != 3 or parts[1] != identity.kid:
        raise EnrollmentInvalid("the request names another hub key than this hub's")
    if row.node_id is not None and row.node_id != request.node_id:
        raise EnrollmentInvalid("the token was issued for another node id")
    if abs((_aware(request.issued_at) - now).total_seconds()) > skew_seconds:
        raise EnrollmentInvalid("the request's issued_at is outside the allowed clock skew")
    if request.mode == "push" and request.url is None:
        raise EnrollmentInvalid("a push node must give the URL the hub calls")
    existing = session.get(Node, request.node_id)
    if existing is not None:
        raise NodeRemoved() if existing.status == "removed" else NodeExists()
    node_key = signing.load_public_key(request.public_jwk)
    node = Node(
        node_id=request.node_id,
        name=request.name,
        country=request.country,
        url=(request.url or "").rstrip("/") if request.mode == "push" else "",
        public_jwk=signing.public_jwk(node_key),
        kid=signing.key_id(node_key),
        registered_at=now,
        mode=request.mode,
        status="active",
    )
    session.add(node)
    row.used_at, row.used_by = now, request.node_id
    session.flush()
    audit.append(
        session=session,
        actor=f"node:{request.node_id}",
        action="node.enrolled",
        object=f"node:{request.node_id}",
        details={
            "kid": node.kid,
            "country": node.country,
            "mode": node.mode,
            "enrollment_token": row.token_id,
        },
    )
    session.commit()
    accepted = EnrollmentAccepted(
        hub_id=identity.hub_id,
        hub_kid=identity.kid,
        hub_public_jwk=identity.public_jwk,
        node_id=node.node_id,
        kid=node.kid,
        mode="pull" if node.mode == "pull" else "push",
        enrolled_at=now,
    )
    return Signed(jws=signing.sign(accepted, key))


def _self_signed_enrollment(token: str) -> EnrollmentRequest:
    """The request, verified with the key it carries (the node proves it holds that key)."""
    try:
        claimed = EnrollmentRequest.model_validate_json(signing.unverified_payload(token))
        node_key = signing.load_public_key(claimed.public_jwk)
        return signing.verify_model(token, node_key, EnrollmentRequest)
    except (ValidationError, ContractError) as exc:
        raise EnrollmentInvalid(
            "the enrollment request is not signed by the Ed25519 key it carries"
        ) from exc


def remove_node(*, session: Session, node_id: str, actor: str) -> NodeRead:
    """Refuse the node from now on; its row and history stay for the auditors."""
    node = session.get(Node, node_id)
    if node is None:
        raise NodeNotFound()
    if node.status != "removed":
        node.status, node.removed_at = "removed", datetime.now(UTC)
        audit.append(
            session=session,
            actor=actor,
            action="node.removed",
            object=f"node:{node_id}",
            details={"kid": node.kid},
        )
        session.commit()
    return to_read(node)


# --- node-signed messages -----------------------------------------------------------------


def node_keys(node: Node, *, now: datetime) -> dict[str, dict[str, Any]]:
    """The keys that verify this node's signatures now: current, and the previous in overlap."""
    keys = {node.kid: node.public_jwk}
    if (
        node.previous_kid is not None
        and node.previous_jwk is not None
        and node.previous_valid_until is not None
        and _aware(node.previous_valid_until) > now
    ):
        keys[node.previous_kid] = node.previous_jwk
    return keys


def verify_node_message(
    *, session: Session, token: str, model: type[M], now: datetime
) -> tuple[Node, M]:
    """Find the signing node by key id, verify with its pinned key, refuse removed nodes."""
    try:
        kid = signing.unverified_header(token).get("kid")
    except ContractError as exc:
        raise NodeMessageRejected("the body is not a compact JWS") from exc
    if not isinstance(kid, str) or not kid:
        raise NodeMessageRejected("the signature names no key id")
    node = session.scalars(
        select(Node).where(or_(Node.kid == kid, Node.previous_kid == kid))
    ).first()
    if node is None:
        raise NodeMessageRejected("the message is not signed by an enrolled node's key")
    if node.status == "removed":
        raise NodeRemoved()
    jwk = node_keys(node, now=now).get(kid)
    if jwk is None:
        raise NodeMessageRejected("the message is signed with a retired key")
    try:
        payload = signing.verify_model(token, signing.load_public_key(jwk), model)
    except ContractError as exc:
        raise NodeMessageRejected("the node signature does not verify") from exc
    if getattr(payload, "node_id", node.node_id) != node.node_id:
        raise NodeMessageRejected(
            "the message names another node than the key that signed it",
            code="node_key_mismatch",
        )
    return node, payload


def check_fresh(
    *,
    session: Session,
    node_id: str,
    nonce: str,
    issued_at: datetime,
    now: datetime,
    skew_seconds: int,
) -> None:
    """Refuse stale messages and any nonce seen inside the freshness window (replays)."""
    if abs((_aware(issued_at) - now).total_seconds()) > skew_seconds:
        raise NodeMessageRejected(
            "the message's issued_at is outside the allowed clock skew", code="message_stale"
        )
    session.execute(delete(NodeNonce).where(NodeNonce.expires_at < now))
    try:
        with session.begin_nested():
            session.add(
                NodeNonce(
                    node_id=node_id,
                    nonce=nonce,
                    expires_at=now + timedelta(seconds=2 * skew_seconds),
                )
            )
    except IntegrityError as exc:
        raise ReplayedMessage() from exc


def rotate_key(
    *,
    session: Session,
    identity: HubIdentity,
    submission: KeyRotationSubmission,
    overlap_seconds: int,
    skew_seconds: int,
    now: datetime | None = None,
) -> NodeRead:
    """Pin the node's new key; the old one keeps verifying for `overlap_seconds`."""
    now = now or datetime.now(UTC)
    node, rotation = verify_node_message(
        session=session, token=submission.by_current_key, model=KeyRotation, now=now
    )
    if rotation.hub_id != identity.hub_id:
        raise NodeMessageRejected("the rotation names another hub")
    check_fresh(
        session=session,
        node_id=node.node_id,
        nonce=rotation.nonce,
        issued_at=rotation.issued_at,
        now=now,
        skew_seconds=skew_seconds,
    )
    try:
        new_key = signing.load_public_key(rotation.new_public_jwk)
        confirmed = signing.verify_model(submission.by_new_key, new_key, KeyRotation)
    except ContractError as exc:
        raise NodeMessageRejected("the rotation is not signed by the new key") from exc
    if confirmed != rotation:
        raise NodeMessageRejected("the two signatures cover different rotations")
    new_kid = signing.key_id(new_key)
    signed_by = signing.unverified_header(submission.by_current_key).get("kid")
    if new_kid == node.kid and signed_by == node.previous_kid:
        # The node asks again for a rotation the hub already made (its answer was lost):
        # idempotent, so the node can switch to the key the hub pins.
        session.commit()
        return to_read(node)
    if signed_by != node.kid:
        # Only the current key may rotate: a retired key (still verifying old releases in
        # the overlap) must never choose the node's next key.
        raise NodeMessageRejected(
            "a rotation must be signed by the node's current key", code="key_retired"
        )
    if new_kid == node.kid:
        raise NodeMessageRejected("the new key is the current key", code="key_unchanged")
    old_kid = node.kid
    node.previous_jwk, node.previous_kid = node.public_jwk, node.kid
    node.previous_valid_until = now + timedelta(seconds=overlap_seconds)
    node.public_jwk, node.kid = signing.public_jwk(new_key), new_kid
    audit.append(
        session=session,
        actor=f"node:{node.node_id}",
        action="node.key_rotated",
        object=f"node:{node.node_id}",
        details={"old_kid": old_kid, "new_kid": new_kid, "overlap_seconds": overlap_seconds},
    )
    session.commit()
    return to_read(node)
