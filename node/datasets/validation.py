"""Check text columns against a contract: one lazy plan for the checks, one for the clean data.

Every check is a boolean expression per row. Counts come from one aggregate pass; the first
row numbers of a failing check from a second, filtered pass. The contribution limit is
counted from the unit-key column alone in its own pass. Every pass runs on polars'
streaming engine, so memory stays bounded by the number of units, not the file's size.
Nothing here ever reads a cell value into a message: issues carry rule, column, counts and
row numbers only.
"""

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl

from contracts.v1 import Column, DatasetContract
from node.datasets.schemas import Issue

ROW_INDEX = "__sauti_row__"
MAX_ROWS_NAMED = 10
MAX_LEVELS_NAMED = 12
DROPPED_ROLES = ("identifier", "free_text", "unit_key")
_KEY = "__sauti_unit__"
_KEPT_FIRST = ": the first rows of each unit were kept, the rest dropped"
Excess = Literal["refuse", "keep_first"]
# Text whose characters were lost before it reached the node: "????" where a spreadsheet
# saved Devanagari or Bengali as Windows-1252 ("CSV" in Excel), or U+FFFD where a program
# decoded it wrongly. The bytes are valid, so only the text itself can tell.
LOSSY_TEXT = r"\?\?|\x{FFFD}"
LOSSY_MESSAGE = (
    "text where characters were lost (runs of '?' or '\ufffd'): the file was saved in an"
    " encoding that cannot hold them (Windows-1252, Excel's plain 'CSV'); save it as CSV UTF-8"
)
_AWARE = ("%Y-%m-%dT%H:%M:%S%.f%z", "%Y-%m-%dT%H:%M:%S%.fZ", "%Y-%m-%d %H:%M:%S%.f%z")
_NAIVE = ("%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%d", "%d/%m/%Y")


@dataclass(frozen=True)
class Check:
    column: str | None
    rule: str
    message: str
    failing: pl.Expr
    # A warning counts the rows and keeps them; `name_rows` False: the count alone is reported
    # (values clipped at query time: which respondents are outliers is nobody's business).
    severity: Literal["error", "warning"] = "error"
    name_rows: bool = True


@dataclass
class Plan:
    """What validation found, and the lazy frame that would be stored if nothing failed."""

    issues: list[Issue]
    clean: pl.LazyFrame
    rows_read: int
    rows_over_limit: int
    ignored: tuple[str, ...]


def _blank(expr: pl.Expr) -> pl.Expr:
    """Empty or whitespace-only text is a missing value."""
    stripped = expr.str.strip_chars()
    return pl.when(stripped == "").then(None).otherwise(stripped)


def datetime_value(expr: pl.Expr) -> pl.Expr:
    """Text as a datetime in one of the accepted ISO 8601 or day/month/year forms, else null."""
    parsed = [expr.str.to_datetime(f, strict=False, time_zone="UTC") for f in _AWARE]
    parsed += [expr.str.to_datetime(f, strict=False, time_zone="UTC") for f in _NAIVE]
    return pl.coalesce(*parsed).dt.replace_time_zone(None)


def _typed(column: Column) -> tuple[pl.Expr, list[Check]]:
    """The cast expression of one column and the checks on its raw text."""
    name = column.name
    raw = _blank(pl.col(name))
    checks: list[Check] = []
    if column.role in ("identifier", "free_text", "unit_key") or column.type == "string":
        value = raw
    elif column.type == "categorical":
        codes = list(column.level_codes)
        shown = ", ".join(codes[:MAX_LEVELS_NAMED]) + (" ..." if len(codes) > 12 else "")
        checks.append(
            Check(
                name,
                "unknown_level",
                f"values that are not levels of the contract ({shown}); levels are case-sensitive",
                raw.is_not_null() & ~raw.is_in(codes),
            )
        )
        value = raw.cast(pl.Enum(codes), strict=False)
    elif column.type in ("integer", "number"):
        number = raw.cast(pl.Float64, strict=False)
        bad = raw.is_not_null() & number.is_null()
        if column.type == "integer":
            bad = bad | (number.is_not_null() & (number != number.round(0)))
        checks.append(Check(name, f"not_{column.type}", f"values that are not {column.type}s", bad))
        if column.lower is not None and column.upper is not None:
            outside = number.is_not_null() & ((number < column.lower) | (number > column.upper))
            bounds = f"[{column.lower:g}, {column.upper:g}]"
            if column.bounds_policy == "clip":
                checks.append(
                    Check(
                        name,
                        "clipped_to_bounds",
                        f"values outside the contract's bounds {bounds}: kept, and clipped to"
                        " the bounds by every query (bounds_policy clip)",
                        outside,
                        severity="warning",
                        name_rows=False,
                    )
                )
            else:
                checks.append(
                    Check(
                        name,
                        "out_of_bounds",
                        f"values outside the contract's bounds {bounds}",
                        outside,
                    )
                )
        value = number.cast(pl.Int64, strict=False) if column.type == "integer" else number
    else:  # datetime
        value = datetime_value(raw)
        checks.append(
            Check(
                name,
                "not_datetime",
                "values that are not dates or ISO 8601 date-times",
                raw.is_not_null() & value.is_null(),
            )
        )
    if not column.nullable or column.role == "unit_key":
        checks.append(Check(name, "missing_value", "missing values", raw.is_null()))
    if column.type in ("string", "categorical"):
        checks.append(
            Check(
                name,
                "lossy_encoding",
                LOSSY_MESSAGE,
                raw.str.contains(LOSSY_TEXT),
                severity="warning",
            )
        )
    return value.alias(name), checks


