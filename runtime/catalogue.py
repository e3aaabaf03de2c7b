"""Interface catalogues: gettext `.po` files compiled in memory, and the one tool that keeps
them in step with the sources.

Each side describes its pages' catalogues once (`Catalogues(...)` in `hub/web/i18n.py` and
`node/web/i18n.py`) and runs the tool as `python -m hub.web.i18n [--check]` or
`python -m node.web.i18n [--check]`: it extracts every message into `locales/messages.pot`
and adds any new msgid (untranslated) to each language's `.po`, keeping the translations
there; `--check` changes nothing and exits 1 if a catalogue lacks a msgid or a translation.
"""

import functools
import gettext
import io
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po, write_po

DOMAIN = "messages"
# A fixed date, so an unchanged extraction rewrites nothing.
_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Catalogues:
    """One side's interface catalogues: where the sources and the `.po` files are, and how
    messages are extracted from the sources (these decide the msgids)."""

    project: str
    # Extraction runs over this folder with `methods` (Babel's method map).
    sources: Path
    locales: Path
    languages: Mapping[str, str]
    methods: Sequence[tuple[str, str]]
    options: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    keywords: Mapping[str, None] | None = None
    comment_tags: tuple[str, ...] = ()
    default: str = "en"

    def path(self, language: str) -> Path:
        return self.locales / language / "LC_MESSAGES" / f"{DOMAIN}.po"

    @property
    def template_path(self) -> Path:
        return self.locales / "messages.pot"

    def translations(self, language: str) -> gettext.NullTranslations:
        """The compiled catalogue of `language` (English: the messages themselves)."""
        return (
            _compiled(self.path(language), language)
            if self._translated(language)
            else (gettext.NullTranslations())
        )

    def _translated(self, language: str) -> bool:
        return (
            language != self.default
            and language in self.languages
            and self.path(language).is_file()
        )

    def extract(self) -> Catalog:
        """Every msgid the sources use (singular, or a (singular, plural) pair)."""
        catalog = Catalog(
            project=self.project, domain=DOMAIN, creation_date=_EPOCH, revision_date=_EPOCH
        )
        found = extract_from_dir(
            str(self.sources),
            method_map=list(self.methods),
            options_map={k: dict(v) for k, v in self.options.items()},
            keywords=DEFAULT_KEYWORDS if self.keywords is None else dict(self.keywords),
            comment_tags=self.comment_tags,
        )
        for filename, lineno, message, comments, context in found:
            catalog.add(
                message, locations=[(filename, lineno)], auto_comments=comments, context=context
            )
        return catalog

    def read(self, language: str) -> Catalog:
        with self.path(language).open("rb") as handle:
            return read_po(handle, locale=language)

    def problems(self, language: str, template: Catalog) -> list[str]:
        """Msgids missing from, or untranslated in, `language`'s catalogue."""
        catalog = self.read(language)
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

    def update(self) -> None:
        template = self.extract()
        self.template_path.parent.mkdir(parents=True, exist_ok=True)
        with self.template_path.open("wb") as handle:
            write_po(handle, template, omit_header=False, sort_output=True, no_location=True)
        for language in self.languages:
            if language == self.default:
                continue
            path = self.path(language)
            catalog = (
                self.read(language)
                if path.exists()
                else Catalog(locale=language, domain=DOMAIN, creation_date=_EPOCH)
            )
            catalog.update(template, no_fuzzy_matching=True)
            catalog.revision_date = _EPOCH
            catalog.project = template.project
            catalog.fuzzy = False
            catalog.obsolete.clear()
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("wb") as handle:
                write_po(handle, catalog, sort_output=True, no_location=True, width=100)

    @staticmethod
    def messages(catalog: Catalog) -> set[str]:
        """The msgids of a catalogue."""
        return {str(m.id) for m in catalog if m.id}

    def main(self, argv: Sequence[str]) -> int:
        if "--check" in argv:
            template = self.extract()
            found = [
                problem
                for language in self.languages
                if language != self.default
                for problem in self.problems(language, template)
            ]
            for line in found:
                print(line)
            return 1 if found else 0
        self.update()
        return 0


@functools.cache
def _compiled(path: Path, language: str) -> gettext.GNUTranslations:
    # Compiled from the `.po` in memory: no `.mo` files to keep in step. A message missing
    # from it, or left empty or fuzzy, falls back to the msgid (English).
    with path.open("rb") as handle:
        catalog = read_po(handle, locale=language)
    buffer = io.BytesIO()
    write_mo(buffer, catalog, use_fuzzy=False)
    buffer.seek(0)
    return gettext.GNUTranslations(buffer)
