"""A query's result as people read it: labels for codes, shares as percentages, numbers in
the reader's digits, a chart that fits any screen, and exports offered only when they can
be produced (with the reason when not)."""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from contracts.v1 import DatasetContract, QueryResult, QuerySpec
from hub.agreements import service as agreements
from hub.auth.schemas import User
from hub.exceptions import HubError
from hub.exports.sdmx import query_result_to_sdmx_csv
from hub.nodes import contracts as node_contracts
from hub.nodes import service as federation
from hub.queries import service as queries
from hub.web.i18n import format_number, format_significant
from hub.web.labels import column_titles, country_name, dim_labels, key_label

PERCENT_MEASURES = ("share",)
WHOLE_MEASURES = ("count", "sum", "histogram")
CHART_MAX_ROWS = 60
TICKS = 5


@dataclass(frozen=True)
class Row:
    key: tuple[str, ...]  # as labels
    codes: tuple[str, ...]
    status: str
    estimate: str
    low: str
    high: str
    reason: str | None


@dataclass(frozen=True)
class Bar:
    """One bar, positions in percent of the plot's width (an SVG with a 0..100 viewBox)."""

    label: str
    text: str
    x0: float
    width: float
    low: float | None
    high: float | None
    suppressed: bool


@dataclass(frozen=True)
class Chart:
    bars: tuple[Bar, ...]
    ticks: tuple[str, ...]  # evenly spaced from the left end to the right end
    grid: tuple[float, ...]  # the ticks' positions, percent
    more: int  # rows beyond those drawn


@dataclass(frozen=True)
class NodeLine:
    node_id: str
    name: str
    country: str
    outcome: str
    error_code: str | None
    message: str | None
    rho: str
    epsilon: str
    delta: str
    noise: str
    mechanism: str | None


@dataclass(frozen=True)
class ResultView:
    result: QueryResult
    columns: tuple[str, ...]
    rows: tuple[Row, ...]
    chart: Chart | None
    answered: str
    asked: str
    answered_count: int
    asked_count: int
    percent: bool
    nodes: tuple[NodeLine, ...]
    # The SDMX export's refusal code, None when it can be produced.
    sdmx_refusal: str | None
    titles: Mapping[str, str]
    labels: Mapping[str, Mapping[str, str]]

    @property
    def running(self) -> bool:
        return self.result.status == "running"

    @property
    def problems(self) -> tuple[NodeLine, ...]:
        return tuple(n for n in self.nodes if n.outcome not in ("ok", "pending"))


def _nice_step(span: float) -> float:
    raw = span / (TICKS - 1)
    power = 10.0 ** math.floor(math.log10(raw))
    for factor in (1.0, 2.0, 2.5, 5.0, 10.0):
        if raw <= factor * power:
            return factor * power
    return 10 * power


def _chart(
    rows: Sequence[Row],
    cells: Sequence[tuple[float | None, float | None, float | None, bool]],
    fmt: "Formatter",
) -> Chart | None:
    shown = list(zip(rows, cells, strict=True))[:CHART_MAX_ROWS]
    values = [v for _, (e, lo, hi, ok) in shown if ok for v in (e, lo, hi) if v is not None]
    if not values:
        return None
    low, high = min(0.0, *values), max(0.0, *values)
    if fmt.percent:
        low, high = min(low, 0.0), max(high, 0.0)
    step = _nice_step((high - low) or 1.0)
    start = math.floor(low / step) * step
    end = start + step * (TICKS - 1)
    while end < high:
        step = _nice_step((high - start) * 1.25)
        end = start + step * (TICKS - 1)
    span = end - start

    def x(v: float) -> float:
        return round((v - start) / span * 100, 3)

    bars = []
    for row, (est, lo, hi, ok) in shown:
        shown_value = est if ok and est is not None else None
        a, b = (x(0.0), x(shown_value)) if shown_value is not None else (x(0.0), x(0.0))
        bars.append(
            Bar(
                label=" · ".join(row.key) or "—",
                text=row.estimate,
                x0=min(a, b),
                width=abs(b - a),
                low=x(lo) if shown_value is not None and lo is not None else None,
                high=x(hi) if shown_value is not None and hi is not None else None,
                suppressed=shown_value is None,
            )
        )
    ticks = tuple(fmt.value(start + i * step) for i in range(TICKS))
    grid = tuple(x(start + i * step) for i in range(TICKS))
    return Chart(bars=tuple(bars), ticks=ticks, grid=grid, more=max(0, len(rows) - len(shown)))


@dataclass(frozen=True)
class Formatter:
    lang: str
    percent: bool
    digits: int

    def value(self, v: float | None) -> str:
        if v is None:
            return "—"
        if self.percent:
            return format_number(v * 100, language=self.lang, digits=1) + "%"
        return format_number(v, language=self.lang, digits=self.digits)

    def plain(self, v: float | None, figures: int = 3) -> str:
        if v is None:
            return "—"
        return format_significant(v, language=self.lang, figures=figures)


