"""Sign agreement versions at the node, suspend or revoke them, tell the hub, enforce terms.

The node is the trust anchor: it honours a version only if its own steward signed exactly
that text (digest) with the node key, the pinned hub signed it too, the node has not
suspended or revoked the agreement, and now is inside the version's validity window. Every
term is checked again on every request; each refusal names the term that refused it.
"""

import contextlib
import functools
import logging
import secrets
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import httpx
from pydantic import ValidationError
from sqlalchemy import bindparam, case, exists, select, update
from sqlalchemy.orm import Session

from contracts import signing
from contracts.agreement_rules import grid_refusal, summary_text, validity_at
from contracts.errors import ContractError
from contracts.v1 import (
    AgreementFetch,
    AgreementNotice,
    AgreementSignature,
    AgreementTerms,
    DatasetContract,
    QueryRequest,
    QuerySpec,
    SignatureDelivery,
    SignaturePayload,
    Signed,
    SignedAgreement,
)
from contracts.v1.agreement import DISSEMINATION_ORDER
from contracts.v1.base import utc
from node.agreements.exceptions import (
    AgreementExpired,
    AgreementInvalid,
    AgreementNotYetValid,
    AgreementRevoked,
    AgreementSuperseded,
    AgreementSuspended,
    AgreementUnknown,
    AnalystOrgNotPermitted,
    ColumnNotAllowed,
    CostOverCap,
    DatasetNotInAgreement,
    DimNotAllowed,
    DisseminationNotAllowed,
    GridNotAllowed,
    MeasureNotAllowed,
    RhoBelowFloor,
    TermNotInContract,
    TooManyDims,
)
from node.agreements.models import AgreementNoticeRow, AgreementRow
from node.agreements.schemas import (
    AgreementRecord,
    AgreementStatus,
    NoticeReport,
    OutboxReport,
    SignedOutcome,
    SigningPreview,
    StatusOutcome,
)
from node.audit import service as audit
from node.datasets import service as datasets
from node.datasets.exceptions import UnknownDataset
from node.db import SessionLike, connection_of, transaction, url_for
from node.exceptions import HubUnreachable
from node.harmonisation import store as harmonisation_store
from node.harmonisation.exceptions import HarmonisationError
from node.home import NodeIdentity, hub_keys, load_identity, load_key
from node.ledger.models import BudgetCharge, BudgetRow
from node.settings import NodeSettings

log = logging.getLogger(__name__)
STEWARD = "steward"
NOTICE_TIMEOUT_SECONDS = 10.0


def _check_signable(
    *, home: Path, identity: NodeIdentity, agreement: SignedAgreement, now: datetime
) -> None:
    """Everything that must hold before the node key goes on a version (no database)."""
    terms = agreement.terms
    if signing.digest(terms) != agreement.digest:
        raise AgreementInvalid("the agreement digest does not match its terms")
    if identity.hub_id is None or identity.hub_public_jwk is None:
        raise AgreementInvalid("no hub is pinned at this node")
    if terms.hub_id != identity.hub_id:
        raise AgreementInvalid("the agreement names another hub than the pinned one")
    _check_hub_signature(agreement, hub_id=identity.hub_id, identity=identity)
    if identity.node_id not in terms.node_ids:
        raise AgreementInvalid("this node is not a party to the agreement")
    for ref in terms.datasets:
        try:
            dataset = datasets.load(home=home, name=ref.name, version=ref.contract_version)
        except UnknownDataset as exc:
            raise AgreementInvalid(
                f"term datasets: dataset {ref.name} version {ref.contract_version} is not at "
                "this node"
            ) from exc
        _check_terms_against_contract(terms, dataset.contract)
    for module_ref in terms.modules:
        try:
            module = harmonisation_store.load_module(home, module_ref.name, module_ref.version)
        except HarmonisationError as exc:
            raise AgreementInvalid(
                f"term modules: module {module_ref.name} version {module_ref.version} is not "
                "held at this node (sauti node modules fetch)"
            ) from exc
        for term, names in (("columns", terms.columns), ("dims", terms.dims)):
            for name in names:
                if module.variable(name) is None:
                    raise TermNotInContract(
                        f"term {term}: {name} is not a variable of module {module.name}"
                    )


