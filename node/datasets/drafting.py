"""Propose a dataset contract from an export (and its XLSForm) for the steward to review.

Safe by default. Everything a published contract says is public (`GET /v1/info`), so:

* a column's levels become public only from a public source (the XLSForm's choice list
  today; `Hint` is the seam where a shared module or a partner's codebook will plug in) or
  when the steward names them (`Choices.categorical`, `--categorical COLUMN=LEVEL,...`). A
  text column the form does not type is free text (dropped at import) or an identifier
  (dropped or hashed); one with few distinct short values is listed as a candidate, whose
  values the steward may look at (`--show-levels COLUMN`) before confirming them;
* identifiers are caught by the form's question type (geopoint, phone number...), by the
  question's labels in every language (`${...}` references left out), by the column name,
  and by the shape of values;
* bounds come from the form's constraint, else from a differentially private rule over the
  data (node.privacy.bounds), never from the exact minimum or maximum; the note says which;
* a repeat table's privacy unit is its submission, and its contribution limit the largest
  number of rows a submission has, rounded up on a public grid.

Every column of the file gets a proposal and a note saying why; reading a column never
raises (a column polars cannot profile is kept as free text, and the note says so). The
draft runs on the steward's own machine; notes never quote a value.
"""

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import cast

import numpy as np
import polars as pl

from contracts.v1 import Column, DatasetContract, Level, PrivacyUnit
from contracts.v1.dataset import BoundsPolicy, ColumnType
from node.datasets.codebook import Codebook, Question, constraint_bounds
from node.datasets.repeats import KOBO_SUBMISSION, ODK_SUBMISSION
from node.datasets.schemas import (
    ColumnMap,
    ContractDraft,
    DraftFlag,
    DraftNote,
    ImportMapping,
    LevelCandidate,
)
from node.datasets.shared import SharedCodebook, SharedColumn, column_words, level_for, level_index
from node.datasets.shared import words as shared_words
from node.datasets.tables import ROW_INDEX, Table, names
from node.datasets.validation import LOSSY_TEXT, datetime_value

SAMPLE_ROWS = 50_000
MAX_DATA_LEVELS = 20  # more distinct values than this: not offered as a categorical candidate
MAX_SHOWN_LEVELS = 60
MAX_LEVEL_CHARS = 60  # longer values are sentences, not category names
MAX_CODE = 200  # what a contract level may hold
# Public steps a repeat's contribution limit is rounded up to, so a contract never states
# the exact largest number of rows one submission has.
CONTRIBUTION_GRID: tuple[int, ...] = (
    *(1, 2, 3, 4, 5, 6, 8, 10, 12, 15, 20, 25, 30, 40, 50, 60, 80, 100),
    *(150, 200, 300, 500, 1000),
)
META_LEFT_OUT = {
    "_id",
    "_index",
    "_status",
    "_validation_status",
    "_notes",
    "_tags",
    "_attachments",
    "__version__",
    "_version_",
    "_xform_id_string",
    "_parent_index",
    "_parent_table_name",
    "_submission__id",
    "_submission__validation_status",
    "_submission__notes",
    "_submission__status",
    "_submission__tags",
    "_submission___version__",
    "_submission__version__",
    "AttachmentsPresent",
    "AttachmentsExpected",
    "Status",
    "ReviewState",
    "Edits",
    "FormVersion",
    "DeviceID",
    "instanceID",
    "instanceName",
}
META_IDENTIFIERS = {
    "_submitted_by",
    "_submission__submitted_by",
    "SubmitterName",
    "SubmitterID",
    "_geolocation",
    "deviceid",
}
META_TIMES = {
    "_submission_time",
    "_submission__submission_time",
    "SubmissionDate",
    "start",
    "end",
    "today",
}
SUBMISSION_KEYS = (ODK_SUBMISSION, KOBO_SUBMISSION)
ROW_KEYS = ("_uuid", "KEY")  # a main table's submission id; a repeat row's own id in repeats
OTHER_KEYS = ("respondent_id", "respondent", "pid", "person_id")
IDENTIFIER_QUESTION_TYPES = {
    "geopoint": "GPS location",
    "geotrace": "GPS track",
    "geoshape": "GPS shape",
    "deviceid": "device id",
    "subscriberid": "SIM subscriber id",
    "simserial": "SIM serial number",
    "phonenumber": "phone number",
    "username": "user name",
    "email": "e-mail address",
    "barcode": "scanned code",
}
LEFT_OUT_QUESTION_TYPES = {"image", "audio", "video", "file", "audit", "background-audio"}
NUMERIC_QUESTION_TYPES = {"integer", "decimal", "range"}
TIME_QUESTION_TYPES = {"date", "datetime", "time", "start", "end", "today"}
# Words that make a "name" something other than a person's: a village's, a tree's...
NOT_PERSON_WORDS = {
    "village",
    "district",
    "ward",
    "province",
    "municipality",
    "school",
    "facility",
    "org",
    "organisation",
    "organization",
    "site",
    "region",
    "county",
    "country",
    "city",
    "town",
    "community",
    "form",
    "file",
    "list",
    "group",
    "team",
    "project",
    "tree",
    "species",
    "latin",
    "plant",
    "crop",
    "product",
    "item",
    "brand",
    "medicine",
    "disease",
    "animal",
    "kijiji",
    "wilaya",
    "mkoa",
    "kata",
    "shule",
}
NAME_WORDS = {
    "name",
    "names",
    "fullname",
    "firstname",
    "surname",
    "lastname",
    "fname",
    "lname",
    "nom",
    "nombre",
    "jina",
    "majina",
    "tên",
    "नाम",
    "নাম",
}
PHONE_WORDS = {"phone", "mobile", "tel", "telephone", "msisdn", "cell", "whatsapp", "contact"}
GPS_WORDS = {
    "gps",
    "geopoint",
    "latitude",
    "longitude",
    "lat",
    "lon",
    "lng",
    "altitude",
    "geolocation",
    "coordinates",
    "coords",
}
ID_WORDS = {"nid", "nin", "passport", "aadhaar", "aadhar", "voter", "ssn", "bvn", "citizenship"}
OTHER_WORDS = {"email": "an e-mail address", "address": "an address", "street": "an address"}
PHONE_VALUE = re.compile(r"^\+?[\d][\d \-()]{7,18}\d$")
GPS_VALUE = re.compile(r"^-?\d{1,3}\.\d+[ ,;]+-?\d{1,3}\.\d+([ ,;]+-?[\d.]+){0,2}$")
EMAIL_VALUE = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
LONG_ID_VALUE = re.compile(r"^[A-Za-z0-9\-/]{9,24}$")
YES_NO = (Level(code="yes", labels={"en": "Yes"}), Level(code="no", labels={"en": "No"}))
_REFERENCE = re.compile(r"\$\{[^}]*\}")  # ${name} in a label is another question's answer
_LABEL_SPLIT = re.compile(r"[\s.,;:!?¿¡'\"()\[\]{}/\\_\-–—·।]+")


