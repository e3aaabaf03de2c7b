"""Every measure by public categorical dims, with Gaussian noise (rho-zCDP). See docs/privacy.md.

Privacy argument (why the noise below suffices):

* Neighbouring datasets differ by one privacy unit (a respondent). Import kept at most
  k = contract.privacy.max_contributions rows per unit (node/datasets/validation.py refuses
  or drops rows beyond it), so neighbours differ by at most k rows (when unit_key is None
  every row is a unit and k rows is still an upper bound).
* Each release is one or two vectors over a fixed, public set of entries: the cross product
  of the group-by dims' contract levels, times a public inner axis ({match, other} for
  `share`; the bins of public edges for `histogram`; the bins of public candidates for
  `quantile`). Entries come from the contract and the spec, never from the data. Filters
  only drop rows, which cannot increase the difference between neighbours. Every kept row
  lands in exactly one entry (numeric values are clamped to the contract bounds, or to the
  histogram's outer edges; rows with a null dim or measured column land in none).
* Per row, the weight w is 1 (unweighted) or the survey weight clamped to [0, W] (W =
  privacy.weight_upper); the measured value v is clamped to [L, U] (the column's bounds).
  - count-like vectors (count, share, histogram, quantile bins, the count of mean/sum) add
    w per row: removing k rows changes entries by c_i >= 0 with sum c_i <= kW, so the L2
    sensitivity is sqrt(sum c_i^2) <= sum c_i <= kW.
  - the centred sum of mean/sum adds w (v - m) per row, m = (L + U) / 2, |w (v - m)| <=
    W (U - L) / 2: its L2 sensitivity is k W (U - L) / 2 by the same argument.
* A Gaussian mechanism with scale sigma on a vector of L2 sensitivity Delta is
  (Delta^2 / (2 sigma^2))-zCDP (discrete Gaussian on integers, continuous on floats; OpenDP).
  We set sigma = Delta / sqrt(2 rho_i), nudged up, and check OpenDP's privacy map
  `meas.map(Delta) <= rho_i` before any noise is drawn. `mean` and `sum` split rho into
  rho/3 (count) + 2 rho/3 (centred sum); zCDP composes additively, so the total is rho.
* Everything else (the sum as centred sum + m x count, ratios, quantile estimates and
  intervals, suppression) is post-processing of the noisy vectors (free).
"""

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from contracts.accuracy import (
    quantile_from_bins,
    ratio_interval,
    share_estimate,
    share_interval,
    sum_interval,
    suppression_reason,
)
from contracts.v1 import Cell, Column, Component, DatasetContract, QuerySpec
from contracts.v1.harmonisation import not_collected_message
from contracts.v1.query import NUMERIC_MEASURES
from contracts.v1.release import BIN_DIM, QUANTILE_DIM, SuppressionReason
from node.privacy import mechanisms
from node.privacy.exceptions import (
    BoundsMissing,
    ColumnNotCollected,
    ColumnNotNumeric,
    ColumnNotQueryable,
    CostCheckFailed,
    DimNotCategorical,
    MeasureNotSupported,
    NoWeightColumn,
    ReleaseTooLarge,
    UnknownColumn,
    UnknownLevel,
)
from node.privacy.mechanisms import Kind
from node.privacy.schemas import ComputedRelease

SUPPORTED_MEASURES = ("count", "share", "sum", "mean", "quantile", "histogram")
# Defaults derived from the contract bounds [L, U] (docs/privacy.md).
DEFAULT_QUANTILES = (0.5,)
DEFAULT_CANDIDATES = 101  # L + i (U - L) / 100; every integer when an integer range is <= 100
DEFAULT_BINS = 10  # equal-width bins over [L, U]
MAX_ENTRIES = 500_000
# A signed release must fit the wire's 1,000,000-character JWS (base64 adds a third):
# at most about 350 characters per cell and 22 per quantile bin, kept under 700,000.
MAX_RELEASE_CHARS = 700_000
# Share of rho spent on the count of `mean`/`sum` (the centred sum gets the rest).
COUNT_SHARE = 1 / 3
IDX = "__sauti_entry__"
INNER = "__sauti_inner__"
VALUE = "__sauti_value__"
COUNT = "__sauti_count__"
TOTAL = "__sauti_sum__"


