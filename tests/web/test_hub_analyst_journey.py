"""The analyst's journey in Chromium, in English and Bengali, over the demo's real servers.

Login → the builder, built from the agreement and the nodes' signed contracts → each measure
(count, share, sum, mean, quantile, histogram) from pick-lists → run → table and chart →
CSV, XLSX and SDMX where SDMX can be produced (else its reason is shown). A changed
agreement never runs under the old one; a level no node knows is stopped at the hub with a
translated message beside its field, no query recorded. Every page visited is checked
with axe-core at 1280×800 and 390×844, and no page is wider than its viewport.
"""

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from guide_shots import languages, shot
from playwright.sync_api import Browser, Page, expect

from contracts.v1 import SignedAgreement
from node.agreements import service as node_agreements
from sauti.demo.data import demo_nodes
from sauti.demo.run import demo_terms, federation, hub_web_logins
from tests.web.builder_support import choose

AXE = Path(__file__).parent / "vendor" / "axe.min.js"
# The elements reaching past the right edge of the screen (what makes a page scroll sideways).
WIDER_THAN_SCREEN = """() => [...document.querySelectorAll('body *')]
  .filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5)
  .slice(-5).map(e => e.tagName + '.' + e.className + '#' + e.id)"""
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
ALL_MEASURES = ("count", "share", "sum", "mean", "quantile", "histogram")
AGREEMENT = "lnob-all-measures"
SIZES = ({"width": 1280, "height": 800}, {"width": 390, "height": 844})
# What the Bengali page says where English says it (checked so a language slip shows).
WORDS = {
    "en": {
        "changed": "The agreement changed after the options were shown",
        "bad_level": "is not one of the levels the nodes' datasets use",
    },
    "bn": {
        "changed": "বিকল্পগুলো দেখানোর পরে চুক্তি বদলে গেছে",
        "bad_level": "নোডগুলোর ডেটাসেটে ব্যবহৃত স্তরগুলোর একটি নয়",
    },
}


@dataclass(frozen=True)
class Site:
    url: str
    password: str
    analyst_token: str
    demo_agreement: str


