"""Store agreement versions, sign them as the hub, collect node signatures, derive status."""

from collections.abc import Sequence
from datetime import UTC, datetime

from joserfc.jwk import OKPKey
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from contracts import signing
from contracts.errors import ContractError
from contracts.v1 import AgreementSignature, AgreementTerms, SignaturePayload, SignedAgreement
from hub.agreements.exceptions import (
    AgreementNotActive,
    AgreementNotFound,
    AgreementVersionExists,
    HubMismatch,
    PartyNodeNotRegistered,
    SignatureRejected,
)
from hub.agreements.models import AgreementSignatureRow, AgreementVersion
from hub.agreements.schemas import AgreementRead, AgreementStatus
from hub.audit import service as audit
from hub.federation.models import Node
from hub.home import HubIdentity


def create_agreement(
    *, session: Session, terms: AgreementTerms, identity: HubIdentity, key: OKPKey, actor: str
) -> AgreementRead:
    """Store one version and put the hub's signature on its digest."""
    if terms.hub_id != identity.hub_id:
        raise HubMismatch()
    for node_id in terms.node_ids:
        if session.get(Node, node_id) is None:
            raise PartyNodeNotRegistered()
    digest = signing.digest(terms)
    now = datetime.now(UTC)
    payload = SignaturePayload(
        agreement_id=terms.agreement_id,
        version=terms.version,
        digest=digest,
        signer=identity.hub_id,
        signed_at=now,
    )
    try:
        with session.begin_nested():
            session.add(
                AgreementVersion(
                    agreement_id=terms.agreement_id,
                    version=terms.version,
                    terms=terms.model_dump(mode="json"),
                    digest=digest,
                    created_at=now,
                )
            )
            session.add(
                AgreementSignatureRow(
                    agreement_id=terms.agreement_id,
                    version=terms.version,
                    signer=identity.hub_id,
                    kid=identity.kid,
                    jws=signing.sign(payload, key),
                    signed_at=now,
                )
            )
    except IntegrityError as exc:
        raise AgreementVersionExists() from exc
    audit.append(
        session=session,
        actor=actor,
        action="agreement.created",
        object=f"agreement:{terms.agreement_id}:v{terms.version}",
        details={"digest": digest, "nodes": list(terms.node_ids)},
    )
    session.commit()
    return _read(session, _version(session, terms.agreement_id, terms.version))


def add_signature(
    *,
    session: Session,
    signature: AgreementSignature,
    actor: str,
    agreement_id: str | None = None,
) -> AgreementRead:
    """Accept a node steward's signature if it verifies with that node's pinned key."""
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


def get_agreement(*, session: Session, agreement_id: str) -> AgreementRead:
    """The latest version."""
    row = session.scalars(
        select(AgreementVersion)
        .where(AgreementVersion.agreement_id == agreement_id)
        .order_by(AgreementVersion.version.desc())
    ).first()
    if row is None:
        raise AgreementNotFound()
    return _read(session, row)


def list_agreements(*, session: Session) -> list[AgreementRead]:
    """The latest version of every agreement."""
    latest = (
        select(AgreementVersion.agreement_id, func.max(AgreementVersion.version).label("v"))
        .group_by(AgreementVersion.agreement_id)
        .subquery()
    )
    rows = session.scalars(
        select(AgreementVersion)
        .join(
            latest,
            (AgreementVersion.agreement_id == latest.c.agreement_id)
            & (AgreementVersion.version == latest.c.v),
        )
        .order_by(AgreementVersion.agreement_id)
    )
    return [_read(session, r) for r in rows]


def active_version(
    *, session: Session, agreement_id: str, at: datetime | None = None
) -> tuple[AgreementTerms, str]:
    """The newest version that is active now: its terms and digest."""
    rows = session.scalars(
        select(AgreementVersion)
        .where(AgreementVersion.agreement_id == agreement_id)
        .order_by(AgreementVersion.version.desc())
    ).all()
    if not rows:
        raise AgreementNotFound()
    for row in rows:
        read = _read(session, row, at=at)
        if read.status == "active":
            return read.agreement.terms, row.digest
    raise AgreementNotActive()


def status_of(
    terms: AgreementTerms, signers: Sequence[str], *, at: datetime | None = None
) -> tuple[AgreementStatus, tuple[str, ...]]:
    """`proposed` until the hub and every node party signed; then by the validity window."""
    needed = (terms.hub_id, *terms.node_ids)
    missing = tuple(s for s in needed if s not in set(signers))
    if missing:
        return "proposed", missing
    now = at or datetime.now(UTC)
    if now < _aware(terms.valid_from):
        return "not_yet_valid", ()
    if now >= _aware(terms.valid_until):
        return "expired", ()
    return "active", ()


def _aware(value: datetime) -> datetime:
    # Terms written without a zone are read as UTC rather than failing the comparison.
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def _version(session: Session, agreement_id: str, version: int) -> AgreementVersion:
    return session.scalars(
        select(AgreementVersion).where(
            AgreementVersion.agreement_id == agreement_id, AgreementVersion.version == version
        )
    ).one()


def _read(session: Session, row: AgreementVersion, *, at: datetime | None = None) -> AgreementRead:
    sigs = session.scalars(
        select(AgreementSignatureRow)
        .where(
            AgreementSignatureRow.agreement_id == row.agreement_id,
            AgreementSignatureRow.version == row.version,
        )
        .order_by(AgreementSignatureRow.id)
    ).all()
    terms = AgreementTerms.model_validate(row.terms)
    status, missing = status_of(terms, [s.signer for s in sigs], at=at)
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
    )