def check_spec(*, contract: DatasetContract, spec: QuerySpec) -> None:
    """Refuse a spec that the contract cannot answer; messages name columns, never levels."""
    if spec.measure not in SUPPORTED_MEASURES:
        raise MeasureNotSupported(f"measure {spec.measure} is not implemented at this node")
    named = (spec.column, *spec.group_by, *(f.column for f in spec.filters))
    lacking = [
        name
        for name in dict.fromkeys(n for n in named if n is not None)
        if (column := contract.column(name)) is not None and not column.collected
    ]
    if lacking:
        raise ColumnNotCollected(not_collected_message(lacking))
    for i, dim in enumerate(spec.group_by):
        _categorical(contract, dim, field=f"group_by[{i}]")
    for i, flt in enumerate(spec.filters):
        column = _categorical(contract, flt.column, field=f"filters[{i}].column")
        if not set(flt.levels) <= set(column.level_codes):
            raise UnknownLevel(f"filters[{i}] on {flt.column} names a level not in the contract")
    if spec.column is not None:
        column = _queryable(contract, spec.column, field="column")
        if spec.column == contract.privacy.weight_column:
            raise ColumnNotQueryable(f"column {spec.column} is the survey weight: never measured")
        if spec.measure == "share":
            if column.type != "categorical":
                raise MeasureNotSupported(
                    f"share needs a categorical column; {spec.column} is {column.type}"
                )
            if spec.value not in column.level_codes:
                raise UnknownLevel(f"the share value is not a level of {spec.column}")
        if spec.measure in NUMERIC_MEASURES:
            if column.type not in ("integer", "number"):
                raise ColumnNotNumeric(
                    f"{spec.measure} needs a numeric column; {spec.column} is {column.type}"
                )
            if column.lower is None or column.upper is None:
                raise BoundsMissing(
                    f"the contract gives no public bounds for {spec.column}: "
                    f"{spec.measure} needs them"
                )
            if spec.measure == "histogram" and spec.edges is None and column.lower == column.upper:
                raise BoundsMissing(f"the bounds of {spec.column} leave no range to bin")
    if spec.weighted and contract.privacy.weight_column is None:
        raise NoWeightColumn("the dataset contract names no survey weight column")
    if _entries(contract, spec) > MAX_ENTRIES or _wire_chars(contract, spec) > MAX_RELEASE_CHARS:
        raise ReleaseTooLarge(
            "the release would have too many cells and bins to sign and send: use fewer dims, "
            "bins, candidates or quantiles"
        )


def check_cost(*, contract: DatasetContract, spec: QuerySpec, rho: float) -> None:
    """Refuse, before any charge, a cost whose noise no release can carry or whose OpenDP
    privacy map exceeds `rho` (after `check_spec`; closed forms only, nothing allocated in
    proportion to the scale, no noise drawn)."""
    plan = _plan(contract, spec, rho)
    if sum(c.rho for c in plan.components) > rho * (1 + 1e-12):
        raise CostCheckFailed("the release's components would cost more than the query's rho")
    for c in plan.components:
        mechanisms.check(kind=c.kind, scale=c.scale, sensitivity=c.sensitivity, rho=c.rho)


def compute_release(
    *,
    data: pl.LazyFrame,
    contract: DatasetContract,
    spec: QuerySpec,
    rho: float,
    min_cell_size: int,
    max_ci_relative_width: float | None,
    suppress: bool = True,
    source: Path | None = None,
) -> ComputedRelease:
    """One DP release of `spec` over `data` (already contribution-bounded at import).

    One polars pass computes every exact component per entry; then each component gets its
    noise. With `suppress=False` (agreements with `suppression: combined`) every noisy cell
    is released, negatives included, so that the hub's sums stay unbiased; the hub then
    applies the agreement's suppression rules to the combined cells.
    OpenDP samples from the OS CSPRNG, so there is deliberately no seed.
    """
    exact = measure_exact(data=data, contract=contract, spec=spec, rho=rho, source=source)
    return release_exact(
        exact,
        min_cell_size=min_cell_size,
        max_ci_relative_width=max_ci_relative_width,
        suppress=suppress,
    )


