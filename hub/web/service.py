"""View models of the web pages, built from the hub's own services (no logic of their own
beyond arranging what those return for a page)."""

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from contracts import budget as exact
from contracts.agreement_rules import HUB_DIMS, Section, plain_language
from contracts.budget_anchor import Anchor, anchor
from contracts.v1 import AgreementTerms, QueryResult, QuerySpec
from contracts.v1.audit import AuditEntry, AuditFilter, AuditVerification
from hub.agreements import service as agreements
from hub.agreements.schemas import AgreementRead
from hub.audit import checkpoints
from hub.audit import service as audit
from hub.audit.reconcile import AuditLog, Reconciliation, parse_export, reconcile
from hub.audit.schemas import CheckpointRead, NodeCheckpointStatus
from hub.auth import organisations as auth_organisations
from hub.auth.schemas import OrganisationRead, User
from hub.exports.sdmx import query_result_to_sdmx_csv
from hub.home import HubIdentity
from hub.nodes import service as federation
from hub.nodes.schemas import EnrollmentTokenCreate, EnrollmentTokenRead, NodeRead
from hub.queries import service as queries
from hub.queries.models import QueryNodeRow
from hub.queries.schemas import QuerySummary
from hub.web import downloads
from hub.web.exceptions import FormInvalid

# Node task outcomes that prove the node was reachable (it answered, even with a refusal).
NODE_ANSWERED = ("ok", "refused", "failed")
# A node that has not answered for this long is shown as quiet.
QUIET_AFTER = timedelta(days=2)
MAX_FILTERS = 2
AUDIT_PAGE = 200
MEASURES_WITH_VALUE = ("share",)


def _problems(exc: ValidationError) -> str:
    fields = sorted({".".join(str(p) for p in e["loc"]) or "form" for e in exc.errors()})
    return "check these fields: " + ", ".join(fields)


