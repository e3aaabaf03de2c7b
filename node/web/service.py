"""View models of the steward pages, built from the node's own services (no SQL, no OpenDP here).

Everything shown is metadata the steward already sees on the command line: contracts,
import manifests and validation reports (rules, columns, row numbers), agreement terms,
budget charges and audited decisions. No page reads a data file.
"""

import re
import secrets
import shutil
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path, PurePath
from typing import BinaryIO, cast

from pydantic import ValidationError

from contracts import budget as exact
from contracts.agreement_rules import PURPOSE_CODES
from contracts.v1 import AgreementTerms, DatasetContract, SignedAgreement
from contracts.v1.audit import AuditEntry, AuditFilter
from node.agreements import service as agreements
from node.agreements.schemas import AgreementRecord, SigningPreview, StatusOutcome
from node.audit import service as audit
from node.datasets import service as datasets
from node.datasets import store
from node.datasets.exceptions import DatasetInvalid, FileTooLarge
from node.datasets.schemas import ImportResult, ValidationReport, VersionInfo
from node.home import NodeIdentity, load_identity
from node.ledger import service as ledger
from node.ledger.schemas import BudgetDetail, BudgetLine
from node.settings import NodeSettings
from node.web.exceptions import FormInvalid
from node.web.i18n import N_

# How far back the "recent requests" pages look in the audit chain.
RECENT_DAYS = 90
MAX_AGREEMENT_BYTES = 256 * 1024
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
STATUS_ACTIONS = ("suspend", "resume", "revoke")

# Why a request was refused, in words (reason codes of node/api/errors.py).
REASONS: dict[str, str] = {
    "accepted": N_("Accepted: a differentially private answer was sent"),
    "stored_release": N_("Accepted: the answer already made for this request was sent again"),
    "agreement_unknown": N_("Refused: the agreement is not signed at this node"),
    "agreement_suspended": N_("Refused: the agreement is suspended at this node"),
    "agreement_revoked": N_("Refused: the agreement is revoked at this node"),
    "agreement_expired": N_("Refused: the agreement has expired"),
    "agreement_not_yet_valid": N_("Refused: the agreement is not valid yet"),
    "agreement_superseded": N_("Refused: a newer version of the agreement is in force"),
    "dataset_not_in_agreement": N_("Refused: the dataset is not covered by the agreement"),
    "measure_not_allowed": N_("Refused: the agreement does not allow this statistic"),
    "column_not_allowed": N_("Refused: the agreement does not allow this column"),
    "dim_not_allowed": N_("Refused: the agreement does not allow this break-down"),
    "too_many_dims": N_("Refused: too many break-down columns"),
    "cost_over_cap": N_("Refused: the question costs more than the per-question cap"),
    "budget_exhausted": N_("Refused: the privacy budget is spent"),
    "analyst_org_not_permitted": N_("Refused: the analyst's organisation may not ask"),
    "dissemination_not_allowed": N_("Refused: the requested use of results is not allowed"),
    "request_expired": N_("Refused: the request was too old"),
    "signature_invalid": N_("Refused: the request signature did not verify"),
    "wrong_node": N_("Refused: the request was for another node"),
}
REFUSED_OTHER = N_("Refused by a rule of the node")
STATUS_TEXT: dict[str, str] = {
    "active": N_("active"),
    "suspended": N_("suspended"),
    "revoked": N_("revoked"),
}
MEASURES: dict[str, str] = {
    "count": N_("counts of respondents"),
    "share": N_("shares (proportions) of respondents"),
    "sum": N_("sums"),
    "mean": N_("means"),
    "quantile": N_("quantiles (such as medians)"),
    "histogram": N_("histograms"),
}
DISSEMINATION: dict[str, str] = {
    "public": N_("Results may be published openly."),
    "partners": N_("Results may be shared only among the partners to this agreement."),
    "restricted": N_(
        "Results stay with the permitted analyst organisations and may not be passed on."
    ),
}
PERIODS: dict[str, str] = {
    "validity": N_("for the whole validity of the agreement, amendments included"),
    "calendar_year": N_("for each calendar year, granted afresh every 1 January"),
    "quarter": N_("for each calendar quarter, granted afresh every three months"),
}
ROLES: dict[str, str] = {
    "secretariat": N_("secretariat"),
    "cso": N_("civil society organisation"),
    "nso": N_("national statistics office"),
    "other": N_("other"),
}


