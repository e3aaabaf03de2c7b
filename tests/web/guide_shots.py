"""Screenshots for the role guides, taken by the browser journeys themselves.

A journey calls `shot(page, role, step, language)` at the steps a guide shows. Nothing is
written unless `SAUTI_GUIDE_SHOTS` is set (`make guide-shots` sets it), so an ordinary test
run leaves the tree alone; a changed page is re-photographed by re-running the journeys, and
the new pictures go in the same commit as the change.
"""

import os
from pathlib import Path

from playwright.sync_api import Page

SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "guides" / "screenshots"


def shot(page: Page, role: str, step: str, language: str) -> None:
    """Save what `page` shows as `<language>/<role>-<step>.png`, when guide shots are on."""
    if not os.environ.get("SAUTI_GUIDE_SHOTS"):
        return
    path = SCREENSHOTS / language / f"{role}-{step}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path))