def _text(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _split(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in re.split(r"[,\n]", text) if part.strip())


# --- analyst ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AgreementChoice:
    agreement_id: str
    title: str


@dataclass(frozen=True)
class QueryForm:
    """What the analyst may ask under the chosen agreement, and the budget left."""

    agreements: tuple[AgreementChoice, ...]
    chosen: AgreementRead | None = None
    dataset: str | None = None
    dims: tuple[str, ...] = ()
    group_slots: int = 0
    rho_cap: float = 0.0
    rho_budget: Decimal = exact.ZERO
    rho_spent: Decimal = exact.ZERO
    values: Mapping[str, str] = field(default_factory=dict)

    @property
    def rho_left(self) -> Decimal:
        return exact.remaining(self.rho_budget, self.rho_spent)

    @property
    def default_rho(self) -> float:
        return min(self.rho_cap, 0.05) if self.rho_cap else 0.05


def query_form(
    *,
    session: Session,
    user: User,
    agreement_id: str | None,
    dataset: str | None,
    values: Mapping[str, str] | None = None,
) -> QueryForm:
    """Active agreements the user's organisation may query; the chosen one's terms."""
    usable = [
        read
        for read in agreements.list_agreements(session=session, user=user)
        if read.status == "active"
        and user.organisation in read.agreement.terms.analyst_organisations
    ]
    choices = tuple(
        AgreementChoice(r.agreement.terms.agreement_id, r.agreement.terms.title) for r in usable
    )
    chosen = next((r for r in usable if r.agreement.terms.agreement_id == agreement_id), None)
    if chosen is None and len(usable) == 1:
        chosen = usable[0]
    if chosen is None:
        return QueryForm(agreements=choices, values=values or {})
    terms = chosen.agreement.terms
    names = [d.name for d in terms.datasets]
    return QueryForm(
        agreements=choices,
        chosen=chosen,
        dataset=dataset if dataset in names else names[0],
        dims=(*terms.dims, *HUB_DIMS),
        group_slots=min(terms.max_dims, 3),
        rho_cap=terms.rho_per_query_max,
        rho_budget=exact.rho(terms.rho_budget),
        rho_spent=chosen.rho_spent_at_hub,
        values=values or {},
    )


def spec_from_form(form: Mapping[str, Any]) -> QuerySpec:
    """The analyst's form as a QuerySpec; empty selects are left out."""
    group_by = [v for i in range(1, 4) if (v := _text(form, f"group_by_{i}"))]
    filters = []
    for i in range(1, MAX_FILTERS + 1):
        column = _text(form, f"filter_column_{i}")
        levels = _split(_text(form, f"filter_levels_{i}"))
        if column and levels:
            filters.append({"column": column, "levels": levels})
        elif column or levels:
            raise FormInvalid(f"filter {i} needs both a column and at least one level")
    measure = _text(form, "measure")
    data = {
        "agreement_id": _text(form, "agreement_id"),
        "dataset": _text(form, "dataset"),
        "measure": measure,
        "column": _text(form, "column") or None,
        "value": (_text(form, "value") or None) if measure in MEASURES_WITH_VALUE else None,
        "group_by": tuple(group_by),
        "filters": tuple(filters),
        "rho": _text(form, "rho"),
        "weighted": _text(form, "weighted") == "yes",
        "quantiles": _numbers(_text(form, "quantiles"), "quantiles")
        if measure == "quantile"
        else None,
    }
    try:
        return QuerySpec.model_validate(data)
    except ValidationError as exc:
        raise FormInvalid(_problems(exc)) from exc


def _numbers(text: str, name: str) -> tuple[float, ...] | None:
    parts = _split(text)
    if not parts:
        return None
    try:
        return tuple(float(p) for p in parts)
    except ValueError as exc:
        raise FormInvalid(f"check these fields: {name}") from exc


def recent_queries(*, session: Session, user: User, limit: int = 10) -> list[QuerySummary]:
    return queries.list_queries(session=session, user=user)[:limit]


@dataclass(frozen=True)
class Bar:
    label: str
    y: float
    x0: float
    width: float
    low: float | None
    high: float | None
    suppressed: bool


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    axis_x: float
    bars: tuple[Bar, ...]
    # Scale marks under the bars: (x position, value).
    ticks: tuple[tuple[float, float], ...]


@dataclass(frozen=True)
class ResultRow:
    key: tuple[str, ...]
    status: str
    estimate: float | None
    ci95_low: float | None
    ci95_high: float | None
    reason: str | None
    nodes: tuple[str, ...]


@dataclass(frozen=True)
class ResultView:
    result: QueryResult
    columns: tuple[str, ...]
    rows: tuple[ResultRow, ...]
    chart: Chart | None
    answered: int
    asked: int
    digits: int

    @property
    def running(self) -> bool:
        return self.result.status == "running"


CHART_WIDTH = 640
CHART_LABEL = 200
CHART_ROW = 26
CHART_MAX_ROWS = 60


def _chart(rows: Sequence[ResultRow]) -> Chart | None:
    shown = list(rows[:CHART_MAX_ROWS])
    values = [
        v
        for r in shown
        for v in (r.estimate, r.ci95_low, r.ci95_high)
        if v is not None and r.status == "ok"
    ]
    if not values:
        return None
    low, high = min(0.0, *values), max(0.0, *values)
    span = (high - low) or 1.0
    plot = CHART_WIDTH - CHART_LABEL - 20

    def x(v: float) -> float:
        return round(CHART_LABEL + (v - low) / span * plot, 2)

    bars = []
    for i, r in enumerate(shown):
        label = " / ".join(r.key) or "—"
        label = label if len(label) <= 28 else label[:27] + "…"
        est = r.estimate if r.status == "ok" and r.estimate is not None else None
        start, end = (x(0.0), x(est)) if est is not None else (x(0.0), x(0.0))
        bars.append(
            Bar(
                label=label,
                y=i * CHART_ROW + 10,
                x0=min(start, end),
                width=abs(end - start),
                low=x(r.ci95_low) if est is not None and r.ci95_low is not None else None,
                high=x(r.ci95_high) if est is not None and r.ci95_high is not None else None,
                suppressed=est is None,
            )
        )
    return Chart(
        width=CHART_WIDTH,
        height=len(shown) * CHART_ROW + 30,
        axis_x=x(0.0),
        bars=tuple(bars),
        ticks=tuple((x(v), v) for v in sorted({low, 0.0, high})),
    )


def result_view(result: QueryResult) -> ResultView:
    rows = tuple(
        ResultRow(
            key=cell.key,
            status=cell.status,
            estimate=cell.estimate,
            ci95_low=cell.ci95_low,
            ci95_high=cell.ci95_high,
            reason=cell.reason,
            nodes=cell.nodes,
        )
        for cell in result.cells
    )
    # Counts read best as whole numbers; proportions and other measures keep decimals.
    digits = 0 if result.spec.measure in ("count", "sum", "histogram") else 3
    return ResultView(
        result=result,
        columns=downloads.key_columns(result),
        rows=rows,
        chart=_chart(rows),
        answered=sum(1 for n in result.nodes if n.outcome != "pending"),
        asked=len(result.nodes),
        digits=digits,
    )


# --- steward ------------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionSignature:
    """One version and one of the steward's nodes: signed there when (the date inside the
    signature), whether the hub has received it, and whether the version is in force."""

    version: int
    node_id: str
    signed_at: datetime | None
    status: str


@dataclass(frozen=True)
class StewardAgreement:
    read: AgreementRead
    my_nodes: tuple[str, ...]
    awaiting_mine: tuple[str, ...]
    sections: tuple[Section, ...]
    versions: tuple[VersionSignature, ...] = ()


def steward_agreements(*, session: Session, user: User) -> list[StewardAgreement]:
    """Agreements naming one of the steward's nodes, with what still awaits their signature."""
    out = []
    for read in agreements.list_agreements(session=session, user=user):
        terms = read.agreement.terms
        mine = tuple(n for n in terms.node_ids if n in user.node_ids)
        if not mine:
            continue
        every = agreements.list_versions(
            session=session, agreement_id=terms.agreement_id, user=user
        )
        versions = tuple(
            VersionSignature(
                version=v.agreement.terms.version,
                node_id=node_id,
                signed_at=next((s.signed_at for s in v.signers if s.signer == node_id), None),
                status=v.status,
            )
            for v in reversed(every)
            for node_id in v.agreement.terms.node_ids
            if node_id in mine
        )
        out.append(
            StewardAgreement(
                read=read,
                my_nodes=mine,
                awaiting_mine=tuple(n for n in read.missing_signers if n in mine),
                sections=plain_language(terms),
                versions=versions,
            )
        )
    return out


def budget_anchor(rho: float | Decimal) -> Anchor:
    """What a spend of `rho` means for one person (the wording is in the templates)."""
    return anchor(rho)


def exact_rho(rho: float | Decimal) -> Decimal:
    return exact.rho(rho)


# --- secretariat --------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeView:
    node: NodeRead
    last_contact: datetime | None
    health: str  # removed | never | quiet | ok


@dataclass(frozen=True)
class SecretariatOverview:
    organisations: list[OrganisationRead]
    nodes: list[NodeView]
    tokens: list[EnrollmentTokenRead]
    agreements: list[AgreementRead]


def valid_node_id(node_id: str) -> bool:
    try:
        EnrollmentTokenCreate(node_id=node_id)
    except ValidationError:
        return False
    return True


def node_views(*, session: Session, now: datetime | None = None) -> list[NodeView]:
    """Registered nodes with when each last answered a task (release, refusal or error)."""
    now = now or datetime.now(UTC)
    seen = {
        node_id: at
        for node_id, at in session.execute(
            select(QueryNodeRow.node_id, func.max(QueryNodeRow.answered_at))
            .where(QueryNodeRow.outcome.in_(NODE_ANSWERED))
            .group_by(QueryNodeRow.node_id)
        )
        if at is not None
    }
    views = []
    for node in federation.list_nodes(session=session):
        last = seen.get(node.node_id)
        if node.status == "removed":
            health = "removed"
        elif last is None:
            health = "never"
        elif now - last > QUIET_AFTER:
            health = "quiet"
        else:
            health = "ok"
        views.append(NodeView(node=node, last_contact=last, health=health))
    return views


def secretariat_overview(*, session: Session) -> SecretariatOverview:
    overview = SecretariatOverview(
        organisations=auth_organisations.list_organisations(session=session),
        nodes=node_views(session=session),
        tokens=federation.list_enrollment_tokens(session=session),
        agreements=agreements.list_agreements(session=session),
    )
    session.rollback()
    return overview


def _parties(text: str) -> list[dict[str, Any]]:
    """One party a line: `organisation | role | country | node` (the last two optional)."""
    parties = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split("|")]
        if len(parts) < 2 or len(parts) > 4 or not parts[0] or not parts[1]:
            raise FormInvalid(
                f"party line {number} should read: organisation | role | country | node"
            )
        parts += [""] * (4 - len(parts))
        parties.append(
            {
                "organisation": parts[0],
                "role": parts[1],
                "country": parts[2] or None,
                "node_id": parts[3] or None,
            }
        )
    return parties


