"""Templates, comparison and locale formatting, without a hub (pure and fast)."""

from decimal import Decimal

import pytest

from hub.assessments.comparison import Z95, change_of
from hub.assessments.exceptions import TemplateInvalid
from hub.assessments.schemas import ResultValue
from hub.assessments.templates import (
    catalogue_from_contracts,
    check_template,
    parse_template,
    shipped_templates,
    validate_template,
)
from hub.publications.i18n import LANGUAGES, Translator, catalogue
from sauti.demo.codebook import COUNTRIES, make_contract


def demo_catalogue() -> dict[str, object]:
    return catalogue_from_contracts([make_contract(c) for c in COUNTRIES])  # type: ignore[return-value]


def test_shipped_lnob_template_covers_the_themes_and_fits_the_demo_data() -> None:
    (template,) = shipped_templates()
    assert template.id == "lnob-core"
    assert {i.theme for i in template.indicators} == {
        "basic_services",
        "violence",
        "education",
        "participation",
        "partnership",
    }
    assert (
        check_template(template, catalogue_from_contracts([make_contract(c) for c in COUNTRIES]))
        == []
    )
    assert sum(i.rho_per_node for i in template.dp_indicators) == Decimal("0.26")


def test_unknown_references_are_named_by_indicator() -> None:
    (_template,) = shipped_templates()
    text = (
        "id: tt\nversion: 1\ntitle: T\nindicators:\n"
        "  - {id: A_ONE, kind: dp, theme: education, title: A, breakdowns: [[], [caste]],\n"
        "     query: {dataset: lnob_household, measure: share, column: education,\n"
        "             value: phd, rho: 0.1}}\n"
        "  - {id: B_TWO, kind: dp, theme: education, title: B,\n"
        "     query: {dataset: census, measure: count, rho: 0.1}}\n"
    )
    bad = parse_template(text)
    with pytest.raises(TemplateInvalid) as caught:
        validate_template(bad, catalogue_from_contracts([make_contract(c) for c in COUNTRIES]))
    problems = caught.value.problems
    assert "indicator A_ONE: 'education' has no such level" in problems
    assert "indicator A_ONE: unknown breakdown dim 'caste'" in problems
    assert "indicator B_TWO: unknown dataset 'census'" in problems
    assert caught.value.code == "template_unknown_reference"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("id: tt\nversion: 1\ntitle: T\nindicators: []\n", "indicators"),
        (
            "id: tt\nversion: 1\ntitle: T\nindicators:\n  - {id: X1, kind: self_reported, "
            "theme: partnership, title: X, answer: {type: number, minimum: 5, maximum: 1}}\n",
            "indicator X1: answer.number",
        ),
        (
            "id: tt\nversion: 1\ntitle: T\nindicators:\n  - {id: X1, kind: self_reported, "
            "theme: partnership, title: X,\n"
            "     answer: {type: choice, options: [a, b], scores: {a: 1}}}\n",
            "indicator X1: answer.choice",
        ),
        ("- just a list\n", "mapping"),
        ("id: tt\n  bad: [", "not valid YAML"),
    ],
)
def test_malformed_templates_say_where(text: str, expected: str) -> None:
    with pytest.raises(TemplateInvalid) as caught:
        parse_template(text)
    assert expected in caught.value.message


def value(estimate: float, half: float, status: str = "ok") -> ResultValue:
    return ResultValue(
        indicator_id="X",
        country="524",
        measure="share",
        status=status,  # type: ignore[arg-type]
        estimate=estimate if status == "ok" else None,
        ci95_low=estimate - half if status == "ok" else None,
        ci95_high=estimate + half if status == "ok" else None,
    )


def test_change_interval_adds_variances() -> None:
    change = change_of(value(0.50, 0.03), value(0.40, 0.04))
    assert change is not None
    assert change.change == pytest.approx(0.10)
    half = Z95 * ((0.03 / Z95) ** 2 + (0.04 / Z95) ** 2) ** 0.5
    assert change.change_ci95_low == pytest.approx(0.10 - half)
    assert half == pytest.approx(0.05)
    assert change.distinguishable is True
    small = change_of(value(0.42, 0.03), value(0.40, 0.04))
    assert small is not None
    assert small.distinguishable is False
    gone = change_of(value(0.42, 0.03), value(0.0, 0.0, status="suppressed"))
    assert gone is not None
    assert gone.change is None
    assert gone.distinguishable is None


def test_every_catalogue_is_complete_and_numbers_follow_the_locale() -> None:
    english = catalogue("ne")
    assert english is not None
    ids = {m.id for m in english if m.id}
    for language in LANGUAGES[1:]:
        found = catalogue(language)
        assert found is not None
        assert {m.id for m in found if m.id and m.string} == ids, language
    assert Translator("ne").number(1234567) == "१२,३४,५६७"
    assert Translator("bn").percent(0.425) == "৪৩%" or Translator("bn").percent(0.425) == "৪২%"
    assert Translator("vi").percent(0.4234, decimals=1) == "42,3%"
    assert Translator("sw").country("404") == "Kenya"
    assert Translator("en").country("704") == "Viet Nam"
    translator = Translator("bn")
    assert translator.gettext("A string nobody translated") == "A string nobody translated"
    assert translator.missing == {"A string nobody translated"}


def test_fact_sheet_marks_suppressed_and_missing_cells_and_states_its_level() -> None:
    from contracts.v1 import NodeStatus  # noqa: PLC0415
    from hub.assessments.schemas import RoundResults  # noqa: PLC0415
    from hub.exports.exceptions import DisseminationTooLow  # noqa: PLC0415
    from hub.publications.factsheet import country_sheet  # noqa: PLC0415

    (template,) = shipped_templates()
    node = NodeStatus(
        node_id="np-cso",
        country="524",
        outcome="ok",
        rho=0.02,
        epsilon=1.0234,
        delta=1e-7,
        mechanism="discrete_gaussian",
        noise_scale=5.0,
    )
    values = (
        value(0.4, 0.05).model_copy(update={"indicator_id": "HEALTH_ACCESS", "nodes": (node,)}),
        value(0.0, 0.0, status="suppressed").model_copy(
            update={"indicator_id": "VIOLENCE_12M", "reason": "below_min_cell_size"}
        ),
        ResultValue(indicator_id="NO_SCHOOLING", country="524", measure="share", status="missing"),
    )
    results = RoundResults(
        round_id="r1",
        template_id=template.id,
        template_version=template.version,
        period="2026",
        dissemination="partners",
        countries=("524",),
        values=values,
        answers=(),
        complete=True,
    )
    sheet = country_sheet(
        results=results, template=template, country="524", language="ne", audience="restricted"
    )
    html = sheet.html
    assert "प्रतिबन्धित" in html  # "Restricted": the level the document is published at
    assert "रोकिएको" in html  # the suppressed cell, with the legend
    assert "तथ्याङ्क छैन" in html  # no data
    assert "४०% (३५%–४५%)" in html
    assert html.count('class="sym"') >= 2  # the symbol in the cell and in the legend
    # The privacy note under the chart: rho, epsilon at delta, mechanism, noise sd.
    assert "ρ = ०.०२ (zCDP)" in html
    assert "ε = १.०२, δ = १e-०७" in html
    assert "असतत गाउसियन नोइज, मानक विचलन ५" in html
    assert sheet.missing_translations == ()
    with pytest.raises(DisseminationTooLow):
        country_sheet(
            results=results, template=template, country="524", language="ne", audience="public"
        )
