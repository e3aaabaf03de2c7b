"""Hub combination of every measure, fed with real node releases over disjoint node data."""

import math
from datetime import UTC, datetime
from uuid import UUID

import numpy as np
import polars as pl
import pytest

from contracts.accuracy import quantile_from_bins
from contracts.v1 import QuerySpec, Release, ResultCell
from hub.queries.combine import NodeAnswer, combine, result_dims
from node.privacy import engine
from tests.node.test_privacy_statistics import GROUPS, contract, frame

QID = UUID("12345678-1234-4678-9234-567812345678")


def node_frames() -> tuple[pl.DataFrame, pl.DataFrame]:
    """Two disjoint nodes of different sizes and value levels."""
    df = frame()
    low = df.head(200).with_columns((pl.col("v") // 3).alias("v"))
    return low, df.tail(400)


def spec(**fields: object) -> QuerySpec:
    base: dict[str, object] = {"agreement_id": "a", "dataset": "stats", "group_by": ("g",)}
    base.update(fields)
    return QuerySpec(**base)  # type: ignore[arg-type]


def answer(
    node: str, data: pl.DataFrame, s: QuerySpec, *, suppress: bool = False, min_cell_size: int = 0
) -> NodeAnswer:
    computed = engine.compute_release(
        data=data.lazy(),
        contract=contract(),
        spec=s,
        rho=s.rho,
        min_cell_size=min_cell_size,
        max_ci_relative_width=None,
        suppress=suppress,
    )
    release = Release(
        query_id=QID,
        node_id=node,
        agreement_id="a",
        agreement_version=1,
        dataset="stats",
        contract_version=1,
        measure=s.measure,
        group_by=computed.group_by,
        mechanism=computed.mechanism,
        rho=s.rho,
        noise_scale=computed.noise_scale,
        request_digest="x" * 64,
        cells=computed.cells,
        released_at=datetime.now(UTC),
        components=computed.components,
        epsilon=computed.epsilon,
        delta=computed.delta,
        weighted=computed.weighted,
        grid=computed.grid,
        bounds=computed.bounds,
        integer=computed.integer,
    )
    # What the hub receives is the wire form.
    return NodeAnswer(node, "524", Release.model_validate_json(release.model_dump_json()))


def combined(s: QuerySpec, **kw: object) -> dict[tuple[str, ...], object]:
    a, b = node_frames()
    cells = combine(
        spec=s,
        answers=[answer("n1", a, s), answer("n2", b, s)],
        min_cell_size=int(kw.get("min_cell_size", 0)),  # type: ignore[call-overload]
        max_ci_relative_width=None,
    )
    return {c.key: c for c in cells}


def pooled() -> pl.DataFrame:
    return pl.concat(node_frames())


@pytest.mark.parametrize(
    ("fields", "truth"),
    [
        ({"measure": "count"}, pl.len()),
        ({"measure": "sum", "column": "v"}, pl.col("v").sum()),
        ({"measure": "mean", "column": "v"}, pl.col("v").mean()),
        ({"measure": "share", "column": "y", "value": "yes"}, (pl.col("y") == "yes").mean()),
        ({"measure": "count", "weighted": True}, pl.col("w").sum()),
        (
            {"measure": "mean", "column": "v", "weighted": True},
            (pl.col("v") * pl.col("w")).sum() / pl.col("w").sum(),
        ),
    ],
)
def test_linear_and_ratio_measures_combine_to_the_pooled_truth(fields, truth) -> None:
    s = spec(rho=2.0, **fields)
    cells = combined(s)
    exact = {(str(g),): float(x) for g, x in pooled().group_by("g").agg(truth).iter_rows()}
    for key, value in exact.items():
        cell = cells[key]
        assert cell.status == "ok"  # type: ignore[attr-defined]
        assert cell.nodes == ("n1", "n2")  # type: ignore[attr-defined]
        # The 95% half-width is 1.96 sd: 2.5 half-widths (4.9 sd) fail once in a million.
        half = (cell.ci95_high - cell.ci95_low) / 2  # type: ignore[attr-defined]
        assert abs(cell.estimate - value) <= 2.5 * half + 1e-9  # type: ignore[attr-defined]


def test_histogram_bins_add() -> None:
    s = spec(measure="histogram", column="v", edges=(0, 5, 10), rho=5.0)
    cells = combined(s)
    assert result_dims(s) == ("g", "@bin")
    df = pooled()
    for g in GROUPS:
        low = df.filter((pl.col("g") == g) & (pl.col("v") < 5)).height
        cell = cells[(g, "[0, 5)")]
        half = (cell.ci95_high - cell.ci95_low) / 2  # type: ignore[attr-defined]
        assert abs(cell.estimate - low) <= 2.5 * half + 1  # type: ignore[attr-defined]


def test_quantile_pools_the_noisy_grid_not_the_medians() -> None:
    s = spec(measure="quantile", column="v", quantiles=(0.5,), rho=5.0, group_by=())
    a, b = node_frames()
    answers = [answer("n1", a, s), answer("n2", b, s)]
    (cell,) = combine(spec=s, answers=answers, min_cell_size=0, max_ci_relative_width=None)
    bins = np.sum([ans.release.cells[0].bins for ans in answers], axis=0)
    grid = answers[0].release.grid or ()
    variance = sum(ans.release.cells[0].variance or 0 for ans in answers)
    release = answers[0].release
    assert release.bounds == (0, 10)
    assert release.integer
    assert (cell.estimate, cell.ci95_low, cell.ci95_high) == quantile_from_bins(
        list(bins), grid, 0.5, variance, bounds=release.bounds, integer=True
    )
    values = np.sort(pooled()["v"].to_numpy())
    truth = next(c for c in grid if (values <= c).sum() >= 0.5 * len(values))
    assert cell.ci95_low <= truth <= cell.ci95_high  # type: ignore[operator]
    # Pooled counts put the median at 4 (291 of 600 values <= 3, 327 <= 4): far from any
    # node's own median (2 and 6 or 7), so no summary of node medians could find it.
    assert cell.estimate == truth == 4
    assert truth not in {ans.release.cells[0].estimate for ans in answers}


def test_grids_that_differ_cannot_be_pooled() -> None:
    a, b = node_frames()
    s1 = spec(measure="quantile", column="v", rho=1.0, group_by=())
    s2 = spec(measure="quantile", column="v", rho=1.0, group_by=(), candidates=(2, 4, 6))
    (cell,) = combine(
        spec=s1,
        answers=[answer("n1", a, s1), answer("n2", b, s2)],
        min_cell_size=0,
        max_ci_relative_width=None,
    )
    assert cell.status == "suppressed"
    assert cell.reason == "grids_differ"


def test_suppression_is_reapplied_to_combined_cells() -> None:
    s = spec(measure="mean", column="v", rho=1.0)
    cells = combined(s, min_cell_size=10_000)
    assert {c.reason for c in cells.values()} == {"below_min_cell_size"}  # type: ignore[attr-defined]
    per_node = spec(measure="sum", column="v", rho=1.0)
    a, b = node_frames()
    (first, *_) = combine(
        spec=per_node,
        answers=[
            answer("n1", a, per_node),
            answer("n2", b.head(3), per_node, suppress=True, min_cell_size=50),
        ],
        min_cell_size=0,
        max_ci_relative_width=None,
    )
    assert first.reason == "suppressed_at_node"


def pooled_cells(s: QuerySpec, trials: int) -> list[tuple[ResultCell, ...]]:
    """`trials` combinations of fresh releases of both nodes (each node measured once)."""
    a, b = node_frames()
    measured = [
        engine.measure_exact(data=d.lazy(), contract=contract(), spec=s, rho=s.rho) for d in (a, b)
    ]
    out = []
    for _ in range(trials):
        answers = []
        for node, m in zip(("n1", "n2"), measured, strict=True):
            c = engine.release_exact(m, min_cell_size=0, max_ci_relative_width=None, suppress=False)
            release = Release(
                query_id=QID,
                node_id=node,
                agreement_id="a",
                agreement_version=1,
                dataset="stats",
                contract_version=1,
                measure=s.measure,
                group_by=c.group_by,
                mechanism=c.mechanism,
                rho=s.rho,
                noise_scale=c.noise_scale,
                request_digest="x" * 64,
                cells=c.cells,
                released_at=datetime.now(UTC),
                grid=c.grid,
                bounds=c.bounds,
                integer=c.integer,
            )
            answers.append(NodeAnswer(node, "524", release))
        out.append(combine(spec=s, answers=answers, min_cell_size=0, max_ci_relative_width=None))
    return out


def test_pooled_mean_intervals_cover() -> None:
    """1,000 pooled releases x 4 groups: coverage within 95% +- 4 binomial sd."""
    s = spec(measure="mean", column="v", rho=0.05)
    exact = {
        (str(g),): float(x) for g, x in pooled().group_by("g").agg(pl.col("v").mean()).iter_rows()
    }
    covered = [
        cell.ci95_low <= exact[cell.key] <= cell.ci95_high  # type: ignore[operator]
        for cells in pooled_cells(s, 1000)
        for cell in cells
    ]
    n = len(covered)
    assert abs(sum(covered) / n - 0.95) <= 4 * math.sqrt(0.95 * 0.05 / n)


def test_pooled_quantile_intervals_cover_the_pooled_datas_median() -> None:
    """Candidates coarser than the values: the interval must hold the pooled data's median
    itself (>= 95% - 5 sd over 2,000 pooled releases x 4 groups), never be zero-width, and
    reach the upper bound for a median above the last candidate."""
    s = spec(measure="quantile", column="v", quantiles=(0.5,), candidates=(1.5, 3.5), rho=0.05)
    df = pooled()
    truth = {}
    for g in GROUPS:
        values = np.sort(df.filter(pl.col("g") == g)["v"].to_numpy())
        truth[(g, "0.5")] = float(values[math.ceil(0.5 * len(values)) - 1])
    cells = [cell for cells in pooled_cells(s, 2000) for cell in cells]
    covered = [c.ci95_low <= truth[c.key] <= c.ci95_high for c in cells]  # type: ignore[operator]
    n = len(covered)
    assert sum(covered) / n >= 0.95 - 5 * math.sqrt(0.95 * 0.05 / n)
    assert all(c.ci95_low < c.ci95_high for c in cells)  # type: ignore[operator]
    assert max(c.ci95_high for c in cells) == 10  # type: ignore[type-var]


def test_pooled_sums_and_counts_stay_at_or_above_zero() -> None:
    """Values and counts are >= 0, so their intervals are cut at 0 (noise sd ~100 here)."""
    for s in (spec(measure="sum", column="v", rho=0.0001), spec(measure="count", rho=0.0001)):
        released = [c for cells in pooled_cells(s, 50) for c in cells if c.status == "ok"]
        assert len(released) >= 50
        assert all(c.ci95_low >= 0 for c in released)  # type: ignore[operator]
        assert all(c.estimate >= 0 for c in released)  # type: ignore[operator]
        assert any(c.ci95_low == 0 for c in released)
