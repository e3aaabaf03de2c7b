"""The MoU lifecycle at the hub: draft, propose (hub signs), collect signatures, suspend, revoke.

Status of a version, derived, never stored: `draft` until the secretariat proposes it (the
hub signs its digest), `proposed` until every node party signed, then by the validity window
(`not_yet_valid`, `active`, `expired`); `suspended`/`revoked` when the secretariat said so at
the hub; `superseded` once a newer version is active. A node's own suspension or revocation
is kept as that party's standing: that node refuses, the others still answer.
"""

import logging
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, cast

from joserfc.jwk import OKPKey
from sqlalchemy import Table, bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from contracts import signing
from contracts.agreement_rules import validity_at
from contracts.errors import ContractError
from contracts.v1 import (
    AgreementFetch,
    AgreementNotice,
    AgreementSignature,
    AgreementTerms,
    SignatureDelivery,
    SignaturePayload,
    SignedAgreement,
)
from contracts.v1.base import utc
from hub.agreements import budget as agreement_budget
from hub.agreements.exceptions import (
    AgreementNotActive,
    AgreementNotDraft,
    AgreementNotFound,
    AgreementNotProposed,
    AgreementRevoked,
    AgreementVersionExists,
    AmendsMismatch,
    HubMismatch,
    NotAParty,
    NoticeRejected,
    PartyNodeNotRegistered,
    SignatureRejected,
    TermsMismatch,
    VersionNotNext,
)
from hub.agreements.models import AgreementSignatureRow, AgreementStatusRow, AgreementVersion
from hub.agreements.schemas import (
    AgreementRead,
    AgreementStatus,
    PartyStanding,
    PartyStatus,
    SignerRead,
)
from hub.audit import service as audit
from hub.auth.schemas import User
from hub.exceptions import HubError
from hub.harmonisation.service import check_shipped
from hub.home import HubIdentity
from hub.nodes import service as federation
from hub.nodes.models import Node
from runtime.memo import Memo

log = logging.getLogger("hub.security")
# Roles that see every agreement, drafts included; analysts see those naming their organisation.
READ_ALL_ROLES = ("admin", "secretariat", "auditor")


# --- drafting and proposing ----------------------------------------------------------------


def _versions(session: Session, agreement_id: str) -> list[AgreementVersion]:
    return list(
        session.scalars(
            select(AgreementVersion)
            .where(AgreementVersion.agreement_id == agreement_id)
            .order_by(AgreementVersion.version)
        )
    )


def _hub_standing(session: Session, agreement_id: str, hub_id: str) -> str | None:
    row = session.scalars(
        select(AgreementStatusRow)
        .where(AgreementStatusRow.agreement_id == agreement_id, AgreementStatusRow.party == hub_id)
        .order_by(AgreementStatusRow.at.desc(), AgreementStatusRow.id.desc())
    ).first()
    return row.status if row is not None else None


def _checked_terms(
    session: Session, *, terms: AgreementTerms, identity: HubIdentity
) -> AgreementTerms:
    """Refuse terms the hub cannot stand behind; fill in `amends_digest` for an amendment."""
    if terms.hub_id != identity.hub_id:
        raise HubMismatch()
    for node_id in terms.node_ids:
        if session.get(Node, node_id) is None:
            raise PartyNodeNotRegistered()
    check_shipped(terms.modules)
    if _hub_standing(session, terms.agreement_id, identity.hub_id) == "revoked":
        raise AgreementRevoked()
    existing = _versions(session, terms.agreement_id)
    expected = existing[-1].version + 1 if existing else 1
    if terms.version < expected:
        raise AgreementVersionExists()
    if terms.version > expected:
        raise VersionNotNext(expected)
    if existing:
        previous = existing[-1]
        if previous.state == "draft":
            raise AgreementNotProposed()
        if terms.amends_digest is None:
            # Chains the versions: each node can check the amendment builds on what it signed.
            terms = AgreementTerms.model_validate(
                {**terms.model_dump(mode="json"), "amends_digest": previous.digest}
            )
        elif terms.amends_digest != previous.digest:
            raise AmendsMismatch()
    return terms