@dataclass(frozen=True)
class Choices:
    """What the steward decided on a draft, column by column (CLI flags, API, web form).

    `categorical`: columns to publish as categorical, with the levels the steward names (in
    that order): the explicit confirmation levels proposed from data need. `show_levels`:
    columns whose distinct values the steward wants to look at first. `bounds`: public
    bounds and policy the steward sets for numeric columns. `columns` and `recode` map the
    file onto a shared codebook (`SharedCodebook`)."""

    categorical: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    show_levels: frozenset[str] = frozenset()
    bounds: Mapping[str, tuple[float, float, BoundsPolicy]] = field(default_factory=dict)
    # Columns whose `bounds` are what the DP rule proposed in an earlier draft (the web review
    # sends them back), with the rho it spent: they stay marked as DP-estimated.
    estimated: Mapping[str, float] = field(default_factory=dict)
    # Drafting from a shared codebook: its column -> the file's column (None: not collected),
    # and the file's own values -> the codebook's levels (None: left missing), by its column.
    columns: Mapping[str, str | None] = field(default_factory=dict)
    recode: Mapping[str, Mapping[str, str | None]] = field(default_factory=dict)


def _level_code(code: str) -> bool:
    """Whether `code` can be a contract level (1 to MAX_CODE characters)."""
    return 0 < len(code) <= MAX_CODE


def parse_column(text: str) -> tuple[str, str | None]:
    """`sex=gender` -> (`sex`, `gender`): the file's column for a shared codebook's column;
    `sex=` -> (`sex`, None): the file has none (not collected)."""
    column, sep, local = text.partition("=")
    if not sep or not column.strip():
        raise ValueError(f"name the codebook's column and yours: COLUMN=YOUR_COLUMN (got {text!r})")
    return column.strip(), local.strip() or None


def parse_recode(text: str) -> tuple[str, dict[str, str | None]]:
    """`group=DL:caste_discriminated,X:` -> (`group`, {DL: caste_discriminated, X: None}):
    the file's own values onto a shared codebook's levels; an empty level leaves it missing."""
    column, sep, pairs = text.partition("=")
    table: dict[str, str | None] = {}
    for pair in pairs.split(","):
        if not pair.strip():
            continue
        value, colon, level = pair.rpartition(":")
        if not colon or not value.strip():
            raise ValueError(f"recode as COLUMN=YOUR_VALUE:LEVEL,... (got {text!r})")
        table[value.strip()] = level.strip() or None
    if not sep or not column.strip() or not table:
        raise ValueError(f"recode as COLUMN=YOUR_VALUE:LEVEL,... (got {text!r})")
    return column.strip(), table


def parse_bounds(text: str) -> tuple[str, tuple[float, float, BoundsPolicy]]:
    """`income=0,50000` (clipped at query time) or `income=0,50000,refuse` -> public bounds."""
    column, sep, rest = text.partition("=")
    parts = [p.strip() for p in rest.split(",")]
    policy = parts.pop() if len(parts) == 3 else "clip"
    try:
        lower, upper = (float(p) for p in parts)
    except ValueError as exc:
        raise ValueError(f"bounds as COLUMN=LOWER,UPPER[,clip|refuse] (got {text!r})") from exc
    finite = math.isfinite(lower) and math.isfinite(upper)
    if not sep or not column.strip() or not finite or lower > upper:
        raise ValueError(f"bounds as COLUMN=LOWER,UPPER[,clip|refuse] (got {text!r})")
    if policy not in ("clip", "refuse"):
        raise ValueError(f"values outside bounds are clipped or refused (got {text!r})")
    return column.strip(), (lower, upper, cast(BoundsPolicy, policy))


def parse_categorical(text: str) -> tuple[str, tuple[str, ...]]:
    """`sex=female,male,third_gender` -> (`sex`, levels); levels in the order given."""
    column, sep, levels = text.partition("=")
    named = tuple(dict.fromkeys(v.strip() for v in levels.split(",") if v.strip()))
    if not sep or not column.strip() or not named:
        raise ValueError(f"name the column and its levels: COLUMN=LEVEL,LEVEL,... (got {text!r})")
    return column.strip(), named


@dataclass(frozen=True)
class Hint:
    """What a public source says about a column of the file: a question of the survey's own
    XLSForm. A shared codebook (a module, a partner's contract) is the other public source:
    `SharedCodebook`, which also decides the contract's columns."""

    source: str
    kind: str  # the question's base type: select_one, integer, text, geopoint, calculate...
    title: str | None
    labels: tuple[str, ...] = ()  # every language's label, for spotting identifiers
    levels: tuple[Level, ...] = ()
    lower: float | None = None
    upper: float | None = None
    option: bool = False  # a yes/no option column of a select_multiple


@dataclass(frozen=True)
class Proposal:
    column: Column | None  # None: left out of the contract
    notes: tuple[DraftNote, ...] = ()
    candidate: LevelCandidate | None = None


def tokens(name: str) -> list[str]:
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", name)
    return [t for t in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if t]


