"""Assessment logic: templates, round planning against budgets, answers, status, results.

Every function is synchronous and takes a session; asking the round's federated queries
(async, through `hub.queries.run`) lives in `hub.assessments.run`.
"""

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from uuid import UUID

from sqlalchemy import select
from sqlalchemy.orm import Session

from contracts import budget as exact
from contracts.v1 import AgreementTerms, Filter, QueryResult, QuerySpec
from contracts.v1.agreement import DISSEMINATION_ORDER
from hub.agreements.models import AgreementVersion
from hub.agreements.service import active_version
from hub.assessments import comparison
from hub.assessments.exceptions import (
    AnswerInvalid,
    IndicatorRefused,
    RoundInvalid,
    RoundNotFound,
    RoundNotRunning,
    RoundOverBudget,
    TemplateExists,
    TemplateNotFound,
)
from hub.assessments.models import AnswerRow, RoundQueryRow, RoundRow, TemplateRow
from hub.assessments.schemas import (
    AnswerIn,
    AnswerRead,
    Comparison,
    CountryStatus,
    NodeCost,
    QueryProgress,
    ResultValue,
    RoundCreate,
    RoundPlan,
    RoundProgress,
    RoundRead,
    RoundResults,
    TemplateSummary,
)
from hub.assessments.templates import (
    ChoiceAnswer,
    DatasetShape,
    NumberAnswer,
    SelfReportedIndicator,
    Template,
    parse_template,
    shipped_templates,
    validate_template,
)
from hub.audit import service as audit
from hub.auth.models import Organisation
from hub.auth.schemas import User
from hub.exceptions import HubError
from hub.nodes.models import Node
from hub.queries import service as queries
from hub.queries.models import QueryNodeRow, QueryRow
from hub.queries.planning import check_spec

# Roles that run rounds and read every country's results.
SECRETARIAT_ROLES = ("admin", "secretariat")


def _now() -> datetime:
    return datetime.now(UTC)


# --- templates -------------------------------------------------------------------------------


def catalogue_from_agreements(*, session: Session) -> dict[str, DatasetShape]:
    """What the hub knows of datasets: each agreement's measurable columns and dims."""
    columns: dict[str, set[str]] = {}
    dims: dict[str, set[str]] = {}
    for body in session.scalars(select(AgreementVersion.terms)):
        terms = AgreementTerms.model_validate(body)
        for ref in terms.datasets:
            columns.setdefault(ref.name, set()).update(terms.columns, terms.dims)
            dims.setdefault(ref.name, set()).update(terms.dims)
    return {
        name: DatasetShape(columns=frozenset(columns[name]), dims=frozenset(dims[name]))
        for name in columns
    }


def _summary(template: Template, *, shipped: bool) -> TemplateSummary:
    return TemplateSummary(
        template_id=template.id,
        version=template.version,
        title=template.title,
        indicators=len(template.indicators),
        dp_indicators=len(template.dp_indicators),
        rho_per_node=exact.add(*(i.rho_per_node for i in template.dp_indicators)),
        shipped=shipped,
    )


def template_summary(template: Template) -> TemplateSummary:
    """What a checked (not necessarily registered) template holds and costs per node."""
    return _summary(template, shipped=False)


def register_template(*, session: Session, yaml_text: str, user: User) -> TemplateSummary:
    """Parse, check against the datasets the hub's agreements name, and store."""
    template = validate_template(
        parse_template(yaml_text), catalogue_from_agreements(session=session)
    )
    if _find_template(session, template.id, template.version) is not None:
        raise TemplateExists()
    session.add(
        TemplateRow(
            template_id=template.id,
            version=template.version,
            body=template.model_dump(mode="json"),
            created_by=user.name,
            created_at=_now(),
        )
    )
    audit.append(
        session=session,
        actor=f"user:{user.name}",
        action="assessment.template_registered",
        object=f"template:{template.id}:v{template.version}",
        details={"indicators": [i.id for i in template.indicators]},
    )
    session.commit()
    return _summary(template, shipped=False)