@dataclass(frozen=True)
class Exact:
    """The exact (un-noised) components of one query: never leaves the engine."""

    spec: QuerySpec
    plan: "_Plan"
    keys: tuple[tuple[str, ...], ...]
    values: dict[str, list[float]]


def measure_exact(
    *,
    data: pl.LazyFrame,
    contract: DatasetContract,
    spec: QuerySpec,
    rho: float,
    source: Path | None = None,
) -> Exact:
    """Check the spec and compute its exact components in one polars pass (no noise).

    `source`: the immutable Parquet file `data` scans, if any. The observed range of the
    measured column is then computed once per file version (path, mtime, size) and the
    per-row clamp is skipped when that range already lies within the bounds (clamping is
    then the identity): the argument is unchanged, the query is cheaper.
    """
    query, finish = prepare_exact(data=data, contract=contract, spec=spec, rho=rho, source=source)
    return finish(query.collect())


def prepare_exact(
    *,
    data: pl.LazyFrame,
    contract: DatasetContract,
    spec: QuerySpec,
    rho: float,
    source: Path | None = None,
) -> tuple[pl.LazyFrame, Callable[[pl.DataFrame], Exact]]:
    """`measure_exact` in two steps: the checks, the plan and its one polars query (not run),
    and what turns the query's collected result into the `Exact`. The node collects the
    query on another thread while its ledger commit syncs to disk: collecting releases the
    GIL, and all the Python work stays here and in `finish`."""
    check_spec(contract=contract, spec=spec)
    plan = _plan(contract, spec, rho)
    clamp = True
    if source is not None and spec.measure in NUMERIC_MEASURES:
        stat = source.stat()
        low, high = _observed_range(str(source), stat.st_mtime_ns, stat.st_size, str(spec.column))
        clamp = not (low is None or high is None or (plan.low <= low and high <= plan.high))
    query, inner = _aggregate_query(data, contract, spec, plan, clamp=clamp)
    keys = tuple(_keys(contract, list(spec.group_by)))

    def finish(result: pl.DataFrame) -> Exact:
        return Exact(spec, plan, keys, _entry_vectors(result, contract, spec, plan, inner=inner))

    return query, finish


def release_exact(
    exact: Exact, *, min_cell_size: int, max_ci_relative_width: float | None, suppress: bool
) -> ComputedRelease:
    """Noise every component of `exact` (privacy map checked first), then post-process."""
    plan, spec = exact.plan, exact.spec
    # zCDP composes additively: the components' shares must not add up to more than rho.
    if sum(c.rho for c in plan.components) > plan.rho * (1 + 1e-12):
        raise CostCheckFailed("the release's components would cost more than the query's rho")
    noisy = {
        c.name: mechanisms.release(
            kind=c.kind,
            scale=c.scale,
            sensitivity=c.sensitivity,
            rho=c.rho,
            values=exact.values[c.name],
        )
        for c in plan.components
    }
    rules = _Rules(min_cell_size, max_ci_relative_width) if suppress else None
    cells = _CELLS[spec.measure](plan, exact.keys, noisy, rules)
    count = plan.components[0]
    dims = spec.group_by
    if spec.measure == "histogram":
        dims = (*dims, BIN_DIM)
    elif spec.measure == "quantile":
        dims = (*dims, QUANTILE_DIM)
    return ComputedRelease(
        cells=tuple(cells),
        noise_scale=count.scale,
        mechanism=count.kind,
        group_by=dims,
        components=tuple(
            Component(
                name=c.name, mechanism=c.kind, scale=c.scale, sensitivity=c.sensitivity, rho=c.rho
            )
            for c in plan.components
        ),
        epsilon=mechanisms.epsilon(plan.rho),
        delta=mechanisms.DELTA,
        weighted=spec.weighted,
        grid=plan.grid if spec.measure in ("quantile", "histogram") else None,
        bounds=(plan.low, plan.high) if spec.measure in NUMERIC_MEASURES else None,
        integer=plan.integer,
    )


def count_accuracy(sigma: float) -> float:
    """Half-width of the node's 95% interval for one discrete Gaussian count."""
    return mechanisms.accuracy("discrete_gaussian", sigma)


