"""KoboToolbox and ODK Central exports of real XLSForms, generated in tests (no binary fixtures).

`read_form` walks an XLSForm's survey sheet into sections (the root and every repeat, at any
depth) of fields, on its own: it is what the node's codebook reader and import are tested
against. `generate` fills a form with submissions (every type a value of its kind, some
questions unanswered, 0-3 instances of each repeat per parent). The writers lay them out as
the tools do:

- Kobo XLSX: the main sheet (named after the form) and one sheet per repeat, XML names with
  `/` group paths, select_multiple option columns `q/opt` (1/0, blank when unanswered),
  geopoints split into `_q_latitude`..., Kobo's `_id`, `_uuid`, ... and, on repeat sheets,
  `_index`, `_parent_table_name`, `_parent_index`, `_submission__*`;
- Kobo CSV: the main table, `;`-separated, optionally with a BOM or saved as Windows-1252
  (characters it cannot hold become `?`, as Excel does);
- ODK Central: `form.csv` and `form-repeat.csv` per repeat, `-` group paths (relative to the
  repeat), `KEY` / `PARENT_KEY` (`uuid:…/trees[1]/stems[2]`), geopoints in four columns, and
  with `split=True` a `q/opt` column per option seen in the data (0 under every option of an
  unanswered question, as Central writes it); zipped or as sibling files.

`Export.expected` says, per normalised column name, what every row should read back as.
"""

import csv
import io
import random
import re
import uuid
import zipfile
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import openpyxl

SHARED_FORMS = Path(__file__).resolve().parents[3] / "shared" / "data" / "xlsforms"
REAL_FORMS = ("UCL_Biomass_Plot_Form.xlsx", "liberiaCoverage.xlsx")
CANARY_COMMENT = "zq-canary-comment-5e1d Amina was beaten by"
CANARY_NAME = "Zqcanary Wanjiru Otieno"
CANARY_INCOME = 9_876_543_217  # ten digits: never found by chance in a hash
NAMES = ("Amina", "Wanjiru", "Sita", "Rahima", "Lan", "Achieng", "Nasreen", "Grace", "Maya")
SURNAMES = ("Otieno", "Sharma", "Begum", "Nguyen", "Banda", "Okafor", "Tamang", "Mwangi")
NO_COLUMN = {"begin group", "end group", "begin repeat", "end repeat", "note"}
DEVANAGARI = "पानीको समस्या"
_BOUND = re.compile(r"\.\s*(>=|<=|>|<)\s*(-?\d+(?:\.\d+)?)")


@dataclass
class Field:
    name: str
    type: str
    list_name: str | None
    groups: tuple[str, ...]  # every group and repeat above the field, outermost first
    label: str
    constraint: str | None


@dataclass
class Section:
    """The root (name "") or one repeat: its own fields and the repeats directly inside it."""

    name: str
    path: tuple[str, ...]  # groups and repeats from the root down to this repeat, itself included
    fields: list[Field] = field(default_factory=list)
    repeats: list["Section"] = field(default_factory=list)
    parent: "Section | None" = None


@dataclass
class Form:
    path: Path
    form_id: str
    title: str
    root: Section
    choices: dict[str, list[str]]

    def sections(self) -> list[Section]:
        out, todo = [], [self.root]
        while todo:
            section = todo.pop(0)
            out.append(section)
            todo.extend(section.repeats)
        return out

    def section(self, name: str) -> Section:
        return next(s for s in self.sections() if s.name == name)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def read_form(path: Path) -> Form:
    """The form at `path`, parsed once per content (collection and fixtures read the same
    forms; the Liberian one's thousand styled empty columns take a CPU second a read)."""
    return _read_form(path, path.read_bytes())


