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

import numpy as np
import polars as pl

from contracts.v1 import Column, DatasetContract, Level, PrivacyUnit
from contracts.v1.dataset import BoundsPolicy, ColumnType
from node.datasets.codebook import Codebook, Question, constraint_bounds
from node.datasets.repeats import KOBO_SUBMISSION, ODK_SUBMISSION
from node.datasets.schemas import ContractDraft, DraftFlag, DraftNote, LevelCandidate
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
    bounds and policy the steward sets for numeric columns."""

    categorical: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    show_levels: frozenset[str] = frozenset()
    bounds: Mapping[str, tuple[float, float, BoundsPolicy]] = field(default_factory=dict)


def _level_code(code: str) -> bool:
    """Whether `code` can be a contract level (1 to MAX_CODE characters)."""
    return 0 < len(code) <= MAX_CODE


def parse_categorical(text: str) -> tuple[str, tuple[str, ...]]:
    """`sex=female,male,third_gender` -> (`sex`, levels); levels in the order given."""
    column, sep, levels = text.partition("=")
    named = tuple(dict.fromkeys(v.strip() for v in levels.split(",") if v.strip()))
    if not sep or not column.strip() or not named:
        raise ValueError(f"name the column and its levels: COLUMN=LEVEL,LEVEL,... (got {text!r})")
    return column.strip(), named


@dataclass(frozen=True)
class Hint:
    """What a public source says about a column: today a question of the XLSForm."""

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
    if chosen is not None:
        lower, upper, policy = chosen
        why = "bounds you set"
    elif hint is not None and hint.lower is not None and hint.upper is not None:
        lower, upper, policy = hint.lower, hint.upper, "refuse"
        why = f"bounds from {hint.source}'s constraint: values outside are refused at import"
    else:
        # OpenDP loads only when a draft needs it: importing data never pays for it.
        from node.privacy.bounds import BOUNDS_RHO, propose_bounds  # noqa: PLC0415

        numbers = values.str.strip_chars().cast(pl.Float64, strict=False).drop_nulls()
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
        why = (
            f"bounds proposed by a differentially private rule (a noisy histogram on a public"
            f" 1-2-5 grid, rho {BOUNDS_RHO:g} once), never the exact minimum or maximum;"
            " values outside are clipped at query time: widen them if you know a public range"
        )
    column = Column(
        name=name,
        type=ctype,
        role="measure",
        title=title,
        lower=lower,
        upper=upper,
        bounds_policy=policy,
    )
    return Proposal(column, (_note(name, "info", f"{ctype}: {why}"),))


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


def draft(
    *,
    table: Table,
    name: str,
    codebook: Codebook | None = None,
    title: str | None = None,
    choices: Choices | None = None,
    hints: Mapping[str, Hint] | None = None,
) -> ContractDraft:
    """A contract for `table`, every column with a reason; `hints` default to the codebook's."""
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
    proposed: list[Column] = []
    candidates: list[LevelCandidate] = []
    for column_name in columns:
        proposal = _meta(column_name, unit, repeat)
        if proposal is None:
            try:
                values = sample[column_name].drop_nulls().str.strip_chars()
                values = values.filter(values != "")
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
    notes.extend(_file_notes(table, sample, columns))
    unknown = sorted((set(choices.categorical) | choices.show_levels) - set(columns))
    for column_name in unknown:
        notes.append(_note(column_name, "warning", "you named this column, but the file has none"))
    if unit is None:
        notes.append(
            _note("", "warning", "no unit key found: each row will count as its own respondent")
        )
    notes.append(_note("", "info", "fill in the methodology (collection, sampling, consent...)"))
    contract = DatasetContract(
        name=name,
        version=1,
        title=title or (codebook.title if codebook else name),
        columns=tuple(proposed),
        privacy=PrivacyUnit(unit_key=unit, max_contributions=contributions),
    )
    return ContractDraft(
        contract=contract, notes=tuple(notes), source=table.source, candidates=tuple(candidates)
    )
