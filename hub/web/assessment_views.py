"""View models of the assessment pages, arranged from `hub.assessments` and `hub.publications`.

Template text (indicator titles, country names) is shown in the reader's language through
the fact sheets' own catalogues (`hub.publications.i18n`), so a page and a fact sheet name
an indicator the same way; text without a translation stays English and is marked so.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from contracts import budget as exact
from contracts.v1.agreement import DISSEMINATION_ORDER
from contracts.v1.result import NodeStatus
from hub.agreements import service as agreements
from hub.assessments import service as assessments
from hub.assessments.schemas import (
    Change,
    CountryStatus,
    RoundCreate,
    RoundPlan,
    RoundRead,
    TemplateSummary,
)
from hub.assessments.templates import (
    ChoiceAnswer,
    DpIndicator,
    NumberAnswer,
    RubricAnswer,
)
from hub.auth.schemas import User
from hub.nodes import service as federation
from hub.publications.factsheet import LEVEL_LABELS
from hub.publications.i18n import Translator
from hub.publications.service import MEDIA_TYPES

PERIOD = re.compile(r"^\d{4}(-Q[1-4]|-S[12]|-\d{2})?$")
FORMATS = tuple(MEDIA_TYPES)
AUDIENCES = DISSEMINATION_ORDER
# The largest template YAML a page accepts (the API's own limit, in characters).
TEMPLATE_MAX_BYTES = 200_000


@dataclass(frozen=True)
class Text:
    """A piece of template text and whether it is in the reader's language."""

    text: str
    translated: bool


def _text(translator: Translator, message: str) -> Text:
    shown = translator.gettext(message)
    return Text(shown, translator.language == "en" or shown != message)


# --- index ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TemplateRow:
    summary: TemplateSummary
    title: Text


@dataclass(frozen=True)
class RoundRow:
    round: RoundRead
    title: Text


def index(*, session: Session, language: str) -> tuple[list[TemplateRow], list[RoundRow]]:
    tr = Translator(language)
    templates = [
        TemplateRow(summary=t, title=_text(tr, t.title))
        for t in assessments.list_templates(session=session)
    ]
    titles = {(t.summary.template_id, t.summary.version): t.title for t in templates}
    rounds = [
        RoundRow(
            round=r,
            title=titles.get((r.template_id, r.template_version), Text(r.template_id, True)),
        )
        for r in reversed(assessments.list_rounds(session=session))
    ]
    return templates, rounds


# --- planning ---------------------------------------------------------------------------


@dataclass(frozen=True)
class CountryChoice:
    m49: str
    name: str
    agreements: tuple[str, ...]


@dataclass(frozen=True)
class PlanChoices:
    templates: list[TemplateRow]
    countries: list[CountryChoice]


def plan_choices(*, session: Session, language: str) -> PlanChoices:
    """Templates, and every country with an active node under an agreement in force."""
    tr = Translator(language)
    templates, _ = index(session=session, language=language)
    nodes = {n.node_id: n for n in federation.list_nodes(session=session) if n.status == "active"}
    by_country: dict[str, set[str]] = {}
    for read in agreements.list_agreements(session=session):
        if read.status != "active":
            continue
        terms = read.agreement.terms
        for node_id in terms.node_ids:
            if node_id in nodes:
                by_country.setdefault(nodes[node_id].country, set()).add(terms.agreement_id)
    session.rollback()
    countries = [
        CountryChoice(m49=m49, name=tr.country(m49), agreements=tuple(sorted(ids)))
        for m49, ids in by_country.items()
    ]
    return PlanChoices(templates=templates, countries=sorted(countries, key=lambda c: c.name))


@dataclass
class RoundForm:
    """What the plan form posted, kept as typed, and its problems by field id."""

    values: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    body: RoundCreate | None = None


def round_form(form: Mapping[str, Any], choices: PlanChoices) -> RoundForm:
    """Check the plan form field by field; `errors` holds codes the page words."""
    values = {k: v.strip() for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}
    out = RoundForm(values=values)
    template_id, _, version = values.get("template", "").partition(":")
    known = {f"{t.summary.template_id}:{t.summary.version}" for t in choices.templates}
    if values.get("template", "") not in known:
        out.errors["template"] = "template_choose"
    period = values.get("period", "")
    if not PERIOD.fullmatch(period):
        out.errors["period"] = "period_format"
    countries = {}
    for country in choices.countries:
        chosen = values.get(f"country_{country.m49}", "")
        if chosen and chosen not in country.agreements:
            out.errors[f"country_{country.m49}"] = "agreement_choose"
        elif chosen:
            countries[country.m49] = chosen
    if not countries and not any(k.startswith("country_") for k in out.errors):
        out.errors["countries"] = "countries_none"
    if not out.errors:
        try:
            out.body = RoundCreate(
                template_id=template_id,
                template_version=int(version),
                period=period,
                countries=countries,
            )
        except (ValidationError, ValueError):
            out.errors["countries"] = "countries_too_many"
    return out