def _label_words(label: str) -> set[str]:
    """Words of a label in any script (split on spaces and punctuation, not inside a word:
    Devanagari vowel signs are not letters to a regex), `${references}` left out."""
    return {w for w in _LABEL_SPLIT.split(_REFERENCE.sub(" ", label).lower()) if w}


def identifier_by_name(name: str, *labels: str) -> str | None:
    """What kind of identifier a column's name (or its question's labels) suggests, if any."""
    words = set(tokens(name))
    for label in labels:
        words |= _label_words(label)
    if words & NAME_WORDS and not words & NOT_PERSON_WORDS:
        return "a person's name"
    if words & PHONE_WORDS:
        return "a phone number"
    if words & GPS_WORDS or "location" in tokens(name):
        return "a GPS location"
    if words & ID_WORDS or ({"national", "id"} <= words) or ({"id", "card"} <= words):
        return "a national id or document number"
    for word, kind in OTHER_WORDS.items():
        if word in words:
            return kind
    return None


def _share(values: pl.Series, pattern: re.Pattern[str]) -> float:
    if values.is_empty():
        return 0.0
    return _num(values.str.contains(pattern.pattern).mean())


def _num(value: object) -> float:
    """A polars aggregate as a float (None counts as 0)."""
    return float(value) if isinstance(value, int | float) else 0.0


def identifier_by_values(values: pl.Series) -> str | None:
    """Whether the (non-null, text) values look like identifiers; never returns a value."""
    if values.len() < 5:
        return None
    digits = values.str.count_matches(r"\d")
    if _share(values, PHONE_VALUE) >= 0.8 and _num(digits.min()) >= 9:
        return "values shaped like phone numbers"
    if _share(values, GPS_VALUE) >= 0.8:
        return "values shaped like GPS coordinates"
    if _share(values, EMAIL_VALUE) >= 0.8:
        return "values shaped like e-mail addresses"
    distinct = values.n_unique() / values.len()
    if distinct >= 0.9 and _share(values, LONG_ID_VALUE) >= 0.8 and _num(digits.mean()) >= 6:
        return "nearly unique long codes (national ids?)"
    words = values.str.split(" ").list.len()
    short = _num(words.max()) <= 4 and _num(words.mean()) >= 1.5
    if distinct >= 0.9 and values.len() >= 20 and short and _num(digits.max()) == 0:
        return "nearly unique short text (names?)"
    return None


def _note(column: str, flag: DraftFlag, note: str) -> DraftNote:
    return DraftNote(column=column, flag=flag, note=note)


def _identifier(name: str, why: str, title: str | None = None) -> Proposal:
    return Proposal(
        Column(name=name, type="string", role="identifier", title=title),
        (_note(name, "identifier", f"looks like {why}: dropped at import unless you change it"),),
    )


def _left_out(name: str, why: str) -> Proposal:
    return Proposal(None, (_note(name, "left_out", why),))


@dataclass
class Context:
    """What the whole table tells every column's proposal."""

    frame: pl.LazyFrame
    sample: pl.DataFrame
    choices: Choices
    contributions: int
    repeat: bool
    columns: list[str]


# --- the public source: the XLSForm ----------------------------------------------------------


def hints_from_codebook(book: Codebook, table: Table) -> dict[str, Hint]:
    """A hint for every column of `table` the form describes (option columns included)."""
    hints: dict[str, Hint] = {}
    for name in names(table):
        question, option = _question(name, table, book)
        if question is None:
            continue
        title = question.labels.get("en") or next(iter(question.labels.values()), None)
        labels = tuple(question.labels.values())
        if option is not None:
            choice = next(
                (c for c in book.choices.get(question.list_name or "", []) if c.name == option),
                None,
            )
            choice_title = (choice.labels.get("en") if choice else None) or option
            hints[name] = Hint(
                source="the form",
                kind="select_multiple",
                title=f"{title or question.name}: {choice_title}",
                labels=labels,
                levels=YES_NO,
                option=True,
            )
            continue
        levels: tuple[Level, ...] = ()
        choices = book.choices.get(question.list_name or "", [])
        if question.type == "select_one" and choices and all(_level_code(c.name) for c in choices):
            levels = tuple(Level(code=c.name, labels=c.labels) for c in choices)
        lower, upper = constraint_bounds(question.constraint)
        hints[name] = Hint(
            source="the form",
            kind=question.type,
            title=title,
            labels=labels,
            levels=levels,
            lower=lower,
            upper=upper,
        )
    return hints


def hints_from_export(table: Table) -> dict[str, Hint]:
    """What the export's own structure says: select_multiple option columns and answers.

    Kobo writes an option column for every choice of the form, so their yes/no levels are
    public. ODK Central's split export writes one only for options someone chose: the
    column itself would tell that someone did, so without the form it needs the steward's
    confirmation like any level from data (`--codebook` lists every option instead)."""
    hints: dict[str, Hint] = {}
    present = set(names(table))
    from_form = table.source.format != "odk"
    for column, (question, option) in table.option_columns.items():
        if question in present:
            hints[question] = Hint(source="the export", kind="select_multiple", title=question)
        hints[column] = Hint(
            source="the export",
            kind="select_multiple",
            title=f"{question}: {option}",
            levels=YES_NO if from_form else (),
            option=True,
        )
    return hints


def _question(name: str, table: Table, book: Codebook) -> tuple[Question | None, str | None]:
    if name in table.option_columns:
        question, option = table.option_columns[name]
        return book.question(question), option
    return book.question(name), None


# --- proposals --------------------------------------------------------------------------------