@cache
def _read_form(path: Path, content: bytes) -> Form:
    book = openpyxl.load_workbook(io.BytesIO(content), read_only=True, data_only=True)
    sheets = {ws.title.strip().lower(): ws for ws in book.worksheets}

    def rows(name: str) -> list[dict[str, str]]:
        if name not in sheets:
            return []
        it = sheets[name].iter_rows(values_only=True)
        header = [_text(h).lower().replace("list name", "list_name") for h in next(it)]
        out, empty = [], 0
        for raw in it:
            values = [_text(v) for v in raw]
            if not any(values):
                empty += 1
                if empty > 200:
                    break
                continue
            empty = 0
            out.append(dict(zip(header, values, strict=False)))
        return out

    settings = (rows("settings") or [{}])[0]
    choices: dict[str, list[str]] = {}
    for row in rows("choices"):
        if (
            row.get("list_name")
            and row.get("name")
            and row["name"] not in choices.get(row["list_name"], [])
        ):
            choices.setdefault(row["list_name"], []).append(row["name"])
    root = Section(name="", path=())
    stack: list[tuple[str, Section | None]] = []  # (group or repeat name, section if repeat)
    current = root
    for row in rows("survey"):
        kind = " ".join(row.get("type", "").lower().replace("_", " ").split())
        name = row.get("name", "")
        if kind in ("begin group", "begin repeat"):
            if kind == "begin repeat":
                groups = tuple(n for n, _ in stack)
                section = Section(name=name, path=(*groups, name), parent=current)
                current.repeats.append(section)
                current = section
                stack.append((name, section))
            else:
                stack.append((name, None))
            continue
        if kind in ("end group", "end repeat"):
            if stack:
                _, ended = stack.pop()
                if ended is not None and ended.parent is not None:
                    current = ended.parent
            continue
        if not name or not kind or kind in NO_COLUMN:
            continue
        parts = row["type"].split()
        base = parts[0].lower()
        label = next((v for k, v in row.items() if k.startswith("label") and v), "")
        current.fields.append(
            Field(
                name=name,
                type=base,
                list_name=parts[1] if len(parts) > 1 else None,
                groups=tuple(n for n, _ in stack),
                label=label,
                constraint=row.get("constraint") or None,
            )
        )
    book.close()
    form_id = settings.get("form_id") or path.stem
    return Form(
        path=path,
        form_id=form_id,
        title=settings.get("form_title") or path.stem,
        root=root,
        choices=choices,
    )


# --- a small disability scorecard with a planted canary respondent ----------------------------


def scorecard_form(path: Path) -> Path:
    """A community disability scorecard (Swahili/English) with a repeat of indicator scores."""
    book = openpyxl.Workbook()
    survey = book.active
    assert survey is not None
    survey.title = "survey"
    for row in (
        ("type", "name", "label::English (en)", "label::Swahili (sw)", "constraint"),
        ("start", "start", None, None, None),
        ("begin group", "respondent", "Respondent", "Mhojiwa", None),
        ("text", "resp_name", "Name of respondent", "Jina la mhojiwa", None),
        ("text", "caregiver", "Caregiver", "Mlezi", None),
        ("integer", "age", "Age in years", "Umri", ". >= 0 and . <= 120"),
        ("select_one sex", "sex", "Sex", "Jinsia", None),
        ("select_one wg", "seeing", "Difficulty seeing", "Ugumu wa kuona", None),
        ("end group", None, None, None, None),
        ("select_one district", "district", "District", "Wilaya", None),
        ("text", "ward", "Ward", "Kata", None),
        ("select_multiple barriers", "barriers", "Barriers faced", "Vikwazo", None),
        ("text", "barriers_other", "Other barrier", "Kikwazo kingine", None),
        ("integer", "income", "Monthly income", "Mapato ya mwezi", None),
        ("begin repeat", "indicator_scores", "Indicator scores", "Alama", None),
        ("select_one indicator", "indicator", "Indicator", "Kiashiria", None),
        ("integer", "score", "Score", "Alama", ". >= 1 and . <= 5"),
        ("text", "remark", "Remark", "Maoni", None),
        ("end repeat", None, None, None, None),
        ("text", "comment", "Any other comment", "Maoni mengine", None),
        ("phonenumber", "phone", "Phone", "Simu", None),
    ):
        survey.append(row)
    choices = book.create_sheet("choices")
    choices.append(("list_name", "name", "label::English (en)", "label::Swahili (sw)"))
    for list_name, items in {
        "sex": ("female", "male", "intersex"),
        "wg": ("no_difficulty", "some", "a_lot", "cannot"),
        "district": ("kibera", "mathare", "kisumu"),
        "barriers": ("transport", "cost", "attitudes", "buildings", "other"),
        "indicator": ("ramps", "sign_language", "braille", "staff_training"),
    }.items():
        for item in items:
            choices.append((list_name, item, item.replace("_", " ").title(), item))
    settings = book.create_sheet("settings")
    settings.append(("form_title", "form_id", "default_language"))
    settings.append(("Disability scorecard", "disability_scorecard", "English (en)"))
    book.save(path)
    return path


