"""Interface languages of the steward pages: catalogues, negotiation, numbers and dates.

The `.po` catalogues in `locales/` are the source of truth; they are compiled in memory at
first use (no `.mo` files to keep in step). A message missing from a catalogue, or left
empty or fuzzy, falls back to English. Keep them in step with the code and templates:
`python -m node.web.i18n` (`--check` only reports); tests/web/test_node_i18n.py fails while
any message lacks a translation.
"""

import gettext
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from babel import Locale
from babel.dates import format_date, format_datetime
from babel.numbers import format_decimal
from markupsafe import Markup, escape

from runtime.catalogue import Catalogues

LOCALES = Path(__file__).parent / "locales"
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


CATALOGUES = Catalogues(
    project="Sauti node steward pages",
    sources=Path(__file__).parent,
    locales=LOCALES,
    languages=LANGUAGES,
    methods=[("templates/**.html", "jinja2.ext:babel_extract"), ("*.py", "python")],
    keywords={"_": None, "gettext": None, "N_": None},
    comment_tags=("TRANSLATORS:",),
    default=DEFAULT,
)


def translations(lang: str) -> gettext.NullTranslations:
    """The compiled catalogue of `lang` (English: the messages themselves)."""
    return CATALOGUES.translations(lang)


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


def day(value: date | datetime, lang: str) -> str:
    """A calendar day, long form, in the language's words and digits (validity dates)."""
    return digits(format_date(value, format="long", locale=lang), lang)


class Translator:
    """The gettext callables and formatters a template gets for one request's language."""

    def __init__(self, lang: str) -> None:
        self.lang = lang
        self._t = translations(lang)

    def gettext(self, message: str, **values: Any) -> str:
        text = self._t.gettext(message)
        if any(isinstance(v, Markup) for v in values.values()):
            # A guide's `ui(...)` names a button in bold: keep that markup, escape the rest.
            return escape(text) % values
        return text % values if values else text

    def helpers(self) -> dict[str, Callable[..., str] | str | dict[str, str]]:
        return {
            "_": self.gettext,
            "gettext": self.gettext,
            "lang": self.lang,
            "languages": LANGUAGES,
            "num": lambda value, places=None: number(value, self.lang, places=places),
            "when": lambda value: moment(value, self.lang),
            "day": lambda value: day(value, self.lang),
        }


if __name__ == "__main__":
    raise SystemExit(CATALOGUES.main(sys.argv[1:]))