def _from_hint(name: str, hint: Hint, values: pl.Series, ctx: Context) -> Proposal | None:
    """A proposal from what the form says; None: the form gives no type (text, calculate,
    select_one_from_file...), so the data decide, safely."""
    kind = hint.kind
    if hint.option and not hint.levels:
        return Proposal(
            None,
            (
                _note(
                    name,
                    "levels_from_data",
                    "a select_multiple option column that ODK writes only when someone chose"
                    " the option, so publishing it would say so: left out. Give the form"
                    " (--codebook) to publish every option, or confirm"
                    f" --categorical {name}=yes,no",
                ),
            ),
            LevelCandidate(column=name, distinct=2),
        )
    if hint.option:
        return Proposal(
            Column(name=name, type="categorical", title=hint.title, levels=hint.levels),
            (_note(name, "info", f"a select_multiple option: yes/no levels from {hint.source}"),),
        )
    if kind in IDENTIFIER_QUESTION_TYPES:
        return _identifier(name, f"a {IDENTIFIER_QUESTION_TYPES[kind]} (question type)", hint.title)
    if kind in LEFT_OUT_QUESTION_TYPES:
        return _left_out(name, "media or audit files: left out")
    if kind == "select_multiple":
        return _left_out(name, "a select_multiple answer list: its yes/no option columns are used")
    why = identifier_by_name(name, *hint.labels)
    if why is not None:
        return _identifier(name, f"{why} (name or question label)", hint.title)
    if kind == "select_one" and hint.levels:
        return Proposal(
            Column(name=name, type="categorical", title=hint.title, levels=hint.levels),
            (_note(name, "info", f"select_one: public levels from {hint.source}'s choice list"),),
        )
    if kind in NUMERIC_QUESTION_TYPES:
        ctype: ColumnType = "number" if kind == "decimal" else "integer"
        return _measure(name, ctype, hint, values, ctx)
    if kind in TIME_QUESTION_TYPES:
        return Proposal(
            Column(name=name, type="datetime", role="other", title=hint.title),
            (_note(name, "info", f"{kind}: a date or time, kept, not queryable"),),
        )
    if kind == "text":
        return _text(name, values, ctx, hint.title, candidate=False)
    return None


def _measure(
    name: str, ctype: ColumnType, hint: Hint | None, values: pl.Series, ctx: Context
) -> Proposal:
    title = hint.title if hint else None
    chosen = ctx.choices.bounds.get(name)
    rho: float | None = None
    if chosen is not None:
        lower, upper, policy = chosen
        rho = ctx.choices.estimated.get(name)
        why = "bounds you set" if rho is None else _estimated_why(rho, kept=True)
    elif hint is not None and hint.lower is not None and hint.upper is not None:
        lower, upper, policy = hint.lower, hint.upper, "refuse"
        why = f"bounds from {hint.source}'s constraint: values outside are refused at import"
    else:
        # OpenDP loads only when a draft needs it: importing data never pays for it.
        from node.privacy.bounds import BOUNDS_RHO, propose_bounds  # noqa: PLC0415

        numbers = values.str.strip_chars().cast(pl.Float64, strict=False).drop_nulls()
        proposed = None
        if not numbers.is_empty():  # no data (a form alone): nothing to spend rho on
            proposed = propose_bounds(
                numbers.to_numpy().astype(np.float64),
                contributions=ctx.contributions,
                integer=ctype == "integer",
            )
        if proposed is None:
            return Proposal(
                Column(name=name, type=ctype, role="measure", title=title),
                (
                    _note(
                        name,
                        "needs_bounds",
                        "too few rows for a private guess of its bounds: set public bounds"
                        " (lower, upper) from what you know, e.g. the form's limits",
                    ),
                ),
            )
        lower, upper = proposed
        policy = "clip"
        rho = BOUNDS_RHO
        why = _estimated_why(rho, kept=False)
    column = Column(
        name=name,
        type=ctype,
        role="measure",
        title=title,
        lower=lower,
        upper=upper,
        bounds_policy=policy,
        bounds_rho=rho,
    )
    return Proposal(column, (_note(name, "info", f"{ctype}: {why}"),))


def _estimated_why(rho: float, *, kept: bool) -> str:
    """The note on bounds the DP rule proposed: what they cost, and when it is spent."""
    what = (
        "as the differentially private rule proposed them"
        if kept
        else (
            "proposed by a differentially private rule (a noisy histogram on a public 1-2-5 grid),"
            " never the exact minimum or maximum"
        )
    )
    return (
        f"bounds {what}; publishing them spends rho {rho:g} once, outside any agreement's"
        " budget, and the node's audit log records it (the contract says bounds_rho). Values"
        " outside are clipped at query time: widen them if you know a public range"
    )


def _short_categories(values: pl.Series) -> int | None:
    """The number of distinct values if they look like category names, else None."""
    if values.is_empty():
        return None
    distinct = values.n_unique()
    if distinct > MAX_DATA_LEVELS or distinct >= values.len():
        return None
    if _num(values.str.len_chars().max()) > MAX_LEVEL_CHARS:
        return None
    return distinct


def _text(
    name: str, values: pl.Series, ctx: Context, title: str | None, *, candidate: bool
) -> Proposal:
    by_values = identifier_by_values(values)
    if by_values is not None:
        return _identifier(name, by_values, title)
    distinct = _short_categories(values) if candidate else None
    if distinct is None:
        return Proposal(
            Column(name=name, type="string", role="free_text", title=title),
            (_note(name, "free_text", "free text: dropped at import, never queryable"),),
        )
    shown: tuple[str, ...] = ()
    if name in ctx.choices.show_levels:
        found = ctx.frame.select(pl.col(name).str.strip_chars().drop_nulls().unique().sort())
        shown = tuple(str(v) for v in found.collect()[name].to_list() if v)[:MAX_SHOWN_LEVELS]
    return Proposal(
        Column(name=name, type="string", role="free_text", title=title),
        (
            _note(
                name,
                "levels_from_data",
                f"{distinct} distinct short values in the sample: kept as free text (never"
                f" public). If they are categories, look at them (--show-levels {name}) and"
                f" publish them by naming them: --categorical {name}=LEVEL,LEVEL,...",
            ),
        ),
        LevelCandidate(column=name, distinct=distinct, values=shown),
    )