def create_draft(
    *, session: Session, terms: AgreementTerms, identity: HubIdentity, actor: str
) -> AgreementRead:
    """Store a new version as an unsigned draft (the first, or an amendment of the latest)."""
    terms = _checked_terms(session, terms=terms, identity=identity)
    row = _add_version(session, terms=terms, actor=actor, state="draft")
    audit.append(
        session=session,
        actor=actor,
        action="agreement.drafted",
        object=f"agreement:{terms.agreement_id}:v{terms.version}",
        details={"digest": row.digest, "nodes": list(terms.node_ids)},
    )
    session.commit()
    return _read(session, row)


def update_draft(
    *,
    session: Session,
    agreement_id: str,
    version: int,
    terms: AgreementTerms,
    identity: HubIdentity,
    actor: str,
) -> AgreementRead:
    """Replace a draft's terms; once proposed a version never changes."""
    if terms.agreement_id != agreement_id or terms.version != version:
        raise TermsMismatch()
    row = _version(session, agreement_id, version)
    if row.state != "draft":
        raise AgreementNotDraft()
    if terms.hub_id != identity.hub_id:
        raise HubMismatch()
    for node_id in terms.node_ids:
        if session.get(Node, node_id) is None:
            raise PartyNodeNotRegistered()
    check_shipped(terms.modules)
    if version > 1:
        previous = _version(session, agreement_id, version - 1)
        if terms.amends_digest is None:
            terms = AgreementTerms.model_validate(
                {**terms.model_dump(mode="json"), "amends_digest": previous.digest}
            )
        elif terms.amends_digest != previous.digest:
            raise AmendsMismatch()
    row.terms = terms.model_dump(mode="json")
    row.digest = signing.digest(terms)
    audit.append(
        session=session,
        actor=actor,
        action="agreement.draft_updated",
        object=f"agreement:{agreement_id}:v{version}",
        details={"digest": row.digest},
    )
    session.commit()
    return _read(session, row)


def propose(
    *,
    session: Session,
    agreement_id: str,
    version: int,
    identity: HubIdentity,
    key: OKPKey,
    actor: str,
) -> AgreementRead:
    """Freeze a draft: the hub signs its digest for the secretariat; parties may now sign."""
    row = _version(session, agreement_id, version)
    if row.state != "draft":
        raise AgreementNotDraft()
    if _hub_standing(session, agreement_id, identity.hub_id) == "revoked":
        raise AgreementRevoked()
    _hub_sign(session, row=row, identity=identity, key=key)
    row.state = "proposed"
    audit.append(
        session=session,
        actor=actor,
        action="agreement.proposed",
        object=f"agreement:{agreement_id}:v{version}",
        details={"digest": row.digest},
    )
    session.commit()
    return _read(session, row)


def create_agreement(
    *, session: Session, terms: AgreementTerms, identity: HubIdentity, key: OKPKey, actor: str
) -> AgreementRead:
    """Draft and propose in one step: store the version and put the hub's signature on it."""
    terms = _checked_terms(session, terms=terms, identity=identity)
    row = _add_version(session, terms=terms, actor=actor, state="proposed")
    _hub_sign(session, row=row, identity=identity, key=key)
    audit.append(
        session=session,
        actor=actor,
        action="agreement.created",
        object=f"agreement:{terms.agreement_id}:v{terms.version}",
        details={"digest": row.digest, "nodes": list(terms.node_ids)},
    )
    session.commit()
    return _read(session, row)


