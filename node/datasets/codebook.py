"""Read an XLSForm (survey, choices, settings sheets) into a codebook: types, labels, levels.

Real forms have quirks the reader tolerates: headers with trailing spaces or "list name"
for "list_name", numeric choice names, sheets that claim a million rows, duplicate choice
names within a list (the first wins; a warning says so).

A form is parsed once per content: a steward's draft, review and import read the same file,
and a form with a thousand styled empty columns takes a CPU second to parse each time.
"""

import copy
import io
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import openpyxl

from node.datasets.exceptions import CodebookInvalid

EMPTY_ROWS_ENOUGH = 200  # a run of empty rows this long ends a sheet that claims more
LANGUAGE_CODES = {
    "english": "en",
    "nepali": "ne",
    "bengali": "bn",
    "bangla": "bn",
    "swahili": "sw",
    "kiswahili": "sw",
    "vietnamese": "vi",
    "hindi": "hi",
    "french": "fr",
    "chichewa": "ny",
    "hausa": "ha",
    "yoruba": "yo",
    "igbo": "ig",
    "portuguese": "pt",
    "spanish": "es",
}
NO_COLUMN_TYPES = {
    "begin group",
    "end group",
    "begin repeat",
    "end repeat",
    "begin_group",
    "end_group",
    "begin_repeat",
    "end_repeat",
    "note",
}


@dataclass(frozen=True)
class Choice:
    name: str
    labels: dict[str, str]


@dataclass(frozen=True)
class Question:
    """One survey row that yields a column in an export."""

    name: str
    type: str  # base type: select_one, select_multiple, integer, decimal, text, geopoint, ...
    list_name: str | None
    labels: dict[str, str]
    groups: tuple[str, ...]
    repeat: str | None
    required: bool
    constraint: str | None


@dataclass
class Codebook:
    title: str
    form_id: str
    languages: tuple[str, ...]
    questions: list[Question]
    choices: dict[str, list[Choice]]
    repeats: tuple[str, ...] = ()
    warnings: list[str] = field(default_factory=list)

    def question(self, name: str) -> Question | None:
        return next((q for q in self.questions if q.name == name), None)


def language_code(header_suffix: str, default: str = "en") -> str:
    """`Nepali (ne)` -> ne, `English` -> en, `` -> the form's default language."""
    text = header_suffix.strip()
    if not text:
        return default
    match = re.search(r"\(([A-Za-z]{2,3}(?:-[A-Za-z0-9]+)?)\)\s*$", text)
    if match:
        return match.group(1).lower()
    return LANGUAGE_CODES.get(text.lower(), text.lower())