def result_view(
    *,
    result: QueryResult,
    lang: str,
    contracts: Mapping[str, DatasetContract],
    node_names: Mapping[str, str],
    sdmx_refusal: str | None,
) -> ResultView:
    measure = result.spec.measure
    fmt = Formatter(
        lang=lang,
        percent=measure in PERCENT_MEASURES,
        digits=0 if measure in WHOLE_MEASURES else 2,
    )
    labels = dim_labels(contracts.values(), (*result.group_by, *spec_columns(result.spec)), lang)
    rows = []
    cells = []
    for cell in result.cells:
        ok = cell.status == "ok"
        rows.append(
            Row(
                key=key_label(result.group_by, cell.key, labels, lang),
                codes=cell.key,
                status=cell.status,
                estimate=fmt.value(cell.estimate) if ok else "",
                low=fmt.value(cell.ci95_low) if ok else "—",
                high=fmt.value(cell.ci95_high) if ok else "—",
                reason=cell.reason,
            )
        )
        cells.append((cell.estimate, cell.ci95_low, cell.ci95_high, ok))
    titles = column_titles(contracts.values())
    nodes = tuple(
        NodeLine(
            node_id=n.node_id,
            name=node_names.get(n.node_id, n.node_id),
            country=country_name(n.country, lang) if n.country else "—",
            outcome=n.outcome,
            error_code=n.error_code,
            message=n.message,
            rho=fmt.plain(n.rho, 3) if n.rho is not None else "—",
            epsilon=fmt.plain(n.epsilon) if n.epsilon is not None else "—",
            delta=f"{n.delta:g}" if n.delta is not None else "—",
            noise=fmt.plain(n.noise_scale) if n.noise_scale is not None else "—",
            mechanism=n.mechanism,
        )
        for n in result.nodes
    )
    answered = sum(1 for n in result.nodes if n.outcome != "pending")
    return ResultView(
        result=result,
        columns=tuple(titles.get(d, d) for d in result.group_by),
        rows=tuple(rows),
        chart=_chart(rows, cells, fmt),
        answered=format_number(answered, language=lang, digits=0),
        asked=format_number(len(result.nodes), language=lang, digits=0),
        answered_count=answered,
        asked_count=len(result.nodes),
        percent=fmt.percent,
        nodes=nodes,
        sdmx_refusal=sdmx_refusal,
        titles=titles,
        labels=labels,
    )


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


def sdmx_refusal(*, session: Session, result: QueryResult, user: User) -> str | None:
    """Why SDMX cannot be produced for this result (an error code), or None: the export is
    tried, so the page never offers a download that would fail."""
    if result.status == "running" or not result.cells:
        return "no_cells"
    try:
        sdmx_csv(session=session, result=result, user=user)
    except HubError as exc:
        session.rollback()
        return exc.code
    return None


def result_contracts(*, session: Session, result: QueryResult) -> dict[str, DatasetContract]:
    """The stored contracts of the dataset version the query was planned for."""
    held = _contracts_of(session, result.spec)
    session.rollback()
    return held


@dataclass(frozen=True)
class RecentQuery:
    """A recent query with what its summary needs: the spec, column titles and labels."""

    query_id: str
    agreement_id: str
    created_at: datetime
    status: str
    measure: str
    spec: QuerySpec | None
    titles: Mapping[str, str]
    labels: Mapping[str, Mapping[str, str]]


def spec_columns(spec: QuerySpec) -> tuple[str, ...]:
    """Every column a spec names (measured, grouped on, filtered on)."""
    named = [*spec.group_by, *(f.column for f in spec.filters)]
    if spec.column:
        named.append(spec.column)
    return tuple(dict.fromkeys(named))


def recent_queries(
    *, session: Session, user: User, lang: str, limit: int = 10
) -> list[RecentQuery]:
    """The latest queries of the user's organisation, each ready to be said in words."""
    out = []
    cache: dict[tuple[str, str], dict[str, DatasetContract]] = {}
    for q in queries.list_queries(session=session, user=user)[:limit]:
        try:
            spec = QuerySpec.model_validate(q.spec) if q.spec else None
        except ValueError:
            spec = None
        held: dict[str, DatasetContract] = {}
        if spec is not None:
            key = (spec.agreement_id, spec.dataset)
            if key not in cache:
                cache[key] = _contracts_of(session, spec)
            held = cache[key]
        out.append(
            RecentQuery(
                query_id=str(q.query_id),
                agreement_id=q.agreement_id,
                created_at=q.created_at,
                status=q.status,
                measure=q.measure,
                spec=spec,
                titles=column_titles(held.values()),
                labels=dim_labels(held.values(), spec_columns(spec) if spec else (), lang),
            )
        )
    session.rollback()
    return out


def _contracts_of(session: Session, spec: QuerySpec) -> dict[str, DatasetContract]:
    if spec.module_version is not None:
        return {}
    try:
        terms = agreements.get_agreement(
            session=session, agreement_id=spec.agreement_id
        ).agreement.terms
    except HubError:
        return {}
    version = next((d.contract_version for d in terms.datasets if d.name == spec.dataset), None)
    if version is None:
        return {}
    return node_contracts.contracts_for(
        session=session, node_ids=terms.node_ids, dataset=spec.dataset, version=version
    )
