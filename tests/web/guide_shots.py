"""Screenshots for the role guides, taken by the browser journeys themselves.

A journey calls `shot(page, role, step, language)` at the steps a guide shows. Nothing is
written unless `SAUTI_GUIDE_SHOTS` is set (`make guide-shots` sets it), so an ordinary test
run leaves the tree alone; a changed page is re-photographed by re-running the journeys, and
the new pictures go in the same commit as the change. The stewards' pictures are served by
the node (its guide lives there), everyone else's by the hub.
"""

import os
import re
from pathlib import Path

from playwright.sync_api import Page

ROOT = Path(__file__).resolve().parents[2]
HUB_SHOTS = ROOT / "hub" / "web" / "static" / "guides"
NODE_SHOTS = ROOT / "node" / "web" / "static" / "guides"
# The journeys run in English and one South Asian language; taking the guides' pictures,
# they run in every language the guides are written in.
EVERY_LANGUAGE = ("en", "ne", "bn", "sw", "vi")
PICTURE = re.compile(r'\bpicture\("([a-z0-9-]+)"')


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


def wanted() -> dict[Path, set[str]]:
    """The pictures the guides show: folder -> names, from their `picture("...")` calls."""
    templates = {
        HUB_SHOTS: ROOT / "hub/web/templates/help",
        NODE_SHOTS: ROOT / "node/web/templates/help",
    }
    return {
        folder: {
            name for path in help_dir.glob("*.html") for name in PICTURE.findall(path.read_text())
        }
        for folder, help_dir in templates.items()
    }


def prune() -> list[Path]:
    """Remove pictures no guide shows (a journey photographs more steps than guides use)."""
    removed = []
    for folder, names in wanted().items():
        for path in folder.glob("*/*.jpg"):
            if path.stem not in names:
                path.unlink()
                removed.append(path)
    return removed


if __name__ == "__main__":
    for path in prune():
        print(f"removed {path.relative_to(ROOT)} (no guide shows it)")