def _find_template(session: Session, template_id: str, version: int | None) -> Template | None:
    stmt = select(TemplateRow).where(TemplateRow.template_id == template_id)
    if version is not None:
        stmt = stmt.where(TemplateRow.version == version)
    row = session.scalars(stmt.order_by(TemplateRow.version.desc())).first()
    stored = Template.model_validate(row.body) if row is not None else None
    shipped = [
        t
        for t in shipped_templates()
        if t.id == template_id and (version is None or t.version == version)
    ]
    candidates = [t for t in (stored, *shipped) if t is not None]
    return max(candidates, key=lambda t: t.version) if candidates else None


def get_template(*, session: Session, template_id: str, version: int | None = None) -> Template:
    """A registered template, or one shipped with the hub (the newest version if unnamed)."""
    template = _find_template(session, template_id, version)
    if template is None:
        raise TemplateNotFound()
    return template


def list_templates(*, session: Session) -> list[TemplateSummary]:
    stored = [
        _summary(Template.model_validate(body), shipped=False)
        for body in session.scalars(select(TemplateRow.body).order_by(TemplateRow.id))
    ]
    known = {(t.template_id, t.version) for t in stored}
    shipped = [
        _summary(t, shipped=True) for t in shipped_templates() if (t.id, t.version) not in known
    ]
    session.rollback()
    return shipped + stored


# --- planning --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedQuery:
    indicator_id: str
    breakdown: tuple[str, ...]
    spec: QuerySpec


@dataclass(frozen=True)
class Planned:
    template: Template
    plan: RoundPlan
    queries: tuple[PlannedQuery, ...]


