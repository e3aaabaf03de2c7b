"""Fact sheets read right at a glance: no interval that looks exact, the script's font inside
the HTML, the suppression legend where the symbol first appears, headers kept with rows."""

import random
import re

import pytest

from hub.assessments.schemas import Change, ResultValue, RoundResults
from hub.assessments.templates import shipped_templates
from hub.publications.factsheet import _Sheet, country_sheet, cross_country_sheet
from hub.publications.i18n import LANGUAGES

GROUPS = ("dalit", "disability", "sex_worker", "third_gender", "indigenous")
# "59% (59%–59%)" in any language's digits: the estimate, then the interval's two ends.
# (\d matches Devanagari and Bengali digits too.)
SHARE_CELL = re.compile(r"([\d.,]+)\s?%\s\(([\d.,]+)\s?%–([\d.,]+)\s?%\)")


def _values(country: str, seed: int) -> list[ResultValue]:
    """Every indicator and breakdown, with intervals from wide to far narrower than 1 point
    (SDMX can say 58.736 [58.718, 58.754]; the sheet must not say 59% (59%–59%))."""
    rng = random.Random(seed)
    halves = (0.04, 0.004, 0.0009, 0.00018, 0.00002)
    values = []
    for ind in shipped_templates()[0].dp_indicators:
        cells: list[tuple[tuple[str, ...], tuple[str, ...]]] = [((), ())]
        for dims in ind.breakdowns:
            if dims == ("group",):
                cells += [(dims, (g,)) for g in GROUPS]
        for dims, levels in cells:
            estimate = rng.uniform(0.05, 0.95) if ind.query.measure == "share" else 1234.5
            half = rng.choice(halves) * (1 if ind.query.measure == "share" else 1000)
            suppressed = levels == ("sex_worker",)
            values.append(
                ResultValue(
                    indicator_id=ind.id,
                    country=country,
                    breakdown=dims,
                    levels=levels,
                    measure=ind.query.measure,
                    status="suppressed" if suppressed else "ok",
                    estimate=None if suppressed else estimate,
                    ci95_low=None if suppressed else estimate - half,
                    ci95_high=None if suppressed else estimate + half,
                )
            )
    return values


def _results(countries: tuple[str, ...], seed: int) -> RoundResults:
    (template,) = shipped_templates()
    return RoundResults(
        round_id="r1",
        template_id=template.id,
        template_version=template.version,
        period="2026",
        dissemination="partners",
        countries=countries,
        values=tuple(v for i, c in enumerate(countries) for v in _values(c, seed + i)),
        answers=(),
        complete=True,
    )


def _collapsed(html: str) -> list[str]:
    html = html.rsplit("</style>", maxsplit=1)[-1]
    return [m.group(0) for m in SHARE_CELL.finditer(html) if m.group(2) == m.group(3)]


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_no_interval_collapses_to_one_number(language: str, seed: int) -> None:
    (template,) = shipped_templates()
    results = _results(("524", "050"), seed)
    for html in (
        country_sheet(
            results=results,
            template=template,
            country="524",
            language=language,
            audience="partners",
        ).html,
        cross_country_sheet(
            results=results, template=template, language=language, audience="partners"
        ).html,
    ):
        cells = SHARE_CELL.findall(html.rsplit("</style>", maxsplit=1)[-1])
        assert len(cells) >= 2, language  # the pattern reads this language's cells
        assert _collapsed(html) == [], language


def test_the_test_catches_an_exact_looking_interval() -> None:
    assert _collapsed("<td>59% (59%–59%)</td>") == ["59% (59%–59%)"]
    assert _collapsed("<td>५९% (५९%–५९%)</td>") == ["५९% (५९%–५९%)"]
    assert _collapsed("<td>58.7% (58.7%–58.8%)</td>") == []


def test_one_more_decimal_or_how_narrow_the_interval_is() -> None:
    sheet = _Sheet("en")
    assert sheet.with_interval(0.4, 0.35, 0.45, "share") == "40% (35%–45%)"
    assert sheet.with_interval(0.58736, 0.58718, 0.58754, "share") == "58.7% (58.7%–58.8%)"
    narrow = sheet.with_interval(0.58736, 0.58735, 0.58737, "share")
    assert narrow == "58.7% (interval under 0.1 percentage points)"
    assert sheet.with_interval(0.5, 0.5, 0.5, "share") == "50% (50%–50%)"  # truly exact
    assert sheet.with_interval(1234.3, 1234.2, 1234.4, "count") == "1,234.3 (1,234.2–1,234.4)"
    assert sheet.with_interval(1234.4, 1234.41, 1234.42, "count") == (
        "1,234.4 (interval under 0.1)"
    )
    ne = _Sheet("ne")
    assert ne.with_interval(0.58736, 0.58718, 0.58754, "share") == "५८.७% (५८.७%–५८.८%)"
    assert "साँघुरो" in ne.with_interval(0.58736, 0.58735, 0.58737, "share")


def test_change_rows_keep_their_interval_two_numbers() -> None:
    from hub.publications.factsheet import _change_row  # noqa: PLC0415

    change = Change(
        indicator_id="HEALTH_ACCESS",
        country="524",
        breakdown=(),
        levels=(),
        current=0.5874,
        previous=0.5850,
        change=0.0024,
        change_ci95_low=0.0018,
        change_ci95_high=0.0031,
        distinguishable=True,
    )
    row = _change_row(_Sheet("en"), change, "Health", "share")
    assert row["interval"] == "0.2% … 0.3%"
    assert row["change"] == "+0.2%"


@pytest.mark.parametrize(("language", "family"), [("ne", "Devanagari"), ("bn", "Bengali")])
def test_html_sheet_carries_the_font_of_its_script(language: str, family: str) -> None:
    (template,) = shipped_templates()
    html = country_sheet(
        results=_results(("524",), 1),
        template=template,
        country="524",
        language=language,
        audience="partners",
    ).html
    face = re.search(rf'@font-face {{ font-family: "Noto Sans {family}"; src: ([^}}]+)}}', html)
    assert face is not None
    assert 'url("data:font/woff2;base64,' in face.group(1)  # no install needed to read it
    english = country_sheet(
        results=_results(("524",), 1),
        template=template,
        country="524",
        language="en",
        audience="partners",
    ).html
    assert "data:font/woff2" not in english  # a Latin sheet stays small


def test_legend_beside_the_first_suppressed_cell_and_headers_kept_with_rows() -> None:
    (template,) = shipped_templates()
    html = country_sheet(
        results=_results(("524",), 1),
        template=template,
        country="524",
        language="en",
        audience="partners",
    ).html
    first_symbol = html.index('class="sym"', html.index('<section class="chart">'))
    first_legend = html.index('class="legend first"')
    next_chart = html.find('<section class="chart">', first_symbol)
    assert first_symbol < first_legend < next_chart  # in the chart of the first suppressed cell
    assert html.count('class="legend first"') == 1
    assert 'class="legend"' in html  # and again at the end
    assert "<thead><tr><th>Indicator</th>" in html
    assert "section.block { break-inside: avoid; }" in html