# --- submissions --------------------------------------------------------------------------------


@dataclass
class Instance:
    """One filled section: the root (a submission) or one repeat instance."""

    section: Section
    values: dict[str, str | None]
    index: int  # Kobo `_index` within its sheet, from 1
    key: str  # ODK KEY
    parent: "Instance | None"
    submission: "Instance | None"
    position: int = 1  # position among its siblings, from 1 (ODK's [n])
    children: dict[str, list["Instance"]] = field(default_factory=dict)


@dataclass
class Survey:
    form: Form
    submissions: list[Instance]

    def instances(self, section: str) -> list[Instance]:
        out = []

        def walk(instance: Instance) -> None:
            if instance.section.name == section:
                out.append(instance)
            for children in instance.children.values():
                for child in children:
                    walk(child)

        for submission in self.submissions:
            walk(submission)
        return out


def _bounds(constraint: str | None) -> tuple[float, float]:
    low, high = 0.0, 100.0
    if constraint and " or " not in constraint:
        for op, number in _BOUND.findall(constraint):
            if op.startswith(">"):
                low = float(number)
            else:
                high = float(number)
    return low, high


def _value(f: Field, rng: random.Random, options: list[str], n: int) -> str | None:
    if rng.random() < (0.3 if f.type == "select_multiple" else 0.12):
        return None  # not relevant, or skipped
    kind = f.type
    if kind == "select_one":
        return rng.choice(options) if options else "x1"
    if kind.startswith("select_one_from_file") or kind == "select_one_external":
        return f"f{rng.randint(1, 4)}"
    if kind == "select_multiple":
        picked = [o for o in options if rng.random() < 0.4] or [rng.choice(options or ["x1"])]
        return " ".join(picked)
    if kind in ("integer", "range"):
        low, high = _bounds(f.constraint)
        return str(rng.randint(int(low), int(high)))
    if kind == "decimal":
        low, high = _bounds(f.constraint)
        return f"{rng.uniform(low, high):.1f}"
    if kind in ("date", "today"):
        return f"2024-0{rng.randint(1, 9)}-{rng.randint(10, 28)}"
    if kind in ("datetime", "start", "end"):
        return f"2024-05-{rng.randint(10, 28)}T0{rng.randint(1, 9)}:15:00.000+03:00"
    if kind == "geopoint":
        return f"-1.{rng.randint(1000, 9999)} 36.{rng.randint(1000, 9999)} 1700 5"
    if kind in ("image", "audio", "video", "file"):
        return f"photo-{rng.randint(1000, 9999)}.jpg"
    if kind == "deviceid":
        return f"collect:{rng.randint(10**9, 10**10)}"
    if kind == "acknowledge":
        return "OK"
    if kind == "phonenumber":
        return f"+2547{rng.randint(10**7, 10**8 - 1)}"
    if kind == "calculate":
        return str(rng.randint(0, 3))
    if kind == "text":
        lowered = f"{f.name} {f.label}".lower()
        if "caregiver" in lowered:
            # Few distinct people (a mother of several respondents): a short list of values
            # that a careless draft would have made public levels.
            return f"{rng.choice(NAMES[:5])} {SURNAMES[0]}"
        if "name" in lowered:
            return f"{rng.choice(NAMES)} {rng.choice(SURNAMES)}"
        if f.name == "ward":
            return rng.choice(("Gatwekera", "Kianda", "Soweto East", "Makina"))
        return f"{rng.choice(('no water', 'far clinic', 'ok', DEVANAGARI))}, remark {n}"
    return f"v{rng.randint(1, 9)}"


