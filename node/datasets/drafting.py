"""Propose a dataset contract from an export (and its XLSForm) for the steward to edit.

Identifiers (names, phone numbers, GPS, national ids, e-mail) are detected by column name
and by the shape of values, and flagged by default. Levels proposed from data rather than
from a codebook are flagged too: they become public once the contract is published.
The draft is computed on the steward's own machine; its notes never quote a value.
"""

import re
from dataclasses import dataclass

import polars as pl

from contracts.v1 import Column, DatasetContract, Level, PrivacyUnit
from contracts.v1.dataset import ColumnType
from node.datasets.codebook import Codebook, Question, constraint_bounds
from node.datasets.readers import ROW_INDEX, Table
from node.datasets.schemas import ContractDraft, DraftNote

SAMPLE_ROWS = 50_000
MAX_DATA_LEVELS = 20
DEFAULT_REPEAT_CONTRIBUTIONS = 10
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
META_IDENTIFIERS = {"_submitted_by", "SubmitterName", "SubmitterID", "_geolocation", "deviceid"}
META_TIMES = {"_submission_time", "SubmissionDate", "start", "end", "today"}
UNIT_KEY_NAMES = ("PARENT_KEY", "_uuid", "KEY", "respondent_id", "respondent", "pid", "person_id")
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
PLACE_WORDS = {
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
}
NAME_WORDS = {"name", "fullname", "firstname", "surname", "lastname", "fname", "lname", "nom"}
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


@dataclass(frozen=True)
class Proposal:
    column: Column | None  # None: left out of the contract
    notes: tuple[DraftNote, ...] = ()


def tokens(name: str) -> list[str]:
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", name)
    return [t for t in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if t]


def identifier_by_name(name: str, label: str = "") -> str | None:
    """What kind of identifier a column's name (or question label) suggests, if any."""
    words = set(tokens(name)) | set(tokens(label)[:6])
    if words & NAME_WORDS and not words & PLACE_WORDS:
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


def _free_text(values: pl.Series) -> bool:
    if values.is_empty():
        return False
    chars = _num(values.str.len_chars().mean())
    return chars > 40 or _num(values.str.split(" ").list.len().mean()) > 5


def _note(column: str, flag: str, note: str) -> DraftNote:
    return DraftNote.model_validate({"column": column, "flag": flag, "note": note})


def _identifier(name: str, why: str, title: str | None = None) -> Proposal:
    return Proposal(
        Column(name=name, type="string", role="identifier", title=title),
        (_note(name, "identifier", f"looks like {why}: dropped at import unless you change it"),),
    )


def _from_question(
    name: str, q: Question, book: Codebook, sample: pl.Series, option: str | None
) -> Proposal:
    title = q.labels.get("en") or next(iter(q.labels.values()), None)
    if option is not None:
        choice = next(
            (c for c in book.choices.get(q.list_name or "", []) if c.name == option), None
        )
        choice_title = (choice.labels.get("en") if choice else None) or option
        return Proposal(
            Column(
                name=name,
                type="categorical",
                title=f"{title or q.name}: {choice_title}",
                levels=(
                    Level(code="yes", labels={"en": "Yes"}),
                    Level(code="no", labels={"en": "No"}),
                ),
            )
        )
    if q.type in IDENTIFIER_QUESTION_TYPES:
        return _identifier(name, IDENTIFIER_QUESTION_TYPES[q.type], title)
    if q.type in LEFT_OUT_QUESTION_TYPES:
        return Proposal(None, (_note(name, "info", "media or audit files: left out"),))
    if q.type == "select_multiple":
        return Proposal(
            None, (_note(name, "info", "answer list left out; its yes/no columns are used"),)
        )
    why = identifier_by_name(name, title or "")
    if q.type == "select_one" and q.list_name in book.choices:
        levels = tuple(Level(code=c.name, labels=c.labels) for c in book.choices[q.list_name])
        return Proposal(Column(name=name, type="categorical", title=title, levels=levels))
    if q.type in ("integer", "decimal", "range"):
        lower, upper = constraint_bounds(q.constraint)
        ctype: ColumnType = "number" if q.type == "decimal" else "integer"
        notes: tuple[DraftNote, ...] = ()
        if lower is None or upper is None:
            lower = upper = None
            notes = (_note(name, "needs_bounds", "set public bounds (lower, upper)"),)
        column = Column(
            name=name, type=ctype, role="measure", title=title, lower=lower, upper=upper
        )
        return Proposal(column, notes)
    if q.type in ("date", "datetime", "start", "end", "today"):
        return Proposal(Column(name=name, type="datetime", role="other", title=title))
    if why is not None:
        return _identifier(name, why, title)
    if q.type == "text":
        by_values = identifier_by_values(sample)
        if by_values is not None:
            return _identifier(name, by_values, title)
        return Proposal(
            Column(name=name, type="string", role="free_text", title=title),
            (_note(name, "free_text", "free text: stored never queryable, or drop the column"),),
        )
    return Proposal(Column(name=name, type="string", role="other", title=title))


