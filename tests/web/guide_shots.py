"""Screenshots for the role guides, taken by the browser journeys themselves.

A journey calls `shot(page, role, step, language)` at the steps a guide shows. Nothing is
written unless `SAUTI_GUIDE_SHOTS` is set (`make guide-shots` sets it), so an ordinary test
run leaves the tree alone; a changed page is re-photographed by re-running the journeys, and
the new pictures go in the same commit as the change. The stewards' pictures are served by
the node (its guide lives there), everyone else's by the hub.
"""

import os
from pathlib import Path

from playwright.sync_api import Page

ROOT = Path(__file__).resolve().parents[2]
HUB_SHOTS = ROOT / "hub" / "web" / "static" / "guides"
NODE_SHOTS = ROOT / "node" / "web" / "static" / "guides"
# The journeys run in English and one South Asian language; taking the guides' pictures,
# they run in every language the guides are written in.
EVERY_LANGUAGE = ("en", "ne", "bn", "sw", "vi")


def taking() -> bool:
    return bool(os.environ.get("SAUTI_GUIDE_SHOTS"))


def languages(usual: tuple[str, ...]) -> tuple[str, ...]:
    """The languages a journey runs in: `usual`, or all five while taking pictures."""
    return EVERY_LANGUAGE if taking() else usual


def shot(page: Page, role: str, step: str, language: str) -> None:
    """Save what `page` shows as `<language>/<role>-<step>.jpg`, when guide shots are on."""
    if not taking():
        return
    folder = NODE_SHOTS if role == "steward" else HUB_SHOTS
    path = folder / language / f"{role}-{step}.jpg"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), type="jpeg", quality=70)
