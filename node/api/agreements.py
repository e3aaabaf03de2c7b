"""The steward's agreement routes on the node: review, sign, suspend, resume, revoke, budget.

They work with the hub down: everything here reads and writes the node's own database. Only
`report` (and the best-effort report after a status change) calls the hub.
"""

from fastapi import APIRouter
from starlette.concurrency import run_in_threadpool

from contracts.v1 import AgreementSignature, SignedAgreement
from node.agreements import service as agreements
from node.agreements.schemas import (
    AgreementRecord,
    NoticeReport,
    SigningPreview,
    StatusChange,
    StatusOutcome,
)
from node.api.deps import SettingsDep, StewardDep
from node.ledger import service as ledger
from node.ledger.schemas import BudgetDetail

router = APIRouter(prefix="/v1/steward/agreements", tags=["steward"])


@router.get("", response_model=list[AgreementRecord])
async def list_agreements(settings: SettingsDep, _steward: StewardDep) -> list[AgreementRecord]:
    """Every agreement version signed at this node, with its status here."""
    return await run_in_threadpool(
        agreements.list_agreements, home=settings.home, settings=settings
    )


@router.post("/review", response_model=SigningPreview)
async def review(
    body: SignedAgreement, settings: SettingsDep, _steward: StewardDep
) -> SigningPreview:
    """Check a hub-signed version as signing would, and return its rules in plain language."""
    return await run_in_threadpool(
        agreements.preview, home=settings.home, agreement=body, settings=settings
    )


@router.post("/sign", response_model=AgreementSignature, status_code=201)
async def sign(
    body: SignedAgreement, settings: SettingsDep, _steward: StewardDep
) -> AgreementSignature:
    """Sign the version with the node key (honoured from now on) and hand the signature to
    the pinned hub at once; one the hub does not confirm is retried until it does."""
    outcome = await run_in_threadpool(
        agreements.sign_and_deliver, home=settings.home, agreement=body, settings=settings
    )
    return outcome.signature


@router.get("/{agreement_id}", response_model=list[AgreementRecord])
async def show(
    agreement_id: str, settings: SettingsDep, _steward: StewardDep
) -> list[AgreementRecord]:
    """Every signed version of one agreement, oldest first."""
    return await run_in_threadpool(
        agreements.show, home=settings.home, agreement_id=agreement_id, settings=settings
    )


@router.get("/{agreement_id}/budget", response_model=BudgetDetail)
async def budget(agreement_id: str, settings: SettingsDep, _steward: StewardDep) -> BudgetDetail:
    """Spent this period, by whom, per version and per charge; what is left."""
    return await run_in_threadpool(
        ledger.budget_detail, home=settings.home, agreement_id=agreement_id, settings=settings
    )


async def _change(
    action: agreements.StatusAction,
    agreement_id: str,
    body: StatusChange | None,
    settings: SettingsDep,
) -> StatusOutcome:
    return await run_in_threadpool(
        agreements.change_status_and_report,
        home=settings.home,
        agreement_id=agreement_id,
        action=action,
        settings=settings,
        reason=body.reason if body is not None else "",
    )


@router.post("/{agreement_id}/suspend", response_model=StatusOutcome)
async def suspend(
    agreement_id: str,
    settings: SettingsDep,
    _steward: StewardDep,
    body: StatusChange | None = None,
) -> StatusOutcome:
    """Refuse every request under the agreement from the next one on, until resumed."""
    return await _change("suspend", agreement_id, body, settings)


@router.post("/{agreement_id}/resume", response_model=StatusOutcome)
async def resume(
    agreement_id: str,
    settings: SettingsDep,
    _steward: StewardDep,
    body: StatusChange | None = None,
) -> StatusOutcome:
    return await _change("resume", agreement_id, body, settings)


@router.post("/{agreement_id}/revoke", response_model=StatusOutcome)
async def revoke(
    agreement_id: str,
    settings: SettingsDep,
    _steward: StewardDep,
    body: StatusChange | None = None,
) -> StatusOutcome:
    """Final: every version is refused from the next request on, hub reachable or not."""
    return await _change("revoke", agreement_id, body, settings)


@router.post("/report", response_model=NoticeReport)
async def report(settings: SettingsDep, _steward: StewardDep) -> NoticeReport:
    """Send signatures and status changes the hub has not confirmed yet (totals of both)."""
    report = await run_in_threadpool(agreements.report_all, home=settings.home, settings=settings)
    return report.total()