def _cell(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


def _rows(sheet: Any) -> list[dict[str, str | None]]:
    rows = sheet.iter_rows(values_only=True)
    try:
        header = [(_cell(h) or "").lower().replace("list name", "list_name") for h in next(rows)]
    except StopIteration:
        return []
    out: list[dict[str, str | None]] = []
    empty = 0
    for raw in rows:
        values = [_cell(v) for v in raw]
        if not any(values):
            empty += 1
            if empty >= EMPTY_ROWS_ENOUGH:
                break
            continue
        empty = 0
        out.append({h: v for h, v in zip(header, values, strict=False) if h})
    return out


def _labels(row: dict[str, str | None], default: str) -> dict[str, str]:
    labels = {}
    for key, value in row.items():
        if value is None:
            continue
        if key == "label":
            labels[default] = value
        elif key.startswith("label::"):
            labels[language_code(key[len("label::") :], default)] = value
    return labels


def read_codebook(path: Path) -> Codebook:
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise CodebookInvalid(f"{path.name} is not an XLSForm workbook (.xlsx)") from exc
    # A copy: the caller may change what it gets, the cached parse stays as read.
    return copy.deepcopy(_parse(content, path.name, path.stem))


@lru_cache(maxsize=4)
def _parse(content: bytes, name: str, stem: str) -> Codebook:
    """The codebook of one form's bytes (the whole content is the cache key)."""
    try:
        workbook = openpyxl.load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    except Exception as exc:  # openpyxl raises many types for a non-workbook
        raise CodebookInvalid(f"{name} is not an XLSForm workbook (.xlsx)") from exc
    try:
        sheets = {ws.title.strip().lower(): ws for ws in workbook.worksheets}
        if "survey" not in sheets:
            raise CodebookInvalid(f"{name} has no survey sheet")
        settings = _rows(sheets["settings"]) if "settings" in sheets else []
        setting = settings[0] if settings else {}
        default = language_code(setting.get("default_language") or "", "en")
        survey = _rows(sheets["survey"])
        choice_rows = _rows(sheets["choices"]) if "choices" in sheets else []
    finally:
        workbook.close()
    book = Codebook(
        title=setting.get("form_title") or stem,
        form_id=setting.get("form_id") or stem,
        languages=(),
        questions=[],
        choices={},
    )
    languages: set[str] = set()
    _read_choices(book, choice_rows, default, languages)
    _read_survey(book, survey, default, languages)
    if not book.questions:
        raise CodebookInvalid(f"{name} has no questions in its survey sheet")
    book.languages = tuple(sorted(languages))
    return book


def _read_choices(
    book: Codebook, rows: list[dict[str, str | None]], default: str, languages: set[str]
) -> None:
    for row in rows:
        list_name, name = row.get("list_name"), row.get("name")
        if not list_name or not name:
            continue
        labels = _labels(row, default)
        languages.update(labels)
        existing = book.choices.setdefault(list_name, [])
        if any(c.name == name for c in existing):
            book.warnings.append(f"choice list {list_name} repeats a choice name; first one kept")
            continue
        existing.append(Choice(name=name, labels=labels))


def _read_survey(
    book: Codebook, rows: list[dict[str, str | None]], default: str, languages: set[str]
) -> None:
    groups: list[str] = []
    repeats: list[str] = []
    all_repeats: list[str] = []
    for row in rows:
        qtype = (row.get("type") or "").strip()
        name = row.get("name")
        lowered = " ".join(qtype.lower().replace("_", " ").split())
        if lowered in ("begin group", "begin repeat"):
            groups.append(name or "")
            if lowered == "begin repeat":
                repeats.append(name or "")
                all_repeats.append(name or "")
            continue
        if lowered in ("end group", "end repeat"):
            if groups:
                ended = groups.pop()
                if repeats and ended == repeats[-1]:
                    repeats.pop()
            continue
        if not name or not qtype or lowered in NO_COLUMN_TYPES:
            continue
        parts = qtype.split()
        base = parts[0].lower()
        list_name = parts[1] if len(parts) > 1 and base.startswith("select_") else None
        if base in ("select_one", "select_multiple") and list_name not in book.choices:
            book.warnings.append(f"question {name} names a choice list the form lacks")
        labels = _labels(row, default)
        languages.update(labels)
        book.questions.append(
            Question(
                name=name,
                type=base,
                list_name=list_name,
                labels=labels,
                groups=tuple(g for g in groups if g),
                repeat=repeats[-1] if repeats else None,
                required=(row.get("required") or "").lower() in ("yes", "true", "true()"),
                constraint=row.get("constraint"),
            )
        )
    book.repeats = tuple(all_repeats)


_BOUND = re.compile(r"\.\s*(>=|<=|>|<)\s*(-?\d+(?:\.\d+)?)")


def constraint_bounds(constraint: str | None) -> tuple[float | None, float | None]:
    """Bounds from a simple XLSForm constraint such as `. >= 0 and . <= 120`."""
    if not constraint or " or " in constraint:
        return None, None
    lower = upper = None
    for op, number in _BOUND.findall(constraint):
        value = float(number)
        if op.startswith(">"):
            lower = value
        else:
            upper = value
    return lower, upper