def _from_data(name: str, values: pl.Series, ctx: Context, title: str | None) -> Proposal:
    why = identifier_by_name(name)
    if why is not None:
        return _identifier(name, f"{why} (column name)", title)
    if values.is_empty():
        return Proposal(
            Column(name=name, type="string", role="free_text", title=title),
            (_note(name, "free_text", "no values in the sample: kept as free text (dropped)"),),
        )
    numbers = values.str.strip_chars().cast(pl.Float64, strict=False)
    if numbers.is_not_null().all():
        integral = bool((numbers == numbers.round(0)).all())
        proposal = _measure(name, "integer" if integral else "number", None, values, ctx)
        if integral and values.n_unique() <= MAX_DATA_LEVELS:
            coded = _note(
                name,
                "info",
                "few distinct whole numbers: if they are codes of categories, publish them"
                f" with --categorical {name}=CODE,CODE,...",
            )
            return Proposal(proposal.column, (*proposal.notes, coded))
        return proposal
    parsed = values.to_frame().select(datetime_value(pl.col(name)))[name]
    if parsed.is_not_null().all():
        return Proposal(
            Column(name=name, type="datetime", role="other", title=title),
            (_note(name, "info", "dates or times: kept, not queryable"),),
        )
    return _text(name, values, ctx, title, candidate=True)


def _confirmed(
    name: str, levels: tuple[str, ...], values: pl.Series, hint: Hint | None
) -> Proposal:
    """The steward named this column's levels: it becomes a public categorical dimension."""
    why = identifier_by_name(name, *(hint.labels if hint else ())) or identifier_by_values(values)
    if why is not None:
        return Proposal(
            Column(name=name, type="string", role="identifier"),
            (
                _note(
                    name,
                    "identifier",
                    f"looks like {why}: it cannot be published as categorical levels;"
                    " dropped at import",
                ),
            ),
        )
    if not all(_level_code(code) for code in levels):
        return Proposal(
            Column(name=name, type="string", role="free_text"),
            (_note(name, "warning", f"a level you named is longer than {MAX_CODE} characters"),),
        )
    outside = int((~values.str.strip_chars().is_in(list(levels))).sum())
    known = {c.code: c for c in hint.levels} if hint else {}
    column = Column(
        name=name,
        type="categorical",
        title=hint.title if hint else None,
        levels=tuple(known.get(code) or Level(code=code) for code in levels),
    )
    note = f"categorical with the {len(levels)} levels you named (now public)"
    if outside:
        note += f"; {outside} rows of the sample hold other values, which an import refuses"
    return Proposal(column, (_note(name, "levels_from_data", note),))


def _geopoint_part(name: str, columns: list[str]) -> bool:
    """A geopoint's accuracy or altitude column (`_q_precision`, `q_Accuracy`): part of a
    location when its question's latitude column is there too."""
    lowered = name.lower()
    for part in ("_precision", "_accuracy", "_altitude"):
        if lowered.endswith(part):
            stem = lowered[: -len(part)]
            return any(c.lower() == f"{stem}_latitude" for c in columns)
    return False


def _propose(name: str, hint: Hint | None, values: pl.Series, ctx: Context) -> Proposal:
    if _geopoint_part(name, ctx.columns):
        return _identifier(name, "a part of a GPS location", hint.title if hint else None)
    if name in ctx.choices.categorical:
        return _confirmed(name, ctx.choices.categorical[name], values, hint)
    if hint is not None:
        proposal = _from_hint(name, hint, values, ctx)
        if proposal is not None:
            return proposal
    return _from_data(name, values, ctx, hint.title if hint else None)


def _meta(name: str, unit: str | None, repeat: bool) -> Proposal | None:
    """Export metadata of Kobo and ODK Central: known without looking at the data."""
    if name == unit:
        what = "the submission" if repeat else "a respondent"
        return Proposal(
            Column(name=name, type="string", role="unit_key"),
            (_note(name, "info", f"unit key: one privacy unit is {what}; dropped at import"),),
        )
    if name in META_LEFT_OUT or name in ("PARENT_KEY", *SUBMISSION_KEYS):
        return _left_out(name, "export metadata: left out")
    if name in META_IDENTIFIERS:
        return _identifier(name, "metadata that identifies a person or device")
    if name in META_TIMES:
        return Proposal(
            Column(name=name, type="datetime", role="other"),
            (_note(name, "info", "submission time: kept, not queryable"),),
        )
    if name in ROW_KEYS:
        return _left_out(name, "a submission or repeat row id: left out")
    return None


# --- the table: unit, contributions ------------------------------------------------------------


def _unit_key(columns: list[str], sample: pl.DataFrame, repeat: bool) -> str | None:
    keys: tuple[str, ...] = (*SUBMISSION_KEYS, "PARENT_KEY") if repeat else ROW_KEYS
    for candidate in (*keys, *OTHER_KEYS):
        if candidate in columns:
            return candidate
    for name in columns:
        words = set(tokens(name))
        if words & {"respondent", "pid", "uuid"} or words == {"id"}:
            column = sample[name].drop_nulls()
            if column.len() and column.n_unique() == column.len():
                return name
    return None


def _contributions(frame: pl.LazyFrame, unit: str) -> tuple[int, int, int]:
    """Rows per unit: the public-grid limit covering the largest unit, the largest itself,
    and what 95% of units stay within (the last two only for the steward's note)."""
    counts = frame.group_by(unit).len().filter(pl.col(unit).is_not_null())
    stats = counts.select(
        pl.col("len").max().alias("max"), pl.col("len").quantile(0.95).alias("p95")
    )
    row = stats.collect().row(0)
    largest = int(row[0] or 1)
    typical = math.ceil(row[1] or 1)
    limit = next((g for g in CONTRIBUTION_GRID if g >= largest), CONTRIBUTION_GRID[-1])
    return limit, largest, typical


