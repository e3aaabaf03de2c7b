"""Noto fonts from the pip packages, as @font-face rules: Devanagari and Bengali must shape.

`fontpkg_noto_sans` covers Latin and Vietnamese; `justmytype_intl_south_asia` ships Noto
Sans Devanagari and Bengali (OFL). Both ship variable fonts, which WeasyPrint turns into
static ones on every PDF (seconds each); so the regular instance of each is derived once
(Noto Sans cut to Latin and Vietnamese first) and cached under the system temp directory.
HarfBuzz (through Pango) shapes conjuncts and reordered vowel signs; bold is synthesised.
"""

import base64
import hashlib
import importlib.resources
import importlib.util
import os
import tempfile
from functools import cache
from pathlib import Path

from fontTools import subset  # type: ignore[import-untyped]
from fontTools.ttLib import TTFont  # type: ignore[import-untyped]
from fontTools.varLib import instancer  # type: ignore[import-untyped]

FAMILY_STACK = '"Noto Sans", "Noto Sans Devanagari", "Noto Sans Bengali", sans-serif'
_FONTS = (
    ("Noto Sans", "fontpkg_noto_sans", "files/NotoSans[wdth,wght].ttf"),
    (
        "Noto Sans Devanagari",
        "justmytype_intl_south_asia",
        "fonts/ofl/notosansdevanagari/NotoSansDevanagari[wdth,wght].ttf",
    ),
    (
        "Noto Sans Bengali",
        "justmytype_intl_south_asia",
        "fonts/ofl/notosansbengali/NotoSansBengali[wdth,wght].ttf",
    ),
)


def _package_dir(name: str) -> Path | None:
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        return None
    return Path(spec.origin).parent


@cache
def font_files() -> dict[str, Path]:
    """Family name -> font file, for the fonts that are installed."""
    found = {}
    for family, package, relative in _FONTS:
        base = _package_dir(package)
        if base is not None and (base / relative).exists():
            found[family] = base / relative
    return found


# Noto Sans is cut to these code points (Latin, combining marks, Vietnamese, punctuation).
LATIN_RANGES = (
    (0x20, 0x24F),
    (0x300, 0x36F),
    (0x1E00, 0x1EFF),
    (0x2000, 0x206F),
    (0x20AC, 0x20AC),
    (0x2212, 0x2212),
)
CACHE_DIR = Path(tempfile.gettempdir()) / "sauti-fonts"


def _static(family: str, source: Path) -> Path:
    stat = source.stat()
    tag = hashlib.sha256(f"{source}:{stat.st_size}:{stat.st_mtime_ns}".encode()).hexdigest()[:12]
    target = CACHE_DIR / f"{source.stem.split('[')[0]}-Regular-{tag}.ttf"
    if target.exists():
        return target
    font = TTFont(source)
    if family == "Noto Sans":
        options = subset.Options()
        options.layout_features = ["*"]
        options.name_IDs = ["*"]
        options.notdef_outline = True
        cutter = subset.Subsetter(options)
        cutter.populate(unicodes=[c for lo, hi in LATIN_RANGES for c in range(lo, hi + 1)])
        cutter.subset(font)
    axes = {axis.axisTag: axis.defaultValue for axis in font["fvar"].axes}
    static = instancer.instantiateVariableFont(font, {**axes, "wght": 400}, static=True)
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.part")
    static.save(partial)
    partial.replace(target)
    return target


@cache
def static_font_files() -> dict[str, Path]:
    """Family name -> a static regular instance derived from the package font (cached)."""
    return {family: _static(family, path) for family, path in font_files().items()}


# The WOFF2 fonts the hub's own pages serve (hub/web/static/fonts), by the language whose
# script needs one: an HTML sheet carries its script's font inside it, so a reader without
# Noto installed (most phones, many offices) sees Nepali or Bengali, not empty boxes.
WEB_FONTS = {
    "ne": ("Noto Sans Devanagari", "NotoSansDevanagari.woff2"),
    "bn": ("Noto Sans Bengali", "NotoSansBengali.woff2"),
}


@cache
def web_font_uri(filename: str) -> str:
    """A hub WOFF2 font as a data: URI (a downloaded sheet opens offline, fonts and all)."""
    data = importlib.resources.files("hub.web").joinpath("static", "fonts", filename).read_bytes()
    return "data:font/woff2;base64," + base64.b64encode(data).decode("ascii")


def font_face_css(*, embed_files: bool, language: str = "en") -> str:
    """@font-face rules: the package fonts for PDF rendering; for a browser, local() names and
    the hub's WOFF2 font of the sheet's script embedded."""
    files = static_font_files() if embed_files else {}
    web = WEB_FONTS.get(language) if not embed_files else None
    rules = []
    for family, _package, _relative in _FONTS:
        sources = [f'local("{family}")']
        if family in files:
            sources.insert(0, f'url("{files[family].as_uri()}") format("truetype")')
        if web is not None and web[0] == family:
            sources.append(f'url("{web_font_uri(web[1])}") format("woff2")')
        rules.append(
            f'@font-face {{ font-family: "{family}"; src: {", ".join(sources)}; '
            "font-weight: 400; }"
        )
    return "\n".join(rules)
