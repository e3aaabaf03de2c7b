"""Combine verified node releases into the hub's cells (pure; no I/O).

Node datasets are disjoint, so counts add and their noise variances add. Per hub-dim split
(`country`, `node`) and per key, over the nodes that answered:

- count, histogram bins: Σ estimates, variance Σ of each cell's `variance` (σ² from the
  release's `noise_scale` for releases that predate it), normal interval cut at 0.
- sum: Σ numerators with variance Σ numerator variances; its cell size is Σ denominators;
  estimate and interval kept within what a sum of the clamped values can be (≥ 0 when every
  node's lower bound is ≥ 0; `contracts.accuracy.sum_interval`).
- share, mean: Σ numerators / Σ denominators, Fieller interval from the summed numerator and
  denominator variances and covariances (a share from a release without them: s2 = Σσ²,
  Var N = s2, Var D = 2 s2, Cov = s2), cut to [0, 1] for shares and to the union of the
  nodes' bounds for means (`contracts.accuracy.ratio_interval`).
- quantile: the nodes' noisy counts over the candidate grid add bin by bin (so do their
  variances) and the quantile is re-estimated from the pooled counts with the nodes' own
  method (`contracts.accuracy.quantile_from_bins`), over the union of the nodes' value
  ranges; never a median of medians.
- Histogram and quantile releases over different grids cannot be pooled: such cells come
  back suppressed (`grids_differ`).
- A key absent from a node's release is a level outside that node's contract: a structural
  zero (contributes 0 with variance 0), not a missing answer.
- Under `suppression: per_node`, a cell suppressed by any contributing node is suppressed
  in the combination (`suppressed_at_node`): adding the other nodes' cells would let a
  reader subtract them from a later, unsplit answer and recover the withheld one. Under
  `suppression: combined` nodes withhold nothing and only the combined cell is judged.
- Then the agreement's suppression rules apply to every combined cell.
- A single contributor's cell keeps the node's own estimate and interval.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from contracts.accuracy import (
    count_interval,
    grid_resolution,
    quantile_from_bins,
    ratio_interval,
    share_estimate,
    sum_interval,
    suppression_reason,
)
from contracts.agreement_rules import HUB_DIMS
from contracts.v1 import Cell, QuerySpec, Release, ResultCell
from contracts.v1.release import BIN_DIM, QUANTILE_DIM, SuppressionReason


@dataclass(frozen=True)
class NodeAnswer:
    """A verified release and what the hub knows of the node that made it."""

    node_id: str
    country: str
    release: Release


def result_status(*, asked: int, answered: int) -> Literal["complete", "partial", "failed"]:
    if answered == 0:
        return "failed"
    return "complete" if answered == asked else "partial"


def release_guarantee(release: Release) -> dict[str, Any]:
    """The privacy guarantee a node signed with its release, as `NodeStatus` fields."""
    return {
        "rho": release.rho,
        "epsilon": release.epsilon,
        "delta": release.delta,
        "mechanism": release.mechanism,
        "noise_scale": release.noise_scale,
        "components": release.components,
    }


def result_grid(
    spec: QuerySpec, answers: Sequence[NodeAnswer]
) -> tuple[tuple[float, ...] | None, float | None]:
    """The public grid of a quantile or histogram result, and for quantiles its resolution
    (the widest bin between the nodes' value bounds); (None, None) for other measures or
    when the nodes' grids differ (those cells are `grids_differ`)."""
    grids = {a.release.grid for a in answers}
    if spec.measure not in ("quantile", "histogram") or len(grids) != 1:
        return None, None
    grid = next(iter(grids))
    if not grid or spec.measure == "histogram":
        return grid, None
    return grid, grid_resolution(grid, _union([a.release.bounds for a in answers]))


def result_dims(spec: QuerySpec) -> tuple[str, ...]:
    """The dims of the combined cells' keys: the analyst's, plus the reserved inner dim of
    histogram (bin label) and quantile (probability) cells."""
    if spec.measure == "histogram":
        return (*spec.group_by, BIN_DIM)
    if spec.measure == "quantile":
        return (*spec.group_by, QUANTILE_DIM)
    return spec.group_by


def combine(
    *,
    spec: QuerySpec,
    answers: Sequence[NodeAnswer],
    min_cell_size: int,
    max_ci_relative_width: float | None,
) -> tuple[ResultCell, ...]:
    """Cells keyed in the analyst's `group_by` order (hub dims in their places)."""
    hub_positions = [(i, d) for i, d in enumerate(spec.group_by) if d in HUB_DIMS]
    partitions: dict[tuple[str, ...], list[NodeAnswer]] = {}
    for answer in sorted(answers, key=lambda a: a.node_id):
        split = tuple(_hub_value(answer, dim) for _, dim in hub_positions)
        partitions.setdefault(split, []).append(answer)

    pool = _counts if spec.measure == "count" else _by_cell
    cells: list[ResultCell] = []
    for split in sorted(partitions):
        cells.extend(pool(spec, split, partitions[split], min_cell_size, max_ci_relative_width))
    return tuple(cells)


def _by_cell(
    spec: QuerySpec,
    split: tuple[str, ...],
    members: Sequence[NodeAnswer],
    min_cell_size: int,
    max_ci_relative_width: float | None,
) -> list[ResultCell]:
    """One partition's cells, key by key over the members that have it (any measure)."""
    by_key = [{c.key: c for c in m.release.cells} for m in members]
    keys: dict[tuple[str, ...], None] = {}
    for index in by_key:
        keys.update(dict.fromkeys(index))
    cells = []
    for data_key in keys:
        contributors = [
            (m, cell)
            for m, index in zip(members, by_key, strict=True)
            if (cell := index.get(data_key)) is not None
        ]
        combined = _combine_cell(
            spec=spec,
            contributors=contributors,
            min_cell_size=min_cell_size,
            max_ci_relative_width=max_ci_relative_width,
        )
        key = _merge_key(result_dims(spec), split, data_key)
        cells.append(combined.model_copy(update={"key": key}))
    return cells


def _counts(
    spec: QuerySpec,
    split: tuple[str, ...],
    members: Sequence[NodeAnswer],
    min_cell_size: int,
    max_ci_relative_width: float | None,
) -> list[ResultCell]:
    """`_by_cell` for a count, in one pass over the members' cells (the
    same sums in the same order, so the same floats): at 1,000 nodes the per-key
    contributor lists and generators were most of combining a query."""
    # Per key: Σ estimates, Σ variances, the contributing nodes, any suppressed, one cell.
    sums: dict[tuple[str, ...], list[Any]] = {}
    for member in members:
        fallback = member.release.noise_scale**2
        node_id = member.node_id
        # One cell per key and node, the last one given (as `combine`'s index keeps it).
        for key, cell in {c.key: c for c in member.release.cells}.items():
            entry = sums.get(key)
            if entry is None:
                entry = sums[key] = [0, 0, [], False, cell]
            entry[0] += cell.estimate or 0.0
            entry[1] += cell.variance if cell.variance is not None else fallback
            entry[2].append(node_id)
            if cell.status == "suppressed":
                entry[3] = True
    dims = result_dims(spec)
    cells = []
    for data_key, (total, s2, contributors, suppressed, first) in sums.items():
        key = _merge_key(dims, split, data_key)
        nodes = tuple(contributors)
        if suppressed:
            cells.append(
                ResultCell(key=key, status="suppressed", reason="suppressed_at_node", nodes=nodes)
            )
            continue
        estimate = float(total)
        low: float | None
        high: float | None
        if len(nodes) == 1:
            low, high = first.ci95_low, first.ci95_high
        else:
            low, high = count_interval(estimate, s2)
        if low is None or high is None:
            cells.append(
                ResultCell(key=key, status="suppressed", reason="below_min_cell_size", nodes=nodes)
            )
            continue
        cells.append(
            judged(
                key=key,
                estimate=estimate,
                low=low,
                high=high,
                size=estimate,
                nodes=nodes,
                min_cell_size=min_cell_size,
                max_ci_relative_width=max_ci_relative_width,
            )
        )
    return cells


def _combine_cell(
    *,
    spec: QuerySpec,
    contributors: Sequence[tuple[NodeAnswer, Cell]],
    min_cell_size: int,
    max_ci_relative_width: float | None,
) -> ResultCell:
    nodes = tuple(m.node_id for m, _ in contributors)
    if any(c.status == "suppressed" for _, c in contributors):
        return ResultCell(key=(), status="suppressed", reason="suppressed_at_node", nodes=nodes)
    single = contributors[0][1] if len(contributors) == 1 else None
    # Grids and bounds only where the measure uses them: each is a pass over every
    # contributor, for every cell (a count of 1,000 nodes made them a third of combining).
    grids = (
        {m.release.grid for m, _ in contributors}
        if spec.measure in ("histogram", "quantile")
        else set()
    )
    if len(grids) > 1:
        return _suppressed("grids_differ", nodes)
    low: float | None
    high: float | None
    bounds = _bounds(contributors) if spec.measure in ("share", "mean", "quantile", "sum") else None
    if spec.measure in ("share", "mean"):
        numerator, denominator, vn, vd, cov = _ratio_parts(contributors)
        size = denominator
        if denominator < max(min_cell_size, 1):
            return _suppressed("below_min_cell_size", nodes)
        if single is not None and single.estimate is not None:
            estimate, low, high = single.estimate, single.ci95_low, single.ci95_high
        else:
            lowest, highest = (0.0, 1.0) if spec.measure == "share" else bounds or _UNBOUNDED
            estimate = min(highest, max(lowest, numerator / denominator))
            low, high = ratio_interval(
                numerator,
                denominator,
                numerator_variance=vn,
                denominator_variance=vd,
                covariance=cov,
                low=lowest,
                high=highest,
            )
            if spec.measure == "share":
                estimate = share_estimate(numerator, denominator)
            if math.isinf(high - low):
                # Only for releases from before nodes sent their bounds: a denominator not
                # significantly above 0 leaves the ratio unbounded.
                return _suppressed("interval_too_wide", nodes)
    elif spec.measure == "quantile":
        parts = [c.bins or () for _, c in contributors]
        bins = [sum(values) for values in zip(*parts, strict=True)]
        grid = next(iter(grids)) or ()
        size = sum(bins)
        if single is not None and single.estimate is not None:
            estimate, low, high = single.estimate, single.ci95_low, single.ci95_high
        else:
            if size < max(min_cell_size, 1):
                return _suppressed("below_min_cell_size", nodes)
            s2 = sum(_variance(m, c) for m, c in contributors)
            q = float(contributors[0][1].key[-1])
            integer = all(m.release.integer for m, _ in contributors)
            estimate, low, high = quantile_from_bins(
                bins, grid, q, s2, bounds=bounds, integer=integer
            )
    elif spec.measure == "sum":
        size = float(sum(c.denominator or 0.0 for _, c in contributors))
        variance = sum(c.numerator_variance or 0.0 for _, c in contributors)
        total = float(sum(_numerator(c) for _, c in contributors))
        estimate, low, high = sum_interval(total, variance, bounds=bounds)
        if single is not None:
            estimate, low, high = single.estimate or 0.0, single.ci95_low, single.ci95_high
    else:
        estimate = float(sum(c.estimate or 0.0 for _, c in contributors))
        size = estimate
        s2 = sum(_variance(m, c) for m, c in contributors)
        if single is not None:
            low, high = single.ci95_low, single.ci95_high
        else:
            low, high = count_interval(estimate, s2)
    if low is None or high is None:
        return _suppressed("below_min_cell_size", nodes)
    return judged(
        key=(),
        estimate=estimate,
        low=low,
        high=high,
        size=size,
        nodes=nodes,
        min_cell_size=min_cell_size,
        max_ci_relative_width=max_ci_relative_width,
    )


def judged(
    *,
    key: tuple[str, ...],
    estimate: float,
    low: float,
    high: float,
    size: float,
    nodes: tuple[str, ...],
    min_cell_size: int,
    max_ci_relative_width: float | None,
) -> ResultCell:
    """A combined cell as released, or withheld with the agreement's reason."""
    reason = suppression_reason(
        cell_size=size,
        estimate=estimate,
        ci95_low=low,
        ci95_high=high,
        min_cell_size=min_cell_size,
        max_ci_relative_width=max_ci_relative_width,
    )
    if reason is not None:
        return ResultCell(key=key, status="suppressed", reason=reason, nodes=nodes)
    return ResultCell(
        key=key, status="ok", estimate=estimate, ci95_low=low, ci95_high=high, nodes=nodes
    )


_UNBOUNDED = (-math.inf, math.inf)


def _bounds(contributors: Sequence[tuple[NodeAnswer, Cell]]) -> tuple[float, float] | None:
    return _union([m.release.bounds for m, _ in contributors])


def _union(ranges: Sequence[tuple[float, float] | None]) -> tuple[float, float] | None:
    """The range every contributor's values lie in (the union of their public bounds);
    None when a release predates bounds, so nothing is cut by a range the hub cannot know."""
    known = [r for r in ranges if r is not None]
    if not known or len(known) < len(ranges):
        return None
    return (min(r[0] for r in known), max(r[1] for r in known))


def _variance(member: NodeAnswer, cell: Cell) -> float:
    """A cell's noise variance; releases from before per-cell variances: σ²."""
    return cell.variance if cell.variance is not None else member.release.noise_scale**2


def _numerator(cell: Cell) -> float:
    if cell.numerator is not None:
        return cell.numerator
    return cell.estimate or 0.0


def _ratio_parts(
    contributors: Sequence[tuple[NodeAnswer, Cell]],
) -> tuple[float, float, float, float, float]:
    """Σ numerators, Σ denominators, and the summed noise (co)variances (nodes independent)."""
    numerator = denominator = vn = vd = cov = 0.0
    for member, cell in contributors:
        s2 = member.release.noise_scale**2
        numerator += cell.numerator or 0.0
        denominator += cell.denominator or 0.0
        vn += cell.numerator_variance if cell.numerator_variance is not None else s2
        vd += cell.denominator_variance if cell.denominator_variance is not None else 2 * s2
        cov += cell.covariance if cell.covariance is not None else s2
    return numerator, denominator, vn, vd, cov


def _suppressed(reason: SuppressionReason, nodes: tuple[str, ...]) -> ResultCell:
    return ResultCell(key=(), status="suppressed", reason=reason, nodes=nodes)


def _hub_value(answer: NodeAnswer, dim: str) -> str:
    return answer.country if dim == "country" else answer.node_id


def _merge_key(
    group_by: Sequence[str], split: tuple[str, ...], data_key: tuple[str, ...]
) -> tuple[str, ...]:
    hub_values = iter(split)
    data_values = iter(data_key)
    return tuple(next(hub_values) if d in HUB_DIMS else next(data_values) for d in group_by)