def plan(
    *,
    contract: DatasetContract,
    frame: pl.LazyFrame,
    excess: Excess = "refuse",
    salt: bytes | None = None,
    preliminary: list[Issue] | None = None,
) -> Plan:
    """Validate `frame` (text columns plus ROW_INDEX) and build the clean frame to store."""
    issues = list(preliminary or [])
    present = [n for n in frame.collect_schema().names() if n != ROW_INDEX]
    # A column the import drops anyway (free text, an identifier not kept as a hash) may be
    # absent: nothing to drop. Anything stored or the unit key must be there. A column the
    # contract marks not collected (a shared codebook's column this survey lacks) is never
    # read or stored, in the file or not.
    uncollected = {c.name for c in contract.columns if not c.collected}
    absent = [c for c in contract.columns if c.name not in present and c.name not in uncollected]
    optional = {c.name for c in absent if _dropped_without_trace(c)}
    missing = [c.name for c in absent if c.name not in optional]
    for name in missing:
        issues.append(
            Issue(
                severity="error",
                rule="missing_column",
                column=name,
                message="the contract's column is not in the file",
            )
        )
    for name in sorted(optional):
        issues.append(
            Issue(
                severity="warning",
                rule="missing_column",
                column=name,
                message="the contract's column is not in the file: it is dropped at import"
                " anyway, so nothing is lost",
            )
        )
    if missing and len(present) <= 1:
        issues.append(
            Issue(
                severity="error",
                rule="wrong_delimiter",
                message="the file has a single column: is the delimiter right?",
            )
        )
    ignored = tuple(n for n in present if contract.column(n) is None or n in uncollected)
    if missing or any(i.severity == "error" for i in issues):
        # Without every column (or with a broken table) row checks would only add noise.
        return Plan(issues, frame, _count(frame), 0, ignored)

    casts: list[pl.Expr] = []
    checks: list[Check] = []
    for column in contract.columns:
        if column.name in optional or column.name in uncollected:
            continue
        cast, column_checks = _typed(column)
        casts.append(cast)
        checks.extend(column_checks)
    weight = contract.privacy.weight_column
    if weight is not None and contract.privacy.weight_upper is not None:
        w = _blank(pl.col(weight)).cast(pl.Float64, strict=False)
        checks.append(
            Check(
                weight,
                "weight_out_of_bounds",
                f"weights outside [0, {contract.privacy.weight_upper:g}]",
                w.is_not_null() & ((w < 0) | (w > contract.privacy.weight_upper)),
            )
        )
    counts = _collect(
        frame.select(
            pl.len().alias("__rows__"),
            *[c.failing.fill_null(False).sum().alias(f"c{i}") for i, c in enumerate(checks)],
        )
    )
    rows_read = int(counts["__rows__"][0])
    for i, check in enumerate(checks):
        count = int(counts[f"c{i}"][0])
        if count:
            rows = _first_rows(frame, check.failing) if check.name_rows else []
            issues.append(_issue(check, count, rows))
    clean = frame
    over_limit = 0
    unit = contract.privacy.unit_key
    if unit is not None:
        beyond = _rows_beyond_limit(frame, unit, contract.privacy.max_contributions)
        if len(beyond):
            over_limit = len(beyond)
            warn = excess == "keep_first"
            message = (
                f"rows beyond the contract's limit of {contract.privacy.max_contributions}"
                " per unit (privacy.max_contributions)"
            )
            issues.append(
                Issue(
                    severity="warning" if warn else "error",
                    rule="too_many_rows_per_unit",
                    column=unit,
                    count=over_limit,
                    rows=tuple(int(r) for r in beyond.head(MAX_ROWS_NAMED)),
                    message=message + (_KEPT_FIRST if warn else ""),
                )
            )
            # Only the rows found go: everything else streams through untouched.
            clean = clean.filter(~pl.col(ROW_INDEX).is_in(beyond))
    clean = clean.select(casts)
    kept = [
        c.name
        for c in contract.columns
        if c.role not in DROPPED_ROLES and c.name not in uncollected
    ]
    hashed = [c.name for c in contract.columns if c.role == "identifier" and c.treatment == "hash"]
    if hashed and salt is not None:
        clean = clean.with_columns(
            pl.col(name).map_batches(_hasher(salt), return_dtype=pl.String, is_elementwise=True)
            for name in hashed
        )
        kept = [c.name for c in contract.columns if c.name in hashed or c.name in kept]
    return Plan(issues, clean.select(kept), rows_read, over_limit, ignored)