def default_candidates(column: Column) -> tuple[float, ...]:
    """Public quantile candidates from the bounds: every integer of a short integer range,
    else 101 equally spaced points from L to U (rounded for integer columns)."""
    assert column.lower is not None
    assert column.upper is not None
    low, high = column.lower, column.upper
    if column.type == "integer" and high - low <= DEFAULT_CANDIDATES - 1:
        return tuple(float(v) for v in range(math.ceil(low), math.floor(high) + 1))
    step = (high - low) / (DEFAULT_CANDIDATES - 1)
    points = [_tidy(low + i * step) for i in range(DEFAULT_CANDIDATES)]
    if column.type == "integer":
        points = [float(round(p)) for p in points]
    return tuple(sorted(set(points)))


def default_edges(column: Column) -> tuple[float, ...]:
    """DEFAULT_BINS equal-width bins over the contract bounds [L, U]."""
    assert column.lower is not None
    assert column.upper is not None
    step = (column.upper - column.lower) / DEFAULT_BINS
    return (*(_tidy(column.lower + i * step) for i in range(DEFAULT_BINS)), column.upper)


def _tidy(value: float) -> float:
    """Drop binary rounding noise (1.4000000000000001 -> 1.4): grids are public labels."""
    return float(f"{value:.12g}")


def bin_labels(edges: Sequence[float]) -> tuple[str, ...]:
    """`[a, b)` for every bin but the last, which is closed: `[a, b]` (numbers as %g)."""
    last = len(edges) - 2
    return tuple(
        f"[{lo:g}, {hi:g}{']' if i == last else ')'}"
        for i, (lo, hi) in enumerate(itertools.pairwise(edges))
    )


def quantile_label(q: float) -> str:
    return f"{q:g}"


@dataclass(frozen=True)
class _Component:
    name: str
    kind: Kind
    sensitivity: float
    rho: float

    @property
    def scale(self) -> float:
        return mechanisms.noise_scale(rho=self.rho, sensitivity=self.sensitivity)


@dataclass(frozen=True)
class _Plan:
    """What is measured: components (count first), the inner axis and the value range."""

    components: tuple[_Component, ...]
    inner: int
    grid: tuple[float, ...]
    quantiles: tuple[float, ...]
    low: float
    high: float
    weighted: bool
    rho: float
    integer: bool = False


def _plan(contract: DatasetContract, spec: QuerySpec, rho: float) -> _Plan:
    k = contract.privacy.max_contributions
    weight = float(contract.privacy.weight_upper or 1.0) if spec.weighted else 1.0
    kind: Kind = "gaussian" if spec.weighted else "discrete_gaussian"
    count_delta = k * weight
    low = high = 0.0
    grid: tuple[float, ...] = ()
    inner = 1
    integer = False
    if spec.measure in NUMERIC_MEASURES:
        column = contract.column(str(spec.column))
        assert column is not None
        assert column.lower is not None
        assert column.upper is not None
        low, high = column.lower, column.upper
        integer = column.type == "integer"
    if spec.measure in ("sum", "mean"):
        rho_count = rho * COUNT_SHARE
        components: tuple[_Component, ...] = (
            _Component("count", kind, count_delta, rho_count),
            _Component("sum", "gaussian", k * weight * (high - low) / 2, rho - rho_count),
        )
    else:
        components = (_Component("count", kind, count_delta, rho),)
    if spec.measure == "share":
        inner = 2
    elif spec.measure == "histogram":
        column = contract.column(str(spec.column))
        assert column is not None
        grid = spec.edges or default_edges(column)
        inner = len(grid) - 1
    elif spec.measure == "quantile":
        column = contract.column(str(spec.column))
        assert column is not None
        grid = spec.candidates or default_candidates(column)
        inner = len(grid) + 1
    return _Plan(
        components=components,
        inner=inner,
        grid=tuple(float(g) for g in grid),
        quantiles=spec.quantiles or DEFAULT_QUANTILES,
        low=low,
        high=high,
        weighted=spec.weighted,
        rho=rho,
        integer=integer,
    )


