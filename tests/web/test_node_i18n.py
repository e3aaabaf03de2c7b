"""The steward pages' catalogues: complete, in step with the code, placeholders intact."""

import re

import pytest
from babel.messages.pofile import read_po

from node.web import i18n
from node.web.i18n import CATALOGUES as catalogue

PLACEHOLDER = re.compile(r"%\(\w+\)s|%%")
# Words a language writes as English does ("Data" in Swahili).
SAME_IN_BOTH = {"Data"}
TRANSLATED = [lang for lang in i18n.LANGUAGES if lang != i18n.DEFAULT]


def test_the_template_catalogue_matches_the_code() -> None:
    with catalogue.template_path.open("rb") as f:
        template = read_po(f)
    assert catalogue.messages(template) == catalogue.messages(catalogue.extract()), (
        "run `python -m node.web.i18n` and translate the new messages"
    )


@pytest.mark.parametrize("lang", TRANSLATED)
def test_every_catalogue_translates_every_message(lang: str) -> None:
    expected = catalogue.messages(catalogue.extract())
    with catalogue.path(lang).open("rb") as f:
        po = read_po(f, locale=lang)
    translated = {str(m.id): str(m.string) for m in po if m.id and m.string and not m.fuzzy}
    assert sorted(expected - set(translated)) == []
    for msgid, text in translated.items():
        assert sorted(PLACEHOLDER.findall(msgid)) == sorted(PLACEHOLDER.findall(text)), msgid
        assert text != msgid or msgid in SAME_IN_BOTH, f"{lang}: {msgid!r} left in English"


def test_a_missing_message_falls_back_to_english() -> None:
    for lang in (*TRANSLATED, "en", "xx"):
        assert i18n.Translator(lang).gettext("Not a catalogued message") == (
            "Not a catalogued message"
        )
    assert i18n.Translator("sw").gettext("Datasets") == "Seti za data"
    assert i18n.Translator("vi").gettext("node %(n)s", n="a&b") == "nút a&b"


def test_language_negotiation() -> None:
    assert i18n.negotiate("vi", "ne") == "vi"
    assert i18n.negotiate("xx", "ne-NP,en;q=0.8") == "ne"
    assert i18n.negotiate(None, "fr;q=1, sw;q=0.5, bn;q=0.7") == "bn"
    assert i18n.negotiate(None, "en-GB;q=0.2, vi") == "vi"
    assert i18n.negotiate(None, "fr, de") == "en"
    assert i18n.negotiate(None, "ne;q=0, garbage;q=x") == "en"
    assert i18n.negotiate(None, None) == "en"


def test_numbers_and_dates_in_each_script() -> None:
    assert i18n.number(1234567.5, "en", places=1) == "1,234,567.5"
    assert i18n.number(1234567.5, "ne", places=1) == "१२,३४,५६७.५"
    assert i18n.number(1234567, "bn") == "১২,৩৪,৫৬৭"
    assert i18n.number(0.25, "vi", places=3) == "0,250"
    assert i18n.moment("2026-03-04T05:06:07+00:00", "ne").endswith(" UTC")
    assert "२०२६" in i18n.moment("2026-03-04T05:06:07+00:00", "ne")
