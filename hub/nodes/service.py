"""The node registry: enrollment with one-time tokens, pinned keys, rotation and removal."""

import hashlib
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

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
    KeyRotationAccepted,
    KeyRotationSubmission,
    Signed,
)
from contracts.v1.base import utc
from contracts.v1.federation import ENROLLMENT_TOKEN_PREFIX
from hub.audit import service as audit
from hub.exceptions import Invalid
from hub.home import HubIdentity
from hub.nodes.exceptions import (
    EnrollmentInvalid,
    EnrollmentTokenInvalid,
    NodeExists,
    NodeKeyInvalid,
    NodeMessageRejected,
    NodeNotFound,
    NodeRemoved,
    ReplayedMessage,
)
from hub.nodes.models import EnrollmentToken, Node, NodeKey, NodeNonce
from hub.nodes.schemas import (
    EnrollmentTokenIssued,
    EnrollmentTokenRead,
    NodeKeyRead,
    NodeRead,
)
from runtime import edge

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
        _start_key(session, node)
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
    # Every field is a column of the same name (never the token's hash).
    return EnrollmentTokenRead.model_validate(row, from_attributes=True)


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
    if row is None or row.used_at is not None or row.expires_at <= now:
        raise EnrollmentTokenInvalid()
    request = _self_signed_enrollment(submission.jws)
    parts = submission.token.split(".")
    if request.hub_kid != identity.kid or len(parts) != 3 or parts[1] != identity.kid:
        raise EnrollmentInvalid("the request names another hub key than this hub's")
    if row.node_id is not None and row.node_id != request.node_id:
        raise EnrollmentInvalid("the token was issued for another node id")
    if abs((utc(request.issued_at) - now).total_seconds()) > skew_seconds:
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
    _start_key(session, node)
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


class KeyedNode(Protocol):
    """What `node_keys` reads of a node: a `Node` row, or a Core row of those columns (the
    query path reads plain rows: no ORM object per node)."""

    @property
    def kid(self) -> str: ...
    @property
    def public_jwk(self) -> dict[str, Any]: ...
    @property
    def previous_kid(self) -> str | None: ...
    @property
    def previous_jwk(self) -> dict[str, Any] | None: ...
    @property
    def previous_valid_until(self) -> datetime | None: ...


def node_keys(node: KeyedNode, *, now: datetime) -> dict[str, dict[str, Any]]:
    """The keys that verify this node's signatures now: current, and the previous in overlap."""
    keys = {node.kid: node.public_jwk}
    if (
        node.previous_kid is not None
        and node.previous_jwk is not None
        and node.previous_valid_until is not None
        and node.previous_valid_until > now
    ):
        keys[node.previous_kid] = node.previous_jwk
    return keys


def _start_key(session: Session, node: Node) -> None:
    """Open the node's key history with the key it enrolled (or was registered) with."""
    session.flush()
    session.add(
        NodeKey(
            node_id=node.node_id,
            kid=node.kid,
            public_jwk=node.public_jwk,
            valid_from=node.registered_at,
        )
    )


def key_history(*, session: Session, node_id: str) -> list[NodeKeyRead]:
    """Every key the node ever had, oldest first (public halves and when each was current)."""
    if session.get(Node, node_id) is None:
        raise NodeNotFound()
    rows = session.scalars(select(NodeKey).where(NodeKey.node_id == node_id))
    ordered = sorted(rows, key=lambda r: (r.retired_at is None, _sort_moment(r.retired_at)))
    return [
        NodeKeyRead(
            kid=r.kid,
            public_jwk=r.public_jwk,
            valid_from=r.valid_from,
            retired_at=r.retired_at,
            valid_until=r.valid_until,
        )
        for r in ordered
    ]


def _sort_moment(moment: datetime | None) -> datetime:
    return moment if moment is not None else datetime.min.replace(tzinfo=UTC)


