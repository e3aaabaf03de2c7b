"""Driving the analyst's query builder as a person would, in Playwright.

The builder reloads its own options (htmx) when a field that drives them changes. A test that
types into the form while that reload is in flight loses what it typed when the swap lands (a
rho of "0.1" became "010.05"), so every choice waits for the reload it caused: until htmx has
swapped the new options in and settled them (its `htmx:afterSettle` event), not a fixed quiet
time on the network (Playwright's "networkidle" is half a second of silence after every choice,
about 15 seconds of an analyst journey).
"""

from __future__ import annotations

from playwright.sync_api import Page

# Armed before the choice: the next settled swap anywhere on the page sets the flag.
ARM = """() => {
  window.__builderSettled = false;
  document.addEventListener('htmx:afterSettle', () => { window.__builderSettled = true; },
                            {once: true});
}"""


def choose(page: Page, field: str, value: str) -> None:
    """Pick an option; the builder reloads its options (htmx) when the field drives them."""
    select = page.locator(f"#builder select[name={field}]")
    if select.input_value() == value:
        return  # already chosen (the only choice left): a person picks nothing here
    reloads = select.get_attribute("hx-post") is not None
    if reloads:
        page.evaluate(ARM)
        with page.expect_response(lambda r: r.url.endswith("/analyst/options")):
            select.select_option(value)
        # Settled, and no htmx request still out: the settle may have been another swap's.
        page.wait_for_function(
            "() => window.__builderSettled === true"
            " && document.querySelector('.htmx-request') === null"
        )
    else:
        select.select_option(value)