def _file_notes(table: Table, sample: pl.DataFrame, columns: Iterable[str]) -> list[DraftNote]:
    """What reading the file found (format hints, blank lines), and text that lost characters."""
    notes = [
        _note(issue.column or "", "warning", issue.message)
        for issue in table.issues
        if issue.severity == "warning"
    ]
    for name in columns:
        try:
            lossy = int(sample[name].str.contains(LOSSY_TEXT).sum())
        except pl.exceptions.PolarsError:
            continue
        if lossy:
            notes.append(
                _note(
                    name,
                    "warning",
                    f"{lossy} rows of the sample hold text whose characters were lost (runs of"
                    " '?'): the file was saved as Windows-1252 or Excel's plain 'CSV'; export"
                    " it as CSV UTF-8",
                )
            )
    return notes


# --- a shared codebook: one contract for a partnership ---------------------------------------

MAX_RECODE_VALUES = 1000  # more distinct values than this: not a codebook's categories


@dataclass(frozen=True)
class SharedOutcome:
    """The contract's columns and privacy unit drafted from a shared codebook, the notes and
    candidates for the steward, and the mapping of the file onto it."""

    columns: tuple[Column, ...]
    privacy: PrivacyUnit
    unit: str | None
    notes: tuple[DraftNote, ...]
    candidates: tuple[LevelCandidate, ...]
    mapping: ImportMapping | None


def _local_words(name: str, hint: Hint | None) -> set[str]:
    return shared_words((name, hint.title if hint else None, *(hint.labels if hint else ())))


def _matches(
    shared: SharedCodebook,
    columns: list[str],
    unit: str | None,
    hints: Mapping[str, Hint],
    choices: Choices,
) -> tuple[dict[str, str | None], list[DraftNote]]:
    """Each codebook column's column in the file (None: not collected): the steward's choice,
    else the file's column whose name, title or form labels match its name, title or
    synonyms (the same name first). A derived module variable never matches one column."""
    notes: list[DraftNote] = []
    for named in sorted(set(choices.columns) - {c.column.name for c in shared.columns}):
        notes.append(
            _note(named, "warning", f"you named this column, but {shared.source} has none")
        )
    taken = {local for local in choices.columns.values() if local is not None}
    found: dict[str, str | None] = {}
    for item in shared.columns:
        name = item.column.name
        if item.derived is not None:
            if choices.columns.get(name) is not None:
                notes.append(
                    _note(
                        name,
                        "warning",
                        f"derived by {item.derived} from several questions: never taken from"
                        " one column of your file",
                    )
                )
            found[name] = None
        elif name in choices.columns:
            local = choices.columns[name]
            if local is not None and local not in columns:
                notes.append(_note(name, "warning", "you named a column the file does not have"))
                local = None
            found[name] = local
        else:
            keys = column_words(item)
            fits = [
                c
                for c in columns
                if c not in taken and c != unit and _local_words(c, hints.get(c)) & keys
            ]
            same = [c for c in fits if c.lower() == name.lower()]
            best = next(iter(same or fits), None)
            found[name] = best
            if best is not None:
                taken.add(best)
    return found, notes


def _recoded(
    item: SharedColumn,
    local: str,
    values: pl.Series,
    *,
    own: Hint | None,
    ctx: Context,
    source: str,
) -> tuple[dict[str, str | None], list[DraftNote], LevelCandidate | None]:
    """How the file's values of `local` reach the codebook's levels: values that are levels
    pass; a value (or a code of the survey's own form) whose words name one level is recoded
    onto it; the steward's recodes win. Values left over are counted, never named, and an
    import refuses them until the steward maps them: a value only one node's data hold never
    becomes a level."""
    name = item.column.name
    codes = item.column.level_codes
    index = level_index(item)
    named = dict(ctx.choices.recode.get(name, {}))
    wrong = [v for v, level in named.items() if level is not None and level not in codes]
    notes: list[DraftNote] = []
    if wrong:
        notes.append(
            _note(name, "warning", f"{len(wrong)} of your recodes name a level {source} lacks")
        )
        for value in wrong:
            del named[value]
    # Named apart from the file's column, which may itself be called "count".
    few = values.n_unique() <= MAX_RECODE_VALUES
    counts = values.alias("value").value_counts(name="rows") if few else None
    if counts is None:
        notes.append(
            _note(
                name,
                "warning",
                f"more than {MAX_RECODE_VALUES} distinct values in the sample: is your column"
                f" {local} really this codebook's column? Name another with --column",
            )
        )
        return named, notes, None
    # In a fixed order (by value), so the same file always gives the same mapping.
    seen = dict(sorted(zip(counts["value"].to_list(), counts["rows"].to_list(), strict=True)))
    own_codes = {level.code: tuple(level.labels.values()) for level in own.levels} if own else {}
    proposed: dict[str, str] = {}
    for value in (*seen, *own_codes):
        if value in named or value in codes or value in proposed:
            continue
        level = level_for(index, (value, *own_codes.get(value, ())))
        if level is not None:
            proposed[value] = level
    table: dict[str, str | None] = {**proposed, **named}
    unmatched = [v for v in seen if v not in codes and v not in table]
    held = {table.get(v, v) for v in seen} & set(codes)
    notes.append(
        _note(
            name,
            "info",
            f"categorical: its {len(codes)} levels and their labels come from {source}, not"
            f" from your data, so they are public without your confirmation; the sample holds"
            f" {len(held)} of them",
        )
    )
    if table:
        notes.append(
            _note(
                name,
                "recode",
                f"{len(table)} of your codes are recoded onto these levels at import"
                f" ({len(proposed)} matched by their codes, labels or synonyms, {len(named)}"
                " named by you): check them in the mapping",
            )
        )
    candidate = None
    if unmatched:
        rows = sum(int(seen[v]) for v in unmatched)
        notes.append(
            _note(
                name,
                "unmapped",
                f"{len(unmatched)} values of your column ({rows} rows of the sample) are not"
                f" levels of {source}: an import refuses them until you map each onto a level,"
                f" or to missing (--recode {name}=VALUE:LEVEL or VALUE:), after looking at them"
                f" (--show-levels {name}). They never become levels",
            )
        )
        shown: tuple[str, ...] = ()
        if {name, local} & ctx.choices.show_levels:
            shown = tuple(sorted(str(v) for v in unmatched))[:MAX_SHOWN_LEVELS]
        candidate = LevelCandidate(column=name, distinct=len(unmatched), values=shown)
    return table, notes, candidate