def _owner_of(session: Session, kid: str) -> tuple[Node, dict[str, Any]] | None:
    """The node (and the public key) a key id belongs to, current or retired."""
    row = session.scalars(select(NodeKey).where(NodeKey.kid == kid)).first()
    if row is not None:
        node = session.get(Node, row.node_id)
        return (node, row.public_jwk) if node is not None else None
    # A registry row without history (made before revision 0004 by hand): its pinned keys.
    node = session.scalars(
        select(Node).where(or_(Node.kid == kid, Node.previous_kid == kid))
    ).first()
    if node is None:
        return None
    jwk = node.public_jwk if node.kid == kid else node.previous_jwk
    return (node, jwk) if jwk is not None else None


def verify_node_message(
    *, session: Session, token: str, model: type[M], now: datetime
) -> tuple[Node, M]:
    """A new message: find the signing node by key id, verify it with a key that may sign now.

    Only the current key, and the previous one during its overlap, sign new messages; any
    older key of the node is refused as `key_retired` (it still verifies what it signed
    while current: see `verify_node_record`).
    """
    kid = _signing_kid(token)
    owner = _owner_of(session, kid)
    if owner is None:
        raise NodeMessageRejected("the message is not signed by an enrolled node's key")
    node = owner[0]
    if node.status == "removed":
        raise NodeRemoved()
    jwk = node_keys(node, now=now).get(kid)
    if jwk is None:
        raise NodeMessageRejected("the message is signed with a retired key", code="key_retired")
    message = _verified(token, jwk, model, node)
    # The hub's edge for what nodes sign: text a database cannot store (NUL) or that forges
    # log lines never gets past here, however well signed.
    if bad := edge.forbidden_in(message.model_dump(mode="json"), ()):
        names = ", ".join(".".join(str(p) for p in loc) for loc in bad)
        raise Invalid(f"invalid fields: {names} (control_character)", code="invalid_request")
    return node, message


def verify_node_record(
    *,
    session: Session,
    token: str,
    model: type[M],
    signed_at: Callable[[M], datetime | None],
    skew_seconds: int,
) -> tuple[Node, M]:
    """Something a node signed in the past (a checkpoint, a stored release), verified again.

    Any key the node ever had verifies it, provided that key was the node's current one (or
    in its overlap) at the moment the payload says it was signed; a payload without a
    timestamp is accepted under any of the node's keys. The node's clock may run behind the
    hub's by the allowed skew at the start; the end needs none (the overlap is that slack).
    Removal does not matter here: what a node signed while it was a member stays so.
    """
    kid = _signing_kid(token)
    row = session.scalars(select(NodeKey).where(NodeKey.kid == kid)).first()
    if row is None:
        owner = _owner_of(session, kid)
        if owner is None:
            raise NodeMessageRejected("the record is not signed by a key any node ever had")
        node, jwk = owner
        window: tuple[datetime | None, datetime | None] = (None, None)
    else:
        found = session.get(Node, row.node_id)
        if found is None:
            raise NodeMessageRejected("the record is not signed by a key any node ever had")
        node, jwk = found, row.public_jwk
        # The key the node enrolled with has no lower bound: a checkpoint it signed before
        # enrolling (published later) is still its own. A rotated-in key starts at rotation.
        start = row.valid_from
        if start is not None and start <= node.registered_at:
            start = None
        window = (start, row.valid_until or row.retired_at)
    payload = _verified(token, jwk, model, node)
    moment = signed_at(payload)
    if moment is not None:
        skew = timedelta(seconds=skew_seconds)
        start, end = window
        if (start is not None and utc(moment) < start - skew) or (
            end is not None and utc(moment) > end
        ):
            raise NodeMessageRejected(
                "the record is dated outside the time its key was the node's key",
                code="key_retired",
            )
    return node, payload


def _signing_kid(token: str) -> str:
    try:
        kid = signing.unverified_header(token).get("kid")
    except ContractError as exc:
        raise NodeMessageRejected("the body is not a compact JWS") from exc
    if not isinstance(kid, str) or not kid:
        raise NodeMessageRejected("the signature names no key id")
    return kid