def _dropped_without_trace(column: Column) -> bool:
    return column.role == "free_text" or (
        column.role == "identifier" and column.treatment == "drop"
    )


def _collect(frame: pl.LazyFrame) -> pl.DataFrame:
    """Run a plan on polars' streaming engine: files are read in morsels, never held whole."""
    return frame.collect(engine="streaming")


def _count(frame: pl.LazyFrame) -> int:
    try:
        return int(_collect(frame.select(pl.len())).item())
    except pl.exceptions.PolarsError:
        return 0


def _first_rows(frame: pl.LazyFrame, failing: pl.Expr) -> list[int]:
    """Row numbers of the first rows failing a check (a pass that stops once it has them)."""
    found = _collect(frame.filter(failing.fill_null(False)).select(ROW_INDEX).head(MAX_ROWS_NAMED))
    return [int(r) for r in found[ROW_INDEX]]


def _issue(check: Check, count: int, rows: list[int]) -> Issue:
    return Issue(
        severity=check.severity,
        rule=check.rule,
        column=check.column,
        count=count,
        rows=tuple(rows),
        message=check.message,
    )


def _rows_beyond_limit(frame: pl.LazyFrame, unit: str, limit: int) -> pl.Series:
    """Row numbers, in file order, of each unit's rows after its first `limit` ones.

    A window over the unit key would make polars hold the whole file, and even a group-by
    holds every distinct key. Instead one streaming pass keeps only a 64-bit hash of each
    row's key (8 bytes a row); sorting those finds the hashes seen more than `limit` times.
    Only if there are any does a second pass fetch the row numbers and real keys of those
    rows, which are counted and ranked exactly, so a hash collision can never flag a unit.
    """
    key = _blank(pl.col(unit))
    hashes = _collect(frame.select(key.alias(_KEY)).drop_nulls().select(pl.col(_KEY).hash()))
    sorted_hashes = np.sort(hashes[_KEY].to_numpy())
    # In sorted order, a value equal to the one `limit` places on occurs more than `limit` times.
    repeated = sorted_hashes[limit:][sorted_hashes[limit:] == sorted_hashes[:-limit]]
    if not repeated.size:
        return pl.Series(ROW_INDEX, [], dtype=pl.get_index_type())
    suspects = pl.Series(_KEY, np.unique(repeated))
    rows = _collect(
        frame.select(ROW_INDEX, key.alias(_KEY)).filter(pl.col(_KEY).hash().is_in(suspects))
    ).sort(ROW_INDEX)
    rank = pl.int_range(pl.len()).over(_KEY)
    return rows.filter(rank >= limit)[ROW_INDEX]


def _hasher(salt: bytes) -> Callable[[pl.Series], pl.Series]:
    """HMAC-SHA256 under the node's secret salt: linkable within the node, not reversible."""

    def digest(series: pl.Series) -> pl.Series:
        return pl.Series(
            [
                None if v is None else hmac.new(salt, v.encode(), hashlib.sha256).hexdigest()[:32]
                for v in series.to_list()
            ],
            dtype=pl.String,
        )

    return digest
