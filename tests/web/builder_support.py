"""Driving the analyst's query builder as a person would, in Playwright.

The builder reloads its own options (htmx) when a field that drives them changes. A test that
types into the form while that reload is in flight loses what it typed when the swap lands (a
rho of "0.1" became "010.05"), so every choice waits for the reload it caused.
"""

from __future__ import annotations

from playwright.sync_api import Page


def choose(page: Page, field: str, value: str) -> None:
    """Pick an option; the builder reloads its options (htmx) when the field drives them."""
    select = page.locator(f"#builder select[name={field}]")
    if select.input_value() == value:
        return  # already chosen (the only choice left): a person picks nothing here
    reloads = select.get_attribute("hx-post") is not None
    if reloads:
        with page.expect_response(lambda r: r.url.endswith("/analyst/options")):
            select.select_option(value)
        page.wait_for_load_state("networkidle")
    else:
        select.select_option(value)