def _from_data(name: str, frame: pl.LazyFrame, sample: pl.Series) -> Proposal:
    why = identifier_by_name(name) or identifier_by_values(sample)
    if why is not None:
        return _identifier(name, why)
    if sample.is_empty():
        return Proposal(
            Column(name=name, type="string", role="other"),
            (_note(name, "info", "no values in the sample: type unknown"),),
        )
    numbers = sample.str.strip_chars().cast(pl.Float64, strict=False)
    numeric = numbers.is_not_null().mean() == 1.0
    integral = numeric and bool((numbers == numbers.round(0)).all())
    distinct = sample.n_unique()
    if distinct <= MAX_DATA_LEVELS and (not numeric or integral):
        codes = frame.select(pl.col(name).str.strip_chars().drop_nulls().unique()).collect()
        values = sorted(codes[name].to_list(), key=lambda v: (len(v), v) if integral else v)
        if len(values) <= MAX_DATA_LEVELS and all(values):
            return Proposal(
                Column(
                    name=name,
                    type="categorical",
                    levels=tuple(Level(code=v) for v in values),
                ),
                (
                    _note(
                        name,
                        "levels_from_data",
                        "levels proposed from the data: check them against the codebook,"
                        " they become public",
                    ),
                ),
            )
    if numeric:
        return Proposal(
            Column(name=name, type="integer" if integral else "number", role="measure"),
            (_note(name, "needs_bounds", "set public bounds (lower, upper)"),),
        )
    parsed = sample.str.to_datetime(strict=False)
    if parsed.is_not_null().mean() == 1.0:
        return Proposal(Column(name=name, type="datetime", role="other"))
    if _free_text(sample):
        return Proposal(
            Column(name=name, type="string", role="free_text"),
            (_note(name, "free_text", "free text: stored never queryable, or drop the column"),),
        )
    return Proposal(
        Column(name=name, type="string", role="other"),
        (_note(name, "info", "many distinct short values: kept as text, not queryable"),),
    )


def _unit_key(names: list[str], sample: pl.DataFrame, repeat: bool) -> str | None:
    for candidate in UNIT_KEY_NAMES:
        if candidate in names and (repeat or candidate != "PARENT_KEY"):
            return candidate
    for name in names:
        words = set(tokens(name))
        if words & {"respondent", "pid", "uuid"} or words == {"id"}:
            column = sample[name].drop_nulls()
            if column.len() and column.n_unique() == column.len():
                return name
    return None


def draft(
    *, table: Table, name: str, codebook: Codebook | None = None, title: str | None = None
) -> ContractDraft:
    frame = table.frame
    sample = frame.head(SAMPLE_ROWS).collect()
    names = [n for n in sample.columns if n != ROW_INDEX]
    repeat = table.source.repeat is not None
    unit = _unit_key(names, sample, repeat)
    columns: list[Column] = []
    notes: list[DraftNote] = []
    for column_name in names:
        values = sample[column_name].drop_nulls()
        values = values.filter(values.str.strip_chars() != "")
        proposal: Proposal
        if column_name == unit:
            proposal = Proposal(Column(name=column_name, type="string", role="unit_key"))
        elif column_name in META_LEFT_OUT or (column_name == "PARENT_KEY" and not repeat):
            proposal = Proposal(None, (_note(column_name, "info", "export metadata: left out"),))
        elif column_name in META_IDENTIFIERS:
            proposal = _identifier(column_name, "metadata that identifies a person or device")
        elif column_name in META_TIMES:
            proposal = Proposal(Column(name=column_name, type="datetime", role="other"))
        elif column_name in {"KEY", "_uuid"}:
            proposal = Proposal(None, (_note(column_name, "info", "submission id: left out"),))
        else:
            question, option = _question(column_name, table, codebook)
            if question is not None and codebook is not None:
                proposal = _from_question(column_name, question, codebook, values, option)
            else:
                proposal = _from_data(column_name, frame, values)
        if proposal.column is not None:
            columns.append(proposal.column)
        notes.extend(proposal.notes)
    if unit is None:
        notes.append(
            _note("", "info", "no unit key found: each row will count as its own respondent")
        )
    elif repeat:
        notes.append(
            _note(
                unit,
                "info",
                f"repeat rows share their submission: at most {DEFAULT_REPEAT_CONTRIBUTIONS}"
                " rows per submission are kept; set privacy.max_contributions",
            )
        )
    notes.append(_note("", "info", "fill in the methodology (collection, sampling, consent...)"))
    contract = DatasetContract(
        name=name,
        version=1,
        title=title or (codebook.title if codebook else name),
        columns=tuple(columns),
        privacy=PrivacyUnit(
            unit_key=unit,
            max_contributions=DEFAULT_REPEAT_CONTRIBUTIONS if repeat and unit else 1,
        ),
    )
    return ContractDraft(contract=contract, notes=tuple(notes), source=table.source)


def _question(
    name: str, table: Table, codebook: Codebook | None
) -> tuple[Question | None, str | None]:
    if codebook is None:
        return None, None
    if name in table.option_columns:
        question, option = table.option_columns[name]
        return codebook.question(question), option
    if name in table.derived:
        for q in codebook.questions:
            if q.type == "select_multiple" and name.startswith(f"{q.name}_"):
                return q, name[len(q.name) + 1 :]
    return codebook.question(name), None
