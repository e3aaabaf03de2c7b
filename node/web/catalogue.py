"""Keep the steward pages' catalogues in step with the code: extract, then update every `.po`.

    python -m node.web.catalogue          # rewrite locales/messages.pot, merge into each .po

New messages arrive in each `.po` untranslated (English is shown until someone translates
them); tests/web/test_node_i18n.py fails while any message lacks a translation.
"""

from datetime import UTC, datetime
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po, write_po

from node.web.i18n import DEFAULT, LANGUAGES, LOCALES, catalogue_path

PACKAGE = Path(__file__).parent
TEMPLATE = LOCALES / "messages.pot"
METHODS = [("templates/**.html", "jinja2.ext:babel_extract"), ("*.py", "python")]
KEYWORDS = {"_": None, "gettext": None, "N_": None}
# A fixed date, so an unchanged extraction rewrites nothing.
_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def extract() -> Catalog:
    catalog = Catalog(
        project="Sauti node steward pages", creation_date=_EPOCH, revision_date=_EPOCH
    )
    for filename, lineno, message, comments, _context in extract_from_dir(
        PACKAGE, METHODS, keywords=KEYWORDS, comment_tags=("TRANSLATORS:",)
    ):
        catalog.add(message, locations=[(filename, lineno)], auto_comments=comments)
    return catalog


def messages(catalog: Catalog) -> set[str]:
    return {str(m.id) for m in catalog if m.id}


def update() -> None:
    template = extract()
    TEMPLATE.parent.mkdir(parents=True, exist_ok=True)
    with TEMPLATE.open("wb") as f:
        write_po(f, template, omit_header=False, sort_output=True, no_location=True)
    for lang in LANGUAGES:
        if lang == DEFAULT:
            continue
        path = catalogue_path(lang)
        if path.exists():
            with path.open("rb") as f:
                catalog = read_po(f, locale=lang)
        else:
            catalog = Catalog(locale=lang, creation_date=_EPOCH, revision_date=_EPOCH)
        catalog.update(template, no_fuzzy_matching=True)
        catalog.revision_date = _EPOCH
        catalog.project = template.project
        catalog.fuzzy = False
        catalog.header_comment = (
            f"# {LANGUAGES[lang]} ({lang}) interface strings of the Sauti node steward pages.\n"
            "# Written by the Sauti project; update with `python -m node.web.catalogue`."
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as f:
            write_po(f, catalog, sort_output=True, no_location=True, ignore_obsolete=True)


if __name__ == "__main__":
    update()
