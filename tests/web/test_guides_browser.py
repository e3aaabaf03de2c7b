"""The guides in Chromium: every help page axe-clean and within the viewport on a desk and a
phone, and the journeys that take the pictures the guides show (`make guide-shots`).

In an ordinary run the journeys go through English and Nepali and save nothing; with
`SAUTI_GUIDE_SHOTS=1` they go through all five languages and save each step the guides
picture under the hub's and the node's static `guides/` folders.
"""

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect
from test_hub_browser import PASSWORD, Site, site

from node.db import dispose_engines
from sauti.serve import serve_in_thread
from tests.web import guide_shots
from tests.web.node_web_support import PASSWORD as STEWARD_PASSWORD
from tests.web.node_web_support import USERNAME as STEWARD
from tests.web.node_web_support import steward_node

__all__ = ["site"]  # the hub fixture, found by name

AXE = Path(__file__).parent / "vendor" / "axe.min.js"
VIEWPORTS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
LANGUAGES = guide_shots.languages(("en", "ne"))
HUB_HELP = ["/help", "/help/analyst", "/help/secretariat", "/help/auditor"]


def check(page: Page, name: str) -> None:
    """No axe-core violation, and nothing wider than the viewport (WCAG 1.4.10 reflow)."""
    page.add_script_tag(path=str(AXE))
    result: dict[str, Any] = page.evaluate("axe.run()")
    problems = [(v["id"], [n["target"] for n in v["nodes"]][:3]) for v in result["violations"]]
    assert problems == [], f"{name}: {problems}"
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"{name}: {width} px wide"  # type: ignore[index]


def _page(browser: Browser, language: str, viewport: str) -> Iterator[Page]:
    context = browser.new_context(
        viewport=VIEWPORTS[viewport],  # type: ignore[arg-type]
        bypass_csp=True,
        locale=language,
        extra_http_headers={"Accept-Language": language},
    )
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture(params=[(lang, vp) for lang in LANGUAGES for vp in VIEWPORTS])
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    language, viewport = request.param
    yield from _page(browser, language, viewport)


def _language(page: Page) -> str:
    return str(page.evaluate("document.documentElement.lang"))


def test_every_hub_help_page_is_accessible(page: Page, site: Site) -> None:
    for path in HUB_HELP:
        page.goto(f"{site.url}{path}")
        expect(page.locator("h1")).to_be_visible()
        check(page, path)


def _login_hub(page: Page, site: Site, who: str) -> None:
    page.goto(f"{site.url}/login")
    page.locator("#username").fill(who)
    page.locator("#password").fill(PASSWORD)
    page.locator("form[action='/login'] button[type=submit]").click()
    expect(page.locator("header.site nav.main")).to_be_visible()


@pytest.fixture(params=LANGUAGES)
def desk(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A desktop page in one language: the size the guides' pictures are taken at."""
    yield from _page(browser, request.param, "desktop")


def test_analyst_and_auditor_steps_the_guides_show(desk: Page, site: Site) -> None:
    page, language = desk, _language_of(desk, site)
    _login_hub(page, site, "amina")
    page.goto(f"{site.url}/analyst")
    guide_shots.shot(page, "analyst", "builder", language)
    page.locator("select[name^='group_by_']").first.select_option("sex")
    page.locator("form[action='/analyst/queries'] button[type=submit]").click()
    expect(page.locator("#result-table")).to_be_visible(timeout=15_000)
    expect(page.locator("#result-chart")).to_be_visible()
    guide_shots.shot(page, "analyst", "result", language)
    # The result page links to the guide's own explanation of intervals.
    page.goto(f"{site.url}/help/analyst#intervals")
    expect(page.locator("#intervals")).to_be_visible()

    page.context.clear_cookies()
    _login_hub(page, site, "tuan")
    page.goto(f"{site.url}/audit")
    expect(page.locator("#audit-entries")).to_be_visible()
    guide_shots.shot(page, "auditor", "log", language)


def _language_of(page: Page, site: Site) -> str:
    page.goto(f"{site.url}/help")
    return _language(page)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    node = steward_node(tmp_path / "node", f"sqlite:///{tmp_path}/node.sqlite")
    with serve_in_thread(node.client.app) as server:
        yield server.url
    dispose_engines()


def _export(path: Path) -> Path:
    """A small survey export: a name column (an identifier), sex, age and district."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["respondent_name", "sex", "age", "district"])
        for i in range(40):
            sex = ("female", "male", "third_gender")[i % 3]
            writer.writerow([f"Person {i}", sex, 18 + i, ("Lalitpur", "Kaski")[i % 2]])
    return path


def test_the_steward_guide_and_its_steps(browser: Browser, served: str, tmp_path: Path) -> None:
    export = _export(tmp_path / "survey.csv")
    for language in LANGUAGES:
        for viewport in VIEWPORTS:
            for page in _page(browser, language, viewport):
                page.goto(f"{served}/steward/help")
                expect(page.locator("h1")).to_be_visible()
                check(page, f"steward help {language} {viewport}")
        for page in _page(browser, language, "desktop"):
            page.goto(f"{served}/steward/login")
            page.locator("#username").fill(STEWARD)
            page.locator("#password").fill(STEWARD_PASSWORD)
            page.locator("form[action='/steward/login'] button[type=submit]").click()
            expect(page.locator("header.top nav")).to_be_visible()
            page.goto(f"{served}/steward/datasets")
            page.locator("#draft-dataset").fill("survey")
            page.locator("#draft-file").set_input_files(str(export))
            page.locator("form[action='/steward/datasets/draft'] button[type=submit]").click()
            expect(page.locator("main h1")).to_be_visible()
            guide_shots.shot(page, "steward", "draft", language)
            page.goto(f"{served}/steward/agreements/mou-1")
            expect(page.locator("main h1")).to_be_visible()
            guide_shots.shot(page, "steward", "sign", language)
