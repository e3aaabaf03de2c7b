"""Read an export (Kobo, ODK Central, CSV, XLSX, Parquet) into text columns with clean names.

Every reader yields a polars LazyFrame whose columns are all strings: the contract, not a
reader's guess, decides types. Column names are normalised (group paths stripped,
select_multiple option columns named `question_option`), Kobo and ODK exports are told
apart by the columns those tools write (node.datasets.formats), repeat groups are joined up
to their submission (node.datasets.repeats), and a codebook, or the contract itself, can
derive the yes/no option columns an export lacks.

Select_multiple option columns (`group/q/opt` in Kobo, `group-q/opt` in ODK Central's "split
select multiples" export) read as yes/no; a question left unanswered (its answer column
blank) leaves them missing, never "not chosen": ODK writes 0 under every option of an
unanswered question, which read as "no" would bias every share.
"""

import re
from pathlib import Path

import polars as pl

from contracts.v1 import DatasetContract
from node.datasets import formats, repeats
from node.datasets.codebook import Codebook
from node.datasets.exceptions import FileUnreadable
from node.datasets.file_format import FileFormat
from node.datasets.schemas import Issue
from node.datasets.sources import Progress, Received, sniff
from node.datasets.tables import (
    MAX_ROWS_NAMED,
    ROW_INDEX,
    Table,
    header_of,
    names,
    open_workbook,
    read_parquet,
    read_sheet,
    read_text,
)

__all__ = ["MAX_ROWS_NAMED", "ROW_INDEX", "Table", "derive_for_contract", "read_table"]

YES = {"1", "true", "yes", "TRUE", "True"}
NO = {"0", "false", "no", "FALSE", "False"}
ODK_META = {
    "SubmissionDate",
    "KEY",
    "PARENT_KEY",
    "SubmitterID",
    "SubmitterName",
    repeats.ODK_SUBMISSION,
}
GROUP_SEP: dict[str, str] = {"kobo": "/", "odk": "-"}
OPTION_SEP = "/"  # both tools: `<question column>/<option>`
GEOPOINT_PARTS = ("Latitude", "Longitude", "Altitude", "Accuracy")
_INVALID = re.compile(r"[^A-Za-z0-9_]+")
_LEGAL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def sanitise(name: str, index: int) -> str:
    """A contract-legal column name: ASCII letters, digits and _, at most 63 characters."""
    if _LEGAL.match(name.strip()):
        return name.strip()  # Kobo's __version__ keeps its underscores
    clean = _INVALID.sub("_", name.strip()).strip("_")
    if not clean or not re.search(r"[A-Za-z0-9]", clean):
        return f"column_{index + 1}"
    if clean[0].isdigit():
        clean = f"_{clean}"
    if name.startswith("_") and not clean.startswith("_"):
        clean = f"_{clean}"  # keep Kobo's _uuid, _index, _submission_time recognisable
    return clean[:63]


def _leaf(path: str, sep: str, known: set[str]) -> str:
    """The question a group path names: a codebook question it ends with, else its last step.

    ODK Central splits a geopoint `q` into `q-Latitude`, `q-Longitude`, `q-Altitude` and
    `q-Accuracy`: those keep their question (`q_Latitude`), like Kobo's `_q_latitude`."""
    steps = path.split(sep)
    if sep == "-" and len(steps) >= 2 and steps[-1] in GEOPOINT_PARTS:
        return f"{_leaf(sep.join(steps[:-1]), sep, known)}_{steps[-1]}"
    match = max((q for q in known if path == q or path.endswith(sep + q)), key=len, default=None)
    return match if match is not None else steps[-1]


def option_name(question: str, option: str, questions: set[str]) -> str:
    """The column of one select_multiple option: `q_opt`, or `q__opt` when a question of the
    table already has that name (forms pair option `other` of `q` with a text `q_other`).
    Both ODK layouts name it alike: from `q/opt` headers, and derived from `q`'s answers."""
    name = sanitise(f"{question}_{option}", 0)
    return name if name not in questions else sanitise(f"{question}__{option}", 0)