def generate(form: Form, submissions: int = 40, seed: int = 7, canary: bool = True) -> Survey:
    rng = random.Random(seed)
    counters: dict[str, int] = {}

    def fill(
        section: Section, parent: Instance | None, position: int, key: str, n: int
    ) -> Instance:
        counters[section.name] = counters.get(section.name, 0) + 1
        values = {
            f.name: _value(f, rng, form.choices.get(f.list_name or "", []), n)
            for f in section.fields
        }
        instance = Instance(
            section=section,
            values=values,
            index=counters[section.name],
            key=key,
            parent=parent,
            submission=parent.submission if parent and parent.submission else parent,
            position=position,
        )
        for repeat in section.repeats:
            kids = []
            groups = repeat.path[len(section.path) : -1]
            for i in range(rng.randint(0, 3)):
                step = "/".join((*groups, f"{repeat.name}[{i + 1}]"))
                kids.append(fill(repeat, instance, i + 1, f"{key}/{step}", n))
            instance.children[repeat.name] = kids
        return instance

    out = []
    for n in range(submissions):
        key = f"uuid:{uuid.UUID(int=rng.getrandbits(128), version=4)}"
        out.append(fill(form.root, None, 1, key, n))
    if canary and any(f.name == "comment" for f in form.root.fields):
        planted = out[min(7, len(out) - 1)].values
        planted.update(comment=CANARY_COMMENT, resp_name=CANARY_NAME, income=str(CANARY_INCOME))
    return Survey(form=form, submissions=out)


# --- layouts -----------------------------------------------------------------------------------


def _option_names(survey: Survey, section: Section, f: Field, *, seen_only: bool) -> list[str]:
    if not seen_only:
        return survey.form.choices.get(f.list_name or "", [])
    seen: list[str] = []
    for instance in survey.instances(section.name):
        for value in (instance.values.get(f.name) or "").split():
            if value not in seen:
                seen.append(value)
    return seen


@dataclass
class Column:
    header: str
    name: str  # the normalised name a reader should give it
    values: list[str | None]  # what is written, row by row
    expected: list[str | None]  # what should be read back


@dataclass
class Export:
    """One table of an export: its columns as written, and how many rows it has."""

    columns: list[Column]
    rows: int

    @property
    def expected(self) -> dict[str, list[str | None]]:
        return {c.name: c.expected for c in self.columns}


def _unique_names(columns: list[Column], sep: str) -> None:
    """Leaf names, or the full path where two leaves clash (as the node names them)."""
    counts: dict[str, int] = {}
    for c in columns:
        counts[c.name] = counts.get(c.name, 0) + 1
    for c in columns:
        if counts[c.name] > 1:
            c.name = re.sub(r"[^A-Za-z0-9_]+", "_", re.sub(r"[/-]", "_", c.header)).strip("_")


def _yes_no(answer: str | None, option: str) -> str | None:
    if answer is None:
        return None
    return "yes" if option in answer.split() else "no"


