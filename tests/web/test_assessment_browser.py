"""The secretariat's assessment journey in Chromium, in English and Nepali, on `sauti demo`'s
own federation: log in → plan (each node's budget before and after) → start → follow the
queries → answer for a country (a mistake first) → compare → publish a PDF fact sheet and
download it. Driving only pages; every page visited is axe-clean at 1280×800 and 390×844
and no wider than its viewport."""

import re
import sys
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

sys.path.insert(0, str(Path(__file__).parent))

from assessment_site import COUNTRIES, DemoSite, demo_site
from guide_shots import languages, shot, taking

AXE = Path(__file__).parent / "vendor" / "axe.min.js"
VIEWPORTS = ({"width": 1280, "height": 800}, {"width": 390, "height": 844})
# Each journey its own period: the Nepali one can then compare with the English one.
PERIODS = {"en": "2027", "ne": "2028", "bn": "2029", "sw": "2030", "vi": "2031"}
# Country names the journey reads, in the languages it checks them in.
NEPAL = {"en": "Nepal", "ne": "नेपाल"}
BANGLADESH = {"en": "Bangladesh", "ne": "बङ्गलादेश"}
# What sticks out past the viewport's right edge, to name it when a page is too wide.
OVERFLOWING = """[...document.querySelectorAll('body *')]
  .filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5)
  .filter(e => !e.parentElement.closest('.table-wrap'))
  .slice(0, 5).map(e => e.tagName + '#' + e.id + '.' + e.className)"""


# A demo node's budget pays for three rounds: a fourth language gets a federation of its own.
ROUNDS_PER_SITE = 3