def _all_measures_agreement(fed: Any, nodes: list[Any]) -> None:
    """A second agreement allowing every measure on the numeric column too (per node)."""
    terms = demo_terms(nodes=nodes, aggregation="per_node").model_copy(
        update={
            "agreement_id": AGREEMENT,
            "title": "LNOB services: every measure",
            "measures": ALL_MEASURES,
            "columns": (*demo_terms(nodes=nodes).columns, "satisfaction"),
            "rho_budget": 20.0,
        }
    )
    headers = {"Authorization": f"Bearer {fed.secretariat_token}"}
    with httpx.Client(base_url=fed.hub_url, headers=headers, timeout=60) as client:
        assert client.post("/v1/agreements/drafts", json=terms.model_dump(mode="json")).is_success
        proposed = client.post(f"/v1/agreements/{AGREEMENT}/versions/1/propose")
        assert proposed.is_success, proposed.text
        signed = SignedAgreement.model_validate(proposed.json()["agreement"])
        for home in fed.node_homes.values():
            signature = node_agreements.sign(home=home, agreement=signed)
            posted = client.post(
                f"/v1/agreements/{AGREEMENT}/signatures", json=signature.model_dump(mode="json")
            )
            assert posted.is_success, posted.text


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    work = tmp_path_factory.mktemp("journey")
    nodes = demo_nodes(rows=400)
    with federation(work=work, nodes=nodes) as fed:
        _all_measures_agreement(fed, nodes)
        password, _ = hub_web_logins(fed.hub_home, nodes)
        yield Site(
            url=fed.hub_url,
            password=password,
            analyst_token=fed.analyst_token,
            demo_agreement=fed.agreement_id,
        )


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A page that lets axe-core's injected script past the pages' CSP; downloads allowed."""
    context = browser.new_context(viewport=SIZES[0], bypass_csp=True, accept_downloads=True)
    try:
        yield context.new_page()
    finally:
        context.close()


def check_page(page: Page, name: str) -> None:
    """No axe-core violation and no sideways scrolling, at a desktop's and a phone's size."""
    for size in SIZES:
        page.set_viewport_size(size)
        page.add_script_tag(path=str(AXE))
        result: dict[str, Any] = page.evaluate("axe.run()")
        problems = [(v["id"], [n["target"] for n in v["nodes"]][:3]) for v in result["violations"]]
        assert problems == [], f"{name} at {size['width']}px: {problems}"
        wide = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert wide[0] <= wide[1], f"{name} at {size['width']}px is {wide[0]}px wide: " + str(
            page.evaluate(WIDER_THAN_SCREEN)
        )
        SHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SHOTS / f"hub-journey-{name}-{size['width']}.png"), full_page=True)
    page.set_viewport_size(SIZES[0])


def queries_recorded(site: Site) -> int:
    headers = {"Authorization": f"Bearer {site.analyst_token}"}
    with httpx.Client(base_url=site.url, headers=headers, timeout=30) as client:
        return len(client.get("/v1/queries").json())


def login(page: Page, site: Site, lang: str) -> None:
    page.goto(f"{site.url}/login")
    page.locator("#lang-select").select_option(lang)
    page.locator(".lang button").click()
    expect(page.locator("html")).to_have_attribute("lang", lang)
    page.locator("input[name=username]").fill("analyst")
    page.locator("input[name=password]").fill(site.password)
    page.locator("form[action='/login'] button[type=submit]").click()
    expect(page.locator("header.site .who")).to_contain_text("analyst")


def build_and_run(page: Page, measure: str) -> None:
    choose(page, "agreement_id", AGREEMENT)
    choose(page, "measure", measure)
    if measure != "count":
        column = "violence_12m" if measure == "share" else "satisfaction"
        choose(page, "column", column)
    if measure == "share":
        choose(page, "value", "yes")
    if measure == "quantile":
        page.locator("#quantiles").fill("0.5")
    choose(page, "group_by_1", "country")
    page.locator("#rho").fill("0.1")
    page.locator("#run").click()
    expect(page.locator("#result-table")).to_be_visible(timeout=60_000)


@pytest.mark.e2e
@pytest.mark.parametrize("lang", languages(("en", "bn")))
def test_analyst_journey(page: Page, site: Site, lang: str, tmp_path: Path) -> None:
    login(page, site, lang)
    page.goto(f"{site.url}/analyst")
    expect(page.locator("#query-form")).to_be_visible()
    check_page(page, f"builder-{lang}")
    shot(page, "analyst", "builder", lang)

    # The agreement drives everything: choosing another one reloads the options at once.
    choose(page, "agreement_id", AGREEMENT)
    expect(page.locator("#measure option[value=histogram]")).to_have_count(1)
    choose(page, "agreement_id", site.demo_agreement)
    expect(page.locator("#measure option[value=histogram]")).to_have_count(0)

    # A stale form (its agreement changed without the options following, as with no script)
    # is refused and shows the new agreement's options; nothing runs under either.
    before = queries_recorded(site)
    page.evaluate(
        f"""() => {{
            const s = document.querySelector('#choose-agreement');
            s.removeAttribute('hx-post');
            s.value = '{AGREEMENT}';
        }}"""
    )
    page.locator("#run").click()
    if lang in WORDS:
        expect(page.locator("#err-agreement_id")).to_contain_text(WORDS[lang]["changed"])
    assert page.locator("input[name=options_for]").get_attribute("value", timeout=5000) == (
        f"{AGREEMENT}|1|lnob_household"
    )
    assert queries_recorded(site) == before
    check_page(page, f"agreement-changed-{lang}")

    # A level no node knows (a tampered or outdated form) is stopped at the hub, in words.
    choose(page, "filter_column_1", "group")
    box = page.locator("input[name=filter_levels_1]").first
    box.evaluate("b => { b.value = 'Women'; b.checked = true; }")
    page.locator("#rho").fill("0.1")
    page.locator("#run").click()
    error = page.locator("#err-filter_levels_1")
    expect(error).to_contain_text("Women")
    if lang in WORDS:
        expect(error).to_contain_text(WORDS[lang]["bad_level"])
    expect(page.locator("#filter_levels_1")).to_have_attribute("aria-invalid", "true")
    assert queries_recorded(site) == before
    check_page(page, f"bad-level-{lang}")
    shot(page, "analyst", "bad-level", lang)

    for measure in ALL_MEASURES:
        page.goto(f"{site.url}/analyst")
        build_and_run(page, measure)
        expect(page.locator("#question")).not_to_be_empty()
        expect(page.locator("#result-chart")).to_be_visible()
        assert page.locator("#result-chart svg.bar-plot rect.bar").count() >= 1
        table = page.locator("#result-table").inner_text()
        first_cells = page.locator("#result-table tbody tr td:first-child").all_inner_texts()
        assert "404" not in first_cells  # countries by name, not their codes
        if measure == "share":
            assert "%" in table
        if lang == "bn":
            assert any(d in table for d in "০১২৩৪৫৬৭৮৯")  # Bengali digits
        check_page(page, f"result-{measure}-{lang}")
        if measure == "share":
            shot(page, "analyst", "result", lang)
        for name in ("result.csv", "result.xlsx"):
            with page.expect_download() as download:
                page.locator(f"a[href$='/{name}']").click()
            saved = tmp_path / f"{measure}-{name}"
            download.value.save_as(saved)
            assert saved.stat().st_size > 0
        sdmx = page.locator("a[href$='/result.sdmx.csv']")
        if sdmx.count():
            with page.expect_download() as download:
                sdmx.click()
            saved = tmp_path / f"{measure}.sdmx.csv"
            download.value.save_as(saved)
            assert saved.read_text(encoding="utf-8").startswith("STRUCTURE")
        else:
            expect(page.locator("#sdmx-reason")).to_be_visible()
    recent = page.goto(f"{site.url}/analyst")
    assert recent is not None
    expect(page.locator("ul.recent li").first).to_be_visible()
    check_page(page, f"recent-{lang}")