def _datasets(text: str) -> list[dict[str, Any]]:
    out = []
    for item in _split(text):
        name, _, version = item.partition(":")
        if not version.strip().isdigit():
            raise FormInvalid("each dataset should read: name:contract version")
        out.append({"name": name.strip(), "contract_version": int(version)})
    return out


def _day(text: str, name: str) -> datetime:
    try:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)
    except ValueError as exc:
        raise FormInvalid(f"check these fields: {name}") from exc


def terms_from_form(form: Mapping[str, Any], *, hub_id: str) -> AgreementTerms:
    """The drafting form as agreement terms (version 1); the hub's own id is filled in."""
    measures = form.getlist("measures") if hasattr(form, "getlist") else form.get("measures", [])
    data = {
        "agreement_id": _text(form, "agreement_id"),
        "version": 1,
        "title": _text(form, "title"),
        "purpose": _text(form, "purpose"),
        "hub_id": hub_id,
        "parties": _parties(_text(form, "parties")),
        "datasets": _datasets(_text(form, "datasets")),
        "measures": tuple(m for m in measures if isinstance(m, str)),
        "columns": _split(_text(form, "columns")),
        "dims": _split(_text(form, "dims")),
        "max_dims": _text(form, "max_dims") or "2",
        "min_cell_size": _text(form, "min_cell_size") or "10",
        "rho_per_query_max": _text(form, "rho_per_query_max"),
        "rho_budget": _text(form, "rho_budget"),
        "analyst_organisations": _split(_text(form, "analyst_organisations")),
        "dissemination": _text(form, "dissemination") or "partners",
        "aggregation": _text(form, "aggregation") or "per_node",
        "collusion": _text(form, "collusion") or "0",
        "valid_from": _day(_text(form, "valid_from"), "valid_from"),
        "valid_until": _day(_text(form, "valid_until"), "valid_until"),
    }
    try:
        return AgreementTerms.model_validate(data)
    except ValidationError as exc:
        raise FormInvalid(_problems(exc)) from exc


