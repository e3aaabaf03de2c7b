"""Combine verified node releases into the hub's cells (pure; no I/O).

Node datasets are disjoint, so counts add and their noise variances add. Per hub-dim split
(`country`, `node`) and per key, over the nodes that answered:

- count: Σ estimates, variance Σσ² (σ = each release's `noise_scale`), normal interval.
- share: Σ numerators / Σ denominators, delta-method interval with s2 = Σσ².
- A key absent from a node's release is a level outside that node's contract: a structural
  zero (contributes 0 with variance 0), not a missing answer.
- Under `suppression: per_node`, a cell suppressed by any contributing node is suppressed
  in the combination (`suppressed_at_node`): adding the other nodes' cells would let a
  reader subtract them from a later, unsplit answer and recover the withheld one. Under
  `suppression: combined` nodes withhold nothing and only the combined cell is judged.
- Then the agreement's suppression rules apply to every combined cell.
- A single contributor's cell keeps the node's own estimate and interval.
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from contracts.accuracy import count_interval, share_estimate, share_interval, suppression_reason
from contracts.v1 import Cell, QuerySpec, Release, ResultCell
from contracts.v1.release import SuppressionReason

HUB_DIMS = ("country", "node")


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

    cells: list[ResultCell] = []
    for split in sorted(partitions):
        members = partitions[split]
        by_key = [{c.key: c for c in m.release.cells} for m in members]
        keys: dict[tuple[str, ...], None] = {}
        for index in by_key:
            keys.update(dict.fromkeys(index))
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
            key = _merge_key(spec.group_by, split, data_key)
            cells.append(combined.model_copy(update={"key": key}))
    return tuple(cells)


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
    s2 = sum(m.release.noise_scale**2 for m, _ in contributors)
    single = contributors[0][1] if len(contributors) == 1 else None
    if spec.measure == "share":
        numerator = float(sum(c.numerator or 0 for _, c in contributors))
        denominator = float(sum(c.denominator or 0 for _, c in contributors))
        size = denominator
        if denominator < max(min_cell_size, 1):
            return _suppressed("below_min_cell_size", nodes)
        if single is not None and single.estimate is not None:
            estimate, low, high = single.estimate, single.ci95_low, single.ci95_high
        else:
            estimate = share_estimate(numerator, denominator)
            low, high = share_interval(numerator, denominator, s2)
    else:
        estimate = float(sum(c.estimate or 0.0 for _, c in contributors))
        size = estimate
        if single is not None:
            low, high = single.ci95_low, single.ci95_high
        else:
            low, high = count_interval(estimate, s2)
    if low is None or high is None:
        low, high = count_interval(estimate, s2)
    reason = suppression_reason(
        cell_size=size,
        estimate=estimate,
        ci95_low=low,
        ci95_high=high,
        min_cell_size=min_cell_size,
        max_ci_relative_width=max_ci_relative_width,
    )
    if reason is not None:
        return _suppressed(reason, nodes)
    return ResultCell(
        key=(), status="ok", estimate=estimate, ci95_low=low, ci95_high=high, nodes=nodes
    )


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
