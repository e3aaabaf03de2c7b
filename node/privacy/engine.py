"""Counts and shares by public categorical dims, with discrete Gaussian noise (rho-zCDP).

Privacy argument (why the noise below suffices):

* Neighbouring datasets differ by one privacy unit (a respondent). Import kept at most
  k = contract.privacy.max_contributions rows per unit, so neighbours differ by at most k rows
  (when unit_key is None every row is a unit and k rows is still an upper bound).
* The released vector is a histogram over a fixed, public set of entries: the cross product
  of the group-by dims' contract levels (and, for `share`, x {match, other}). The entries
  come from the contract, never from the data, so the set itself is data-independent.
  Filters only drop rows, which cannot increase the difference between neighbours.
* Every kept row lands in exactly one entry: rows with a level outside the contract cannot
  exist (import refused them); rows with a null dim or a null share column land in no entry.
  Removing k rows changes entries by c_i >= 0 with sum c_i <= k, so the L2 distance is
  sqrt(sum c_i^2) <= sum c_i <= k. Hence L2 sensitivity Delta = k.
* The discrete Gaussian mechanism with scale sigma on an integer vector of L2 sensitivity
  Delta is (Delta^2 / (2 sigma^2))-zCDP. We set sigma = Delta / sqrt(2 rho), nudged up, and
  check OpenDP's own privacy map `meas.map(Delta) <= rho` before any noise is drawn.
* For `share`, numerator (match) and denominator (match + other) are post-processing of ONE
  release of the {match, other} table, so the whole cost goes to that single measurement.
* Intervals and suppression are post-processing of the noisy values (free).
"""

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import opendp.prelude as dp
import polars as pl

from contracts.accuracy import (
    share_estimate,
    share_interval,
    suppression_reason,
)
from contracts.v1 import Cell, Column, DatasetContract, QuerySpec
from contracts.v1.release import SuppressionReason
from node.privacy.exceptions import (
    ColumnNotQueryable,
    CostCheckFailed,
    DimNotCategorical,
    MeasureNotSupported,
    UnknownColumn,
    UnknownLevel,
)
from node.privacy.schemas import ComputedRelease

SUPPORTED_MEASURES = ("count", "share")
# sigma from the closed form can round below what the map needs; a tiny nudge keeps
# meas.map(Delta) <= rho without a search.
SCALE_NUDGE = 1 + 1e-9
COUNT = "__sauti_count__"
MATCH = "__sauti_match__"


def check_spec(*, contract: DatasetContract, spec: QuerySpec) -> None:
    """Refuse a spec that the contract cannot answer; messages name columns, never levels."""
    if spec.measure not in SUPPORTED_MEASURES:
        raise MeasureNotSupported(f"measure {spec.measure} is not implemented at this node")
    for i, dim in enumerate(spec.group_by):
        _categorical(contract, dim, field=f"group_by[{i}]")
    for i, flt in enumerate(spec.filters):
        column = _categorical(contract, flt.column, field=f"filters[{i}].column")
        if not set(flt.levels) <= set(column.level_codes):
            raise UnknownLevel(f"filters[{i}] on {flt.column} names a level not in the contract")
    if spec.column is not None:
        column = _queryable(contract, spec.column, field="column")
        if spec.measure == "share":
            if column.type != "categorical":
                raise MeasureNotSupported(
                    f"share needs a categorical column; {spec.column} is {column.type}"
                )
            if spec.value not in column.level_codes:
                raise UnknownLevel(f"the share value is not a level of {spec.column}")


def noise_scale(*, rho: float, sensitivity: int) -> float:
    return sensitivity / math.sqrt(2 * rho) * SCALE_NUDGE


