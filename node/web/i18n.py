"""Interface languages of the steward pages: catalogues, negotiation, numbers and dates.

The `.po` catalogues in `locales/` are the source of truth; they are compiled in memory at
first use (no `.mo` files to keep in step). A message missing from a catalogue, or left
empty or fuzzy, falls back to English.
"""

import functools
import gettext
import io
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from babel import Locale
from babel.dates import format_datetime
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal

LOCALES = Path(__file__).parent / "locales"
DOMAIN = "messages"
DEFAULT = "en"
# Each language named in itself, for the language switch.
LANGUAGES: dict[str, str] = {
    "en": "English",
    "ne": "नेपाली",
    "bn": "বাংলা",
    "sw": "Kiswahili",
    "vi": "Tiếng Việt",
}
# Babel formats Latin digits even for Nepali and Bengali; these scripts have their own.
_DIGITS: dict[str, dict[int, int]] = {
    "ne": str.maketrans("0123456789", "०१२३४५६७८९"),
    "bn": str.maketrans("0123456789", "০১২৩৪৫৬৭৮৯"),
}


def N_(message: str) -> str:
    """Mark a message for extraction; templates translate it when they show it."""
    return message


def catalogue_path(lang: str) -> Path:
    return LOCALES / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


@functools.cache
def translations(lang: str) -> gettext.NullTranslations:
    """The compiled catalogue of `lang` (English: the messages themselves)."""
    path = catalogue_path(lang)
    if lang == DEFAULT or lang not in LANGUAGES or not path.exists():
        return gettext.NullTranslations()
    with path.open("rb") as f:
        catalog = read_po(f, locale=lang)
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)


def negotiate(cookie: str | None, accept_language: str | None) -> str:
    """The language cookie if it names a known language, else the best Accept-Language match."""
    if cookie in LANGUAGES:
        assert cookie is not None
        return cookie
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate((accept_language or "").split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and quality > 0:
            ranked.append((-quality, index, primary))
    return min(ranked)[2] if ranked else DEFAULT


def digits(text: str, lang: str) -> str:
    table = _DIGITS.get(lang)
    return text.translate(table) if table else text


def number(value: float | int | Decimal, lang: str, *, places: int | None = None) -> str:
    """A number in the language's grouping and digits; `places` fixes the decimals shown.

    A Decimal is an exact budget amount: `places` is then the fewest decimals shown, and it
    is never rounded, so a page can never show more spent than was (or less left).
    """
    pattern = None
    if places is not None:
        # The language's own grouping (lakh for ne and bn), with exactly `places` decimals.
        grouping = Locale.parse(lang).decimal_formats[None].pattern.split(";")[0].split(".")[0]
        pattern = grouping + ("." + "0" * places if places else "")
    exact = isinstance(value, Decimal)
    text = format_decimal(value, format=pattern, locale=lang, decimal_quantization=not exact)
    return digits(text, lang)


def moment(value: datetime | str, lang: str) -> str:
    """A date and time in UTC, medium length, in the language's words and digits."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    text = format_datetime(value, format="medium", tzinfo=UTC, locale=lang)
    return digits(text, lang) + " UTC"


class Translator:
    """The gettext callables and formatters a template gets for one request's language."""

    def __init__(self, lang: str) -> None:
        self.lang = lang
        self._t = translations(lang)

    def gettext(self, message: str, **values: Any) -> str:
        text = self._t.gettext(message)
        return text % values if values else text

    def helpers(self) -> dict[str, Callable[..., str] | str | dict[str, str]]:
        return {
            "_": self.gettext,
            "gettext": self.gettext,
            "lang": self.lang,
            "languages": LANGUAGES,
            "num": lambda value, places=None: number(value, self.lang, places=places),
            "when": lambda value: moment(value, self.lang),
        }