def _check_terms_against_contract(terms: AgreementTerms, contract: DatasetContract) -> None:
    """A column or dim the contract does not have is refused at signing.

    Columns the contract has but never releases (identifiers, free text, the unit key) are
    refused by the DP engine on every request whatever the terms say.
    """
    for term, names in (("columns", terms.columns), ("dims", terms.dims)):
        for name in names:
            if contract.column(name) is None:
                raise TermNotInContract(
                    f"term {term}: {name} is not a column of dataset {contract.name}"
                )


def preview(
    *,
    home: Path,
    agreement: SignedAgreement,
    settings: NodeSettings | None = None,
    now: datetime | None = None,
) -> SigningPreview:
    """Check a hub-signed version as `sign` would, and give the steward its plain-language rules."""
    identity = load_identity(home)
    _check_signable(
        home=home, identity=identity, agreement=agreement, now=utc(now or datetime.now(UTC))
    )
    terms = agreement.terms
    with transaction(url_for(home=home, settings=settings)) as session:
        row = session.get(AgreementRow, (terms.agreement_id, terms.version))
        _check_amendment(session, terms)
    return SigningPreview(
        agreement_id=terms.agreement_id,
        version=terms.version,
        digest=agreement.digest,
        already_signed=row is not None and row.digest == agreement.digest,
        summary=summary_text(terms, labels=column_labels(home=home, terms=terms)),
    )


def column_labels(*, home: Path, terms: AgreementTerms) -> dict[str, str]:
    """Each column the terms name, by the label its dataset contract gives it here."""
    labels: dict[str, str] = {}
    for ref in terms.datasets:
        try:
            contract = datasets.load(
                home=home, name=ref.name, version=ref.contract_version
            ).contract
        except UnknownDataset:
            continue
        for column in contract.columns:
            if column.title:
                labels.setdefault(column.name, column.title)
    return labels


def _check_amendment(session: Session, terms: AgreementTerms) -> None:
    if _status_of(session, terms.agreement_id) == "revoked":
        raise AgreementRevoked("the agreement is revoked at this node; revocation is final")
    if terms.amends_digest is None:
        return
    previous = session.get(AgreementRow, (terms.agreement_id, terms.version - 1))
    if previous is not None and previous.digest != terms.amends_digest:
        raise AgreementInvalid(
            "term amends_digest: it is not the digest of the version signed here"
        )