def compute_release(
    *,
    data: pl.LazyFrame,
    contract: DatasetContract,
    spec: QuerySpec,
    rho: float,
    min_cell_size: int,
    max_ci_relative_width: float | None,
    suppress: bool = True,
) -> ComputedRelease:
    """One DP release of `spec` over `data` (already contribution-bounded at import).

    With `suppress=False` (agreements with `suppression: combined`) every noisy cell is
    released, negative counts included, so that the hub's sums stay unbiased; the hub then
    applies the agreement's suppression rules to the combined cells.
    OpenDP samples from the OS CSPRNG, so there is deliberately no seed.
    """
    check_spec(contract=contract, spec=spec)
    sensitivity = contract.privacy.max_contributions
    sigma = noise_scale(rho=rho, sensitivity=sensitivity)
    meas = dp.m.make_gaussian(
        dp.vector_domain(dp.atom_domain(T="i64")), dp.l2_distance(T="i64"), scale=sigma
    )
    if meas.map(sensitivity) > rho:  # type: ignore[no-untyped-call]
        raise CostCheckFailed("the measurement would cost more than the query's rho")

    dims = list(spec.group_by)
    keys = _keys(contract, dims)
    frame = data
    for flt in spec.filters:
        frame = frame.filter(pl.col(flt.column).cast(pl.String).is_in(list(flt.levels)))
    for dim in dims:
        frame = frame.filter(pl.col(dim).is_not_null())
    if spec.column is not None:
        frame = frame.filter(pl.col(spec.column).is_not_null())
    by = list(dims)
    entries: list[tuple[str | bool, ...]] = list(keys)
    if spec.measure == "share":
        frame = frame.with_columns(
            (pl.col(str(spec.column)).cast(pl.String) == spec.value).alias(MATCH)
        )
        by.append(MATCH)
        # (match, other) pairs per key, in that order: _share_cells relies on it.
        entries = [(*key, flag) for key in keys for flag in (True, False)]
    if by:
        exact = frame.group_by(by).agg(pl.len().alias(COUNT)).collect()
        observed = {row[:-1]: int(row[-1]) for row in exact.iter_rows()}
        counts = [observed.get(entry, 0) for entry in entries]
    else:
        counts = [int(frame.select(pl.len()).collect().item())]
    noisy: list[int] = meas(counts)

    rules = _Rules(min_cell_size, max_ci_relative_width) if suppress else None
    if spec.measure == "share":
        cells = _share_cells(keys, noisy, sigma, rules)
    else:
        cells = _count_cells(keys, noisy, sigma, rules)
    return ComputedRelease(cells=tuple(cells), noise_scale=sigma)


def count_accuracy(sigma: float) -> float:
    """Half-width of the node's 95% interval for one discrete Gaussian count."""
    return float(dp.discrete_gaussian_scale_to_accuracy(sigma, alpha=0.05))


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


def _count_cells(
    keys: Sequence[tuple[str, ...]],
    noisy: Sequence[int],
    sigma: float,
    rules: _Rules | None,
) -> list[Cell]:
    half = count_accuracy(sigma)
    cells = []
    for key, value in zip(keys, noisy, strict=True):
        low, high = value - half, value + half
        reason = None
        if rules is not None:
            reason = rules.reason(cell_size=value, estimate=value, low=low, high=high)
        if reason is None:
            cells.append(
                Cell(key=key, status="ok", estimate=float(value), ci95_low=low, ci95_high=high)
            )
        else:
            cells.append(Cell(key=key, status="suppressed", reason=reason))
    return cells


def _share_cells(
    keys: Sequence[tuple[str, ...]],
    noisy: Sequence[int],
    sigma: float,
    rules: _Rules | None,
) -> list[Cell]:
    cells = []
    # Entries come in (match, other) pairs per key: MATCH's cross join puts True first.
    for i, key in enumerate(keys):
        numerator, other = noisy[2 * i], noisy[2 * i + 1]
        denominator = numerator + other
        if denominator < 1:
            if rules is None:
                # No ratio over a non-positive size, but the hub still needs the components.
                cells.append(
                    Cell(key=key, status="ok", numerator=numerator, denominator=denominator)
                )
            else:
                cells.append(Cell(key=key, status="suppressed", reason="below_min_cell_size"))
            continue
        estimate = share_estimate(numerator, denominator)
        low, high = share_interval(numerator, denominator, sigma**2)
        reason = None
        if rules is not None:
            reason = rules.reason(cell_size=denominator, estimate=estimate, low=low, high=high)
        if reason is None:
            cells.append(
                Cell(
                    key=key,
                    status="ok",
                    estimate=estimate,
                    ci95_low=low,
                    ci95_high=high,
                    numerator=numerator,
                    denominator=denominator,
                )
            )
        else:
            cells.append(Cell(key=key, status="suppressed", reason=reason))
    return cells


def _keys(contract: DatasetContract, dims: list[str]) -> list[tuple[str, ...]]:
    """The full cross product of the dims' contract levels, in contract order."""
    levels = []
    for dim in dims:
        column = contract.column(dim)
        assert column is not None
        levels.append(column.level_codes)
    return list(itertools.product(*levels))


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
