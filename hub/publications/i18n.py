"""Translations (Babel .po catalogues shipped here) and locale-aware number formatting.

A string missing from a catalogue (absent, empty or fuzzy) falls back to English and is
recorded in `Translator.missing`, so a publication lists what was not translated instead
of failing. Babel formats numbers per locale (lakh grouping for ne and bn, a decimal comma
for vi) but prints Latin digits; Nepali and Bengali digits are substituted afterwards.
"""

from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from babel import Locale
from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po
from babel.numbers import format_decimal, format_percent

from hub.exports.structure import area_name

LOCALES_DIR = Path(__file__).parent / "locales"
LANGUAGES = ("en", "ne", "bn", "sw", "vi")
DIGITS = {
    "ne": str.maketrans("0123456789", "०१२३४५६७८९"),
    "bn": str.maketrans("0123456789", "০১২৩৪৫৬৭৮৯"),
}
# UN M49 -> ISO 3166 alpha-2, for Babel's territory names (the seven LNOB countries).
M49_TO_ALPHA2 = {
    "050": "BD",
    "356": "IN",
    "404": "KE",
    "454": "MW",
    "524": "NP",
    "566": "NG",
    "704": "VN",
}


@cache
def catalogue(language: str) -> Catalog | None:
    path = LOCALES_DIR / language / "LC_MESSAGES" / "messages.po"
    if not path.exists():
        return None
    with path.open("rb") as handle:
        return read_po(handle, locale=language)


@dataclass
class Translator:
    """`gettext` for one language; English (the msgid) wherever a translation is missing."""

    language: str
    missing: set[str] = field(default_factory=set)

    def gettext(self, message: str) -> str:
        if self.language == "en" or not message:
            return message
        found = catalogue(self.language)
        entry = found.get(message) if found is not None else None
        if entry is None or not entry.string or entry.fuzzy or not isinstance(entry.string, str):
            self.missing.add(message)
            return message
        return entry.string

    def digits(self, text: str) -> str:
        table = DIGITS.get(self.language)
        return text.translate(table) if table else text

    def number(self, value: float, *, decimals: int = 0) -> str:
        locale = Locale.parse(self.language)
        pattern = _fixed(locale.decimal_formats[None].pattern.split(".")[0], decimals)
        return self.digits(format_decimal(value, format=pattern, locale=locale))

    def percent(self, share: float, *, decimals: int = 0) -> str:
        locale = Locale.parse(self.language)
        pattern = _fixed(locale.percent_formats[None].pattern, decimals)
        return self.digits(format_percent(share, format=pattern, locale=locale))

    def country(self, m49: str) -> str:
        english = area_name(m49) or m49
        alpha2 = M49_TO_ALPHA2.get(m49)
        if self.language == "en" or alpha2 is None:
            return english
        name: str = Locale.parse(self.language).territories.get(alpha2, english)
        return name

    def language_name(self) -> str:
        return Locale.parse(self.language).get_display_name(self.language) or self.language


def _fixed(pattern: str, decimals: int) -> str:
    """The locale's own pattern (its grouping, e.g. lakh) with exactly `decimals` places."""
    last = pattern.rfind("0")
    fraction = "." + "0" * decimals if decimals else ""
    return pattern[: last + 1] + fraction + pattern[last + 1 :]
