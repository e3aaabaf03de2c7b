"""What the dataset store hands to the rest of the node, and what stewards see of imports."""

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from contracts.v1 import DatasetContract
from node.datasets.file_format import FileFormat

Severity = Literal["error", "warning"]


class LoadedDataset(BaseModel):
    """One stored import version, ready to scan. Internal: never sent over the wire."""

    model_config = ConfigDict(frozen=True)

    contract: DatasetContract
    contract_digest: str
    parquet_path: Path
    data_sha256: str
    version: int = 0


class SourceInfo(BaseModel):
    """Where an import came from: the file as received, before any change."""

    model_config = ConfigDict(frozen=True)

    filename: str
    format: FileFormat
    bytes: int
    sha256: str
    encoding: str | None = None
    delimiter: str | None = None
    sheet: str | None = None
    repeat: str | None = None


class Manifest(BaseModel):
    """manifest.json of an import version. `rows` is exact and stays at the node (steward only)."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: int
    contract_version: int
    rows: int
    data_sha256: str
    contract_digest: str
    created_at: str
    imported_by: str = "steward"
    source: SourceInfo | None = None
    rows_dropped_over_contribution_limit: int = 0


class Issue(BaseModel):
    """One problem or remark: where (column, rows) and which rule; never a cell value.

    `rows` are data rows from 1 (records, the header not counted); `lines`, when given, are
    the file lines those records start on, as an editor shows them (the header is line 1):
    they differ once a quoted field holds a line break."""

    model_config = ConfigDict(frozen=True)

    severity: Severity
    rule: str
    column: str | None = None
    count: int = 0
    rows: tuple[int, ...] = ()
    lines: tuple[int, ...] = ()
    message: str


class ValidationReport(BaseModel):
    """The outcome of checking one file against one contract version (steward only)."""

    model_config = ConfigDict(frozen=True)

    dataset: str
    contract_version: int
    source: SourceInfo | None = None
    rows_read: int
    rows_kept: int
    ok: bool
    issues: tuple[Issue, ...] = ()
    ignored_columns: tuple[str, ...] = ()
    derived_columns: tuple[str, ...] = ()

    @property
    def errors(self) -> tuple[Issue, ...]:
        return tuple(i for i in self.issues if i.severity == "error")

    def summary(self) -> str:
        """One line for an exception message: rules, columns and row numbers only."""
        parts = []
        for issue in self.errors:
            where = f"column {issue.column}: " if issue.column else ""
            rows = f" ({_rows_text(issue)})" if issue.rows else ""
            parts.append(f"{where}{issue.message}{rows}")
        return "; ".join(parts) or "no errors"


def _rows_text(issue: Issue) -> str:
    shown = ", ".join(str(r) for r in issue.rows)
    more = f" and {issue.count - len(issue.rows)} more" if issue.count > len(issue.rows) else ""
    lines = f"; file lines {', '.join(str(n) for n in issue.lines)}" if issue.lines else ""
    return f"rows {shown}{more}{lines}"


class VersionInfo(BaseModel):
    """One import version as the steward lists it."""

    model_config = ConfigDict(frozen=True)

    name: str
    version: int
    contract_version: int
    contract_digest: str
    rows: int
    data_sha256: str
    created_at: str
    imported_by: str
    current: bool
    source: SourceInfo | None = None


class ImportResult(BaseModel):
    model_config = ConfigDict(frozen=True)

    version: VersionInfo
    report: ValidationReport


DraftFlag = Literal[
    "identifier",  # dropped at import (or hashed): a name, phone, GPS, id...
    "free_text",  # stored never queryable, or dropped
    "levels_from_data",  # text that could be categorical once the steward names its levels
    "needs_bounds",  # a numeric column without public bounds: not queryable until set
    "left_out",  # not in the contract: export metadata, media, select_multiple answer lists
    "recode",  # the file's own codes are mapped onto a shared codebook's levels at import
    "unmapped",  # values a shared codebook lacks: refused at import until the steward maps them
    "not_collected",  # a shared codebook's column the file lacks: kept, marked not collected
    "warning",  # something about the file the steward should know (encoding, format)
    "info",  # the reason for an ordinary choice
]


class DraftNote(BaseModel):
    """Why the draft chose what it chose for a column, for the steward to review.

    Every column of the file gets at least one note. Notes name columns, rules and counts,
    never a value of the data."""

    model_config = ConfigDict(frozen=True)

    column: str
    note: str
    flag: DraftFlag


class LevelCandidate(BaseModel):
    """A text column that could be a public categorical dimension, once the steward names its
    levels (`--categorical COLUMN=LEVEL,...`). `values` are the distinct values found, given
    only for the columns the steward asked to see (`--show-levels`): steward-only output that
    is never stored, logged or published."""

    model_config = ConfigDict(frozen=True)

    column: str
    distinct: int
    values: tuple[str, ...] = ()


class ColumnMap(BaseModel):
    """Where one contract column's values come from in this node's exports: the export's own
    column, and its own codes recoded onto the contract's levels (`null`: left missing).
    Values the table does not name pass unchanged, so one the contract lacks is refused by the
    import (`unknown_level`, rows named), never silently added or dropped."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    column: str = Field(min_length=1, max_length=200)
    levels: dict[str, str | None] = Field(default_factory=dict)


class ImportMapping(BaseModel):
    """How this node's exports map onto a contract drafted from a shared codebook (a module or
    a partner's contract): renamed columns and recoded levels, applied to every import and
    dry run under that contract version. It holds the node's own codes, so it stays on the
    node like its data: never published, sent or logged (the audit names its columns only)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    dataset: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$")
    contract_version: int = Field(ge=1)
    source: str = ""  # the shared codebook the contract was drafted from, for the steward
    columns: dict[str, ColumnMap] = Field(default_factory=dict)  # by contract column


class ContractDraft(BaseModel):
    """A proposed contract, why each column is what it is, and (drafted from a shared codebook)
    the mapping of this node's export onto it (`mapping`, steward-only like `candidates`)."""

    model_config = ConfigDict(frozen=True)

    contract: DatasetContract
    notes: tuple[DraftNote, ...]
    source: SourceInfo | None = None
    candidates: tuple[LevelCandidate, ...] = ()
    shared: str | None = None  # the shared codebook drafted from: "module lnob_core v1", ...
    mapping: ImportMapping | None = None
