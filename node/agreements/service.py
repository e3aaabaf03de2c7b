"""Sign agreement versions at the node, list them, suspend or revoke them, and enforce terms."""

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from contracts import signing
from contracts.errors import ContractError
from contracts.v1 import (
    AgreementSignature,
    AgreementTerms,
    QuerySpec,
    SignaturePayload,
    SignedAgreement,
)
from node.agreements.exceptions import (
    AgreementExpired,
    AgreementInvalid,
    AgreementRevoked,
    AgreementSuspended,
    AgreementUnknown,
    ColumnNotAllowed,
    CostOverCap,
    DatasetNotInAgreement,
    DimNotAllowed,
    MeasureNotAllowed,
    TooManyDims,
)
from node.agreements.models import AgreementRow
from node.agreements.schemas import AgreementRecord, AgreementStatus
from node.audit import service as audit
from node.datasets import service as datasets
from node.datasets.exceptions import UnknownDataset
from node.db import transaction, url_for
from node.home import load_identity, load_key
from node.ledger.models import BudgetRow
from node.settings import NodeSettings

STEWARD = "steward"


def sign(
    *, home: Path, agreement: SignedAgreement, settings: NodeSettings | None = None
) -> AgreementSignature:
    """Check a hub-signed agreement version, sign it with the node key and honour it."""
    identity = load_identity(home)
    terms = agreement.terms
    if signing.digest(terms) != agreement.digest:
        raise AgreementInvalid("the agreement digest does not match its terms")
    if identity.hub_id is None or identity.hub_public_jwk is None:
        raise AgreementInvalid("no hub is pinned at this node")
    if terms.hub_id != identity.hub_id:
        raise AgreementInvalid("the agreement names another hub than the pinned one")
    _check_hub_signature(agreement, hub_id=identity.hub_id, hub_jwk=identity.hub_public_jwk)
    if identity.node_id not in terms.node_ids:
        raise AgreementInvalid("this node is not a party to the agreement")
    for ref in terms.datasets:
        try:
            datasets.load(home=home, name=ref.name, version=ref.contract_version)
        except UnknownDataset as exc:
            raise AgreementInvalid(
                f"dataset {ref.name} version {ref.contract_version} is not at this node"
            ) from exc

    url = url_for(home=home, settings=settings)
    with transaction(url) as session:
        row = session.get(AgreementRow, (terms.agreement_id, terms.version))
        if row is not None:
            if row.digest != agreement.digest:
                raise AgreementInvalid("another text of this agreement version is signed here")
            return AgreementSignature.model_validate_json(row.signature)
        status = _status_of(session, terms.agreement_id) or "active"
        key = load_key(home)
        payload = SignaturePayload(
            agreement_id=terms.agreement_id,
            version=terms.version,
            digest=agreement.digest,
            signer=identity.node_id,
            signed_at=datetime.now(UTC),
        )
        signature = AgreementSignature(
            signer=identity.node_id, kid=signing.key_id(key), jws=signing.sign(payload, key)
        )
        session.add(
            AgreementRow(
                agreement_id=terms.agreement_id,
                version=terms.version,
                digest=agreement.digest,
                terms=terms.model_dump_json(),
                signature=signature.model_dump_json(),
                status=status,
                signed_at=payload.signed_at.isoformat(),
            )
        )
        if session.get(BudgetRow, terms.agreement_id) is None:
            session.add(BudgetRow(agreement_id=terms.agreement_id, rho_spent=0.0, queries=0))
        audit.append(
            session,
            actor=STEWARD,
            action="agreement_signed",
            object=f"agreement:{terms.agreement_id}",
            details={"version": terms.version, "digest": agreement.digest},
        )
    return signature


def _check_hub_signature(
    agreement: SignedAgreement, *, hub_id: str, hub_jwk: dict[str, object]
) -> None:
    hub_key = signing.load_public_key(dict(hub_jwk))
    for sig in agreement.signatures:
        if sig.signer != hub_id or sig.kid != signing.key_id(hub_key):
            continue
        try:
            payload = signing.verify_model(sig.jws, hub_key, SignaturePayload)
        except ContractError:
            continue
        if (
            payload.agreement_id == agreement.terms.agreement_id
            and payload.version == agreement.terms.version
            and payload.digest == agreement.digest
            and payload.signer == hub_id
        ):
            return
    raise AgreementInvalid("the agreement is not signed by the pinned hub")


def list_agreements(*, home: Path, settings: NodeSettings | None = None) -> list[AgreementRecord]:
    with transaction(url_for(home=home, settings=settings)) as session:
        rows = session.execute(
            select(AgreementRow).order_by(AgreementRow.agreement_id, AgreementRow.version)
        ).scalars()
        return [_record(row) for row in rows]


