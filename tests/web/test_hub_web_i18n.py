"""The hub's interface catalogues: complete in every language, placeholders intact."""

import re

import pytest
from babel.messages.pofile import read_po

from hub.web.i18n import CATALOGUES as catalog
from hub.web.i18n import (
    DEFAULT_LANGUAGE,
    LANGUAGES,
    choose_language,
    format_number,
    translations,
)

OTHER_LANGUAGES = [lang for lang in LANGUAGES if lang != DEFAULT_LANGUAGE]
PLACEHOLDER = re.compile(r"%\([a-z_]+\)s|%%")


def template_ids() -> set[str]:
    return {m.id if isinstance(m.id, str) else m.id[0] for m in catalog.extract() if m.id}


def test_the_committed_template_matches_the_templates() -> None:
    with catalog.template_path.open("rb") as handle:
        committed = {m.id if isinstance(m.id, str) else m.id[0] for m in read_po(handle) if m.id}
    assert committed == template_ids(), "run: python -m hub.web.i18n"


@pytest.mark.parametrize("language", OTHER_LANGUAGES)
def test_every_catalogue_translates_every_msgid(language: str) -> None:
    assert catalog.problems(language, catalog.extract()) == []


@pytest.mark.parametrize("language", OTHER_LANGUAGES)
def test_translations_keep_their_placeholders(language: str) -> None:
    for message in catalog.read(language):
        if not message.id or not message.string:
            continue
        ids = (message.id,) if isinstance(message.id, str) else message.id
        strings = (message.string,) if isinstance(message.string, str) else message.string
        wanted = sorted(PLACEHOLDER.findall(ids[0]))
        for text in strings:
            assert sorted(PLACEHOLDER.findall(text)) == wanted, (language, ids[0])


def test_a_missing_translation_falls_back_to_english() -> None:
    assert translations("ne").gettext("Log in") == "लग इन"
    assert translations("ne").gettext("no such message") == "no such message"
    assert translations("xx").gettext("Log in") == "Log in"


def test_language_choice() -> None:
    assert choose_language(cookie="bn", accept_language="vi") == "bn"
    assert choose_language(cookie="zz", accept_language="sw-KE,sw;q=0.9,en;q=0.5") == "sw"
    assert choose_language(cookie=None, accept_language="fr-FR,de;q=0.5") == "en"
    assert choose_language(cookie=None, accept_language=None) == "en"


def test_numbers_use_the_locale_grouping_and_digits() -> None:
    assert format_number(1234567.891, language="ne") == "१२,३४,५६७.८९"
    assert format_number(1234567.891, language="bn") == "১২,৩৪,৫৬৭.৮৯"
    assert format_number(1234567.891, language="vi", digits=0) == "1.234.568"
    assert format_number(1234.5, language="en", digits=1) == "1,234.5"
