"""Keep the interface catalogues in step with the templates: `python -m hub.web.catalog`.

Extracts every gettext string of `templates/` into `locales/messages.pot` and adds any new
msgid (untranslated) to each language's `.po`, keeping the translations already there.
`--check` changes nothing and exits 1 if a catalogue lacks a msgid or a translation.
"""

import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

from hub.web.i18n import DEFAULT_LANGUAGE, LANGUAGES, LOCALES_DIR, catalogue_path

TEMPLATES = Path(__file__).parent / "templates"
TEMPLATE_PATH = LOCALES_DIR / "messages.pot"
_METHODS = [("**.html", "jinja2.ext:babel_extract")]
_OPTIONS = {"**.html": {"extensions": "jinja2.ext.i18n", "trim_blocks": "1", "lstrip_blocks": "1"}}


def extract() -> Catalog:
    """Every msgid the templates use (singular, or a (singular, plural) pair)."""
    catalog = Catalog(project="Sauti hub", domain="messages", charset="utf-8")
    for filename, lineno, message, comments, context in extract_from_dir(
        str(TEMPLATES), method_map=_METHODS, options_map=_OPTIONS
    ):
        catalog.add(
            message, locations=[(filename, lineno)], auto_comments=comments, context=context
        )
    return catalog


def read(language: str) -> Catalog:
    with catalogue_path(language).open("rb") as handle:
        return read_po(handle, locale=language)


def problems(language: str, template: Catalog) -> list[str]:
    """Msgids missing from, or untranslated in, `language`'s catalogue."""
    catalog = read(language)
    found = []
    for message in template:
        if not message.id:
            continue
        have = catalog.get(message.id)
        key = message.id if isinstance(message.id, str) else message.id[0]
        if have is None:
            found.append(f"{language}: missing {key!r}")
        elif not have.string or (isinstance(have.string, tuple) and not all(have.string)):
            found.append(f"{language}: untranslated {key!r}")
    return found


def update() -> None:
    template = extract()
    with TEMPLATE_PATH.open("wb") as handle:
        write_po(handle, template, omit_header=False, sort_output=True, no_location=True)
    for language in LANGUAGES:
        if language == DEFAULT_LANGUAGE:
            continue
        path = catalogue_path(language)
        path.parent.mkdir(parents=True, exist_ok=True)
        catalog = read(language) if path.exists() else Catalog(locale=language, domain="messages")
        catalog.update(template, no_fuzzy_matching=True)
        catalog.obsolete.clear()
        with path.open("wb") as handle:
            write_po(handle, catalog, sort_output=True, no_location=True, width=100)


def main(argv: list[str]) -> int:
    if "--check" in argv:
        template = extract()
        found = [
            p for lang in LANGUAGES if lang != DEFAULT_LANGUAGE for p in problems(lang, template)
        ]
        for line in found:
            print(line)
        return 1 if found else 0
    update()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