def _entries(contract: DatasetContract, spec: QuerySpec) -> int:
    size = 1
    for dim in spec.group_by:
        column = contract.column(dim)
        size *= len(column.level_codes) if column is not None else 1
    if spec.measure == "share":
        size *= 2
    elif spec.measure == "histogram" and spec.edges is not None:
        size *= len(spec.edges) - 1
    elif spec.measure == "quantile" and spec.candidates is not None:
        size *= len(spec.candidates) + 1
    elif spec.measure in ("histogram", "quantile"):
        size *= max(DEFAULT_BINS, DEFAULT_CANDIDATES + 1)
    return size


def _enum(frame_schema: pl.Schema, column: Column) -> pl.Expr:
    """A categorical column as the Enum of its contract levels (null when missing)."""
    enum = pl.Enum(list(column.level_codes))
    expr = pl.col(column.name)
    if frame_schema.get(column.name) != enum:
        expr = expr.cast(pl.String).cast(enum, strict=False)
    return expr


def _wire_chars(contract: DatasetContract, spec: QuerySpec) -> int:
    """A generous estimate of the signed release's JSON size."""
    keys = 1
    for dim in spec.group_by:
        column = contract.column(dim)
        keys *= len(column.level_codes) if column is not None else 1
    cells, bins = keys, 0
    if spec.measure == "histogram":
        cells *= len(spec.edges) - 1 if spec.edges is not None else DEFAULT_BINS
    elif spec.measure == "quantile":
        quantiles = len(spec.quantiles or DEFAULT_QUANTILES)
        grid = len(spec.candidates) if spec.candidates is not None else DEFAULT_CANDIDATES
        cells *= quantiles
        bins = cells * (grid + 1)
    return cells * 350 + bins * 22


def _code(frame_schema: pl.Schema, column: Column) -> pl.Expr:
    """The contract-order index of a categorical column's level (null when missing)."""
    return _enum(frame_schema, column).to_physical().cast(pl.Int64)


@lru_cache(maxsize=1024)
def _observed_range(
    source: str, _mtime_ns: int, _size: int, column: str
) -> tuple[float | None, float | None]:
    """Min and max of a column of one Parquet file version (cached: files never change)."""
    row = pl.scan_parquet(source).select(pl.col(column).min(), pl.col(column).max().alias("hi"))
    low, high = row.collect().row(0)
    return (None if low is None else float(low), None if high is None else float(high))


def _aggregate(
    data: pl.LazyFrame, contract: DatasetContract, spec: QuerySpec, plan: _Plan, *, clamp: bool
) -> dict[str, list[float]]:
    """Exact components per entry, in entry order (key-major, inner axis minor), one pass."""
    query, inner = _aggregate_query(data, contract, spec, plan, clamp=clamp)
    return _entry_vectors(query.collect(), contract, spec, plan, inner=inner)


def _aggregate_query(
    data: pl.LazyFrame, contract: DatasetContract, spec: QuerySpec, plan: _Plan, *, clamp: bool
) -> tuple[pl.LazyFrame, bool]:
    """The one pass computing the exact components per group (`_entry_vectors` places them
    in entry order), and whether it has an inner axis.

    The only row-level work is the filters and the aggregation itself: rows that must not
    count (a null dim, share column or measured value) fall in a null group or are skipped
    by the aggregate (null-ignoring sums, counts of non-null values), never filtered.
    """
    schema = data.collect_schema()
    frame = data
    for flt in spec.filters:
        column = _column(contract, flt.column)
        wanted = [column.level_codes.index(level) for level in flt.levels]
        frame = frame.filter(_code(schema, column).is_in(wanted))
    by = [
        _enum(schema, _column(contract, dim)).alias(f"__k{i}")
        for i, dim in enumerate(spec.group_by)
    ]
    value, inner, present = _inner_axis(schema, contract, spec, plan, clamp=clamp)
    if inner is not None:
        by.append(inner.alias(INNER))
    if plan.weighted:
        upper = float(contract.privacy.weight_upper or 1.0)
        w = pl.col(str(contract.privacy.weight_column)).cast(pl.Float64).clip(0.0, upper)
        count = (w if present is None else w.filter(present)).sum()
    else:
        w = None
        count = pl.len() if present is None else pl.col(str(spec.column)).count()
    aggs = [count.cast(pl.Float64).alias(COUNT)]
    if spec.measure in ("sum", "mean"):
        assert value is not None
        # Clamped once per row as a column (cheaper than inside the grouped aggregate); the
        # sum is centred on the small result (exact: sum - m x count).
        frame = frame.with_columns(value.alias(VALUE))
        clamped = pl.col(VALUE)
        aggs.append((clamped if w is None else w * clamped).sum().cast(pl.Float64).alias(TOTAL))
    # Group on the dims (as stored), then place each group in the entry vector: the index
    # arithmetic runs over the groups, not the rows.
    return (frame.group_by(by).agg(aggs) if by else frame.select(aggs)), inner is not None