@dataclass(frozen=True)
class NodeBudget:
    node_name: str
    country: str
    agreement_id: str
    rho_before: Decimal
    rho_needed: Decimal
    rho_after: Decimal
    affordable: bool


def plan_rows(*, session: Session, plan: RoundPlan, language: str) -> list[NodeBudget]:
    """Each node's budget before and after the round (never below zero: short is flagged)."""
    tr = Translator(language)
    names = {n.node_id: n.name for n in federation.list_nodes(session=session)}
    session.rollback()
    return [
        NodeBudget(
            node_name=names.get(c.node_id, c.node_id),
            country=tr.country(c.country),
            agreement_id=c.agreement_id,
            rho_before=c.rho_remaining,
            rho_needed=c.rho_needed,
            rho_after=exact.remaining(c.rho_remaining, c.rho_needed),
            affordable=c.shortfall == 0,
        )
        for c in plan.nodes
    ]


# --- a round ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CountryView:
    status: CountryStatus
    name: str
    # done: every DP query answered by this country's nodes; running; failed.
    dp_state: str


@dataclass(frozen=True)
class QueryRow:
    title: Text
    breakdown: tuple[str, ...]
    status: str
    # One cell per node of the round, in `RoundView.nodes` order (None: not asked).
    outcomes: tuple[NodeStatus | None, ...]


@dataclass(frozen=True)
class NodeColumn:
    node_id: str
    name: str
    country: str


@dataclass(frozen=True)
class RoundView:
    round: RoundRead
    title: Text
    countries: list[CountryView]
    nodes: list[NodeColumn]
    queries: list[QueryRow]
    running: bool
    dp_done: int
    dp_total: int


def _dp_state(status: CountryStatus) -> str:
    if status.dp_running:
        return "running"
    if status.dp_failed:
        return "failed"
    return "done"


def round_view(*, session: Session, round_id: str, user: User, language: str) -> RoundView:
    tr = Translator(language)
    progress = assessments.round_progress(session=session, round_id=round_id, user=user)
    read = progress.round
    template = assessments.get_template(
        session=session, template_id=read.template_id, version=read.template_version
    )
    names = {n.node_id: n.name for n in federation.list_nodes(session=session)}
    session.rollback()
    seen: dict[str, NodeColumn] = {}
    for q in progress.queries:
        for n in q.nodes:
            seen.setdefault(
                n.node_id,
                NodeColumn(n.node_id, names.get(n.node_id, n.node_id), tr.country(n.country or "")),
            )
    nodes = sorted(seen.values(), key=lambda c: (c.country, c.name))
    rows = []
    for q in progress.queries:
        by_node = {n.node_id: n for n in q.nodes}
        indicator = template.indicator(q.indicator_id)
        title = indicator.title if indicator is not None else q.indicator_id
        rows.append(
            QueryRow(
                title=_text(tr, title),
                breakdown=q.breakdown,
                status=q.status,
                outcomes=tuple(by_node.get(c.node_id) for c in nodes),
            )
        )
    countries = [
        CountryView(status=c, name=tr.country(c.country), dp_state=_dp_state(c))
        for c in read.countries
    ]
    return RoundView(
        round=read,
        title=_text(tr, template.title),
        countries=sorted(countries, key=lambda c: c.name),
        nodes=nodes,
        queries=rows,
        running=any(q.status == "running" for q in progress.queries),
        dp_done=sum(1 for q in progress.queries if q.status != "running"),
        dp_total=len(progress.queries),
    )


# --- answers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    value: str
    label: Text


@dataclass(frozen=True)
class AnswerItem:
    id: str
    title: Text
    kind: str
    options: tuple[Option, ...]
    minimum: float | None
    maximum: float | None
    integer: bool
    current: str
    error: bool


@dataclass(frozen=True)
class AnswersView:
    round_id: str
    title: Text
    period: str
    status: str
    country: str
    country_name: str
    items: list[AnswerItem]
    # The countries this reader may answer for, in name order (navigation between them).
    countries: list[tuple[str, str]]
    # This country's queries and answers so far; for those who may read the round's results.
    progress: CountryView | None


_CHOICE_LABELS = {"yes": "Yes", "no": "No", "in_progress": "In progress"}
# Who reads the round's queries (the API's readers of rounds); a country team sees its form.
ROUND_READERS = ("secretariat", "admin", "auditor")