@dataclass(frozen=True)
class AgreementSummary:
    agreement_id: str
    title: str
    version: int
    status: str
    signed_at: datetime
    budget: BudgetLine | None


@dataclass(frozen=True)
class Decision:
    seq: int
    at: datetime
    query_id: str
    agreement_id: str | None
    version: int | None
    code: str
    accepted: bool
    measure: str | None
    group_by: tuple[str, ...]

    @property
    def reason(self) -> str:
        return REASONS.get(self.code, REFUSED_OTHER)


@dataclass(frozen=True)
class Dashboard:
    identity: NodeIdentity
    datasets: int
    versions: int
    agreements: list[AgreementSummary]
    decisions: list[Decision]
    accepted: int
    refused: int


@dataclass(frozen=True)
class DatasetView:
    name: str
    title: str
    contract_versions: tuple[int, ...]
    versions: list[VersionInfo]


@dataclass(frozen=True)
class ChartPoint:
    at: datetime
    query_id: str
    rho: Decimal
    spent: Decimal
    remaining: Decimal


@dataclass(frozen=True)
class BudgetChart:
    """The current period's spending as an SVG step line, and the same numbers as a table."""

    width: int
    height: int
    path: str
    budget_y: float
    rho_budget: Decimal
    rho_spent: Decimal
    start: datetime
    end: datetime
    points: list[ChartPoint]
    ticks: list[tuple[float, Decimal]] = field(default_factory=list)


@dataclass(frozen=True)
class AgreementDetail:
    agreement_id: str
    status: str
    records: list[AgreementRecord]
    terms: AgreementTerms
    budget: BudgetDetail
    chart: BudgetChart
    decisions: list[Decision]


@dataclass(frozen=True)
class Review:
    preview: SigningPreview
    agreement: SignedAgreement
    document: str


def _now() -> datetime:
    return datetime.now(UTC)


# --- dashboard, datasets -------------------------------------------------------------------------


def dashboard(*, settings: NodeSettings) -> Dashboard:
    versions = datasets.list_versions(home=settings.home)
    newest: deque[Decision] = deque(maxlen=5)
    accepted = refused = 0
    for decision in _recent(settings=settings, agreement_id=None):
        newest.append(decision)
        accepted += decision.accepted
        refused += not decision.accepted
    return Dashboard(
        identity=load_identity(settings.home),
        datasets=len({v.name for v in versions}),
        versions=len(versions),
        agreements=agreement_list(settings=settings),
        decisions=list(reversed(newest)),
        accepted=accepted,
        refused=refused,
    )


def dataset_list(*, settings: NodeSettings) -> list[DatasetView]:
    by_name: dict[str, list[VersionInfo]] = {}
    for info in datasets.list_versions(home=settings.home):
        by_name.setdefault(info.name, []).append(info)
    out = []
    for name, versions in sorted(by_name.items()):
        contract_versions = tuple(sorted({v.contract_version for v in versions}))
        newest = datasets.get_contract(home=settings.home, name=name, version=None)
        out.append(
            DatasetView(
                name=name,
                title=newest.title,
                contract_versions=contract_versions,
                versions=sorted(versions, key=lambda v: -v.version),
            )
        )
    return out


def version_detail(
    *, settings: NodeSettings, name: str, version: int
) -> tuple[VersionInfo, ValidationReport | None]:
    report = datasets.validation_report(home=settings.home, name=name, version=version)
    info = next(
        v for v in datasets.list_versions(home=settings.home, name=name) if v.version == version
    )
    return info, report


@dataclass(frozen=True)
class ImportOutcome:
    """A checked or imported upload: the report, and the new version unless it was a check."""

    report: ValidationReport
    version: VersionInfo | None
    checked_only: bool