def table(survey: Survey, section: str, *, tool: str, split: bool = False) -> Export:
    """The columns of one table of `survey` as `tool` (kobo | odk) writes them."""
    sec = survey.form.section(section)
    rows = survey.instances(section)
    sep = "/" if tool == "kobo" else "-"
    cols: list[Column] = []
    for f in sec.fields:
        # Kobo writes full XML paths; ODK paths relative to the repeat the field sits in.
        groups = f.groups if tool == "kobo" else f.groups[len(sec.path) :]
        header = sep.join((*groups, f.name))
        values = [r.values.get(f.name) for r in rows]
        if f.type == "geopoint" and tool == "odk":
            for i, part in enumerate(("Latitude", "Longitude", "Altitude", "Accuracy")):
                parts = [v.split()[i] if v else None for v in values]
                cols.append(Column(f"{header}-{part}", f"{f.name}_{part}", parts, parts))
            continue
        cols.append(Column(header, f.name, values, values))
        if f.type == "geopoint":
            for i, part in enumerate(("latitude", "longitude", "altitude", "precision")):
                parts = [v.split()[i] if v else None for v in values]
                cols.append(Column(f"_{f.name}_{part}", f"_{f.name}_{part}", parts, parts))
        if f.type == "select_multiple" and (tool == "kobo" or split):
            for option in _option_names(survey, sec, f, seen_only=tool == "odk"):
                written: list[str | None] = []
                for v in values:
                    if tool == "kobo":
                        written.append(None if v is None else ("1" if option in v.split() else "0"))
                    else:
                        written.append("1" if v and option in v.split() else "0")
                expected = [_yes_no(v, option) for v in values]
                name = f"{f.name}_{option}"
                if name in {g.name for g in sec.fields}:
                    name = f"{f.name}__{option}"  # beside the form's own `q_other` question
                cols.append(Column(f"{header}/{option}", name, written, expected))
    _unique_names(cols, sep)
    if tool == "kobo":
        cols.extend(_kobo_meta(survey, sec, rows))
    else:
        cols.extend(_odk_meta(sec, rows))
    return Export(columns=cols, rows=len(rows))


def _kobo_meta(survey: Survey, sec: Section, rows: list[Instance]) -> list[Column]:
    def col(header: str, values: list[str | None]) -> Column:
        return Column(header, header, values, values)

    subs = [r.submission or r for r in rows]
    when = [f"2024-06-{1 + s.index % 28:02d}T10:00:00" for s in subs]
    uuids = [s.key.removeprefix("uuid:") for s in subs]
    if sec.parent is None:
        return [
            col("_id", [str(1000 + s.index) for s in subs]),
            col("_uuid", uuids),
            col("_submission_time", when),
            col("_validation_status", [None] * len(rows)),
            col("_status", ["submitted_via_web"] * len(rows)),
            col("_submitted_by", ["enumerator7"] * len(rows)),
            col("__version__", ["vXyZ"] * len(rows)),
            col("_index", [str(r.index) for r in rows]),
        ]
    parent_table = sec.parent.name or survey.form.title[:31]
    return [
        col("_index", [str(r.index) for r in rows]),
        col("_parent_table_name", [parent_table] * len(rows)),
        col("_parent_index", [str(r.parent.index) if r.parent else None for r in rows]),
        col("_submission__id", [str(1000 + s.index) for s in subs]),
        col("_submission__uuid", uuids),
        col("_submission__submission_time", when),
        col("_submission__submitted_by", ["enumerator7"] * len(rows)),
    ]


def _odk_meta(sec: Section, rows: list[Instance]) -> list[Column]:
    def col(header: str, values: list[str | None], name: str | None = None) -> Column:
        return Column(header, name or header, values, values)

    if sec.parent is None:
        keys = [r.key for r in rows]
        return [
            col("SubmissionDate", [f"2024-06-{1 + r.index % 28:02d}T10:00:00.000Z" for r in rows]),
            col("meta-instanceID", keys, "instanceID"),
            col("KEY", keys),
            col("SubmitterID", ["7"] * len(rows)),
            col("SubmitterName", ["enumerator seven"] * len(rows)),
            col("AttachmentsPresent", ["0"] * len(rows)),
            col("AttachmentsExpected", ["0"] * len(rows)),
            col("Status", [None] * len(rows)),
            col("ReviewState", [None] * len(rows)),
            col("DeviceID", [None] * len(rows)),
            col("Edits", ["0"] * len(rows)),
            col("FormVersion", ["2024061001"] * len(rows)),
        ]
    return [
        col("PARENT_KEY", [r.parent.key if r.parent else None for r in rows]),
        col("KEY", [r.key for r in rows]),
    ]


