"""Per-country and cross-country fact sheets of a round: charts first, 1–2 pages, HTML/PDF.

Every chart carries a one-line note on differential privacy and the data source; suppressed
cells are marked with a symbol explained in a legend; the document states its dissemination
level. Rendering is all-or-nothing: a refused audience or language raises before any output.
"""

import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from contracts.v1.agreement import DISSEMINATION_ORDER, Dissemination
from hub.assessments.schemas import Change, ResultValue, RoundResults
from hub.assessments.templates import ChoiceAnswer, SelfReportedIndicator, Template
from hub.exports.exceptions import DisseminationTooLow
from hub.publications.charts import Bar, bar_svg, suppressed_symbol
from hub.publications.exceptions import CountryNotInRound, LanguageUnknown, RoundNotFinished
from hub.publications.fonts import FAMILY_STACK, font_face_css
from hub.publications.i18n import LANGUAGES, Translator
from hub.web.i18n import significant_decimals

LEVEL_TEXT = {"public": "Public", "partners": "Partners only", "restricted": "Restricted"}
THEME_TEXT = {
    "basic_services": "Access to basic services",
    "violence": "Violence and reporting it",
    "education": "Education",
    "participation": "Participation",
    "partnership": "Partnership status",
}
DIM_TEXT = {"group": "By population group", "sex": "By sex"}
# English labels of dataset levels (the catalogues translate them).
LEVEL_LABELS = {
    "group": {
        "dalit": "Dalit",
        "disability": "Persons with disabilities",
        "sex_worker": "Sex workers",
        "third_gender": "Third-gender people",
        "indigenous": "Indigenous Peoples",
        "religious_minority": "Religious minority",
        "none": "None of these",
    },
    "sex": {"female": "Female", "male": "Male", "third_gender_other": "Third gender / other"},
}
CHOICE_TEXT = {"yes": "Yes", "no": "No", "in_progress": "In progress"}
NOTE = "Differentially private estimates with 95% intervals. Source: CSO household surveys."
PRIVACY_NOTE = (
    "Privacy: each node's answer costs ρ = %(rho)s (zCDP), that is (ε = %(epsilon)s,"
    " δ = %(delta)s)-differential privacy; %(mechanism)s noise, standard deviation %(scale)s."
)
MECHANISM_TEXT = {"discrete_gaussian": "discrete Gaussian", "gaussian": "Gaussian"}
LEGEND = "Suppressed: too few respondents or too uncertain to publish"
# An interval still one number at one more decimal than usual: say how narrow it is instead.
NARROW_SHARE = "%(estimate)s (interval under %(width)s percentage points)"
NARROW_NUMBER = "%(estimate)s (interval under %(width)s)"


@dataclass(frozen=True)
class Rendered:
    """A rendered fact sheet and the strings that fell back to English (a warning)."""

    html: str
    missing_translations: tuple[str, ...] = field(default=())


def check_audience(*, level: Dissemination, audience: Dissemination) -> None:
    """An audience broader than the agreements allow (e.g. public from partners-only)."""
    if DISSEMINATION_ORDER.index(audience) < DISSEMINATION_ORDER.index(level):
        raise DisseminationTooLow(level=level, asked=audience)