def _add_version(
    session: Session, *, terms: AgreementTerms, actor: str, state: str
) -> AgreementVersion:
    row = AgreementVersion(
        agreement_id=terms.agreement_id,
        version=terms.version,
        terms=terms.model_dump(mode="json"),
        digest=signing.digest(terms),
        created_at=datetime.now(UTC),
        state=state,
        created_by=actor,
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError as exc:
        raise AgreementVersionExists() from exc
    return row


def _hub_sign(
    session: Session, *, row: AgreementVersion, identity: HubIdentity, key: OKPKey
) -> None:
    now = datetime.now(UTC)
    payload = SignaturePayload(
        agreement_id=row.agreement_id,
        version=row.version,
        digest=row.digest,
        signer=identity.hub_id,
        signed_at=now,
    )
    session.add(
        AgreementSignatureRow(
            agreement_id=row.agreement_id,
            version=row.version,
            signer=identity.hub_id,
            kid=identity.kid,
            jws=signing.sign(payload, key),
            signed_at=now,
        )
    )
    session.flush()


# --- signatures and status changes from nodes ----------------------------------------------


def add_signature(
    *,
    session: Session,
    signature: AgreementSignature,
    actor: str,
    agreement_id: str | None = None,
) -> AgreementRead:
    """Accept a node steward's signature if it verifies with that node's pinned key.

    The signature itself is the steward's authority: only the node's key can make it, and
    it covers exactly one version's digest. Whoever delivers it changes nothing.
    """
    node = session.get(Node, signature.signer)
    if node is None:
        raise SignatureRejected("the signer is not a registered node", code="signer_not_party")
    try:
        payload = signing.verify_model(
            signature.jws, signing.load_public_key(node.public_jwk), SignaturePayload
        )
    except ContractError as exc:
        raise SignatureRejected("the signature does not verify with the node's key") from exc
    if payload.signer != signature.signer or signature.kid != node.kid:
        raise SignatureRejected("signer or kid does not match the signed payload")
    if agreement_id is not None and payload.agreement_id != agreement_id:
        raise SignatureRejected("the signature is for another agreement", code="digest_mismatch")
    row = session.scalars(
        select(AgreementVersion).where(
            AgreementVersion.agreement_id == payload.agreement_id,
            AgreementVersion.version == payload.version,
        )
    ).first()
    if row is None:
        raise AgreementNotFound()
    if row.state == "draft":
        raise AgreementNotProposed()
    if payload.digest != row.digest:
        raise SignatureRejected(
            "the signed digest is not this version's digest", code="digest_mismatch"
        )
    terms = AgreementTerms.model_validate(row.terms)
    if signature.signer not in terms.node_ids:
        raise SignatureRejected("the signer is not a node party", code="signer_not_party")
    existing = session.scalars(
        select(AgreementSignatureRow).where(
            AgreementSignatureRow.agreement_id == row.agreement_id,
            AgreementSignatureRow.version == row.version,
            AgreementSignatureRow.signer == signature.signer,
        )
    ).first()
    if existing is None:
        session.add(
            AgreementSignatureRow(
                agreement_id=row.agreement_id,
                version=row.version,
                signer=signature.signer,
                kid=signature.kid,
                jws=signature.jws,
                signed_at=payload.signed_at,
            )
        )
        session.flush()
        audit.append(
            session=session,
            actor=actor,
            action="agreement.signed",
            object=f"agreement:{row.agreement_id}:v{row.version}",
            details={"signer": signature.signer, "kid": signature.kid, "digest": row.digest},
        )
        session.commit()
    return _read(session, row)


def receive_signature(
    *,
    session: Session,
    token: str,
    identity: HubIdentity,
    skew_seconds: int,
    now: datetime | None = None,
) -> AgreementRead:
    """A node delivering its steward's signature (node-signed, fresh, never replayed).

    Everything that could make it wrong is refused with its code and logged, and nothing is
    stored: a delivery no pinned node key verifies, a stale or replayed one, a signature by
    another node than the deliverer, for a version the hub does not hold, or over another
    text. A signature the hub already holds is answered as it stands (idempotent).
    """
    moment = now or datetime.now(UTC)
    node_id = "unverified"
    try:
        node, delivery = federation.verify_node_message(
            session=session, token=token, model=SignatureDelivery, now=moment
        )
        node_id = node.node_id
        if delivery.hub_id != identity.hub_id:
            raise SignatureRejected("the delivery names another hub", code="hub_mismatch")
        federation.check_fresh(
            session=session,
            node_id=node.node_id,
            nonce=delivery.nonce,
            issued_at=delivery.issued_at,
            now=moment,
            skew_seconds=skew_seconds,
        )
        if delivery.signature.signer != node.node_id:
            raise SignatureRejected(
                "the signature is by another node than the one delivering it",
                code="signer_mismatch",
            )
        read = add_signature(
            session=session, signature=delivery.signature, actor=f"node:{node.node_id}"
        )
        session.commit()  # the nonce too, when the signature was already held
        return read
    except HubError as exc:
        session.rollback()
        log.warning("agreement signature from %s refused: %s", node_id, exc.code)
        raise


def receive_notice(
    *, session: Session, agreement_id: str, token: str, now: datetime | None = None
) -> AgreementRead:
    """Record a node's signed suspension, resumption or revocation; older notices change nothing."""
    moment = now or datetime.now(UTC)
    node, notice = federation.verify_node_message(
        session=session, token=token, model=AgreementNotice, now=moment
    )
    if notice.agreement_id != agreement_id:
        raise NoticeRejected("the notice is for another agreement")
    versions = _versions(session, agreement_id)
    if not versions:
        raise AgreementNotFound()
    if not any(node.node_id in AgreementTerms.model_validate(v.terms).node_ids for v in versions):
        raise NotAParty()
    latest = session.scalars(
        select(AgreementStatusRow)
        .where(
            AgreementStatusRow.agreement_id == agreement_id,
            AgreementStatusRow.party == node.node_id,
        )
        .order_by(AgreementStatusRow.at.desc(), AgreementStatusRow.id.desc())
    ).first()
    fresh = latest is None or latest.at < utc(notice.at)
    if fresh and not (latest is not None and latest.status == "revoked"):
        session.add(
            AgreementStatusRow(
                agreement_id=agreement_id,
                party=node.node_id,
                status=notice.status,
                at=notice.at,
                reason=notice.reason,
                actor=f"node:{node.node_id}",
                jws=token,
                received_at=moment,
            )
        )
        session.flush()
        audit.append(
            session=session,
            actor=f"node:{node.node_id}",
            action=f"agreement.node_{notice.status}",
            object=f"agreement:{agreement_id}",
            details={"node": node.node_id, "at": notice.at.isoformat()},
        )
        session.commit()
    return _read(session, versions[-1])


def set_hub_status(
    *,
    session: Session,
    agreement_id: str,
    status: PartyStatus,
    identity: HubIdentity,
    actor: str,
    reason: str = "",
) -> AgreementRead:
    """The secretariat's suspension, resumption or (final) revocation of the whole agreement."""
    versions = _versions(session, agreement_id)
    if not versions:
        raise AgreementNotFound()
    current = _hub_standing(session, agreement_id, identity.hub_id) or "active"
    if current == "revoked":
        raise AgreementRevoked()
    if current != status:
        now = datetime.now(UTC)
        session.add(
            AgreementStatusRow(
                agreement_id=agreement_id,
                party=identity.hub_id,
                status=status,
                at=now,
                reason=reason,
                actor=actor,
                jws=None,
                received_at=now,
            )
        )
        session.flush()
        audit.append(
            session=session,
            actor=actor,
            action=f"agreement.hub_{status}",
            object=f"agreement:{agreement_id}",
            details={},
        )
        session.commit()
    return _read(session, versions[-1])


def fetch_for_node(
    *, session: Session, token: str, identity: HubIdentity, skew_seconds: int
) -> SignedAgreement:
    """The newest proposed version naming the node that signed the fetch (for its steward)."""
    now = datetime.now(UTC)
    node, fetch = federation.verify_node_message(
        session=session, token=token, model=AgreementFetch, now=now
    )
    if fetch.hub_id != identity.hub_id:
        raise NoticeRejected("the request names another hub")
    federation.check_fresh(
        session=session,
        node_id=node.node_id,
        nonce=fetch.nonce,
        issued_at=fetch.issued_at,
        now=now,
        skew_seconds=skew_seconds,
    )
    session.commit()
    for row in reversed(_versions(session, fetch.agreement_id)):
        if row.state == "draft":
            continue
        read = _read(session, row)
        if node.node_id in read.agreement.terms.node_ids:
            return read.agreement
        raise NotAParty()
    raise AgreementNotFound()


# --- reading --------------------------------------------------------------------------------


def visible(user: User | None, read: AgreementRead) -> bool:
    """Secretariat, admins and auditors see all; analysts only versions naming their org;
    stewards only versions their node is a party to."""
    if user is None or user.role in READ_ALL_ROLES:
        return True
    if read.status == "draft":
        return False
    terms = read.agreement.terms
    analyst = user.has("analyst") and user.organisation in terms.analyst_organisations
    steward = user.has("steward") and any(n in terms.node_ids for n in user.node_ids)
    return analyst or steward


def list_versions(
    *, session: Session, agreement_id: str, user: User | None = None
) -> list[AgreementRead]:
    """Every version, oldest first, each with its status; older texts stay readable."""
    reads = [_read(session, r) for r in _versions(session, agreement_id)]
    newest_active = max((i for i, r in enumerate(reads) if r.status == "active"), default=None)
    if newest_active is not None:
        reads = [
            r.model_copy(update={"status": "superseded"})
            if i < newest_active and r.status == "active"
            else r
            for i, r in enumerate(reads)
        ]
    shown = [r for r in reads if visible(user, r)]
    if not shown:
        raise AgreementNotFound()
    return shown


def get_version(
    *, session: Session, agreement_id: str, version: int, user: User | None = None
) -> AgreementRead:
    for read in list_versions(session=session, agreement_id=agreement_id, user=user):
        if read.agreement.terms.version == version:
            return read
    raise AgreementNotFound()


def get_agreement(
    *, session: Session, agreement_id: str, user: User | None = None
) -> AgreementRead:
    """The latest version the user may see."""
    return list_versions(session=session, agreement_id=agreement_id, user=user)[-1]


def list_agreements(*, session: Session, user: User | None = None) -> list[AgreementRead]:
    """The latest visible version of every agreement."""
    ids = session.scalars(
        select(AgreementVersion.agreement_id).distinct().order_by(AgreementVersion.agreement_id)
    ).all()
    out = []
    for agreement_id in ids:
        try:
            out.append(get_agreement(session=session, agreement_id=agreement_id, user=user))
        except AgreementNotFound:
            continue
    return out


def active_version(
    *, session: Session, agreement_id: str, at: datetime | None = None
) -> tuple[AgreementTerms, str]:
    """The newest version that is active now: its terms and digest.

    The query path's reading of `_read(...).status == "active"` (the same rules: every party
    signed, within the validity window, the hub's own standing neither revoked nor suspended)
    without building the whole read model, and with each version's terms parsed once per
    digest: a version's text never changes under its digest (`update_draft` re-digests it).
    Signatures and standings are read every time.
    """
    connection = session.connection()
    rows = connection.execute(_ACTIVE_VERSIONS, {"b_agreement_id": agreement_id}).all()
    if not rows:
        raise AgreementNotFound()
    hub_status: str | None = None
    for version, digest, state in rows:
        if state == "draft":
            continue
        terms = _terms_of(session, agreement_id=agreement_id, version=version, digest=digest)
        signers = connection.execute(
            _SIGNERS, {"b_agreement_id": agreement_id, "b_version": version}
        ).scalars()
        if status_of(terms, signers.all(), at=at)[0] != "active":
            continue
        if hub_status is None:
            hub = _latest_standings(
                connection.execute(_STANDINGS, {"b_agreement_id": agreement_id})
            ).get(terms.hub_id)
            hub_status = hub.status if hub is not None else ""
        if hub_status not in ("revoked", "suspended"):
            return terms, digest
    raise AgreementNotActive()


# The query path's statements, built once (Core: no ORM compile step per query).
_VERSIONS = cast(Table, AgreementVersion.__table__)
_SIGNATURES = cast(Table, AgreementSignatureRow.__table__)
_STATUS_CHANGES = cast(Table, AgreementStatusRow.__table__)
_ACTIVE_VERSIONS = (
    select(_VERSIONS.c.version, _VERSIONS.c.digest, _VERSIONS.c.state)
    .where(_VERSIONS.c.agreement_id == bindparam("b_agreement_id"))
    .order_by(_VERSIONS.c.version.desc())
)
_SIGNERS = select(_SIGNATURES.c.signer).where(
    _SIGNATURES.c.agreement_id == bindparam("b_agreement_id"),
    _SIGNATURES.c.version == bindparam("b_version"),
)
_STANDINGS = (
    select(
        _STATUS_CHANGES.c.party,
        _STATUS_CHANGES.c.status,
        _STATUS_CHANGES.c.at,
        _STATUS_CHANGES.c.reason,
    )
    .where(_STATUS_CHANGES.c.agreement_id == bindparam("b_agreement_id"))
    .order_by(_STATUS_CHANGES.c.at, _STATUS_CHANGES.c.id)
)

# Parsed terms by (agreement, version, digest): the query path reads them on every query.
_terms = Memo[tuple[str, int, str], AgreementTerms](256)


def _terms_of(session: Session, *, agreement_id: str, version: int, digest: str) -> AgreementTerms:
    def parse() -> AgreementTerms:
        raw = session.scalar(
            select(AgreementVersion.terms).where(
                AgreementVersion.agreement_id == agreement_id,
                AgreementVersion.version == version,
                AgreementVersion.digest == digest,
            )
        )
        return AgreementTerms.model_validate(raw)

    return _terms.get((agreement_id, version, digest), parse)


def status_of(
    terms: AgreementTerms, signers: Sequence[str], *, at: datetime | None = None
) -> tuple[AgreementStatus, tuple[str, ...]]:
    """`proposed` until the hub and every node party signed; then by the validity window."""
    needed = (terms.hub_id, *terms.node_ids)
    signed = set(signers)  # once, not per party: O(N), not O(N^2), at 1,000 nodes
    missing = tuple(s for s in needed if s not in signed)
    if missing:
        return "proposed", missing
    validity = validity_at(terms, at or datetime.now(UTC))
    return ("active" if validity == "in_force" else validity), ()


def _version(session: Session, agreement_id: str, version: int) -> AgreementVersion:
    row = session.scalars(
        select(AgreementVersion).where(
            AgreementVersion.agreement_id == agreement_id, AgreementVersion.version == version
        )
    ).first()
    if row is None:
        raise AgreementNotFound()
    return row


def _standings(session: Session, agreement_id: str) -> dict[str, PartyStanding]:
    return _latest_standings(
        session.connection().execute(_STANDINGS, {"b_agreement_id": agreement_id})
    )


def _latest_standings(rows: Iterable[Any]) -> dict[str, PartyStanding]:
    """Each party's standing from its status changes in order (revocation is final)."""
    latest: dict[str, PartyStanding] = {}
    for row in rows:
        if row.party in latest and latest[row.party].status == "revoked":
            continue  # revocation is final
        latest[row.party] = PartyStanding(
            party=row.party, status=row.status, at=row.at, reason=row.reason
        )
    return latest


def _read(
    session: Session, row: AgreementVersion, *, at: datetime | None = None, usage: bool = True
) -> AgreementRead:
    """The version with its status; `usage=False` skips summing the rho spent under it (a
    scan of every query asked under the version), which the query path does not need."""
    sigs = session.scalars(
        select(AgreementSignatureRow)
        .where(
            AgreementSignatureRow.agreement_id == row.agreement_id,
            AgreementSignatureRow.version == row.version,
        )
        .order_by(AgreementSignatureRow.id)
    ).all()
    terms = AgreementTerms.model_validate(row.terms)
    status: AgreementStatus
    if row.state == "draft":
        status, missing = "draft", (terms.hub_id, *terms.node_ids)
    else:
        status, missing = status_of(terms, [s.signer for s in sigs], at=at)
    standings = _standings(session, row.agreement_id)
    hub = standings.pop(terms.hub_id, None)
    if hub is not None and hub.status == "revoked":
        status = "revoked"
    elif hub is not None and hub.status == "suspended" and status not in ("expired", "draft"):
        status = "suspended"
    # What the nodes reported they spent (their releases), this period: the figure every
    # page and command shows, the same as each node's own ledger.
    by_node = agreement_budget.spent_by_node(session, terms=terms) if usage else {}
    return AgreementRead(
        agreement=SignedAgreement(
            terms=terms,
            digest=row.digest,
            signatures=tuple(
                AgreementSignature(signer=s.signer, kid=s.kid, jws=s.jws) for s in sigs
            ),
        ),
        status=status,
        missing_signers=missing,
        signers=tuple(SignerRead(signer=s.signer, kid=s.kid, signed_at=s.signed_at) for s in sigs),
        standings=tuple(
            standing for party, standing in standings.items() if party in terms.node_ids
        ),
        rho_spent_at_hub=agreement_budget.spent(by_node),
        rho_spent_by_node=by_node,
    )