def _verified(token: str, jwk: dict[str, Any], model: type[M], node: Node) -> M:
    try:
        payload = signing.verify_model(token, signing.load_public_key(jwk), model)
    except ContractError as exc:
        raise NodeMessageRejected("the node signature does not verify") from exc
    if getattr(payload, "node_id", node.node_id) != node.node_id:
        raise NodeMessageRejected(
            "the message names another node than the key that signed it",
            code="node_key_mismatch",
        )
    return payload


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
    if abs((utc(issued_at) - now).total_seconds()) > skew_seconds:
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
    key: OKPKey,
    node_id: str,
    submission: KeyRotationSubmission,
    overlap_seconds: int,
    skew_seconds: int,
    now: datetime | None = None,
) -> Signed:
    """Pin the node's new key; the old one keeps verifying for `overlap_seconds`.

    The answer is a `KeyRotationAccepted` signed with the hub key, the only thing the node
    switches keys on.
    """
    now = now or datetime.now(UTC)
    node, rotation = verify_node_message(
        session=session, token=submission.by_current_key, model=KeyRotation, now=now
    )
    if node.node_id != node_id:
        raise Invalid("the path names another node than the rotation", code="node_mismatch")
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
        return _rotation_accepted(node, identity=identity, key=key, now=now)
    if signed_by != node.kid:
        # Only the current key may rotate: a retired key (still verifying old releases in
        # the overlap) must never choose the node's next key.
        raise NodeMessageRejected(
            "a rotation must be signed by the node's current key", code="key_retired"
        )
    if new_kid == node.kid:
        raise NodeMessageRejected("the new key is the current key", code="key_unchanged")
    if session.scalars(select(NodeKey).where(NodeKey.kid == new_kid)).first() is not None:
        # A key the federation already knew (this node's retired one, or another node's)
        # would make old signatures ambiguous: every key is used by one node, once.
        raise NodeMessageRejected("the new key was used before", code="key_reused")
    old_kid = node.kid
    node.previous_jwk, node.previous_kid = node.public_jwk, node.kid
    node.previous_valid_until = now + timedelta(seconds=overlap_seconds)
    node.public_jwk, node.kid = signing.public_jwk(new_key), new_kid
    _retire_keys(
        session,
        node_id=node.node_id,
        old_kid=old_kid,
        old_jwk=node.previous_jwk,
        now=now,
        valid_until=node.previous_valid_until,
    )
    session.add(
        NodeKey(node_id=node.node_id, kid=new_kid, public_jwk=node.public_jwk, valid_from=now)
    )
    audit.append(
        session=session,
        actor=f"node:{node.node_id}",
        action="node.key_rotated",
        object=f"node:{node.node_id}",
        details={
            "old_kid": old_kid,
            "new_kid": new_kid,
            "new_public_jwk": node.public_jwk,
            "overlap_seconds": overlap_seconds,
            "valid_until": node.previous_valid_until.isoformat(),
        },
    )
    session.commit()
    return _rotation_accepted(node, identity=identity, key=key, now=now)


def _rotation_accepted(node: Node, *, identity: HubIdentity, key: OKPKey, now: datetime) -> Signed:
    assert node.previous_kid is not None
    assert node.previous_valid_until is not None
    accepted = KeyRotationAccepted(
        hub_id=identity.hub_id,
        node_id=node.node_id,
        kid=node.kid,
        previous_kid=node.previous_kid,
        previous_valid_until=node.previous_valid_until,
        issued_at=now,
    )
    return Signed(jws=signing.sign(accepted, key))


def _retire_keys(
    session: Session,
    *,
    node_id: str,
    old_kid: str,
    old_jwk: dict[str, Any],
    now: datetime,
    valid_until: datetime,
) -> None:
    """Close the replaced key's interval; an older key still in its overlap loses it now."""
    rows = {r.kid: r for r in session.scalars(select(NodeKey).where(NodeKey.node_id == node_id))}
    for row in rows.values():
        if row.kid != old_kid and row.valid_until is not None and row.valid_until > now:
            row.valid_until = now
    old = rows.get(old_kid)
    if old is None:  # a registry row without history: start it here
        old = NodeKey(node_id=node_id, kid=old_kid, public_jwk=old_jwk)
        session.add(old)
    old.retired_at, old.valid_until = now, valid_until