def normalise_names(
    headers: list[str], *, fmt: FileFormat, codebook: Codebook | None
) -> tuple[dict[str, str], dict[str, tuple[str, str]], dict[str, str], list[Issue]]:
    """Map raw headers to clean names; option columns `q/opt` (after any group path) become
    `q_opt`. Returns the mapping, the option columns (question, option), each option
    column's answer column (clean names), and duplicate-name errors."""
    sep = GROUP_SEP.get(fmt)
    known = {q.name for q in codebook.questions} if codebook else set()
    original = {h.strip(): h for h in headers}
    proposed: list[str] = []
    option_of: dict[int, tuple[str, str, str]] = {}  # header index -> question, option, answer
    for i, header in enumerate(headers):
        name = header.strip()
        if sep and name not in ODK_META:
            answer, _, option = name.rpartition(OPTION_SEP)
            if answer in original and option and answer not in ODK_META:
                question = _leaf(answer, sep, known)
                option_of[i] = (question, option, original[answer])
                name = ""  # named below, once every question's name is known
            else:
                name = _leaf(name, sep, known)
        proposed.append(sanitise(name, i) if name else "")
    questions = {p for p in proposed if p}
    for i, (question, option, _answer) in option_of.items():
        proposed[i] = option_name(question, option, questions)
    seen: dict[str, int] = {}
    for name in proposed:
        seen[name] = seen.get(name, 0) + 1
    final = []
    for i, (header, name) in enumerate(zip(headers, proposed, strict=True)):
        # Two questions with one name in different groups: keep their full paths apart.
        final.append(name if seen[name] == 1 else sanitise(re.sub(r"[/-]", "_", header), i))
    issues: list[Issue] = []
    for name in sorted({n for n in final if final.count(n) > 1}):
        clashing = ", ".join(repr(h) for h, n in zip(headers, final, strict=True) if n == name)
        issues.append(
            Issue(
                severity="error",
                rule="duplicate_column",
                column=name,
                count=final.count(name),
                message=f"columns that get this one name once group paths are left out: {clashing}",
            )
        )
    mapping = dict(zip(headers, final, strict=True))
    options = {final[i]: (q, o) for i, (q, o, _a) in option_of.items()}
    answers = {final[i]: mapping[a] for i, (_q, _o, a) in option_of.items()}
    return mapping, options, answers, issues


def read_table(
    *,
    path: Path,
    fmt: FileFormat | None,
    workdir: Path,
    max_bytes: int,
    codebook: Codebook | None = None,
    repeat: str | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
    sheet: str | None = None,
    progress: Progress | None = None,
) -> Table:
    received = sniff(path, fmt=fmt, max_bytes=max_bytes)
    default: FileFormat = {"parquet": "parquet", "xlsx": "xlsx", "zip": "odk"}.get(  # type: ignore[assignment]
        received.kind, "csv"
    )
    if received.kind == "zip":
        table = repeats.read_odk_zip(received, workdir=workdir, repeat=repeat, progress=progress)
        resolved, hints = formats.resolve(names(table), given=fmt, default=default)
    elif received.kind == "parquet":
        table = read_parquet(received)
        resolved, hints = formats.resolve(names(table), given=fmt, default=default)
    elif received.kind == "xlsx":
        table, resolved, hints = _read_workbook(received, fmt=fmt, sheet=sheet, repeat=repeat)
    else:
        resolved, hints = formats.resolve(header_of(path), given=fmt, default=default)
        table = read_text(
            received,
            fmt=resolved,
            workdir=workdir,
            encoding=encoding,
            delimiter=delimiter,
            progress=progress,
        )
        if repeat is not None and resolved == "odk":
            table = repeats.join_odk_siblings(table, main_path=path, repeat=repeat, workdir=workdir)
        elif repeat is not None:
            raise FileUnreadable(
                f"{path.name} holds one table: repeat groups come as the sheets of a Kobo XLSX"
                " export or the files of an ODK Central export"
            )
    if repeat is not None and table.source.repeat is None:
        raise FileUnreadable(f"no repeat group {repeat} found in {path.name}")
    table.source = table.source.model_copy(update={"format": resolved})
    table.issues = hints + table.issues
    return _finish(table, fmt=resolved, codebook=codebook)


