"""The hub's pages in Chromium over a real uvicorn server with simulated nodes.

An analyst runs a query and sees its table and chart; an auditor searches the log; the
secretariat and a steward open their pages; the language switches to Nepali. Every main
page is checked with axe-core and screenshotted to test-artifacts/screenshots/.
"""

import asyncio
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

sys.path.insert(0, str(Path(__file__).parents[1] / "hub"))

from hub_support import (
    HUB_ID,
    RoutingTransport,
    SimNode,
    count_cell,
    issue_tokens,
    make_terms,
)
from test_hub_web_routes import PASSWORD, add_people

from contracts.v1 import Cell
from hub.app import create_app
from hub.home import init_home
from hub.settings import HubSettings
from sauti.serve import serve_in_thread
from tests.web.builder_support import choose

AXE = Path(__file__).parent / "vendor" / "axe.min.js"
# The elements reaching past the right edge of the screen (what makes a page scroll sideways).
WIDER_THAN_SCREEN = """() => [...document.querySelectorAll('body *')]
  .filter(e => e.getBoundingClientRect().right > window.innerWidth + 0.5)
  .slice(-5).map(e => e.tagName + '.' + e.className + '#' + e.id)"""
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


@dataclass(frozen=True)
class Site:
    url: str
    # Open: nodes answer at once. Cleared by a test to hold every node's answer back.
    gate: threading.Event


class GatedTransport(httpx.AsyncBaseTransport):
    """A simulated node's transport that answers only once `gate` is open."""

    def __init__(self, node: SimNode, gate: threading.Event) -> None:
        self.inner = node.transport()
        self.gate = gate

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        # Only answers to queries are held back; the public contracts are not a query.
        while not self.gate.is_set() and request.url.path != "/v1/contracts":
            await asyncio.sleep(0.05)
        return await self.inner.handle_async_request(request)


