"""Interface languages: Babel catalogues compiled in memory at start, chosen per request.

The `.po` files under `locales/` are the only source: they are read and compiled with Babel
when first needed (no `.mo` files to keep in step). A string missing from a catalogue, or
left untranslated, falls back to the English msgid. Keep them in step with the templates:
`python -m hub.web.i18n` (`--check` only reports; a test runs it).
"""

import gettext
import math
import sys
from decimal import Decimal
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.numbers import format_decimal

from runtime.catalogue import Catalogues

LOCALES_DIR = Path(__file__).parent / "locales"
DEFAULT_LANGUAGE = "en"
# The interface languages, each named in its own script for the switcher.
LANGUAGES: dict[str, str] = {
    "en": "English",
    "ne": "नेपाली",
    "bn": "বাংলা",
    "sw": "Kiswahili",
    "vi": "Tiếng Việt",
}
LANGUAGE_COOKIE = "sauti_lang"
# Babel formats with Latin digits even for these locales; convert after formatting.
_NATIVE_DIGITS = {
    "ne": str.maketrans("0123456789", "०१२३४५६७८९"),
    "bn": str.maketrans("0123456789", "০১২৩৪৫৬৭৮৯"),
}


CATALOGUES = Catalogues(
    project="Sauti hub",
    sources=Path(__file__).parent / "templates",
    locales=LOCALES_DIR,
    languages=LANGUAGES,
    methods=[("**.html", "jinja2.ext:babel_extract")],
    options={
        "**.html": {"extensions": "jinja2.ext.i18n", "trim_blocks": "1", "lstrip_blocks": "1"}
    },
    default=DEFAULT_LANGUAGE,
)


def translations(language: str) -> gettext.NullTranslations:
    """The compiled catalogue of `language`; English (the msgids themselves) otherwise."""
    return CATALOGUES.translations(language)


def choose_language(*, cookie: str | None, accept_language: str | None) -> str:
    """The cookie's language if it is one of ours, else the best `Accept-Language` match."""
    if cookie in LANGUAGES:
        return cookie
    wanted = []
    for part in (accept_language or "").split(","):
        tag = part.split(";", 1)[0].strip().replace("_", "-")
        if tag and tag != "*":
            wanted.append(tag)
    for tag in wanted:
        base = tag.split("-", 1)[0].lower()
        if base in LANGUAGES:
            return base
    return DEFAULT_LANGUAGE


def format_significant(value: float, *, language: str, figures: int = 3) -> str:
    """A number to `figures` significant digits, no trailing zeros (rho 0.02, epsilon 1.94)."""
    return format_number(value, language=language, digits=significant_decimals(value, figures))


def significant_decimals(value: float, figures: int) -> int:
    """The decimals that show `value` to `figures` significant digits, without trailing zeros."""
    text = f"{value:.{figures}g}"
    if "e" in text:
        magnitude = math.floor(math.log10(abs(value)))
        return max(0, figures - 1 - magnitude)
    return len(text.split(".")[1]) if "." in text else 0


def format_number(value: float | Decimal, *, language: str, digits: int = 2) -> str:
    """A number in the reader's locale (grouping, decimal sign, native digits).

    A Decimal is an exact budget amount: shown with at least `digits` decimals and never
    rounded, so a page can never show more spent than was (or less left).
    """
    try:
        locale = Locale.parse(language)
    except (UnknownLocaleError, ValueError):
        locale = Locale.parse(DEFAULT_LANGUAGE)
    # The locale's own integer grouping (lakh for ne and bn), with fixed decimals.
    pattern = locale.decimal_formats[None].pattern.split(";")[0].split(".")[0]
    pattern += "." + "0" * digits if digits > 0 else ""
    exact = isinstance(value, Decimal)
    text = format_decimal(value, format=pattern, locale=locale, decimal_quantization=not exact)
    table = _NATIVE_DIGITS.get(language)
    return text.translate(table) if table else text


if __name__ == "__main__":
    raise SystemExit(CATALOGUES.main(sys.argv[1:]))