def _read_workbook(
    received: Received, *, fmt: FileFormat | None, sheet: str | None, repeat: str | None
) -> tuple[Table, FileFormat, list[Issue]]:
    workbook = open_workbook(received)
    try:
        wanted = sheet or repeat
        if wanted is not None and wanted not in workbook.sheetnames:
            shown = ", ".join(workbook.sheetnames[:12])
            raise FileUnreadable(f"{received.path.name} has no sheet {wanted} (it has {shown})")
        name = wanted or workbook.sheetnames[0]
        headers = next(workbook[name].iter_rows(values_only=True, max_row=1), ())
        resolved, hints = formats.resolve(
            [str(h) for h in headers if h is not None], given=fmt, default="xlsx"
        )
        if resolved == "kobo":
            table = repeats.read_kobo_sheet(received, workbook, name)
        else:
            table = read_sheet(received, workbook, name, fmt=resolved)
    finally:
        workbook.close()
    return table, resolved, hints


def _option_values(column: str, answer: str | None) -> pl.Expr:
    """Kobo's 1/0 (or True/False) as yes/no; missing when the question was not answered."""
    value = pl.col(column).str.strip_chars()
    unanswered = (
        pl.lit(False)
        if answer is None
        else pl.col(answer).is_null() | (pl.col(answer).str.strip_chars() == "")
    )
    return (
        pl.when(unanswered)
        .then(None)
        .when(value.is_in(list(YES)))
        .then(pl.lit("yes"))
        .when(value.is_in(list(NO)))
        .then(pl.lit("no"))
        .otherwise(pl.col(column))
        .alias(column)
    )


def _option_from_answer(answer: str, option: str, column: str) -> pl.Expr:
    """A yes/no option column derived from the space-separated answer of a select_multiple."""
    tokens = pl.col(answer).str.strip_chars().str.split(" ")
    return (
        pl.when(pl.col(answer).is_null() | (pl.col(answer).str.strip_chars() == ""))
        .then(None)
        .when(tokens.list.contains(option))
        .then(pl.lit("yes"))
        .otherwise(pl.lit("no"))
        .alias(column)
    )


def _finish(table: Table, *, fmt: FileFormat, codebook: Codebook | None) -> Table:
    frame = table.frame
    headers = [h for h in frame.collect_schema().names() if h != ROW_INDEX]
    if len(headers) == len(frame.collect_schema().names()):
        frame = frame.with_row_index(ROW_INDEX, offset=1)
    mapping, options, answers, issues = normalise_names(headers, fmt=fmt, codebook=codebook)
    table.issues.extend(issues)
    frame = frame.rename(mapping)
    if options and not issues:
        frame = frame.with_columns(_option_values(c, answers.get(c)) for c in options)
    table.option_columns = options
    if codebook is not None and not issues:
        present = set(mapping.values())
        questions = present - set(options)
        derived = []
        for q in codebook.questions:
            if q.type != "select_multiple" or q.name not in present or q.list_name is None:
                continue
            for choice in codebook.choices.get(q.list_name, []):
                column = option_name(q.name, choice.name, questions)
                if column in present:
                    continue
                derived.append(_option_from_answer(q.name, choice.name, column))
                table.derived.append(column)
                table.option_columns[column] = (q.name, choice.name)
        if derived:
            frame = frame.with_columns(derived)
    table.frame = frame
    return table


def derive_for_contract(table: Table, contract: DatasetContract) -> Table:
    """Yes/no option columns the contract has and the file lacks, from their question's answer.

    ODK Central's default export writes a select_multiple as one space-separated answer; its
    "split" export adds a `q/opt` column per option seen in the data. A contract drafted from
    either layout names `q_opt` yes/no columns: each missing one is derived from a present
    answer column `q` (the longest name that `q_opt` starts with), so both layouts of one
    form import under one contract, and an option nobody chose is still a column."""
    present = set(names(table))
    # Answer columns: a question the contract does not itself query (the draft leaves a
    # select_multiple's answer list out), so a missing yes/no column is never invented from
    # an unrelated column that happens to share its prefix.
    used = {c.name for c in contract.columns if c.role in ("dimension", "measure", "unit_key")}
    answers = [p for p in present if p not in used and p not in table.option_columns]
    derived = []
    for column in contract.columns:
        if column.name in present or set(column.level_codes) != {"yes", "no"}:
            continue
        answer = max((p for p in answers if column.name.startswith(f"{p}_")), key=len, default=None)
        if answer is None:
            continue
        option = column.name[len(answer) + 1 :]
        if option.startswith("_") and f"{answer}{option}" in present:
            option = option[1:]  # `q__other` beside a text question `q_other`
        derived.append(_option_from_answer(answer, option, column.name))
        table.derived.append(column.name)
    if derived:
        table.frame = table.frame.with_columns(derived)
    return table
