"""The steward pages in Chromium on a real server: log in, review and sign, budget, revoke.

Each main page is screenshotted to test-artifacts/screenshots/ and checked with axe-core.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from contracts import signing
from contracts.v1 import AgreementTerms
from node.db import dispose_engines
from sauti.serve import serve_in_thread
from tests.node.conftest import Node, hub_signed, terms
from tests.web.node_web_support import PASSWORD, USERNAME, steward_node

AXE = Path(__file__).parent / "vendor" / "axe.min.js"
SHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"


def check_page(page: Page, name: str) -> None:
    """No axe-core violation on the page, and a full-page screenshot for people to look at."""
    page.add_script_tag(path=str(AXE))
    result: dict[str, Any] = page.evaluate("axe.run()")
    problems = [(v["id"], [n["target"] for n in v["nodes"]][:3]) for v in result["violations"]]
    assert problems == [], f"{name}: {problems}"
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"node-{name}.png"), full_page=True)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """The shared fixture's page, but letting axe-core's injected script past the pages' CSP."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, bypass_csp=True)
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Node, str]]:
    node = steward_node(tmp_path / "node", f"sqlite:///{tmp_path}/node.sqlite")
    with serve_in_thread(node.client.app) as server:
        # One answered question under mou-1 (over the socket: Playwright owns this thread's loop).
        assert _ask(node, server.url, node.terms).status_code == 200
        yield node, server.url
    dispose_engines()


def _ask(node: Node, url: str, agreement_terms: AgreementTerms, rho: float = 0.5) -> httpx.Response:
    """A hub-signed question under the agreement, as the hub would send it."""
    agreement_id = agreement_terms.agreement_id
    request = node.request(
        node.spec(agreement_id=agreement_id, group_by=("sex",), rho=rho),
        agreement_id=agreement_id,
        agreement_digest=signing.digest(agreement_terms),
    )
    body = {"jws": signing.sign(request, node.hub_key)}
    return httpx.post(f"{url}/v1/queries", json=body, timeout=30)


def test_steward_signs_watches_budget_and_revokes(
    page: Page, served: tuple[Node, str], tmp_path: Path
) -> None:
    node, url = served
    proposed = hub_signed(terms(node.identity.node_id, agreement_id="mou-2"), node.hub_key)
    agreement_file = tmp_path / "mou-2.json"
    agreement_file.write_text(proposed.model_dump_json())

    page.goto(f"{url}/steward/")
    expect(page).to_have_url(f"{url}/steward/login?next=/steward/")
    check_page(page, "login")
    page.get_by_label("User name").fill(USERNAME)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Overview", level=1)).to_be_visible()
    check_page(page, "dashboard")

    page.get_by_role("link", name="Datasets", exact=True).click()
    check_page(page, "datasets")
    page.get_by_role("link", name="version 1", exact=True).click()
    expect(page.get_by_role("heading", name="Validation report")).to_be_visible()
    check_page(page, "dataset-version")
    page.get_by_role("link", name="contract version 1").first.click()
    expect(page.get_by_role("heading", name="Who is protected")).to_be_visible()
    check_page(page, "contract")

    # Review the proposed agreement from its file, read the terms, sign.
    page.get_by_role("link", name="Agreements", exact=True).click()
    check_page(page, "agreements")
    page.get_by_label("Agreement file from the hub (JSON)").set_input_files(str(agreement_file))
    page.get_by_role("button", name="Review the terms").click()
    expect(page.get_by_role("heading", name="Who may ask")).to_be_visible()
    expect(page.get_by_text("Only analysts of these organisations: NSO Nepal.")).to_be_visible()
    check_page(page, "review")
    page.get_by_label("I have read these terms and my organisation agrees to them.").check()
    page.get_by_role("button", name="Sign this agreement").click()
    expect(page.get_by_text("Signed. This node now answers questions")).to_be_visible()

    # Two questions spend budget; the chart and its table show them.
    assert _ask(node, url, proposed.terms).status_code == 200
    assert _ask(node, url, proposed.terms, rho=0.25).status_code == 200
    page.reload()
    expect(page.locator("figure.chart svg path.spent")).to_be_visible()
    page.get_by_text("The chart's numbers as a table").click()
    expect(page.locator("details.table-alt tbody tr")).to_have_count(2)
    check_page(page, "agreement")

    # Revoke, with a confirmation page first.
    page.get_by_role("link", name="Revoke").click()
    check_page(page, "confirm-revoke")
    page.get_by_label("Reason (sent to the hub; optional)").fill("board decision")
    page.get_by_role("button", name="Yes, revoke for good").click()
    expect(page.get_by_text("Revoked. This node refuses every question")).to_be_visible()

    # The analyst's next question under the agreement is refused at the node.
    refused = _ask(node, url, proposed.terms)
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "agreement_revoked"
    page.get_by_role("link", name="Requests", exact=True).click()
    first = page.locator("#decisions tbody tr").first
    expect(first).to_contain_text("Refused: the agreement is revoked at this node")
    check_page(page, "requests")
    # The agreement filter swaps the table in place (htmx), no page load.
    page.get_by_label("Agreement", exact=True).select_option("mou-1")
    expect(page.locator("#decisions tbody tr")).to_have_count(1)
    expect(page).to_have_url(f"{url}/steward/requests")

    # The same pages in Nepali, chosen with the language switch.
    page.get_by_label("Language").select_option("ne")
    page.get_by_role("button", name="Change").click()
    expect(page.locator("html")).to_have_attribute("lang", "ne")
    check_page(page, "requests-ne")
    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    page.get_by_role("link", name="सारांश").click()
    check_page(page, "dashboard-ne-phone")

    page.get_by_role("button", name="लग आउट").click()
    expect(page).to_have_url(f"{url}/steward/login")