def _bounded(item: SharedColumn, values: pl.Series, ctx: Context, source: str) -> Proposal:
    """A numeric codebook column: its public bounds (or the partnership's, set by the steward:
    a private guess would differ at every node), and how much of the sample lies outside."""
    column = item.column
    name = column.name
    notes: list[DraftNote] = []
    chosen = ctx.choices.bounds.get(name)
    if chosen == (column.lower, column.upper, column.bounds_policy):
        chosen = None  # the codebook's own, sent back by the review form
    if chosen is not None:
        lower, upper, policy = chosen
        column = column.model_copy(update={"lower": lower, "upper": upper, "bounds_policy": policy})
        if item.column.lower is not None:
            notes.append(
                _note(
                    name,
                    "warning",
                    f"you changed the bounds {source} gives: your contract no longer matches"
                    " your partners'",
                )
            )
    if column.lower is None or column.upper is None:
        notes.append(
            _note(
                name,
                "needs_bounds",
                f"{source} gives no bounds: agree public bounds with your partners and set the"
                f" same at every node (--bounds {name}=LOWER,UPPER). No private guess is made:"
                " it would differ at every node",
            )
        )
        return Proposal(column, tuple(notes))
    numbers = values.cast(pl.Float64, strict=False)
    wrong = int(numbers.is_null().sum())
    outside = int(((numbers < column.lower) | (numbers > column.upper)).sum())
    fate = "clipped at query time" if column.bounds_policy == "clip" else "refused at import"
    note = (
        f"{column.type}: public bounds [{column.lower:g}, {column.upper:g}] from"
        f" {source if chosen is None else 'you'}; values outside are {fate}"
    )
    if outside:
        note += f" ({outside} rows of the sample)"
    notes.insert(0, _note(name, "info", note))
    if wrong:
        notes.append(
            _note(name, "warning", f"{wrong} rows of the sample are not numbers: refused at import")
        )
    return Proposal(column, tuple(notes))


def _conformed(
    item: SharedColumn,
    local: str,
    hints: Mapping[str, Hint],
    ctx: Context,
    source: str,
) -> tuple[Proposal, ColumnMap | None]:
    """A codebook column the file has (as `local`): the codebook's definition, whatever the
    file holds, and the mapping that brings the file's values to it."""
    column = item.column
    name = column.name
    try:
        values = _values(ctx.sample, local)
    except pl.exceptions.PolarsError:
        values = pl.Series(local, [], dtype=pl.String)
    renamed = [] if local == name else [_note(name, "info", f"from your column {local}")]
    levels: dict[str, str | None] = {}
    if column.type == "categorical":
        levels, notes, candidate = _recoded(
            item, local, values, own=hints.get(local), ctx=ctx, source=source
        )
        proposal = Proposal(column, (*renamed, *notes), candidate)
    elif column.type in ("integer", "number"):
        bounded = _bounded(item, values, ctx, source)
        proposal = Proposal(bounded.column, (*renamed, *bounded.notes))
    else:
        why = identifier_by_name(local) or identifier_by_values(values)
        notes = [_note(name, "info", f"a {column.role} column, as {source} defines it")]
        if why is not None and column.role not in ("identifier", "free_text"):
            notes.append(
                _note(name, "warning", f"your column looks like {why}: is it really this one?")
            )
        proposal = Proposal(column, (*renamed, *notes))
    mapped = ColumnMap(column=local, levels=levels) if local != name or levels else None
    return proposal, mapped


def _absent(item: SharedColumn, source: str) -> Proposal:
    """A codebook column the file lacks: kept, so every partner's contract has it (and an
    agreement naming it can be signed here), but marked not collected, so a query on it is
    refused by name rather than answered as zero. Columns an import drops anyway stay as they
    are."""
    column = item.column
    name = column.name
    if column.role == "free_text" or (column.role == "identifier" and column.treatment == "drop"):
        return Proposal(
            column, (_note(name, "info", "not in your file: dropped at import anyway"),)
        )
    if item.derived is not None:
        why = (
            f"{source} derives it from several questions ({item.derived}), which a contract"
            " cannot take from one column: kept, marked not collected here. A module mapping"
            " derives it (sauti node map draft)"
        )
    else:
        why = (
            "no column of your file matches it: kept, marked not collected, so your contract"
            " matches your partners' and a query on it is refused here, never answered as zero"
            f" (if your file has it under another name: --column {name}=YOUR_COLUMN)"
        )
    return Proposal(
        column.model_copy(update={"collected": False}), (_note(name, "not_collected", why),)
    )