# --- auditor ------------------------------------------------------------------------------


def audit_filter(params: Mapping[str, str]) -> AuditFilter:
    """The search form's filter (actor and object are matched on the page, see below)."""

    def moment(name: str, *, end: bool = False) -> datetime | None:
        text = params.get(name, "").strip()
        if not text:
            return None
        day = _day(text, name)
        return day + timedelta(days=1) if end else day

    return AuditFilter(
        action=params.get("action", "").strip() or None,
        since=moment("since"),
        until=moment("until", end=True),
    )


def audit_search(
    *, session: Session, params: Mapping[str, str], limit: int = AUDIT_PAGE
) -> tuple[list[AuditEntry], bool]:
    """Matching entries (newest last) and whether more matched than are shown.

    `actor` and `object` match as substrings, so "user:ana" or "query:" work.
    """
    flt = audit_filter(params)
    actor = params.get("actor", "").strip()
    obj = params.get("object", "").strip()
    found: list[AuditEntry] = []
    more = False
    for entry in audit.iter_entries(session=session, flt=flt):
        if actor and actor not in entry.actor:
            continue
        if obj and obj not in entry.object:
            continue
        if len(found) >= limit:
            more = True
            break
        found.append(entry)
    session.rollback()
    return found, more


def chain_status(
    *, session: Session, identity: HubIdentity, overdue_entries: int
) -> tuple[AuditVerification, list[CheckpointRead], list[NodeCheckpointStatus]]:
    """The hub chain's verification, the node checkpoints it holds, and who is overdue."""
    session.rollback()  # a fresh transaction: verification reads without the write lock
    verification = audit.verify(session=session, identity=identity)
    held = audit.list_checkpoints(session=session)
    status = checkpoints.checkpoint_status(session=session, overdue_entries=overdue_entries)
    session.rollback()
    return verification, held, status


def reconcile_uploads(
    *, session: Session, identity: HubIdentity, uploads: Sequence[bytes], overdue_entries: int
) -> Reconciliation:
    """Reconcile the hub's whole log with the node exports an auditor uploaded."""
    hub_log = parse_export(list(audit.export_jsonl(session=session, identity=identity)))
    session.rollback()
    nodes: list[AuditLog] = []
    for number, data in enumerate(uploads, start=1):
        try:
            nodes.append(parse_export(data.decode("utf-8").splitlines()))
        except (ValueError, UnicodeDecodeError) as exc:
            raise FormInvalid(f"file {number} is not a node audit export (JSON Lines)") from exc
    try:
        return reconcile(hub_log, nodes, overdue_entries=overdue_entries)
    except ValueError as exc:
        raise FormInvalid("upload node exports only (the hub's own log is read here)") from exc


def sdmx_csv(*, session: Session, result: QueryResult, user: User) -> str:
    """SDMX-CSV by the hub's exporter, under the agreement's dissemination level."""
    terms = agreements.get_agreement(
        session=session, agreement_id=result.spec.agreement_id, user=user
    ).agreement.terms
    areas = {n.node_id: n.country for n in federation.list_nodes(session=session)}
    session.rollback()
    return query_result_to_sdmx_csv(
        result=result, indicator="ADHOC", ref_areas=areas, dissemination=terms.dissemination
    )