def check_page(page: Page, name: str) -> None:
    """No axe-core violation and no page wider than the screen, at a desktop's and a phone's
    size (390 px: WCAG 1.4.10 reflow), and a full-page screenshot for people to look at."""
    desktop = page.viewport_size
    for size in ({"width": 1280, "height": 800}, {"width": 390, "height": 844}):
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
        suffix = "" if size["width"] == 1280 else "-phone"
        page.screenshot(path=str(SHOTS / f"hub-{name}{suffix}.png"), full_page=True)
    if desktop is not None:
        page.set_viewport_size(desktop)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """The shared fixture's page, letting axe-core's injected script past the pages' CSP."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    try:
        yield context.new_page()
    finally:
        context.close()


def _nodes(hub_key: dict[str, Any]) -> list[SimNode]:
    def node(node_id: str, country: str, female: float, male: float) -> SimNode:
        return SimNode(
            node_id=node_id,
            country=country,
            hub_key=hub_key,
            cells={
                ("female",): count_cell(("female",), female),
                ("male",): count_cell(("male",), male),
                # A small group every node withholds: shown as suppressed, never as a number.
                ("other",): Cell(key=("other",), status="suppressed", reason="below_min_cell_size"),
            },
        )

    return [node("ke-a", "404", 100.0, 80.0), node("np-a", "524", 30.0, 20.0)]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    work = tmp_path_factory.mktemp("hubweb")
    identity = init_home(work / "hub", hub_id=HUB_ID)
    settings = HubSettings(
        home=work / "hub",
        database_url=f"sqlite:///{work / 'hub.db'}",
        session_cookie_secure=False,
        node_timeout_seconds=5,
        node_retries=1,
        node_backoff_seconds=0.001,
    )
    nodes = _nodes(identity.public_jwk)
    gate = threading.Event()
    gate.set()
    routes: dict[str, httpx.AsyncBaseTransport] = {n.host: GatedTransport(n, gate) for n in nodes}
    app = create_app(settings, transport=RoutingTransport(routes))
    with serve_in_thread(app) as server, httpx.Client(base_url=server.url, timeout=30) as api:
        tokens = issue_tokens(settings)
        for node in nodes:
            headers = {"Authorization": f"Bearer {tokens['admin']}"}
            assert api.post("/v1/nodes", json=node.registration(), headers=headers).is_success
        secretariat = {"Authorization": f"Bearer {tokens['secretariat']}"}
        terms = make_terms(nodes, dims=("sex", "group"))
        created = api.post(
            "/v1/agreements", json=terms.model_dump(mode="json"), headers=secretariat
        )
        digest = created.json()["agreement"]["digest"]
        for node in nodes:
            signature = node.sign_agreement(terms.agreement_id, terms.version, digest)
            response = api.post(
                f"/v1/agreements/{terms.agreement_id}/signatures",
                json=signature.model_dump(mode="json"),
                headers=secretariat,
            )
            assert response.is_success, response.text
        add_people(settings)
        yield Site(url=server.url, gate=gate)


def login(page: Page, site: Site, who: str) -> None:
    page.goto(f"{site.url}/login")
    page.get_by_label("User name").fill(who)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_text(f"Signed in as {who}")).to_be_visible()


def test_analyst_runs_a_query_and_sees_table_and_chart(page: Page, site: Site) -> None:
    page.goto(f"{site.url}/analyst")
    expect(page).to_have_url(f"{site.url}/login?next=/analyst")
    check_page(page, "login")
    login(page, site, "amina")
    page.goto(f"{site.url}/analyst")
    expect(page.get_by_text("Budget left at the hub")).to_be_visible()
    check_page(page, "analyst-form")
    choose(page, "measure", "count")
    choose(page, "group_by_1", "sex")
    page.get_by_label("Privacy cost (rho)").fill("0.1")
    page.get_by_role("button", name="Run the query").click()
    expect(page.locator("#result-table")).to_be_visible(timeout=15_000)
    expect(page.locator("#result-chart")).to_be_visible()
    assert page.locator("#result-chart rect.bar").count() == 2
    suppressed = page.locator("tr.suppressed")
    expect(suppressed).to_have_count(1)
    expect(suppressed).to_contain_text("Suppressed: withheld by a node")
    expect(page.get_by_text("2 of 2 nodes have answered.")).to_be_visible()
    with page.expect_download() as download:
        page.get_by_role("link", name="CSV", exact=True).click()
    assert download.value.suggested_filename.endswith(".csv")
    check_page(page, "query-result")


def test_node_status_updates_by_itself_until_complete(page: Page, site: Site) -> None:
    login(page, site, "amina")
    page.goto(f"{site.url}/analyst")
    choose(page, "group_by_1", "sex")
    site.gate.clear()
    try:
        page.get_by_role("button", name="Run the query").click()
        expect(page.get_by_text("0 of 2 nodes have answered.")).to_be_visible()
        expect(page.get_by_role("cell", name="Waiting")).to_have_count(2)
        page.evaluate("window.sautiSamePage = true")
    finally:
        site.gate.set()
    # htmx swaps the status in place: no reload (the marker survives), then the table.
    expect(page.locator("#result-table")).to_be_visible(timeout=15_000)
    expect(page.get_by_text("2 of 2 nodes have answered.")).to_be_visible()
    assert page.evaluate("window.sautiSamePage") is True


def test_auditor_searches_the_log(page: Page, site: Site) -> None:
    login(page, site, "tuan")
    page.goto(f"{site.url}/audit")
    page.get_by_label("Action").select_option("auth.login")
    page.get_by_role("button", name="Search").click()
    rows = page.locator("#audit-entries tbody tr")
    expect(rows.first).to_contain_text("auth.login")
    assert all("auth.login" in t for t in rows.locator("td:nth-child(4)").all_inner_texts())
    check_page(page, "audit")


def test_secretariat_and_steward_pages(page: Page, site: Site) -> None:
    login(page, site, "grace")
    page.goto(f"{site.url}/secretariat")
    expect(page.get_by_role("cell", name="ke-a", exact=True)).to_be_visible()
    check_page(page, "secretariat")
    page.get_by_label("Note").fill("New CSO in Lalitpur")
    page.get_by_role("button", name="Create a token").click()
    expect(page.get_by_text("Copy this token now")).to_be_visible()
    check_page(page, "enrollment-token")
    page.goto(f"{site.url}/secretariat/agreements/new")
    check_page(page, "agreement-form")

    page.context.clear_cookies()
    login(page, site, "sita")
    page.goto(f"{site.url}/steward")
    expect(page.locator("span.tag", has_text="In force")).to_be_visible()
    check_page(page, "steward")


def test_language_switches_to_nepali(page: Page, site: Site) -> None:
    page.goto(f"{site.url}/login")
    page.get_by_label("Language").select_option("ne")
    page.get_by_role("button", name="Change").click()
    expect(page.locator("html")).to_have_attribute("lang", "ne")
    expect(page.get_by_role("heading", name="लग इन")).to_be_visible()
    # The vendored Devanagari font is what draws it (Debian's Chromium has none of its own).
    assert page.evaluate("document.fonts.check('16px \"Noto Sans Devanagari\"', 'लग इन')")
    check_page(page, "login-ne")