# --- files -----------------------------------------------------------------------------------


def _csv_text(export: Export, sep: str, line_end: str) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=sep, lineterminator=line_end)
    writer.writerow([c.header for c in export.columns])
    for i in range(export.rows):
        writer.writerow(["" if c.values[i] is None else c.values[i] for c in export.columns])
    return buffer.getvalue()


def kobo_csv(survey: Survey, path: Path, *, encoding: str = "utf-8") -> Export:
    """The main table as Kobo's CSV export (`;`); `utf-8-sig` adds a BOM, `cp1252` loses
    what Windows-1252 cannot hold (as `?`)."""
    export = table(survey, "", tool="kobo")
    path.write_bytes(_csv_text(export, ";", "\r\n").encode(encoding, errors="replace"))
    return export


def kobo_xlsx(survey: Survey, path: Path) -> dict[str, Export]:
    """Main sheet plus a sheet per repeat; numbers written as numbers, as Kobo does."""
    book = openpyxl.Workbook()
    book.remove(book.active)  # type: ignore[arg-type]
    exports = {}
    numeric = {
        f.name
        for s in survey.form.sections()
        for f in s.fields
        if f.type in ("integer", "decimal", "range")
    }
    for sec in survey.form.sections():
        export = table(survey, sec.name, tool="kobo")
        sheet = book.create_sheet((sec.name or survey.form.title)[:31])
        sheet.append([c.header for c in export.columns])
        for i in range(export.rows):
            row: list[Any] = []
            for c in export.columns:
                value = c.values[i]
                if value is not None and c.header.rsplit("/", 1)[-1] in numeric:
                    row.append(float(value) if "." in value else int(value))
                else:
                    row.append(value)
            sheet.append(row)
        exports[sec.name] = export
    book.save(path)
    return exports


def odk_files(
    survey: Survey, folder: Path, *, split: bool = False
) -> dict[str, tuple[Path, Export]]:
    """`form.csv` and `form-<repeat>.csv` per repeat, as ODK Central writes them."""
    out = {}
    for sec in survey.form.sections():
        export = table(survey, sec.name, tool="odk", split=split)
        stem = survey.form.form_id + (f"-{sec.name}" if sec.name else "")
        path = folder / f"{stem}.csv"
        path.write_text(_csv_text(export, ",", "\n"), encoding="utf-8")
        out[sec.name] = (path, export)
    return out


def odk_zip(survey: Survey, path: Path, *, split: bool = False) -> dict[str, Export]:
    folder = path.parent / f"{path.stem}-files"
    folder.mkdir(exist_ok=True)
    files = odk_files(survey, folder, split=split)
    with zipfile.ZipFile(path, "w") as z:
        for file, _export in files.values():
            z.write(file, file.name)
    return {name: export for name, (_file, export) in files.items()}


def expected_joined(survey: Survey, section: str, tool: str) -> dict[str, list[str | None]]:
    """Ancestors' question columns as a repeat table should carry them, row by row."""
    sec = survey.form.section(section)
    rows = survey.instances(section)
    out: dict[str, list[str | None]] = {}
    ancestor, depth = sec.parent, 1
    while ancestor is not None:
        for f in ancestor.fields:
            if f.type in ("geopoint",) and tool == "odk":
                continue
            values = []
            for r in rows:
                up = r
                for _ in range(depth):
                    up = up.parent  # type: ignore[assignment]
                values.append(up.values.get(f.name))
            out.setdefault(f.name, values)
        ancestor, depth = ancestor.parent, depth + 1
    submission = "_submission__uuid" if tool == "kobo" else "SUBMISSION_KEY"
    keys = [(r.submission or r).key for r in rows]
    out[submission] = [k.removeprefix("uuid:") for k in keys] if tool == "kobo" else keys
    return out