def _draft_shared(
    shared: SharedCodebook,
    *,
    name: str,
    unit: str | None,
    hints: Mapping[str, Hint],
    ctx: Context,
) -> SharedOutcome:
    """The contract of a shared codebook for this file: its columns in its order, each from
    the file's matching column (renamed, recoded) or marked not collected; the file's other
    columns left out, so every partner publishes the same columns."""
    source = shared.source
    found, notes = _matches(shared, ctx.columns, unit, hints, ctx.choices)
    if shared.name is not None and shared.name != name:
        notes.append(
            _note(
                "",
                "warning",
                f"{source} is published as {shared.name}: a query across partners names one"
                " dataset, so publish yours under the same name",
            )
        )
    if ctx.choices.categorical:
        notes.append(
            _note("", "warning", f"levels you named are ignored: {source} gives the levels")
        )
    columns: list[Column] = []
    candidates: list[LevelCandidate] = []
    maps: dict[str, ColumnMap] = {}
    if unit is not None:
        # Who one unit is and how many rows it has are the node's own: its unit key keeps its
        # name (it is dropped at import and never queried).
        columns.append(Column(name=unit, type="string", role="unit_key"))
        notes.append(_note(unit, "info", "unit key: one privacy unit; dropped at import"))
    for item in shared.columns:
        column_name = item.column.name
        local = found.get(column_name)
        if local is None:
            proposal = _absent(item, source)
        else:
            proposal, mapped = _conformed(item, local, hints, ctx, source)
            if mapped is not None:
                maps[column_name] = mapped
        assert proposal.column is not None
        columns.append(proposal.column)
        notes.extend(proposal.notes)
        if proposal.candidate is not None:
            candidates.append(proposal.candidate)
    used = {m.column for m in maps.values()} | {c for c in found.values() if c} | {unit}
    for local in ctx.columns:
        if local not in used:
            notes.append(
                _note(
                    local,
                    "left_out",
                    f"not in {source}: left out (not imported), so your contract stays the"
                    " partnership's",
                )
            )
    weight = shared.weight_column
    collected = {c.name for c in columns if c.collected}
    privacy = PrivacyUnit(
        unit_key=unit,
        max_contributions=ctx.contributions,
        weight_column=weight if weight in collected else None,
        weight_upper=shared.weight_upper if weight in collected else None,
    )
    mapping = None
    if maps:
        mapping = ImportMapping(
            dataset=name, contract_version=shared.version, source=source, columns=maps
        )
    return SharedOutcome(
        columns=tuple(columns),
        privacy=privacy,
        unit=unit,
        notes=tuple(notes),
        candidates=tuple(candidates),
        mapping=mapping,
    )


def _values(sample: pl.DataFrame, name: str) -> pl.Series:
    """A column's non-empty values in the sample, stripped (raises PolarsError on odd data)."""
    values = sample[name].drop_nulls().str.strip_chars()
    return values.filter(values != "")


def draft(
    *,
    table: Table,
    name: str,
    codebook: Codebook | None = None,
    title: str | None = None,
    choices: Choices | None = None,
    hints: Mapping[str, Hint] | None = None,
    shared: SharedCodebook | None = None,
) -> ContractDraft:
    """A contract for `table`, every column with a reason; `hints` default to the codebook's.

    With `shared`, the contract is the shared codebook's (its columns, levels, labels and
    bounds) and the draft maps the file onto it (`ContractDraft.mapping`)."""
    choices = choices or Choices()
    frame = table.frame
    sample = frame.head(SAMPLE_ROWS).collect()
    columns = [n for n in sample.columns if n != ROW_INDEX]
    repeat = table.source.repeat is not None
    unit = _unit_key(columns, sample, repeat)
    notes: list[DraftNote] = []
    contributions = 1
    if unit is not None and repeat:
        contributions, largest, typical = _contributions(frame, unit)
        notes.append(
            _note(
                unit,
                "info",
                f"repeat rows count towards their submission: at most {contributions} rows per"
                f" submission (the largest has {largest}, rounded up on a public grid; 95% have"
                f" at most {typical}). Noise grows with this limit: a lower"
                " privacy.max_contributions keeps it down, and --keep-first then drops a"
                " submission's rows beyond it",
            )
        )
    if hints is None:
        hints = {
            **hints_from_export(table),
            **(hints_from_codebook(codebook, table) if codebook is not None else {}),
        }
    ctx = Context(
        frame=frame,
        sample=sample,
        choices=choices,
        contributions=contributions,
        repeat=repeat,
        columns=columns,
    )
    if shared is not None:
        outcome = _draft_shared(shared, name=name, unit=unit, hints=hints, ctx=ctx)
        notes.extend(outcome.notes)
        contract = DatasetContract(
            name=name,
            version=shared.version,
            title=title or shared.title,
            description=shared.description,
            language=shared.language,
            columns=outcome.columns,
            privacy=outcome.privacy,
        )
        return ContractDraft(
            contract=contract,
            notes=(
                *notes,
                *_closing_notes(
                    table,
                    sample,
                    columns,
                    choices,
                    outcome.unit,
                    known=(c.column.name for c in shared.columns),
                ),
            ),
            source=table.source,
            candidates=outcome.candidates,
            shared=shared.source,
            mapping=outcome.mapping,
        )
    proposed: list[Column] = []
    candidates: list[LevelCandidate] = []
    for column_name in columns:
        proposal = _meta(column_name, unit, repeat)
        if proposal is None:
            try:
                values = _values(sample, column_name)
                proposal = _propose(column_name, hints.get(column_name), values, ctx)
            except pl.exceptions.PolarsError:
                proposal = Proposal(
                    Column(name=column_name, type="string", role="free_text"),
                    (_note(column_name, "free_text", "could not be profiled: kept as free text"),),
                )
        if proposal.column is not None:
            proposed.append(proposal.column)
        if proposal.candidate is not None:
            candidates.append(proposal.candidate)
        notes.extend(proposal.notes)
    contract = DatasetContract(
        name=name,
        version=1,
        title=title or (codebook.title if codebook else name),
        columns=tuple(proposed),
        privacy=PrivacyUnit(unit_key=unit, max_contributions=contributions),
    )
    return ContractDraft(
        contract=contract,
        notes=(*notes, *_closing_notes(table, sample, columns, choices, unit)),
        source=table.source,
        candidates=tuple(candidates),
    )


def _closing_notes(
    table: Table,
    sample: pl.DataFrame,
    columns: list[str],
    choices: Choices,
    unit: str | None,
    *,
    known: Iterable[str] = (),
) -> list[DraftNote]:
    """What the file as a whole and the steward's choices leave to say, after the columns
    (`known`: other names the steward may use, a shared codebook's columns)."""
    notes = _file_notes(table, sample, columns)
    unknown = sorted((set(choices.categorical) | choices.show_levels) - {*columns, *known})
    for column_name in unknown:
        notes.append(_note(column_name, "warning", "you named this column, but the file has none"))
    if unit is None:
        notes.append(
            _note("", "warning", "no unit key found: each row will count as its own respondent")
        )
    notes.append(_note("", "info", "fill in the methodology (collection, sampling, consent...)"))
    return notes