def answers_view(
    *,
    session: Session,
    round_id: str,
    country: str,
    user: User,
    language: str,
    typed: Mapping[str, str] | None = None,
    bad: frozenset[str] = frozenset(),
) -> AnswersView:
    """The answer form: each item with what is stored, or what was just typed."""
    tr = Translator(language)
    row, template, answers = assessments.answer_form_data(
        session=session, round_id=round_id, country=country
    )
    progress = None
    if any(user.has(r) for r in ROUND_READERS):
        view = round_view(session=session, round_id=round_id, user=user, language=language)
        progress = next((c for c in view.countries if c.status.country == country), None)
    items = []
    for ind in template.self_reported:
        spec = ind.answer
        stored = answers.get(ind.id)
        current = "" if stored is None else _answer_text(stored.value)
        if typed is not None:
            current = typed.get(ind.id, "")
        options: tuple[Option, ...] = ()
        if isinstance(spec, ChoiceAnswer):
            options = tuple(
                Option(o, _text(tr, _CHOICE_LABELS.get(o, o.replace("_", " "))))
                for o in spec.options
            )
        elif isinstance(spec, RubricAnswer):
            options = tuple(
                Option(str(level.score), _text(tr, level.description)) for level in spec.levels
            )
        items.append(
            AnswerItem(
                id=ind.id,
                title=_text(tr, ind.title),
                kind=spec.type,
                options=options,
                minimum=spec.minimum if isinstance(spec, NumberAnswer) else None,
                maximum=spec.maximum if isinstance(spec, NumberAnswer) else None,
                integer=isinstance(spec, NumberAnswer) and spec.integer,
                current=current,
                error=ind.id in bad,
            )
        )
    allowed = sorted(
        (
            (code, tr.country(code))
            for code in row.countries
            if assessments.may_answer(session=session, user=user, country=code)
        ),
        key=lambda pair: pair[1],
    )
    session.rollback()
    return AnswersView(
        round_id=row.round_id,
        title=_text(tr, template.title),
        period=row.period,
        status=row.status,
        country=country,
        country_name=tr.country(country),
        items=items,
        countries=allowed,
        progress=progress,
    )


def _answer_text(value: str | float) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


# --- comparison -------------------------------------------------------------------------


@dataclass(frozen=True)
class ChangeRow:
    change: Change
    title: Text
    country: str
    # share: values are proportions, shown as percent and changes as points.
    measure: str


@dataclass(frozen=True)
class ComparisonView:
    round: RoundRead
    title: Text
    previous: RoundRead | None
    candidates: list[RoundRead]
    rows: list[ChangeRow]


def comparison_view(
    *, session: Session, round_id: str, user: User, language: str, previous_id: str | None
) -> ComparisonView:
    tr = Translator(language)
    read = assessments.read_round(session=session, round_id=round_id, user=user)
    template = assessments.get_template(
        session=session, template_id=read.template_id, version=read.template_version
    )
    candidates = [
        r
        for r in assessments.list_rounds(session=session)
        if r.template_id == read.template_id and r.round_id != round_id
    ]
    if previous_id is not None and previous_id not in {r.round_id for r in candidates}:
        previous_id = None
    result = assessments.compare_rounds(
        session=session, round_id=round_id, user=user, previous_id=previous_id
    )
    previous = next((r for r in candidates if r.round_id == result.previous_round_id), None)
    rows = []
    for change in result.changes:
        indicator = template.indicator(change.indicator_id)
        measure = indicator.query.measure if isinstance(indicator, DpIndicator) else "count"
        title = indicator.title if indicator is not None else change.indicator_id
        rows.append(
            ChangeRow(
                change=change,
                title=_text(tr, title),
                country=tr.country(change.country),
                measure=measure,
            )
        )
    session.rollback()
    return ComparisonView(
        round=read,
        title=_text(tr, template.title),
        previous=previous,
        candidates=candidates,
        rows=rows,
    )


def level_label(language: str, dim: str, level: str) -> Text:
    """A breakdown level (e.g. `dalit`) by the fact sheets' label for it, if they have one."""
    return _text(Translator(language), LEVEL_LABELS.get(dim, {}).get(level, level))


# --- publishing -------------------------------------------------------------------------


@dataclass
class PublishForm:
    values: dict[str, str] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)


def publish_form(
    form: Mapping[str, Any], *, read: RoundRead, languages: tuple[str, ...]
) -> PublishForm:
    values = {k: v.strip() for k, v in form.items() if isinstance(v, str) and k != "csrf_token"}
    out = PublishForm(values=values)
    if values.get("format") not in FORMATS:
        out.errors["format"] = "format_choose"
    if values.get("lang") not in languages:
        out.errors["lang"] = "lang_choose"
    audience = values.get("audience", "")
    if audience not in AUDIENCES:
        out.errors["audience"] = "audience_choose"
    elif DISSEMINATION_ORDER.index(audience) < DISSEMINATION_ORDER.index(read.dissemination):
        out.errors["audience"] = "audience_too_broad"
    country = values.get("country", "")
    if country and country not in {c.country for c in read.countries}:
        out.errors["country"] = "country_choose"
    return out