def _entry_vectors(
    result: pl.DataFrame, contract: DatasetContract, spec: QuerySpec, plan: _Plan, *, inner: bool
) -> dict[str, list[float]]:
    """Exact components per entry, in entry order (key-major, inner axis minor)."""
    index: pl.Expr = pl.lit(0, dtype=pl.Int64)
    for i, dim in enumerate(spec.group_by):
        code = pl.col(f"__k{i}").to_physical().cast(pl.Int64)
        index = index * len(_column(contract, dim).level_codes) + code
    index = index * plan.inner + (pl.col(INNER) if inner else 0)
    result = result.with_columns(index.alias(IDX)).filter(pl.col(IDX).is_not_null())
    if TOTAL in result.columns:
        center = (plan.low + plan.high) / 2
        result = result.with_columns(pl.col(TOTAL) - center * pl.col(COUNT))
    size = plan.inner * len(_keys(contract, list(spec.group_by)))
    where = result[IDX].to_numpy()
    out: dict[str, list[float]] = {}
    for name, column_name in (("count", COUNT), ("sum", TOTAL)):
        if column_name not in result.columns:
            continue
        vector = np.zeros(size, dtype=np.float64)
        vector[where] = result[column_name].fill_null(0.0).to_numpy()
        out[name] = vector.tolist()
    return out


def _inner_axis(
    schema: pl.Schema, contract: DatasetContract, spec: QuerySpec, plan: _Plan, *, clamp: bool
) -> tuple[pl.Expr | None, pl.Expr | None, pl.Expr | None]:
    """The clamped value (numeric measures), the inner index (share, histogram, quantile;
    null for a row that lands in no entry) and which rows count (None: every row)."""
    if spec.measure == "share":
        column = _column(contract, str(spec.column))
        code = _code(schema, column)
        return None, (code != column.level_codes.index(str(spec.value))).cast(pl.Int64), None
    if spec.measure == "count":
        present = pl.col(spec.column).is_not_null() if spec.column is not None else None
        return None, None, present
    raw = pl.col(str(spec.column))
    value = _clamped(raw, schema.get(str(spec.column)), plan.low, plan.high) if clamp else raw
    if spec.measure == "histogram":
        edges = plan.grid
        inner = _search(edges[1:-1], value.clip(edges[0], edges[-1]), side="right")
        return value, pl.when(raw.is_not_null()).then(inner), None
    if spec.measure == "quantile":
        inner = _search(plan.grid, value, side="left")
        return value, pl.when(raw.is_not_null()).then(inner), None
    return value, None, raw.is_not_null()


def _clamped(raw: pl.Expr, dtype: pl.DataType | None, low: float, high: float) -> pl.Expr:
    """The value clamped to the contract bounds; integers stay integers when the bounds are
    integral and small enough that no sum of them can overflow (|bound| <= 2^31)."""
    small = max(abs(low), abs(high)) <= 2**31
    if dtype is not None and dtype.is_integer() and small and low == int(low) and high == int(high):
        return raw.clip(int(low), int(high))
    return raw.cast(pl.Float64).clip(low, high)


def _search(points: Sequence[float], value: pl.Expr, *, side: str) -> pl.Expr:
    """How many of the sorted public `points` lie below `value` (side="left": strictly
    below; "right": at or below), i.e. the bin index of the value."""
    if not points:
        return pl.lit(0, dtype=pl.Int64)
    series = pl.Series(list(points), dtype=pl.Float64)
    return pl.lit(series).search_sorted(value, side=side).cast(pl.Int64)  # type: ignore[arg-type]