def import_upload(
    *,
    settings: NodeSettings,
    dataset: str,
    filename: str,
    upload: BinaryIO,
    check_only: bool,
    by: str,
) -> ImportOutcome:
    """Check (or import, whole or nothing) an uploaded export against the newest contract."""
    folder = store.root(settings.home) / ".uploads" / secrets.token_hex(8)
    folder.mkdir(parents=True)
    try:
        target = folder / (_UNSAFE.sub("_", PurePath(filename).name) or "upload")
        _copy_limited(upload, target, limit=settings.import_max_bytes)
        try:
            result = datasets.import_file(
                home=settings.home,
                path=target,
                dataset=dataset,
                settings=settings,
                imported_by=by,
                dry_run=check_only,
            )
        except DatasetInvalid as exc:
            if exc.report is None:
                raise
            return ImportOutcome(report=exc.report, version=None, checked_only=check_only)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if isinstance(result, ImportResult):
        return ImportOutcome(report=result.report, version=result.version, checked_only=False)
    return ImportOutcome(report=result, version=None, checked_only=True)


def _copy_limited(source: BinaryIO, target: Path, *, limit: int) -> None:
    size = 0
    with target.open("wb") as out:
        while chunk := source.read(1 << 20):
            size += len(chunk)
            if size > limit:
                raise FileTooLarge(
                    f"the upload is larger than this node's import limit of {limit} bytes"
                )
            out.write(chunk)


def contract(*, settings: NodeSettings, name: str, version: int) -> DatasetContract:
    return datasets.get_contract(home=settings.home, name=name, version=version)


# --- agreements ----------------------------------------------------------------------------------


def agreement_list(*, settings: NodeSettings) -> list[AgreementSummary]:
    newest: dict[str, AgreementRecord] = {}
    for record in agreements.list_agreements(home=settings.home, settings=settings):
        newest[record.agreement_id] = record  # listed by id, then version
    budgets = {
        b.agreement_id: b for b in ledger.budget_report(home=settings.home, settings=settings)
    }
    return [
        AgreementSummary(
            agreement_id=r.agreement_id,
            title=r.terms.title,
            version=r.version,
            status=r.status,
            signed_at=r.signed_at,
            budget=budgets.get(r.agreement_id),
        )
        for r in newest.values()
    ]


def agreement_detail(*, settings: NodeSettings, agreement_id: str) -> AgreementDetail:
    records = agreements.show(home=settings.home, agreement_id=agreement_id, settings=settings)
    budget = ledger.budget_detail(home=settings.home, agreement_id=agreement_id, settings=settings)
    newest = records[-1]
    return AgreementDetail(
        agreement_id=agreement_id,
        status=newest.status,
        records=records,
        terms=newest.terms,
        budget=budget,
        chart=budget_chart(budget, first_signed=records[0].signed_at),
        decisions=decisions(settings=settings, limit=20, agreement_id=agreement_id),
    )


def parse_agreement(document: str) -> SignedAgreement:
    """A hub-signed agreement version from the text a steward pasted or uploaded."""
    if not document.strip():
        raise FormInvalid("paste or upload the agreement file the hub sent (JSON)")
    if len(document.encode()) > MAX_AGREEMENT_BYTES:
        raise FormInvalid("the agreement file is too large")
    try:
        return SignedAgreement.model_validate_json(document)
    except ValidationError as exc:
        raise FormInvalid("the text is not a signed agreement file from the hub") from exc


def review(*, settings: NodeSettings, agreement: SignedAgreement) -> Review:
    preview = agreements.preview(home=settings.home, agreement=agreement, settings=settings)
    return Review(preview=preview, agreement=agreement, document=agreement.model_dump_json())


def fetch_for_review(*, settings: NodeSettings, agreement_id: str) -> Review:
    agreement = agreements.fetch_from_hub(home=settings.home, agreement_id=agreement_id)
    return review(settings=settings, agreement=agreement)


def sign(*, settings: NodeSettings, agreement: SignedAgreement) -> str:
    agreements.sign(home=settings.home, agreement=agreement, settings=settings)
    return agreement.terms.agreement_id


