"""Noto fonts for Nepali and Bengali, served from the installed font packages (OFL).

Many browsers lack a Devanagari or Bengali font; the stylesheet names these with a
`unicode-range`, so a browser downloads one only for a page that shows that script.
"""

import functools
import gzip
import importlib.resources
from pathlib import Path

from node.web.exceptions import FormInvalid

_SOUTH_ASIA = "justmytype_intl_south_asia"
FONTS: dict[str, tuple[str, str]] = {
    "devanagari.ttf": (
        _SOUTH_ASIA,
        "fonts/ofl/notosansdevanagari/NotoSansDevanagari[wdth,wght].ttf",
    ),
    "bengali.ttf": (_SOUTH_ASIA, "fonts/ofl/notosansbengali/NotoSansBengali[wdth,wght].ttf"),
}


def font_path(name: str) -> Path:
    if name not in FONTS:
        raise FormInvalid("no such font")
    package, relative = FONTS[name]
    return Path(str(importlib.resources.files(package).joinpath(relative)))


@functools.cache
def gzipped(name: str) -> bytes:
    """The font compressed once per process (a TrueType file shrinks by about half)."""
    return gzip.compress(font_path(name).read_bytes(), compresslevel=9)
