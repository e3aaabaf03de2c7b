"""The browser test harness works: Debian's Chromium under Playwright, axe-core vendored."""

from pathlib import Path

from playwright.sync_api import Page

AXE = Path(__file__).parent / "vendor" / "axe.min.js"


def test_chromium_renders_a_page_and_axe_runs(page: Page) -> None:
    page.set_content(
        "<html lang='en'><head><title>t</title></head>"
        "<body><main><h1>Sauti</h1></main></body></html>"
    )
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("axe.run()")
    assert result["violations"] == []
    assert page.inner_text("h1") == "Sauti"