def change_status(
    *, settings: NodeSettings, agreement_id: str, action: str, reason: str
) -> StatusOutcome:
    """Suspend, resume or revoke at once; then tell the hub, best effort (as the API does)."""
    if action not in STATUS_ACTIONS:
        raise FormInvalid("unknown action")
    return agreements.change_status_and_report(
        home=settings.home,
        agreement_id=agreement_id,
        action=cast(agreements.StatusAction, action),
        settings=settings,
        reason=reason,
    )


def purpose_text(terms: AgreementTerms) -> str | None:
    """The coded purpose in English words (no translation: the code itself is shown too)."""
    return PURPOSE_CODES.get(terms.purpose_code)


# --- budget chart --------------------------------------------------------------------------------

CHART_WIDTH = 640
CHART_HEIGHT = 240
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 16, 16, 36


def budget_chart(
    detail: BudgetDetail, *, first_signed: datetime, now: datetime | None = None
) -> BudgetChart:
    """Cumulative rho spent in the current budget period over time, against the budget."""
    line = detail.line
    moment = now or _now()
    start = line.period_start or first_signed
    start = start if start.tzinfo else start.replace(tzinfo=UTC)
    charges = [c for c in detail.charges if c.period == line.period]
    if charges:
        start = min(start, charges[0].charged_at)
    end = max(moment, charges[-1].charged_at if charges else moment)
    if end <= start:
        end = start + timedelta(hours=1)
    top = max(line.rho_budget, line.rho_spent) or Decimal(1)
    plot_w = CHART_WIDTH - _LEFT - _RIGHT
    plot_h = CHART_HEIGHT - _TOP - _BOTTOM

    def x(at: datetime) -> float:
        return round(_LEFT + plot_w * (at - start) / (end - start), 1)

    def y(rho: Decimal) -> float:
        # Drawing only: the amounts shown beside the chart stay exact.
        return round(_TOP + plot_h * (1 - float(rho) / float(top)), 1)

    spent = exact.ZERO
    steps = [f"M{x(start)},{y(exact.ZERO)}"]
    points = []
    for charge in charges:
        steps.append(f"H{x(charge.charged_at)}")
        spent = exact.add(spent, charge.rho)
        steps.append(f"V{y(spent)}")
        points.append(
            ChartPoint(
                at=charge.charged_at,
                query_id=charge.query_id,
                rho=charge.rho,
                spent=spent,
                remaining=exact.remaining(line.rho_budget, spent),
            )
        )
    steps.append(f"H{x(end)}")
    return BudgetChart(
        width=CHART_WIDTH,
        height=CHART_HEIGHT,
        path=" ".join(steps),
        budget_y=y(line.rho_budget),
        rho_budget=line.rho_budget,
        rho_spent=line.rho_spent,
        start=start,
        end=end,
        points=points,
        ticks=[(y(top * f), top * f) for f in (Decimal(0), Decimal("0.5"), Decimal(1))],
    )


# --- decisions -----------------------------------------------------------------------------------


def _decision(entry: AuditEntry) -> Decision:
    details = entry.details
    code = str(details.get("code", ""))
    version = details.get("agreement_version")
    group_by = details.get("group_by")
    return Decision(
        seq=entry.seq,
        at=entry.at,
        query_id=entry.object.removeprefix("query:"),
        agreement_id=details.get("agreement_id"),
        version=version if isinstance(version, int) else None,
        code=code,
        accepted=code in ("accepted", "stored_release"),
        measure=details.get("measure"),
        group_by=tuple(str(g) for g in group_by) if isinstance(group_by, list) else (),
    )


def _recent(*, settings: NodeSettings, agreement_id: str | None) -> Iterator[Decision]:
    """Audited decisions on requests of the last RECENT_DAYS, oldest first."""
    flt = AuditFilter(
        action="decision",
        agreement_id=agreement_id,
        since=_now() - timedelta(days=RECENT_DAYS),
    )
    for entry in audit.iter_entries(database_url=settings.db_url, flt=flt):
        yield _decision(entry)


def decisions(
    *, settings: NodeSettings, limit: int = 50, agreement_id: str | None = None
) -> list[Decision]:
    """The newest audited decisions on requests, newest first (codes and names, no values)."""
    newest = deque(_recent(settings=settings, agreement_id=agreement_id), maxlen=limit)
    return list(reversed(newest))