def _period_start(terms: AgreementTerms, now: datetime) -> datetime | None:
    if terms.budget_period == "calendar_year":
        return datetime(now.year, 1, 1, tzinfo=UTC)
    if terms.budget_period == "quarter":
        return datetime(now.year, 3 * ((now.month - 1) // 3) + 1, 1, tzinfo=UTC)
    return None


def rho_spent(
    *, session: Session, agreement_id: str, node_id: str, since: datetime | None
) -> Decimal:
    """Rho a node reported it spent under an agreement: the rho of each release it sent
    (hub.agreements.budget; refusals and unanswered tasks cost nothing), the figure every
    page shows. The node's own ledger stays the authority and refuses when it is spent.
    """
    stmt = (
        select(QueryRow.spec, QueryRow.created_at, QueryNodeRow.release)
        .join(QueryNodeRow, QueryNodeRow.query_id == QueryRow.query_id)
        .where(
            QueryRow.agreement_id == agreement_id,
            QueryNodeRow.node_id == node_id,
            QueryNodeRow.outcome == "ok",
        )
    )
    asked = []
    for spec, created, release in session.execute(stmt):
        made = created if created.tzinfo is not None else created.replace(tzinfo=UTC)
        if since is None or made >= since:
            reported = (release or {}).get("rho")
            asked.append(reported if reported is not None else spec.get("rho", 0))
    return exact.total(asked)


def plan_round(*, session: Session, body: RoundCreate, user: User) -> Planned:
    """Check every query of the round and cost it per node; writes nothing."""
    template = get_template(
        session=session, template_id=body.template_id, version=body.template_version
    )
    now = _now()
    by_agreement: dict[str, list[str]] = {}
    for country, agreement_id in sorted(body.countries.items()):
        if len(country) != 3 or not country.isdigit():
            raise RoundInvalid("countries are named by UN M49 codes (3 digits)")
        by_agreement.setdefault(agreement_id, []).append(country)

    planned: list[PlannedQuery] = []
    costs: list[NodeCost] = []
    levels: list[str] = []
    for agreement_id, countries in by_agreement.items():
        terms, _digest = active_version(session=session, agreement_id=agreement_id)
        levels.append(terms.dissemination)
        nodes = session.scalars(
            select(Node).where(
                Node.node_id.in_(terms.node_ids),
                Node.status == "active",
                Node.country.in_(countries),
            )
        ).all()
        for country in countries:
            if not any(n.country == country for n in nodes):
                raise RoundInvalid(
                    f"agreement {agreement_id!r} has no active node in country {country}",
                    code="round_no_nodes",
                )
        rho_total = exact.ZERO
        for ind in template.dp_indicators:
            q = ind.query
            for dims in ind.breakdowns:
                spec = QuerySpec(
                    agreement_id=agreement_id,
                    dataset=q.dataset,
                    measure=q.measure,
                    column=q.column,
                    value=q.value,
                    group_by=("country", *dims),
                    filters=(*q.filters, Filter(column="country", levels=tuple(countries))),
                    rho=q.rho,
                )
                try:
                    check_spec(spec=spec, terms=terms, organisation=user.organisation)
                except HubError as exc:
                    raise IndicatorRefused(ind.id, exc) from None
                planned.append(PlannedQuery(indicator_id=ind.id, breakdown=dims, spec=spec))
                rho_total = exact.add(rho_total, exact.rho(q.rho))
        since = _period_start(terms, now)
        for node in sorted(nodes, key=lambda n: n.node_id):
            spent = rho_spent(
                session=session, agreement_id=agreement_id, node_id=node.node_id, since=since
            )
            costs.append(
                NodeCost(
                    node_id=node.node_id,
                    country=node.country,
                    agreement_id=agreement_id,
                    rho_needed=rho_total,
                    rho_remaining=exact.remaining(terms.rho_budget, spent),
                )
            )
    session.rollback()
    dissemination = max(levels, key=DISSEMINATION_ORDER.index)
    plan = RoundPlan(
        template_id=template.id,
        template_version=template.version,
        period=body.period,
        queries=len(planned),
        nodes=tuple(costs),
        dissemination=dissemination,
        affordable=all(c.shortfall == 0 for c in costs),
    )
    return Planned(template=template, plan=plan, queries=tuple(planned))


def check_affordable(planned: Planned) -> None:
    short = [
        (c.node_id, c.rho_needed, c.rho_remaining) for c in planned.plan.nodes if c.shortfall > 0
    ]
    if short:
        raise RoundOverBudget(short)


def create_round(
    *, session: Session, round_id: str, body: RoundCreate, planned: Planned, user: User
) -> None:
    session.add(
        RoundRow(
            round_id=round_id,
            template_id=planned.template.id,
            template_version=planned.template.version,
            period=body.period,
            status="running",
            countries=dict(sorted(body.countries.items())),
            dissemination=planned.plan.dissemination,
            created_by=user.name,
            organisation=user.organisation,
            created_at=_now(),
        )
    )
    audit.append(
        session=session,
        actor=f"user:{user.name}",
        action="assessment.round_started",
        object=f"round:{round_id}",
        details={
            "template": f"{planned.template.id}:v{planned.template.version}",
            "period": body.period,
            "countries": sorted(body.countries),
            "queries": planned.plan.queries,
        },
    )
    session.commit()


def record_query(*, session: Session, round_id: str, planned: PlannedQuery, query_id: UUID) -> None:
    session.add(
        RoundQueryRow(
            round_id=round_id,
            indicator_id=planned.indicator_id,
            breakdown=list(planned.breakdown),
            agreement_id=planned.spec.agreement_id,
            query_id=str(query_id),
        )
    )
    session.commit()


# --- rounds, answers, status -----------------------------------------------------------------


def _round(session: Session, round_id: str) -> RoundRow:
    row = session.get(RoundRow, round_id)
    if row is None:
        raise RoundNotFound()
    return row


def round_query_ids(*, session: Session, round_id: str) -> list[str]:
    _round(session, round_id)
    ids = list(
        session.scalars(
            select(RoundQueryRow.query_id)
            .where(RoundQueryRow.round_id == round_id)
            .order_by(RoundQueryRow.id)
        )
    )
    session.rollback()
    return ids


def _country_of(session: Session, organisation: str) -> str | None:
    return session.scalar(select(Organisation.country).where(Organisation.slug == organisation))


def _score(indicator: SelfReportedIndicator, value: str | float) -> tuple[str | float, float]:
    spec = indicator.answer
    if isinstance(spec, ChoiceAnswer):
        if not isinstance(value, str) or value not in spec.options:
            raise AnswerInvalid(
                f"indicator {indicator.id}: the answer must be one of {', '.join(spec.options)}"
            )
        return value, spec.scores[value]
    number = _number(indicator.id, value)
    if isinstance(spec, NumberAnswer):
        if not spec.minimum <= number <= spec.maximum:
            raise AnswerInvalid(
                f"indicator {indicator.id}: the answer must lie between "
                f"{spec.minimum:g} and {spec.maximum:g}"
            )
        if spec.integer and number != int(number):
            raise AnswerInvalid(f"indicator {indicator.id}: the answer must be a whole number")
        passed = [s for t, s in spec.score_thresholds.items() if number >= t]
        return (int(number) if spec.integer else number), max(passed, default=0.0)
    scores = [level.score for level in spec.levels]
    if number not in scores:
        raise AnswerInvalid(
            f"indicator {indicator.id}: the rubric score must be one of "
            f"{', '.join(str(s) for s in scores)}"
        )
    return int(number), number


def _number(indicator_id: str, value: str | float) -> float:
    try:
        number = float(value)
    except ValueError:
        raise AnswerInvalid(f"indicator {indicator_id}: the answer must be a number") from None
    if not math.isfinite(number):
        raise AnswerInvalid(f"indicator {indicator_id}: the answer must be a finite number")
    return number


def may_answer(*, session: Session, user: User, country: str) -> bool:
    """The secretariat answers for anyone; a country team only for its organisation's country."""
    if any(user.has(r) for r in SECRETARIAT_ROLES):
        return True
    return _country_of(session, user.organisation) == country


def submit_answer(
    *,
    session: Session,
    round_id: str,
    country: str,
    indicator_id: str,
    body: AnswerIn,
    user: User,
) -> AnswerRead:
    (answer,) = submit_answers(
        session=session,
        round_id=round_id,
        country=country,
        values={indicator_id: body.value},
        user=user,
    )
    return answer


def submit_answers(
    *,
    session: Session,
    round_id: str,
    country: str,
    values: dict[str, str | float],
    user: User,
) -> list[AnswerRead]:
    """Check every answer first, then store them all in one transaction (or none)."""
    row = _round(session, round_id)
    if row.status != "running":
        raise RoundNotRunning()
    if country not in row.countries:
        raise RoundInvalid("the country is not part of this round", code="country_not_in_round")
    template = get_template(
        session=session, template_id=row.template_id, version=row.template_version
    )
    checked: list[tuple[str, str | float, float]] = []
    for indicator_id, raw in values.items():
        indicator = template.indicator(indicator_id)
        if not isinstance(indicator, SelfReportedIndicator):
            raise RoundInvalid(
                "no self-reported indicator with this id in the round's template",
                code="indicator_unknown",
            )
        checked.append((indicator_id, *_score(indicator, raw)))
    now = _now()
    stored = []
    for indicator_id, value, score in checked:
        answer = session.scalars(
            select(AnswerRow).where(
                AnswerRow.round_id == round_id,
                AnswerRow.country == country,
                AnswerRow.indicator_id == indicator_id,
            )
        ).first()
        if answer is None:
            answer = AnswerRow(round_id=round_id, country=country, indicator_id=indicator_id)
            session.add(answer)
        answer.value, answer.score = value, score
        answer.answered_by, answer.answered_at = user.name, now
        stored.append(answer)
    audit.append(
        session=session,
        actor=f"user:{user.name}",
        action="assessment.answered",
        object=f"round:{round_id}",
        details={"country": country, "indicators": [c[0] for c in checked]},
    )
    session.commit()
    return [_answer_read(a) for a in stored]


def answer_problems(
    *, session: Session, round_id: str, values: dict[str, str | float]
) -> dict[str, str]:
    """Which of `values` would be refused, by indicator id (checks only; stores nothing)."""
    row = _round(session, round_id)
    template = get_template(
        session=session, template_id=row.template_id, version=row.template_version
    )
    session.rollback()
    problems = {}
    for indicator_id, raw in values.items():
        indicator = template.indicator(indicator_id)
        if not isinstance(indicator, SelfReportedIndicator):
            problems[indicator_id] = "no self-reported indicator with this id"
            continue
        try:
            _score(indicator, raw)
        except AnswerInvalid as exc:
            problems[indicator_id] = exc.message
    return problems


def answer_form_data(
    *, session: Session, round_id: str, country: str
) -> tuple[RoundRow, Template, dict[str, AnswerRead]]:
    """What the answer form shows: the round, its template and the answers so far."""
    row = _round(session, round_id)
    if country not in row.countries:
        raise RoundInvalid("the country is not part of this round", code="country_not_in_round")
    template = get_template(
        session=session, template_id=row.template_id, version=row.template_version
    )
    answers = {a.indicator_id: a for a in _answers(session, round_id) if a.country == country}
    session.expunge(row)
    session.rollback()
    return row, template, answers


def _answer_read(row: AnswerRow) -> AnswerRead:
    answered = row.answered_at
    return AnswerRead(
        round_id=row.round_id,
        country=row.country,
        indicator_id=row.indicator_id,
        value=row.value,
        score=row.score,
        answered_by=row.answered_by,
        answered_at=answered if answered.tzinfo is not None else answered.replace(tzinfo=UTC),
    )


def _answers(session: Session, round_id: str) -> list[AnswerRead]:
    rows = session.scalars(
        select(AnswerRow)
        .where(AnswerRow.round_id == round_id)
        .order_by(AnswerRow.country, AnswerRow.indicator_id)
    )
    return [_answer_read(r) for r in rows]


@dataclass(frozen=True)
class _Loaded:
    row: RoundRow
    template: Template
    queries: list[tuple[RoundQueryRow, QueryResult]]
    answers: list[AnswerRead]


def _load(session: Session, round_id: str, user: User) -> _Loaded:
    row = _round(session, round_id)
    template = get_template(
        session=session, template_id=row.template_id, version=row.template_version
    )
    links = list(
        session.scalars(
            select(RoundQueryRow)
            .where(RoundQueryRow.round_id == round_id)
            .order_by(RoundQueryRow.id)
        )
    )
    answers = _answers(session, round_id)
    session.expunge(row)
    for link in links:
        session.expunge(link)
    loaded = []
    for link in links:
        # `read_query` starts its own read-only transaction.
        session.rollback()
        loaded.append(
            (link, queries.read_query(session=session, query_id=UUID(link.query_id), user=user))
        )
    return _Loaded(row=row, template=template, queries=loaded, answers=answers)


def _node_state(result: QueryResult, country: str) -> str:
    outcomes = [n.outcome for n in result.nodes if n.country == country]
    if outcomes and all(o == "ok" for o in outcomes):
        return "done"
    if any(o == "pending" for o in outcomes) or result.status == "running":
        return "running"
    return "failed"


def read_round(*, session: Session, round_id: str, user: User) -> RoundRead:
    """The round with its status per country (DP indicators and self-reported answers)."""
    return _read_round(session, _load(session, round_id, user))


def round_progress(*, session: Session, round_id: str, user: User) -> RoundProgress:
    """The round's status per country and every query's answer per node (one load)."""
    loaded = _load(session, round_id, user)
    queries_progress = tuple(
        QueryProgress(
            indicator_id=link.indicator_id,
            breakdown=tuple(link.breakdown),
            query_id=link.query_id,
            status=result.status,
            nodes=result.nodes,
        )
        for link, result in loaded.queries
    )
    return RoundProgress(round=_read_round(session, loaded), queries=queries_progress)


def _read_round(session: Session, loaded: _Loaded) -> RoundRead:
    row = loaded.row
    to_answer = len(loaded.template.self_reported)
    per_country = []
    for country, agreement_id in row.countries.items():
        states = [_node_state(result, country) for _, result in loaded.queries]
        answered = sum(1 for a in loaded.answers if a.country == country)
        done, running, failed = (states.count(s) for s in ("done", "running", "failed"))
        if done == len(states) and answered >= to_answer:
            status = "complete"
        elif failed:
            status = "incomplete"
        else:
            status = "collecting"
        per_country.append(
            CountryStatus(
                country=country,
                agreement_id=agreement_id,
                status=status,
                dp_done=done,
                dp_running=running,
                dp_failed=failed,
                dp_total=len(states),
                answered=answered,
                to_answer=to_answer,
            )
        )
    session.rollback()
    created = row.created_at
    return RoundRead(
        round_id=row.round_id,
        template_id=row.template_id,
        template_version=row.template_version,
        period=row.period,
        status=row.status,
        dissemination=row.dissemination,
        created_by=row.created_by,
        created_at=created if created.tzinfo is not None else created.replace(tzinfo=UTC),
        countries=tuple(per_country),
    )


def list_rounds(*, session: Session) -> list[RoundRead]:
    ids = list(session.scalars(select(RoundRow.round_id).order_by(RoundRow.created_at)))
    session.rollback()
    out = []
    for round_id in ids:
        row = _round(session, round_id)
        created = row.created_at
        out.append(
            RoundRead(
                round_id=row.round_id,
                template_id=row.template_id,
                template_version=row.template_version,
                period=row.period,
                status=row.status,
                dissemination=row.dissemination,
                created_by=row.created_by,
                created_at=created if created.tzinfo is not None else created.replace(tzinfo=UTC),
                countries=(),
            )
        )
    session.rollback()
    return out


def round_results(*, session: Session, round_id: str, user: User) -> RoundResults:
    """Every DP estimate of the round by country and breakdown, and every answer."""
    loaded = _load(session, round_id, user)
    row = loaded.row
    values: list[ResultValue] = []
    complete = True
    for link, result in loaded.queries:
        complete &= result.status != "running"
        breakdown = tuple(link.breakdown)
        seen: set[str] = set()
        statuses = {n.node_id: n for n in result.nodes}
        for cell in result.cells:
            country, *levels = cell.key
            seen.add(country)
            values.append(
                ResultValue(
                    indicator_id=link.indicator_id,
                    country=country,
                    breakdown=breakdown,
                    levels=tuple(levels),
                    measure=result.spec.measure,
                    status="ok" if cell.status == "ok" else "suppressed",
                    estimate=cell.estimate,
                    ci95_low=cell.ci95_low,
                    ci95_high=cell.ci95_high,
                    reason=cell.reason,
                    nodes=tuple(statuses[n] for n in cell.nodes if n in statuses),
                )
            )
        for country in row.countries:
            if country not in seen and not breakdown:
                values.append(
                    ResultValue(
                        indicator_id=link.indicator_id,
                        country=country,
                        measure=result.spec.measure,
                        status="missing",
                        reason="no_answer",
                    )
                )
    session.rollback()
    return RoundResults(
        round_id=row.round_id,
        template_id=row.template_id,
        template_version=row.template_version,
        period=row.period,
        dissemination=row.dissemination,
        countries=tuple(row.countries),
        values=tuple(values),
        answers=tuple(loaded.answers),
        complete=complete,
    )


def previous_round_id(*, session: Session, round_id: str) -> str | None:
    """The latest earlier round of the same template over an earlier period."""
    row = _round(session, round_id)
    earlier = session.scalars(
        select(RoundRow.round_id)
        .where(
            RoundRow.template_id == row.template_id,
            RoundRow.period < row.period,
            RoundRow.round_id != row.round_id,
        )
        .order_by(RoundRow.period.desc(), RoundRow.created_at.desc())
    ).first()
    session.rollback()
    return earlier


def mark_failed(*, session: Session, round_id: str) -> None:
    row = _round(session, round_id)
    row.status = "failed"
    session.commit()


def close_round(*, session: Session, round_id: str, user: User) -> None:
    row = _round(session, round_id)
    row.status = "closed"
    audit.append(
        session=session,
        actor=f"user:{user.name}",
        action="assessment.round_closed",
        object=f"round:{round_id}",
        details={},
    )
    session.commit()


def compare_rounds(
    *, session: Session, round_id: str, user: User, previous_id: str | None = None
) -> Comparison:
    """Each estimate of the round against the same cell of an earlier round of its template."""
    current = round_results(session=session, round_id=round_id, user=user)
    earlier_id = previous_id or previous_round_id(session=session, round_id=round_id)
    previous = (
        round_results(session=session, round_id=earlier_id, user=user)
        if earlier_id is not None
        else None
    )
    if previous is not None and previous.template_id != current.template_id:
        raise RoundInvalid(
            "rounds of different templates cannot be compared", code="rounds_not_comparable"
        )
    return Comparison(
        round_id=round_id,
        previous_round_id=earlier_id,
        period=current.period,
        previous_period=previous.period if previous is not None else None,
        changes=comparison.compare(current, previous),
    )