@pytest.fixture(scope="module")
def sites(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[int, DemoSite]]:
    with ExitStack() as stack:
        running: dict[int, DemoSite] = {}
        for batch in range((len(PERIODS) + ROUNDS_PER_SITE - 1) // ROUNDS_PER_SITE):
            work = tmp_path_factory.mktemp(f"assess-browser-{batch}")
            running[batch] = stack.enter_context(demo_site(work))
            if not taking():
                break  # English and Nepali share the first
        yield running


def _order(lang: str) -> int:
    return list(PERIODS).index(lang)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh context, letting axe-core's injected script past the pages' CSP."""
    context = browser.new_context(viewport=VIEWPORTS[0], bypass_csp=True, accept_downloads=True)
    try:
        yield context.new_page()
    finally:
        context.close()


def check(page: Page, name: str) -> None:
    """axe-core finds nothing and the page fits, at desktop and phone sizes."""
    for viewport in VIEWPORTS:
        page.set_viewport_size(viewport)
        if not page.evaluate("typeof axe !== 'undefined'"):
            page.add_script_tag(path=str(AXE))
        result: dict[str, Any] = page.evaluate("axe.run()")
        problems = [(v["id"], [n["target"] for n in v["nodes"]][:3]) for v in result["violations"]]
        assert problems == [], f"{name} at {viewport}: {problems}"
        wide = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert wide <= 0, f"{name} at {viewport}: {wide}px wider: {page.evaluate(OVERFLOWING)}"
    page.set_viewport_size(VIEWPORTS[0])


@pytest.mark.parametrize("lang", languages(("en", "ne")))
def test_secretariat_plans_starts_answers_compares_and_publishes(
    page: Page, sites: dict[int, DemoSite], lang: str, tmp_path: Path
) -> None:
    site = sites[_order(lang) // ROUNDS_PER_SITE]
    url = site.url
    page.goto(f"{url}/language?lang={lang}&next=/login")
    expect(page.locator("html")).to_have_attribute("lang", lang)
    check(page, "login")
    page.locator("#username").fill("secretariat")
    page.locator("#password").fill(site.password)
    page.locator("form[action='/login'] button[type=submit]").click()
    expect(page).to_have_url(f"{url}/")

    # The secretariat page's link (once a 404) leads to the assessment pages.
    page.goto(f"{url}/secretariat")
    page.locator("main a[href='/assessments']").click()
    expect(page).to_have_url(f"{url}/assessments")
    check(page, "assessments")
    shot(page, "secretariat", "assessments", lang)

    page.locator("main a[href='/assessments/rounds/new']").first.click()
    page.locator("#template").select_option("lnob-core:1")
    page.locator("#period").fill(PERIODS[lang])
    for country in COUNTRIES:
        page.locator(f"#country_{country}").select_option(site.fed.agreement_id)
    check(page, "plan-form")
    page.locator("form[action='/assessments/rounds/plan'] button[type=submit]").click()
    budgets = page.locator("#plan-budgets tbody tr")
    expect(budgets).to_have_count(len(COUNTRIES))
    if lang == "ne":
        expect(budgets.first).to_contain_text("०.२६")  # the round's cost, in native digits
    check(page, "plan")
    shot(page, "secretariat", "plan", lang)

    page.locator("form[action='/assessments/rounds'] button[type=submit]").click()
    expect(page).to_have_url(re.compile(rf"{re.escape(url)}/assessments/rounds/[0-9a-f-]+$"))
    expect(page.locator("#round-queries")).to_be_visible()
    # The page polls by itself until every query has finished (no reload).
    expect(page.locator("#round-progress[hx-get]")).to_have_count(0, timeout=60_000)
    expect(page.locator("#round-countries .tag.ok")).to_have_count(len(COUNTRIES))
    check(page, "round")
    shot(page, "secretariat", "round", lang)

    page.locator("#round-countries a[href$='/answers/524']").click()
    if lang in NEPAL:
        expect(page.locator("h1")).to_contain_text(NEPAL[lang])
    check(page, "answers")
    page.locator("input[name=MOU_SIGNED][value=in_progress]").check()
    page.locator("#CGD_SETS_OFFICIAL").fill("two")
    page.locator("form[action$='/answers/524'] button[type=submit]").click()
    summary = page.locator("#error-summary")
    expect(summary).to_be_focused()
    expect(page.locator("#CGD_SETS_OFFICIAL")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#CGD_SETS_OFFICIAL")).to_have_value("two")
    expect(page.locator("input[name=MOU_SIGNED][value=in_progress]")).to_be_checked()
    check(page, "answers-error")
    page.locator("#CGD_SETS_OFFICIAL").fill("3")
    page.locator("input[name=PARTICIPATION_SCORE][value='2']").check()
    page.locator("input[name=PARTNERSHIP_SCORE][value='1']").check()
    page.locator("form[action$='/answers/524'] button[type=submit]").click()
    expect(page.locator("#saved")).to_be_visible()
    # Navigation between the round's countries.
    page.locator("nav.subnav a[href$='/answers/050']").click()
    if lang in BANGLADESH:
        expect(page.locator("h1")).to_contain_text(BANGLADESH[lang])
    shot(page, "secretariat", "answers", lang)

    page.locator("nav.subnav a[href$='/compare']").click()
    if _order(lang) % ROUNDS_PER_SITE:  # an earlier language's round is the earlier one
        expect(page.locator("#comparison tbody tr").first).to_be_visible()
    check(page, "compare")
    shot(page, "secretariat", "compare", lang)

    page.locator("nav.subnav a[href$='/publish']").click()
    page.locator("input[name=format][value=pdf]").check()
    page.locator("#lang").select_option(lang)
    page.locator("#audience").select_option("partners")
    page.locator("#country").select_option("524")
    check(page, "publish")
    page.locator("form[action$='/publications'] button[type=submit]").click()
    expect(page).to_have_url(re.compile(rf"{re.escape(url)}/assessments/publications/[0-9a-f-]+$"))
    check(page, "publication-rendering")
    download_link = page.locator("#download")
    expect(download_link).to_be_visible(timeout=180_000)
    check(page, "publication-done")
    shot(page, "secretariat", "publish", lang)
    with page.expect_download() as download:
        download_link.click()
    saved = tmp_path / download.value.suggested_filename
    download.value.save_as(saved)
    assert saved.name.endswith(f"-{lang}.pdf")
    assert saved.read_bytes().startswith(b"%PDF")
