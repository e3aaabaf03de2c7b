"""Interface languages: Babel catalogues compiled in memory at start, chosen per request.

The `.po` files under `locales/` are the only source: they are read and compiled with Babel
when first needed (no `.mo` files to keep in step). A string missing from a catalogue, or
left untranslated, falls back to the English msgid.
"""

import gettext
import math
from decimal import Decimal
from functools import cache
from io import BytesIO
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal

LOCALES_DIR = Path(__file__).parent / "locales"
DOMAIN = "messages"
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


def catalogue_path(language: str) -> Path:
    return LOCALES_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"


@cache
def translations(language: str) -> gettext.NullTranslations:
    """The compiled catalogue of `language`; English (the msgids themselves) otherwise."""
    path = catalogue_path(language)
    if language == DEFAULT_LANGUAGE or not path.is_file():
        return gettext.NullTranslations()
    with path.open("rb") as handle:
        catalog = read_po(handle, locale=language)
    buffer = BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


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