def show(
    *, home: Path, agreement_id: str, settings: NodeSettings | None = None
) -> list[AgreementRecord]:
    """Every signed version of one agreement."""
    found = [
        r for r in list_agreements(home=home, settings=settings) if r.agreement_id == agreement_id
    ]
    if not found:
        raise AgreementUnknown("no such agreement is signed at this node")
    return found


def suspend(*, home: Path, agreement_id: str, settings: NodeSettings | None = None) -> None:
    _set_status(home=home, settings=settings, agreement_id=agreement_id, status="suspended")


def resume(*, home: Path, agreement_id: str, settings: NodeSettings | None = None) -> None:
    _set_status(home=home, settings=settings, agreement_id=agreement_id, status="active")


def revoke(*, home: Path, agreement_id: str, settings: NodeSettings | None = None) -> None:
    """Takes effect at once for every version: later requests are refused, hub reachable or not."""
    _set_status(home=home, settings=settings, agreement_id=agreement_id, status="revoked")


def _set_status(
    *, home: Path, settings: NodeSettings | None, agreement_id: str, status: AgreementStatus
) -> None:
    with transaction(url_for(home=home, settings=settings)) as session:
        current = _status_of(session, agreement_id)
        if current is None:
            raise AgreementUnknown("no such agreement is signed at this node")
        if current == "revoked":
            raise AgreementRevoked("the agreement is revoked at this node; revocation is final")
        session.execute(
            update(AgreementRow)
            .where(AgreementRow.agreement_id == agreement_id)
            .values(status=status)
        )
        action = {"suspended": "agreement_suspended", "revoked": "agreement_revoked"}.get(
            status, "agreement_resumed"
        )
        audit.append(
            session, actor=STEWARD, action=action, object=f"agreement:{agreement_id}", details={}
        )


def _status_of(session: Session, agreement_id: str) -> AgreementStatus | None:
    statuses = set(
        session.execute(
            select(AgreementRow.status).where(AgreementRow.agreement_id == agreement_id)
        ).scalars()
    )
    for status in ("revoked", "suspended", "active"):
        if status in statuses:
            return status
    return None


def _record(row: AgreementRow) -> AgreementRecord:
    return AgreementRecord(
        agreement_id=row.agreement_id,
        version=row.version,
        digest=row.digest,
        status=row.status,
        signed_at=datetime.fromisoformat(row.signed_at),
        terms=AgreementTerms.model_validate_json(row.terms),
        signature=AgreementSignature.model_validate_json(row.signature),
    )


def honoured_terms(
    session: Session, *, agreement_id: str, version: int, digest: str, now: datetime
) -> AgreementTerms:
    """The terms of a version this node signed, if the agreement is in force now."""
    row = session.get(AgreementRow, (agreement_id, version))
    if row is None or row.digest != digest:
        raise AgreementUnknown("this agreement version is not signed at this node")
    status = _status_of(session, agreement_id)
    if status == "revoked":
        raise AgreementRevoked("the agreement is revoked at this node")
    if status == "suspended":
        raise AgreementSuspended("the agreement is suspended at this node")
    terms = AgreementTerms.model_validate_json(row.terms)
    if not terms.valid_from <= now <= terms.valid_until:
        raise AgreementExpired("the agreement is not within its validity window")
    return terms


def check_dataset(terms: AgreementTerms, *, dataset: str) -> int:
    """The contract version the agreement names for `dataset`."""
    for ref in terms.datasets:
        if ref.name == dataset:
            return ref.contract_version
    raise DatasetNotInAgreement("the agreement does not cover that dataset")


def check_measure(terms: AgreementTerms, *, spec: QuerySpec) -> None:
    if spec.measure not in terms.measures:
        raise MeasureNotAllowed(f"the agreement does not allow the measure {spec.measure}")


def check_columns(terms: AgreementTerms, *, spec: QuerySpec, rho: float) -> None:
    """Columns, dims and cost against the terms (run after the contract knows them all)."""
    if spec.column is not None and spec.column not in terms.columns:
        raise ColumnNotAllowed(f"the agreement does not allow measuring {spec.column}")
    for dim in (*spec.group_by, *(f.column for f in spec.filters)):
        if dim not in terms.dims:
            raise DimNotAllowed(f"the agreement does not allow grouping or filtering on {dim}")
    if len(spec.group_by) > terms.max_dims:
        raise TooManyDims(f"the agreement allows at most {terms.max_dims} group-by dims")
    if rho > terms.rho_per_query_max:
        raise CostOverCap("the query's rho is above the agreement's per-query cap")