def sign(
    *,
    home: Path,
    agreement: SignedAgreement,
    settings: NodeSettings | None = None,
    now: datetime | None = None,
) -> AgreementSignature:
    """Check a hub-signed agreement version, sign it with the node key and honour it."""
    moment = utc(now or datetime.now(UTC))
    identity = load_identity(home)
    _check_signable(home=home, identity=identity, agreement=agreement, now=moment)
    terms = agreement.terms
    url = url_for(home=home, settings=settings)
    with transaction(url) as session:
        row = session.get(AgreementRow, (terms.agreement_id, terms.version))
        if row is not None:
            if row.digest != agreement.digest:
                raise AgreementInvalid("another text of this agreement version is signed here")
            return AgreementSignature.model_validate_json(row.signature)
        _check_amendment(session, terms)
        status = _status_of(session, terms.agreement_id) or "active"
        key = load_key(home)
        payload = SignaturePayload(
            agreement_id=terms.agreement_id,
            version=terms.version,
            digest=agreement.digest,
            signer=identity.node_id,
            signed_at=moment,
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


def sign_and_deliver(
    *,
    home: Path,
    agreement: SignedAgreement,
    settings: NodeSettings | None = None,
    transport: httpx.BaseTransport | None = None,
) -> SignedOutcome:
    """Sign (in force here at once), then hand the signature to the pinned hub at once.

    When the hub cannot be reached the signature waits in the outbox and is retried
    (`deliver_signatures`: the node app's retry loop, the pull loop, `agreements report`).
    """
    signature = sign(home=home, agreement=agreement, settings=settings)
    report = deliver_signatures(home=home, settings=settings, transport=transport)
    return SignedOutcome(signature=signature, report=report)


# A refusal the node may outlive: its clock was off; the next attempt is fresh.
RETRY_CODES = frozenset({"message_stale"})


@contextlib.contextmanager
def _hub(
    base_url: str,
    *,
    transport: httpx.BaseTransport | None,
    client: httpx.Client | None,
    timeout_seconds: float,
) -> Iterator[httpx.Client]:
    """The caller's client (a pull node's poll channel), or a fresh one to the hub."""
    if client is not None:
        yield client
        return
    with httpx.Client(base_url=base_url, transport=transport, timeout=timeout_seconds) as own:
        yield own


def deliver_signatures(
    *,
    home: Path,
    settings: NodeSettings | None = None,
    transport: httpx.BaseTransport | None = None,
    client: httpx.Client | None = None,
    timeout_seconds: float = NOTICE_TIMEOUT_SECONDS,
) -> NoticeReport:
    """Send the signatures the hub has not confirmed, oldest first, each in a node-signed,
    fresh delivery; stop at the first network failure or 5xx (they stay queued).

    The hub's confirmation (with the version's status there) or its refusal code is kept on
    the version; a refusal is not retried, except one this node may outlive (RETRY_CODES).
    """
    url = url_for(home=home, settings=settings)
    identity = load_identity(home)
    with transaction(url) as session:
        queued = [
            (row.agreement_id, row.version, row.signature)
            for row in session.execute(
                select(AgreementRow)
                .where(AgreementRow.hub_received_at.is_(None), AgreementRow.hub_answer.is_(None))
                .order_by(AgreementRow.signed_at)
            ).scalars()
        ]
    if not queued:
        return NoticeReport(sent=0, pending=0, refused=0, hub_reachable=True)
    if identity.hub_url is None or identity.hub_id is None:
        return NoticeReport(
            sent=0,
            pending=len(queued),
            refused=0,
            hub_reachable=False,
            message="no hub URL is pinned (sauti node pin-hub --url)",
        )
    key = load_key(home)
    sent = refused = 0
    reachable, message = True, ""
    with _hub(
        identity.hub_url, transport=transport, client=client, timeout_seconds=timeout_seconds
    ) as http:
        for agreement_id, version, signature in queued:
            delivery = SignatureDelivery(
                hub_id=identity.hub_id,
                node_id=identity.node_id,
                signature=AgreementSignature.model_validate_json(signature),
                issued_at=datetime.now(UTC),
                nonce=secrets.token_hex(16),
            )
            body = Signed(jws=signing.sign(delivery, key)).model_dump(mode="json")
            try:
                response = http.post(
                    f"{identity.hub_url}/v1/agreements/signatures/deliver",
                    json=body,
                    timeout=timeout_seconds,
                )
            except httpx.HTTPError:
                reachable, message = False, "the hub is unreachable; signatures stay queued"
                break
            if response.status_code >= 500:
                reachable, message = False, f"the hub answered {response.status_code}"
                break
            answer = None if response.is_success else _error_code(response)
            if answer in RETRY_CODES:
                reachable, message = False, f"the hub refused for now ({answer}); will retry"
                break
            hub_status = _hub_status(response) if answer is None else None
            refused += answer is not None
            sent += answer is None
            with transaction(url) as session:
                row = session.get(AgreementRow, (agreement_id, version))
                if row is not None:
                    if answer is None:
                        row.hub_received_at = datetime.now(UTC).isoformat()
                        row.hub_status = hub_status
                    else:
                        row.hub_answer = answer
                    audit.append(
                        session,
                        actor=identity.node_id,
                        action="agreement_signature_reported",
                        object=f"agreement:{agreement_id}",
                        details={"version": version, "hub_answer": answer},
                    )
    log.info("agreement signatures: %d confirmed by the hub, %d refused", sent, refused)
    return NoticeReport(
        sent=sent,
        pending=len(queued) - sent - refused,
        refused=refused,
        hub_reachable=reachable,
        message=message,
    )


def _hub_status(response: httpx.Response) -> str | None:
    try:
        status = response.json().get("status")
    except (ValueError, AttributeError):
        return None
    return str(status)[:20] if isinstance(status, str) else None


def report_all(
    *,
    home: Path,
    settings: NodeSettings | None = None,
    transport: httpx.BaseTransport | None = None,
    client: httpx.Client | None = None,
) -> OutboxReport:
    """Everything the hub has yet to hear from this node: signatures, then status notices."""
    return OutboxReport(
        signatures=deliver_signatures(
            home=home, settings=settings, transport=transport, client=client
        ),
        notices=report_notices(home=home, settings=settings, transport=transport, client=client),
    )


def pending_deliveries(*, home: Path, settings: NodeSettings | None = None) -> int:
    """How many signatures and notices still wait for the hub."""
    with transaction(url_for(home=home, settings=settings)) as session:
        signatures = session.execute(
            select(AgreementRow.agreement_id).where(
                AgreementRow.hub_received_at.is_(None), AgreementRow.hub_answer.is_(None)
            )
        ).all()
        notices = session.execute(
            select(AgreementNoticeRow.id).where(AgreementNoticeRow.reported_at.is_(None))
        ).all()
    return len(signatures) + len(notices)


def _check_hub_signature(
    agreement: SignedAgreement, *, hub_id: str, identity: NodeIdentity
) -> None:
    # Any key the hub had verifies its signature: an agreement the hub signed before a hub
    # key rotation stays valid here (the node pinned the new key only on a verified
    # announcement signed by the old one).
    # A replaced key counts only for what it signed before its overlap ended.
    keys = hub_keys(identity, now=None)
    until = {k.kid: k.overlap_until for k in identity.previous_hub_keys}
    for sig in agreement.signatures:
        jwk = keys.get(sig.kid)
        if sig.signer != hub_id or jwk is None:
            continue
        try:
            payload = signing.verify_model(sig.jws, signing.load_public_key(jwk), SignaturePayload)
        except ContractError:
            continue
        end = until.get(sig.kid)
        if end is not None and utc(payload.signed_at) > utc(end):
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
    """Every signed version of one agreement, oldest first."""
    found = [
        r for r in list_agreements(home=home, settings=settings) if r.agreement_id == agreement_id
    ]
    if not found:
        raise AgreementUnknown("no such agreement is signed at this node")
    return found


def suspend(
    *,
    home: Path,
    agreement_id: str,
    settings: NodeSettings | None = None,
    reason: str = "",
    now: datetime | None = None,
) -> StatusOutcome:
    """Refuse every request under the agreement from the next one on, until resumed."""
    return _set_status(
        home=home,
        settings=settings,
        agreement_id=agreement_id,
        status="suspended",
        reason=reason,
        now=now,
    )


def resume(
    *,
    home: Path,
    agreement_id: str,
    settings: NodeSettings | None = None,
    reason: str = "",
    now: datetime | None = None,
) -> StatusOutcome:
    return _set_status(
        home=home,
        settings=settings,
        agreement_id=agreement_id,
        status="active",
        reason=reason,
        now=now,
    )


def revoke(
    *,
    home: Path,
    agreement_id: str,
    settings: NodeSettings | None = None,
    reason: str = "",
    now: datetime | None = None,
) -> StatusOutcome:
    """Takes effect at once for every version: later requests are refused, hub reachable or not."""
    return _set_status(
        home=home,
        settings=settings,
        agreement_id=agreement_id,
        status="revoked",
        reason=reason,
        now=now,
    )


StatusAction = Literal["suspend", "resume", "revoke"]


def change_status_and_report(
    *, home: Path, agreement_id: str, action: StatusAction, settings: NodeSettings, reason: str
) -> StatusOutcome:
    """Suspend, resume or revoke (in force at once), then tell the hub, best effort.

    Telling the hub is retried later (`report_notices`) when it is down; the change stands.
    """
    change = {"suspend": suspend, "resume": resume, "revoke": revoke}[action]
    outcome = change(home=home, agreement_id=agreement_id, settings=settings, reason=reason)
    if not outcome.changed:
        return outcome
    report = report_notices(home=home, settings=settings)
    return outcome.model_copy(update={"report": report})


def _set_status(
    *,
    home: Path,
    settings: NodeSettings | None,
    agreement_id: str,
    status: AgreementStatus,
    reason: str,
    now: datetime | None,
) -> StatusOutcome:
    """Change the status and queue a node-signed notice for the hub, in one transaction."""
    moment = utc(now or datetime.now(UTC))
    identity = load_identity(home)
    with transaction(url_for(home=home, settings=settings)) as session:
        current = _status_of(session, agreement_id)
        if current is None:
            raise AgreementUnknown("no such agreement is signed at this node")
        if current == "revoked":
            raise AgreementRevoked("the agreement is revoked at this node; revocation is final")
        if current == status:
            return StatusOutcome(agreement_id=agreement_id, status=status, changed=False)
        session.execute(
            update(AgreementRow)
            .where(AgreementRow.agreement_id == agreement_id)
            .values(status=status)
        )
        notice = AgreementNotice(
            agreement_id=agreement_id,
            node_id=identity.node_id,
            status=status,
            at=moment,
            reason=reason,
        )
        session.add(
            AgreementNoticeRow(
                agreement_id=agreement_id,
                status=status,
                at=moment.isoformat(),
                jws=signing.sign(notice, load_key(home)),
                reported_at=None,
                hub_answer=None,
            )
        )
        action = {"suspended": "agreement_suspended", "revoked": "agreement_revoked"}.get(
            status, "agreement_resumed"
        )
        audit.append(
            session, actor=STEWARD, action=action, object=f"agreement:{agreement_id}", details={}
        )
    return StatusOutcome(agreement_id=agreement_id, status=status, changed=True)


def report_notices(
    *,
    home: Path,
    settings: NodeSettings | None = None,
    transport: httpx.BaseTransport | None = None,
    client: httpx.Client | None = None,
    timeout_seconds: float = NOTICE_TIMEOUT_SECONDS,
) -> NoticeReport:
    """Send queued status notices to the hub, oldest first; stop at the first network failure.

    A notice the hub refuses with a 4xx is kept with the hub's code and not retried; one
    that meets a network error or a 5xx stays queued for the next attempt.
    """
    url = url_for(home=home, settings=settings)
    identity = load_identity(home)
    with transaction(url) as session:
        queued = [
            (row.id, row.agreement_id, row.jws)
            for row in session.execute(
                select(AgreementNoticeRow)
                .where(AgreementNoticeRow.reported_at.is_(None))
                .order_by(AgreementNoticeRow.id)
            ).scalars()
        ]
    if not queued:
        return NoticeReport(sent=0, pending=0, refused=0, hub_reachable=True)
    if identity.hub_url is None:
        return NoticeReport(
            sent=0,
            pending=len(queued),
            refused=0,
            hub_reachable=False,
            message="no hub URL is pinned (sauti node pin-hub --url)",
        )
    sent = refused = 0
    reachable = True
    message = ""
    with _hub(
        identity.hub_url, transport=transport, client=client, timeout_seconds=timeout_seconds
    ) as http:
        for notice_id, agreement_id, jws in queued:
            try:
                response = http.post(
                    f"{identity.hub_url}/v1/agreements/{agreement_id}/notices",
                    json={"jws": jws},
                    timeout=timeout_seconds,
                )
            except httpx.HTTPError:
                reachable, message = False, "the hub is unreachable; notices stay queued"
                break
            if response.status_code >= 500:
                reachable, message = False, f"the hub answered {response.status_code}"
                break
            answer = None if response.is_success else _error_code(response)
            refused += answer is not None
            sent += answer is None
            with transaction(url) as session:
                row = session.get(AgreementNoticeRow, notice_id)
                if row is not None:
                    row.reported_at = datetime.now(UTC).isoformat()
                    row.hub_answer = answer
                    audit.append(
                        session,
                        actor=identity.node_id,
                        action="agreement_notice_reported",
                        object=f"agreement:{agreement_id}",
                        details={"notice": notice_id, "hub_answer": answer},
                    )
    log.info("agreement notices: %d sent, %d refused", sent, refused)
    return NoticeReport(
        sent=sent,
        pending=len(queued) - sent - refused,
        refused=refused,
        hub_reachable=reachable,
        message=message,
    )


def fetch_from_hub(
    *,
    home: Path,
    agreement_id: str,
    transport: httpx.BaseTransport | None = None,
    timeout_seconds: float = NOTICE_TIMEOUT_SECONDS,
) -> SignedAgreement:
    """Ask the pinned hub, with a node-signed request, for the version this node should sign.

    Nothing is trusted from the answer until `preview`/`sign` check the digest, the hub's
    signature and every term, exactly as for a file.
    """
    identity = load_identity(home)
    if identity.hub_url is None or identity.hub_id is None:
        raise HubUnreachable("no hub URL is pinned (sauti node pin-hub --url)")
    fetch = AgreementFetch(
        agreement_id=agreement_id,
        node_id=identity.node_id,
        hub_id=identity.hub_id,
        issued_at=datetime.now(UTC),
        nonce=secrets.token_hex(16),
    )
    body = {"jws": signing.sign(fetch, load_key(home))}
    try:
        with httpx.Client(
            base_url=identity.hub_url, transport=transport, timeout=timeout_seconds
        ) as client:
            response = client.post("/v1/agreements/fetch", json=body)
    except httpx.HTTPError as exc:
        raise HubUnreachable("the hub is unreachable") from exc
    if response.status_code >= 500:
        raise HubUnreachable(f"the hub answered {response.status_code}")
    if not response.is_success:
        raise AgreementUnknown(f"the hub refused: {_error_code(response)}")
    try:
        return SignedAgreement.model_validate_json(response.content)
    except ValidationError as exc:
        raise AgreementInvalid("the hub's answer is not a signed agreement") from exc


def _error_code(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["code"])[:100]
    except (ValueError, KeyError, TypeError):
        return f"http_{response.status_code}"


def _status_of(session: Session, agreement_id: str) -> AgreementStatus | None:
    return _standing(
        session.execute(
            select(AgreementRow.status).where(AgreementRow.agreement_id == agreement_id)
        ).scalars()
    )


def _standing(statuses: Iterable[str]) -> AgreementStatus | None:
    """The agreement's standing from its versions' statuses: revoked or suspended anywhere
    wins, then active."""
    statuses = set(statuses)
    for status in ("revoked", "suspended", "active"):
        if status in statuses:
            return status
    return None


def _record(row: AgreementRow) -> AgreementRecord:
    received = row.hub_received_at
    return AgreementRecord(
        hub_received_at=datetime.fromisoformat(received) if received else None,
        hub_answer=row.hub_answer,
        hub_status=row.hub_status,
        agreement_id=row.agreement_id,
        version=row.version,
        digest=row.digest,
        status=row.status,
        signed_at=datetime.fromisoformat(row.signed_at),
        terms=AgreementTerms.model_validate_json(row.terms),
        signature=AgreementSignature.model_validate_json(row.signature),
    )


@functools.lru_cache(maxsize=256)
def _parsed_terms(text: str) -> AgreementTerms:
    # Keyed by the stored text (which its digest pins): every request reads the same terms,
    # and the model is frozen, so sharing one parsed copy is safe.
    return AgreementTerms.model_validate_json(text)


_HONOURED = select(
    AgreementRow.version,
    AgreementRow.digest,
    AgreementRow.status,
    case((AgreementRow.version == bindparam("version"), AgreementRow.terms), else_=None),
    exists()
    .where(
        BudgetCharge.agreement_id == bindparam("agreement"),
        BudgetCharge.version > bindparam("version"),
    )
    .label("newer"),
).where(AgreementRow.agreement_id == bindparam("agreement"))


def honoured_terms(
    session: SessionLike, *, agreement_id: str, version: int, digest: str, now: datetime
) -> AgreementTerms:
    """The terms of a version this node signed, if the agreement is in force now.

    A version is superseded once the hub has used a newer version this node signed: the hub
    only moves on when every party signed the amendment, so the old text is done with.
    """
    # One statement: every version's status (the agreement's standing), the text of this
    # version only, and whether a newer version was charged here (built once: per query).
    rows = (
        connection_of(session)
        .execute(_HONOURED, {"agreement": agreement_id, "version": version})
        .all()
    )
    row = next((r for r in rows if r[0] == version), None)
    if row is None or row[1] != digest:
        raise AgreementUnknown("this agreement version (and digest) is not signed at this node")
    status = _standing(r[2] for r in rows)
    if status == "revoked":
        raise AgreementRevoked("the agreement is revoked at this node")
    if status == "suspended":
        raise AgreementSuspended("the agreement is suspended at this node")
    terms = _parsed_terms(row[3])
    validity = validity_at(terms, now)
    if validity == "not_yet_valid":
        raise AgreementNotYetValid("term valid_from: the agreement is not valid yet")
    if validity == "expired":
        raise AgreementExpired("term valid_until: the agreement has expired")
    if row[4]:
        raise AgreementSuperseded("a newer version of this agreement is in use at this node")
    return terms


def check_dataset(terms: AgreementTerms, *, dataset: str) -> int:
    """The contract version the agreement names for `dataset`."""
    for ref in terms.datasets:
        if ref.name == dataset:
            return ref.contract_version
    raise DatasetNotInAgreement("term datasets: the agreement does not cover that dataset")


def check_measure(terms: AgreementTerms, *, spec: QuerySpec) -> None:
    if spec.measure not in terms.measures:
        raise MeasureNotAllowed(f"term measures: the agreement does not allow {spec.measure}")


def check_columns(terms: AgreementTerms, *, spec: QuerySpec, rho: float) -> None:
    """Columns, dims and cost against the terms (run after the contract knows them all)."""
    if spec.column is not None and spec.column not in terms.columns:
        raise ColumnNotAllowed(
            f"term columns: the agreement does not allow measuring {spec.column}"
        )
    for dim in (*spec.group_by, *(f.column for f in spec.filters)):
        if dim not in terms.dims:
            raise DimNotAllowed(
                f"term dims: the agreement does not allow grouping or filtering on {dim}"
            )
    if len(spec.group_by) > terms.max_dims:
        raise TooManyDims(f"term max_dims: the agreement allows at most {terms.max_dims} dims")
    refusal = grid_refusal(terms, spec)
    if refusal is not None:
        raise GridNotAllowed(refusal)
    if rho > terms.rho_per_query_max:
        raise CostOverCap("term rho_per_query_max: the query's rho is above the per-query cap")
    if rho < terms.rho_floor:
        raise RhoBelowFloor(
            f"term min_rho: the query's rho is below the agreement's floor of {terms.rho_floor:g}"
        )


def check_requester(terms: AgreementTerms, *, request: QueryRequest) -> None:
    """Who asks and for what audience, as the hub declares it in the signed request."""
    if request.analyst_organisation not in terms.analyst_organisations:
        raise AnalystOrgNotPermitted(
            "term analyst_organisations: the requesting organisation is not permitted"
        )
    wanted = request.dissemination or terms.dissemination
    if DISSEMINATION_ORDER.index(wanted) < DISSEMINATION_ORDER.index(terms.dissemination):
        raise DisseminationNotAllowed(
            f"term dissemination: outputs may be at most {terms.dissemination}, not {wanted}"
        )
