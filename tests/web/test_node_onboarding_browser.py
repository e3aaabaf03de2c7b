"""Journey (a): a steward on a freshly initialised node, in Chromium, in English and Nepali,
driving only pages: upload an export and its XLSForm, review the contract, publish, import.

Every page visited is checked with axe-core at 1280x800 and 390x844, and must not be wider
than its viewport. A refused upload and a refused field are part of the journey: the error
summary takes the focus and what was typed stays.
"""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from node.datasets import service as datasets
from node.db import dispose_engines
from node.settings import NodeSettings
from node.web.i18n import Translator, number
from sauti.serve import serve_in_thread
from tests.node import survey_exports as se
from tests.web.guide_shots import languages, shot
from tests.web.node_web_support import PASSWORD, USERNAME
from tests.web.test_node_onboarding import fresh_node

AXE = Path(__file__).parent / "vendor" / "axe.min.js"
SIZES = ((1280, 800), (390, 844))


def check_page(page: Page, name: str) -> None:
    """No axe-core violation and no sideways scrolling, on a desktop and on a phone."""
    for width, height in SIZES:
        page.set_viewport_size({"width": width, "height": height})
        page.add_script_tag(path=str(AXE))
        result: dict[str, Any] = page.evaluate("axe.run()")
        problems = [(v["id"], [n["target"] for n in v["nodes"]][:3]) for v in result["violations"]]
        assert problems == [], f"{name} at {width}x{height}: {problems}"
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        wide = page.evaluate(
            "[...document.querySelectorAll('body *')]"
            ".filter(e => e.getBoundingClientRect().right > window.innerWidth + 1)"
            ".slice(0, 5).map(e => e.tagName + '#' + e.id + '.' + e.className)"
        )
        assert overflow <= 0, f"{name} at {width}x{height} is {overflow}px too wide: {wide}"
    page.set_viewport_size({"width": SIZES[0][0], "height": SIZES[0][1]})


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A page that lets axe-core's injected script past the pages' CSP."""
    context = browser.new_context(
        viewport={"width": SIZES[0][0], "height": SIZES[0][1]}, bypass_csp=True
    )
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[NodeSettings, str]]:
    settings, app = fresh_node(tmp_path)
    with serve_in_thread(app) as server:
        yield settings, server.url
    dispose_engines()


@pytest.mark.parametrize("language", languages(("en", "ne")))
def test_steward_onboards_a_fresh_node_in_the_pages(
    page: Page, served: tuple[NodeSettings, str], tmp_path: Path, language: str
) -> None:
    settings, url = served
    _ = Translator(language).gettext
    form = se.scorecard_form(tmp_path / "scorecard.xlsx")
    survey = se.generate(se.read_form(form), submissions=60, seed=4)
    export = tmp_path / "scorecard.csv"
    se.kobo_csv(survey, export)
    ragged = tmp_path / "ragged.csv"
    ragged.write_text("id,a,b\n1,2,3\n4,5\n", encoding="utf-8")

    page.goto(f"{url}/steward/")
    if language != "en":
        page.get_by_label("Language").select_option(language)
        page.get_by_role("button", name="Change").click()
    expect(page.locator("html")).to_have_attribute("lang", language)
    check_page(page, f"login-{language}")
    page.get_by_label(_("User name")).fill(USERNAME)
    page.get_by_label(_("Password"), exact=True).fill(PASSWORD)
    page.get_by_role("button", name=_("Log in")).click()

    # A fresh node: the overview says where to begin, no terminal needed.
    expect(page.get_by_role("heading", name=_("Bring in your first survey"))).to_be_visible()
    check_page(page, f"overview-fresh-{language}")
    shot(page, "steward", "onboard-overview", language)
    page.get_by_role("link", name=_("Upload an export")).click()
    expect(page.get_by_role("heading", name=_("Start a dataset from an export"))).to_be_visible()
    check_page(page, f"datasets-empty-{language}")

    # A ragged file first: refused beside the file field, the summary focused, typing kept.
    page.locator("#draft-dataset").fill("scorecard")
    page.locator("#draft-title-field").fill("Disability scorecard 2026")
    page.locator("#draft-file").set_input_files(str(ragged))
    page.get_by_role("button", name=_("Propose a contract")).click()
    summary = page.locator(".error-summary")
    expect(summary).to_be_focused()
    expect(page.locator("#draft-file")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#draft-dataset")).to_have_value("scorecard")
    expect(page.locator("#draft-title-field")).to_have_value("Disability scorecard 2026")
    expect(page.locator("#draft-file-error")).to_contain_text("(3)")
    check_page(page, f"upload-refused-{language}")
    shot(page, "steward", "onboard-upload-refused", language)

    # The export and its XLSForm.
    page.locator("#draft-codebook").set_input_files(str(form))
    page.locator("#draft-file").set_input_files(str(export))
    shot(page, "steward", "onboard-upload", language)
    page.get_by_role("button", name=_("Propose a contract")).click()
    heading = _("Review the proposed contract for %(name)s", name="scorecard")
    expect(page.get_by_role("heading", name=heading)).to_be_visible()
    check_page(page, f"review-{language}")
    shot(page, "steward", "onboard-review", language)

    # The form's levels come with their labels; identifiers and free text are flagged.
    if language in ("en", "ne"):  # the form's own labels: English (Nepali falls back to it)
        expect(page.get_by_text("female (Female)")).to_be_visible()
    # Edit what the command line lets one edit: bounds and what to do outside them. A bound
    # that is no number is refused beside it, nothing is published, the other edits stay.
    page.locator("#policy-age").select_option("refuse")
    # Income's bounds are a private (noisy) guess that can fail on 60 rows, leaving the
    # column without bounds and its policy at "refuse": choose clipping, as a steward setting
    # bounds by hand would, so the planted out-of-range income does not refuse the file.
    page.locator("#policy-income").select_option("clip")
    page.locator("#upper-income").fill("50000")
    page.locator("#lower-income").fill("ten")
    page.get_by_role("button", name=_("Publish and import this file")).click()
    expect(page.locator(".error-summary")).to_be_focused()
    expect(page.locator("#lower-income")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#lower-income")).to_have_value("ten")
    expect(page.locator("#upper-income")).to_have_value("50000")
    expect(page.locator("#policy-age")).to_have_value("refuse")
    expect(page.locator("#policy-income")).to_have_value("clip")
    check_page(page, f"review-refused-{language}")
    page.locator("#lower-income").fill("0")

    page.get_by_role("button", name=_("Publish and import this file")).click()
    # Publishing and importing 60 submissions takes a few seconds on a busy machine.
    expect(page.get_by_role("heading", name=_("Validation report"))).to_be_visible(timeout=60_000)
    assert page.locator(".notice.error").count() == 0, page.locator("main").inner_text()
    expect(page.locator(".notice.ok")).to_be_visible()
    check_page(page, f"imported-{language}")
    shot(page, "steward", "onboard-imported", language)

    page.get_by_role("link", name=_("Datasets"), exact=True).first.click()
    page.get_by_role("link", name=_("contract version %(v)s", v=number(1, language))).click()
    expect(page.get_by_role("heading", name=_("Who is protected"))).to_be_visible()
    check_page(page, f"contract-{language}")
    # What the steward published is on disk, as the command line would have left it.
    contract = datasets.get_contract(home=settings.home, name="scorecard")
    age, income = contract.column("age"), contract.column("income")
    assert age is not None
    assert income is not None
    assert age.bounds_policy == "refuse"
    assert (income.lower, income.upper) == (0, 50000)
    assert contract.column("resp_name").role == "identifier"  # type: ignore[union-attr]
    assert contract.column("comment").role == "free_text"  # type: ignore[union-attr]
    assert [v.rows for v in datasets.list_versions(home=settings.home, name="scorecard")] == [
        len(survey.submissions)
    ]