@dataclass(frozen=True)
class _Rules:
    """The agreement's suppression terms, when the node applies them itself."""

    min_cell_size: int
    max_ci_relative_width: float | None

    def reason(
        self, *, cell_size: float, estimate: float, low: float, high: float
    ) -> SuppressionReason | None:
        return suppression_reason(
            cell_size=cell_size,
            estimate=estimate,
            ci95_low=low,
            ci95_high=high,
            min_cell_size=self.min_cell_size,
            max_ci_relative_width=self.max_ci_relative_width,
        )


def _judged(
    key: tuple[str, ...],
    rules: _Rules | None,
    *,
    size: float,
    estimate: float,
    low: float,
    high: float,
    **fields: object,
) -> Cell:
    if rules is not None:
        reason = rules.reason(cell_size=size, estimate=estimate, low=low, high=high)
        if reason is not None:
            return Cell(key=key, status="suppressed", reason=reason)
    return Cell(
        key=key,
        status="ok",
        estimate=estimate,
        ci95_low=low,
        ci95_high=high,
        **fields,
    )


def _count_cells(
    plan: _Plan,
    keys: Sequence[tuple[str, ...]],
    noisy: dict[str, list[float]],
    rules: _Rules | None,
    labels: Sequence[str] = ("",),
) -> list[Cell]:
    count = plan.components[0]
    half = mechanisms.accuracy(count.kind, count.scale)
    values = iter(noisy["count"])
    cells = []
    for key in keys:
        for label in labels:
            value = next(values)
            cell_key = (*key, label) if label else key
            cells.append(
                _judged(
                    cell_key,
                    rules,
                    size=value,
                    estimate=value,
                    # A count is never negative: the cut keeps every covering interval.
                    low=max(0.0, value - half),
                    high=value + half,
                    variance=count.scale**2,
                )
            )
    return cells


def _histogram_cells(
    plan: _Plan,
    keys: Sequence[tuple[str, ...]],
    noisy: dict[str, list[float]],
    rules: _Rules | None,
) -> list[Cell]:
    return _count_cells(plan, keys, noisy, rules, labels=bin_labels(plan.grid))


def _share_cells(
    plan: _Plan,
    keys: Sequence[tuple[str, ...]],
    noisy: dict[str, list[float]],
    rules: _Rules | None,
) -> list[Cell]:
    s2 = plan.components[0].scale ** 2
    values = noisy["count"]
    cells = []
    # Entries come in (match, other) pairs per key.
    for i, key in enumerate(keys):
        numerator, other = values[2 * i], values[2 * i + 1]
        denominator = numerator + other
        components = {
            "numerator": numerator,
            "denominator": denominator,
            "numerator_variance": s2,
            "denominator_variance": 2 * s2,
            "covariance": s2,
        }
        if denominator < 1:
            cells.append(_no_ratio(key, rules, components))
            continue
        estimate = share_estimate(numerator, denominator)
        low, high = share_interval(numerator, denominator, s2)
        cells.append(
            _judged(
                key, rules, size=denominator, estimate=estimate, low=low, high=high, **components
            )
        )
    return cells


def _no_ratio(key: tuple[str, ...], rules: _Rules | None, components: dict[str, Any]) -> Cell:
    """No ratio over a non-positive size; under `combined` the hub still needs the parts."""
    if rules is None:
        return Cell(key=key, status="ok", **components)
    return Cell(key=key, status="suppressed", reason="below_min_cell_size")


def _sum_parts(
    plan: _Plan, noisy: dict[str, list[float]], i: int
) -> tuple[float, float, dict[str, float]]:
    """Noisy sum (centred sum + m x count) and count of entry i, with their noise moments."""
    count, total = plan.components
    center = (plan.low + plan.high) / 2
    denominator = noisy["count"][i]
    numerator = noisy["sum"][i] + center * denominator
    moments = {
        "numerator": numerator,
        "denominator": denominator,
        "numerator_variance": total.scale**2 + center**2 * count.scale**2,
        "denominator_variance": count.scale**2,
        "covariance": center * count.scale**2,
    }
    return numerator, denominator, moments


