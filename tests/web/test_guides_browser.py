"""The guides in Chromium: every help page axe-clean and within the viewport on a desk and a
phone, in English and Nepali (all five languages while `make guide-shots` runs).

The pictures the guides show are taken by the roles' own journeys (`make guide-shots`).
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect
from test_hub_browser import Site, site

from node.db import dispose_engines
from sauti.serve import serve_in_thread
from tests.web import guide_shots
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


def test_every_hub_help_page_is_accessible(page: Page, site: Site) -> None:
    for path in HUB_HELP:
        page.goto(f"{site.url}{path}")
        expect(page.locator("h1")).to_be_visible()
        check(page, path)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[str]:
    node = steward_node(tmp_path / "node", f"sqlite:///{tmp_path}/node.sqlite")
    with serve_in_thread(node.client.app) as server:
        yield server.url
    dispose_engines()


def test_the_steward_guide_is_accessible(page: Page, served: str) -> None:
    page.goto(f"{served}/steward/help")
    expect(page.locator("h1")).to_be_visible()
    check(page, "steward help")