@cache
def _environment() -> Environment:
    return Environment(
        loader=PackageLoader("hub.publications", "templates"),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def decimals_for(measure: str) -> int:
    """Counts are whole numbers; means, sums and quantiles keep two places."""
    return 0 if measure in ("count", "histogram") else 2


class _Sheet:
    """Formatting helpers bound to one language."""

    def __init__(self, language: str) -> None:
        if language not in LANGUAGES:
            raise LanguageUnknown(LANGUAGES)
        self.t = Translator(language)

    def _(self, text: str) -> str:
        return self.t.gettext(text)

    def value_text(self, value: ResultValue) -> str:
        if value.status == "missing":
            return self._("No data")
        if value.status != "ok" or value.estimate is None:
            return self._("Suppressed")
        return self.with_interval(value.estimate, value.ci95_low, value.ci95_high, value.measure)

    def amount(self, value: float, measure: str, places: int) -> str:
        if measure == "share":
            return self.t.percent(value, decimals=places)
        return self.t.number(value, decimals=places)

    def with_interval(
        self, estimate: float, low: float | None, high: float | None, measure: str
    ) -> str:
        """ "59% (58%–60%)": the estimate and its 95% interval at a precision where the
        interval's ends differ (a narrow one gets one more decimal, or says how narrow it is:
        "59% (59%–59%)" would read as exact)."""
        base = 0 if measure == "share" else decimals_for(measure)
        if low is None or high is None:
            return self.amount(estimate, measure, base)
        for places in (base, base + 1):
            low_text, high_text = (self.amount(x, measure, places) for x in (low, high))
            if low_text != high_text or low == high:
                return f"{self.amount(estimate, measure, places)} ({low_text}–{high_text})"
        width = self.t.number(10.0 ** -(base + 1), decimals=base + 1)
        text = NARROW_SHARE if measure == "share" else NARROW_NUMBER
        return self._(text) % {"estimate": self.amount(estimate, measure, base + 1), "width": width}

    def interval_places(self, low: float, high: float, measure: str) -> int:
        """The decimals at which an interval's two ends read as two numbers (at most one
        more than usual)."""
        base = 0 if measure == "share" else decimals_for(measure)
        same = self.amount(low, measure, base) == self.amount(high, measure, base)
        return base + 1 if same and low != high else base

    def bar(self, label: str, value: ResultValue, *, emphasis: bool = False) -> Bar:
        ok = value.status == "ok" and value.estimate is not None
        return Bar(
            label=label,
            value=value.estimate if ok else None,
            low=value.ci95_low if ok else None,
            high=value.ci95_high if ok else None,
            text=self.value_text(value),
            suppressed=value.status == "suppressed",
            emphasis=emphasis,
        )

    def privacy_note(self, values: Sequence[ResultValue]) -> str | None:
        """The guarantee of the node answers behind `values` (ranges where nodes differ)."""
        nodes = {n.node_id: n for v in values for n in v.nodes if n.rho is not None}.values()
        if not nodes:
            return None

        def spread(numbers: Sequence[float], figures: int = 3) -> str:
            low, high = min(numbers), max(numbers)
            text = [self.significant(low, figures), self.significant(high, figures)]
            return text[0] if text[0] == text[1] else f"{text[0]}–{text[1]}"

        mechanisms = sorted(
            {self._(MECHANISM_TEXT.get(str(n.mechanism), str(n.mechanism))) for n in nodes}
        )
        return self._(PRIVACY_NOTE) % {
            "rho": spread([n.rho or 0.0 for n in nodes]),
            "epsilon": spread([n.epsilon or 0.0 for n in nodes]),
            "delta": self.t.digits(
                ", ".join(sorted({f"{n.delta:g}" for n in nodes if n.delta is not None}))
            ),
            "mechanism": ", ".join(mechanisms),
            "scale": spread([n.noise_scale or 0.0 for n in nodes]),
        }

    def significant(self, value: float, figures: int = 3) -> str:
        return self.t.number(value, decimals=significant_decimals(value, figures))

    def level_label(self, dim: str, level: str) -> str:
        return self._(LEVEL_LABELS.get(dim, {}).get(level, level))

    def answer_text(self, indicator: SelfReportedIndicator, value: str | float | None) -> str:
        if value is None:
            return self._("Not answered")
        if isinstance(indicator.answer, ChoiceAnswer) and isinstance(value, str):
            return self._(CHOICE_TEXT.get(value, value))
        return self.t.number(float(value))


def _scale(values: Sequence[ResultValue], measure: str) -> float:
    if measure == "share":
        return 1.0
    highs = [v.ci95_high or v.estimate or 0.0 for v in values if v.status == "ok"]
    return max([*highs, 1.0]) * 1.05


def _chart(
    sheet: _Sheet,
    title: str,
    measure: str,
    groups: list[tuple[str, list[Bar]]],
    values: Sequence[ResultValue],
) -> dict[str, object]:
    scale = _scale(values, measure)
    return {
        "title": title,
        "groups": [
            {"heading": heading, "rows": [{"bar": b, "svg": bar_svg(b, scale=scale)} for b in bars]}
            for heading, bars in groups
            if bars
        ],
        "unit": sheet._("Percent") if measure == "share" else sheet._("Number"),
        "privacy": sheet.privacy_note(values),
    }


def _common(
    sheet: _Sheet, results: RoundResults, audience: Dissemination, title: str
) -> dict[str, object]:
    return {
        "lang": sheet.t.language,
        "title": title,
        "period": sheet.t.digits(results.period),
        "level": sheet._(LEVEL_TEXT[audience]),
        "note": sheet._(NOTE),
        "legend": sheet._(LEGEND),
        "symbol": suppressed_symbol(),
        "font_stack": FAMILY_STACK,
        "generated": sheet.t.digits(datetime.now(UTC).strftime("%Y-%m-%d")),
        "_": sheet._,
    }


def _finish(
    sheet: _Sheet, template_name: str, context: dict[str, object], *, embed_fonts: bool
) -> Rendered:
    charts = context.get("charts")
    if isinstance(charts, list):
        # The legend goes beside the first suppressed cell (its chart never splits across
        # pages), so a reader meets it where the symbol first appears; it repeats at the end.
        for chart in charts:
            if any(row["bar"].suppressed for group in chart["groups"] for row in group["rows"]):
                chart["legend_here"] = True
                break
    faces = font_face_css(embed_files=embed_fonts, language=sheet.t.language)
    context["font_faces"] = Markup(faces)  # noqa: S704 - our own CSS
    html = _environment().get_template(template_name).render(**context)
    return Rendered(html=html, missing_translations=tuple(sorted(sheet.t.missing)))


def country_sheet(
    *,
    results: RoundResults,
    template: Template,
    country: str,
    language: str,
    audience: Dissemination,
    changes: Sequence[Change] | None = None,
    previous_period: str | None = None,
    embed_fonts: bool = False,
) -> Rendered:
    """One country's fact sheet (`changes`: the comparison with the previous round, if any)."""
    check_audience(level=results.dissemination, audience=audience)
    sheet = _Sheet(language)
    if country not in results.countries:
        raise CountryNotInRound()
    if not results.complete:
        raise RoundNotFinished()
    mine = [v for v in results.values if v.country == country]
    charts = []
    for ind in template.dp_indicators:
        values = [v for v in mine if v.indicator_id == ind.id]
        groups: list[tuple[str, list[Bar]]] = [
            (
                "",
                [sheet.bar(sheet._("Total"), v, emphasis=True) for v in values if not v.breakdown],
            )
        ]
        for dims in ind.breakdowns:
            if len(dims) != 1:
                continue
            (dim,) = dims
            rows = [v for v in values if v.breakdown == dims]
            order = list(LEVEL_LABELS.get(dim, {}))
            rows.sort(key=lambda v: order.index(v.levels[0]) if v.levels[0] in order else 99)
            groups.append(
                (
                    sheet._(DIM_TEXT.get(dim, dim)),
                    [sheet.bar(sheet.level_label(dim, v.levels[0]), v) for v in rows],
                )
            )
        charts.append(
            {
                "theme": sheet._(THEME_TEXT[ind.theme]),
                **_chart(sheet, sheet._(ind.title), ind.query.measure, groups, values),
            }
        )
    answers = {a.indicator_id: a for a in results.answers if a.country == country}
    reported = [
        {
            "title": sheet._(ind.title),
            "theme": sheet._(THEME_TEXT[ind.theme]),
            "answer": sheet.answer_text(ind, answers[ind.id].value if ind.id in answers else None),
            "score": (
                f"{sheet.t.number(answers[ind.id].score)} / "
                f"{sheet.t.number(template.max_rubric_score)}"
                if ind.id in answers
                else "–"
            ),
        }
        for ind in template.self_reported
    ]
    change_rows = None
    if changes is not None:
        titles = {i.id: i.title for i in template.dp_indicators}
        measures = {i.id: i.query.measure for i in template.dp_indicators}
        change_rows = [
            _change_row(sheet, c, titles[c.indicator_id], measures[c.indicator_id])
            for c in changes
            if c.country == country and not c.breakdown and c.indicator_id in titles
        ]
    country_name = sheet.t.country(country)
    context = _common(
        sheet, results, audience, f"{sheet._('LNOB assessment fact sheet')}: {country_name}"
    )
    context.update(
        {
            "country": country_name,
            "charts": charts,
            "reported": reported,
            "changes": change_rows,
            "previous_period": sheet.t.digits(previous_period or ""),
        }
    )
    return _finish(sheet, "country.html", context, embed_fonts=embed_fonts)


def _change_row(sheet: _Sheet, change: Change, title: str, measure: str) -> dict[str, str]:
    places = (
        sheet.interval_places(change.change_ci95_low, change.change_ci95_high, measure)
        if change.change_ci95_low is not None and change.change_ci95_high is not None
        else (0 if measure == "share" else decimals_for(measure))
    )

    def fmt(value: float | None, *, signed: bool = False) -> str:
        if value is None:
            return "–"
        text = sheet.amount(value, measure, places)
        return ("+" + text) if signed and value > 0 else text

    interval = (
        f"{fmt(change.change_ci95_low)} … {fmt(change.change_ci95_high)}"
        if change.change_ci95_low is not None
        else ""
    )
    flag = {
        True: sheet._("Distinguishable from noise"),
        False: sheet._("Within noise"),
        None: "–",
    }[change.distinguishable]
    return {
        "title": sheet._(title),
        "previous": fmt(change.previous),
        "current": fmt(change.current),
        "change": fmt(change.change, signed=True),
        "interval": interval,
        "flag": flag,
    }


def cross_country_sheet(
    *,
    results: RoundResults,
    template: Template,
    language: str,
    audience: Dissemination,
    embed_fonts: bool = False,
) -> Rendered:
    """Every country side by side: the totals of each DP indicator, then the answers."""
    check_audience(level=results.dissemination, audience=audience)
    sheet = _Sheet(language)
    if not results.complete:
        raise RoundNotFinished()
    charts = []
    for ind in template.dp_indicators:
        values = [v for v in results.values if v.indicator_id == ind.id and not v.breakdown]
        values.sort(key=lambda v: sheet.t.country(v.country))
        bars = [sheet.bar(sheet.t.country(v.country), v) for v in values]
        charts.append(
            {
                "theme": sheet._(THEME_TEXT[ind.theme]),
                **_chart(
                    sheet,
                    sheet._(ind.title),
                    ind.query.measure,
                    [(sheet._("By country"), bars)],
                    values,
                ),
            }
        )
    countries = sorted(results.countries, key=sheet.t.country)
    answers = {(a.country, a.indicator_id): a for a in results.answers}
    reported = [
        {
            "title": sheet._(ind.title),
            "cells": [
                sheet.answer_text(
                    ind,
                    answers[(c, ind.id)].value if (c, ind.id) in answers else None,
                )
                for c in countries
            ],
        }
        for ind in template.self_reported
    ]
    context = _common(sheet, results, audience, sheet._("Cross-country comparison"))
    context.update(
        {
            "countries": [sheet.t.country(c) for c in countries],
            "charts": charts,
            "reported": reported,
        }
    )
    return _finish(sheet, "cross_country.html", context, embed_fonts=embed_fonts)


def to_pdf(html: str) -> bytes:
    """The fact sheet as PDF (WeasyPrint; fonts embedded from the pip packages)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="HarfBuzz-Subset", category=DeprecationWarning)
        from weasyprint import HTML  # noqa: PLC0415 - loads Pango; only PDFs need it

    pdf = HTML(string=html).write_pdf()
    assert pdf is not None
    return bytes(pdf)