def _sum_cells(
    plan: _Plan,
    keys: Sequence[tuple[str, ...]],
    noisy: dict[str, list[float]],
    rules: _Rules | None,
) -> list[Cell]:
    cells = []
    for i, key in enumerate(keys):
        numerator, denominator, moments = _sum_parts(plan, noisy, i)
        estimate, low, high = sum_interval(
            numerator, moments["numerator_variance"], bounds=(plan.low, plan.high)
        )
        cells.append(
            _judged(
                key,
                rules,
                size=denominator,
                estimate=estimate,
                low=low,
                high=high,
                variance=moments["numerator_variance"],
                **moments,
            )
        )
    return cells


def _mean_cells(
    plan: _Plan,
    keys: Sequence[tuple[str, ...]],
    noisy: dict[str, list[float]],
    rules: _Rules | None,
) -> list[Cell]:
    cells = []
    for i, key in enumerate(keys):
        numerator, denominator, moments = _sum_parts(plan, noisy, i)
        if denominator < 1:
            cells.append(_no_ratio(key, rules, moments))
            continue
        estimate = min(plan.high, max(plan.low, numerator / denominator))
        low, high = ratio_interval(
            numerator,
            denominator,
            numerator_variance=moments["numerator_variance"],
            denominator_variance=moments["denominator_variance"],
            covariance=moments["covariance"],
            low=plan.low,
            high=plan.high,
        )
        cells.append(
            _judged(key, rules, size=denominator, estimate=estimate, low=low, high=high, **moments)
        )
    return cells


def _quantile_cells(
    plan: _Plan,
    keys: Sequence[tuple[str, ...]],
    noisy: dict[str, list[float]],
    rules: _Rules | None,
) -> list[Cell]:
    s2 = plan.components[0].scale ** 2
    width = plan.inner
    cells = []
    for i, key in enumerate(keys):
        bins = tuple(noisy["count"][i * width : (i + 1) * width])
        size = sum(bins)
        for q in plan.quantiles:
            if size < 1:
                # No quantile of an empty cell; under `combined` the hub still pools the bins.
                empty = {"variance": s2, "bins": bins}
                cells.append(_no_ratio((*key, quantile_label(q)), rules, empty))
                continue
            estimate, low, high = quantile_from_bins(
                bins, plan.grid, q, s2, bounds=(plan.low, plan.high), integer=plan.integer
            )
            cells.append(
                _judged(
                    (*key, quantile_label(q)),
                    rules,
                    size=size,
                    estimate=estimate,
                    low=low,
                    high=high,
                    variance=s2,
                    bins=bins,
                )
            )
    return cells


_CELLS = {
    "count": _count_cells,
    "share": _share_cells,
    "sum": _sum_cells,
    "mean": _mean_cells,
    "histogram": _histogram_cells,
    "quantile": _quantile_cells,
}


def cell_keys(contract: DatasetContract, spec: QuerySpec) -> tuple[tuple[str, ...], ...]:
    """The keys of a release's cells (public: the contract levels of the group-by dims)."""
    return tuple(_keys(contract, list(spec.group_by)))


def _keys(contract: DatasetContract, dims: list[str]) -> list[tuple[str, ...]]:
    """The full cross product of the dims' contract levels, in contract order."""
    levels = []
    for dim in dims:
        column = contract.column(dim)
        assert column is not None
        levels.append(column.level_codes)
    return list(itertools.product(*levels))


def _column(contract: DatasetContract, name: str) -> Column:
    column = contract.column(name)
    assert column is not None
    return column


def _queryable(contract: DatasetContract, name: str, *, field: str) -> Column:
    column = contract.column(name)
    if column is None:
        # The unknown name is the caller's input: name the field, do not echo it.
        raise UnknownColumn(f"{field} names a column that is not in the dataset contract")
    if not column.queryable:
        raise ColumnNotQueryable(f"column {name} is a {column.role} column and is never queryable")
    return column


def _categorical(contract: DatasetContract, name: str, *, field: str) -> Column:
    column = _queryable(contract, name, field=field)
    if column.type != "categorical":
        raise DimNotCategorical(f"{field} ({name}) is not a categorical column")
    return column
