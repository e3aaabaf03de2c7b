"""The auditor's journey in Chromium, in English and Bengali, driving only pages: log in →
verify the chain → search the log (a bad range first) → open a query from the log → export
what the search found → reconcile with the nodes' exports.

Every page visited is checked with axe-core at 1280×800 and 390×844, and none may be wider
than its viewport (WCAG 1.4.10 reflow).
"""

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

sys.path.insert(0, str(Path(__file__).parents[1] / "hub"))
sys.path.insert(0, str(Path(__file__).parent))

from audit_support import node_exports
from guide_shots import languages, shot
from hub_support import HUB_ID, RoutingTransport, SimNode, count_cell, issue_tokens, make_terms
from test_hub_web_routes import PASSWORD, add_people

from hub.app import create_app
from hub.home import init_home
from hub.settings import HubSettings
from sauti.serve import serve_in_thread

AXE = Path(__file__).parent / "vendor" / "axe.min.js"
VIEWPORTS = ({"width": 1280, "height": 800}, {"width": 390, "height": 844})


@dataclass(frozen=True)
class Site:
    url: str


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """A hub over real sockets with two simulated nodes, and one query answered by both."""
    work = tmp_path_factory.mktemp("auditweb")
    identity = init_home(work / "hub", hub_id=HUB_ID)
    settings = HubSettings(
        home=work / "hub",
        database_url=f"sqlite:///{work / 'hub.db'}",
        session_cookie_secure=False,
        node_timeout_seconds=5,
        node_retries=1,
        node_backoff_seconds=0.001,
        query_wait_seconds=10,
    )
    nodes = [
        SimNode(
            node_id=node_id,
            country=country,
            hub_key=identity.public_jwk,
            cells={
                ("female",): count_cell(("female",), 60.0),
                ("male",): count_cell(("male",), 40.0),
            },
        )
        for node_id, country in (("ke-a", "404"), ("np-a", "524"))
    ]
    app = create_app(settings, transport=RoutingTransport({n.host: n.transport() for n in nodes}))
    with serve_in_thread(app) as server, httpx.Client(base_url=server.url, timeout=30) as api:
        tokens = issue_tokens(settings)
        admin = {"Authorization": f"Bearer {tokens['admin']}"}
        secretariat = {"Authorization": f"Bearer {tokens['secretariat']}"}
        for node in nodes:
            assert api.post("/v1/nodes", json=node.registration(), headers=admin).is_success
        terms = make_terms(nodes, dims=("sex",))
        created = api.post(
            "/v1/agreements", json=terms.model_dump(mode="json"), headers=secretariat
        )
        digest = created.json()["agreement"]["digest"]
        for node in nodes:
            signature = node.sign_agreement(terms.agreement_id, terms.version, digest)
            signed = api.post(
                f"/v1/agreements/{terms.agreement_id}/signatures",
                json=signature.model_dump(mode="json"),
                headers=secretariat,
            )
            assert signed.is_success, signed.text
        asked = api.post(
            "/v1/queries",
            json={
                "agreement_id": terms.agreement_id,
                "dataset": terms.datasets[0].name,
                "measure": "count",
                "group_by": ["sex"],
                "rho": 0.1,
            },
            headers={"Authorization": f"Bearer {tokens['analyst']}"},
        )
        assert asked.status_code == 201, asked.text
        add_people(settings)
        yield Site(url=server.url)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A page letting axe-core's injected script past the pages' CSP."""
    context = browser.new_context(viewport=VIEWPORTS[0], bypass_csp=True, accept_downloads=True)
    try:
        yield context.new_page()
    finally:
        context.close()


def check(page: Page, name: str, language: str) -> None:
    """No axe-core violation and no sideways scrolling, on a desktop and on a phone."""
    for viewport in VIEWPORTS:
        page.set_viewport_size(viewport)
        if not page.evaluate("typeof axe !== 'undefined'"):
            page.add_script_tag(path=str(AXE))
        result: dict[str, Any] = page.evaluate("axe.run()")
        problems = [(v["id"], [n["target"] for n in v["nodes"]][:3]) for v in result["violations"]]
        where = f"{name} ({language}, {viewport['width']}px)"
        assert problems == [], f"{where}: {problems}"
        widths = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        wide = page.evaluate(
            "[...document.querySelectorAll('body *')].filter(e => e.getBoundingClientRect().right"
            " > window.innerWidth).map(e => e.tagName + '#' + e.id + '.' + e.className).slice(0, 5)"
        )
        assert widths[0] <= widths[1], f"{where} is {widths[0]}px wide: {wide}"
    page.set_viewport_size(VIEWPORTS[0])


@pytest.mark.parametrize("language", languages(("en", "bn")))
def test_auditor_verifies_searches_opens_exports_and_reconciles(
    page: Page, site: Site, language: str
) -> None:
    page.goto(f"{site.url}/language?lang={language}&next=/audit")
    expect(page).to_have_url(f"{site.url}/login?next=/audit")
    page.locator("#username").fill("tuan")
    page.locator("#password").fill(PASSWORD)
    page.locator("form button[type=submit]").last.click()
    expect(page).to_have_url(f"{site.url}/audit")
    expect(page.locator("html")).to_have_attribute("lang", language)
    check(page, "audit", language)
    shot(page, "auditor", "log", language)

    # Verify the chain: a plain outcome.
    page.locator('a[href="/audit/verify"]').first.click()
    expect(page.locator("#verification .tag.ok")).to_be_visible()
    expect(page.locator("#checkpoint-status tbody tr")).to_have_count(2)
    check(page, "audit-verify", language)
    shot(page, "auditor", "verify", language)

    # A range the wrong way round is flagged next to To, nothing is searched.
    page.goto(f"{site.url}/audit")
    page.locator("#since").fill("2026-05-02")
    page.locator("#until").fill("2026-05-01")
    page.locator("#action").select_option("query.submitted")
    page.locator(
        "#search-heading + form button[type=submit], form[action='/audit'] button"
    ).first.click()
    expect(page.locator("#until-error")).to_be_visible()
    expect(page.locator("#until")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#error-summary")).to_be_focused()
    expect(page.locator("#audit-entries")).to_have_count(0)
    check(page, "audit-bad-range", language)

    # Corrected: the query's submission, newest first, details as a labelled list.
    page.locator("#since").fill("")
    page.locator("#until").fill("")
    expect(page.locator("#action")).to_have_value("query.submitted")
    page.locator("form[action='/audit'] button").first.click()
    rows = page.locator("#audit-entries tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("query.submitted")
    expect(rows.first.locator("dl.details dt")).not_to_have_count(0)
    check(page, "audit-search", language)
    shot(page, "auditor", "search", language)

    # Export what the search found.
    with page.expect_download() as download:
        page.locator('a[href^="/audit/export?format=csv"]').click()
    assert download.value.suggested_filename.endswith("-audit.csv")
    exported = Path(download.value.path()).read_text(encoding="utf-8")
    assert exported.count("query.submitted") == 1
    assert "auth.login" not in exported

    # Open the query from the log.
    rows.first.locator('a[href^="/audit/queries/"]').first.click()
    expect(page.locator("#query-record")).to_be_visible()
    expect(page.locator("#query-nodes tbody tr")).to_have_count(2)
    expect(page.locator("#query-entries")).to_contain_text("query.completed")
    check(page, "audit-query", language)
    shot(page, "auditor", "query", language)

    # Reconcile with the nodes' own exports (here: built to agree with the hub's log).
    hub_log = page.request.get(f"{site.url}/audit/export?format=jsonl").text()
    files = [
        {"name": f"{node}.jsonl", "mimeType": "application/x-ndjson", "buffer": data}
        for node, data in node_exports(hub_log).items()
    ]
    page.goto(f"{site.url}/audit")
    page.locator('a[href="/audit/reconcile"]').first.click()
    check(page, "audit-reconcile-form", language)
    page.locator("#exports").set_input_files(files)
    page.locator("form[action='/audit/reconcile'] button[type=submit]").click()
    expect(page.locator("#reconcile-outcome .tag.ok")).to_be_visible()
    expect(page.locator("#chain-checks tbody tr")).to_have_count(3)
    check(page, "audit-reconciled", language)
    shot(page, "auditor", "reconcile", language)
