"""Unit tests of `hub.queries.combine`: sums, shares, structural zeros, suppression."""

import math
from datetime import UTC, datetime
from uuid import UUID

import pytest

from contracts.accuracy import Z95, count_interval, share_interval
from contracts.v1 import Cell, QuerySpec, Release, ResultCell
from hub.queries.combine import NodeAnswer, combine, result_status

QID = UUID("12345678-1234-4678-9234-567812345678")


def spec(measure: str = "count", group_by: tuple[str, ...] = ("sex",)) -> QuerySpec:
    if measure == "share":
        return QuerySpec(
            agreement_id="a",
            dataset="d",
            measure="share",
            column="violence_12m",
            value="yes",
            group_by=group_by,
            rho=0.1,
        )
    return QuerySpec(agreement_id="a", dataset="d", measure="count", group_by=group_by, rho=0.1)


def answer(node_id: str, country: str, cells: list[Cell], sigma: float = 2.0) -> NodeAnswer:
    s = spec()
    release = Release(
        query_id=QID,
        node_id=node_id,
        agreement_id="a",
        agreement_version=1,
        dataset="d",
        contract_version=1,
        measure=s.measure,
        group_by=tuple(d for d in s.group_by if d not in ("country", "node")),
        mechanism="discrete_gaussian",
        rho=0.1,
        noise_scale=sigma,
        request_digest="x" * 64,
        cells=tuple(cells),
        released_at=datetime.now(UTC),
    )
    return NodeAnswer(node_id=node_id, country=country, release=release)


def ok(key: str, estimate: float, sigma: float = 2.0) -> Cell:
    low, high = count_interval(estimate, sigma**2)
    return Cell(key=(key,), status="ok", estimate=estimate, ci95_low=low, ci95_high=high)


def share_cell(key: str, num: int, den: int, sigma: float = 2.0) -> Cell:
    low, high = share_interval(num, den, sigma**2)
    return Cell(
        key=(key,),
        status="ok",
        estimate=num / den,
        ci95_low=low,
        ci95_high=high,
        numerator=num,
        denominator=den,
    )


def suppressed(key: str) -> Cell:
    return Cell(key=(key,), status="suppressed", reason="below_min_cell_size")


def by_key(cells: tuple[ResultCell, ...]) -> dict[tuple[str, ...], ResultCell]:
    return {c.key: c for c in cells}


def test_counts_add_and_variances_add() -> None:
    cells = combine(
        spec=spec(),
        answers=[
            answer("a", "404", [ok("f", 100), ok("m", 60)], sigma=3.0),
            answer("b", "524", [ok("f", 50), ok("m", 40)], sigma=4.0),
        ],
        min_cell_size=10,
        max_ci_relative_width=None,
    )
    f = by_key(cells)[("f",)]
    assert f.status == "ok"
    assert f.estimate == pytest.approx(150)
    assert f.ci95_high - f.ci95_low == pytest.approx(2 * Z95 * math.sqrt(9 + 16))
    assert f.nodes == ("a", "b")


def test_single_node_keeps_its_own_interval() -> None:
    cell = Cell(key=("f",), status="ok", estimate=100, ci95_low=90.5, ci95_high=109.5)
    (f,) = combine(
        spec=spec(),
        answers=[answer("a", "404", [cell])],
        min_cell_size=10,
        max_ci_relative_width=None,
    )
    assert (f.ci95_low, f.ci95_high) == (90.5, 109.5)


def test_absent_key_is_a_structural_zero() -> None:
    cells = by_key(
        combine(
            spec=spec(),
            answers=[
                answer("a", "404", [ok("f", 100), ok("x", 30)]),
                answer("b", "524", [ok("f", 50)], sigma=5.0),
            ],
            min_cell_size=10,
            max_ci_relative_width=None,
        )
    )
    x = cells[("x",)]
    assert x.estimate == pytest.approx(30)
    assert x.nodes == ("a",)
    # Only node a's noise is in the cell: b contributes 0 with variance 0.
    assert x.ci95_high - x.ci95_low == pytest.approx(2 * Z95 * 2.0)


def test_suppressed_at_any_node_suppresses_the_combination() -> None:
    cells = by_key(
        combine(
            spec=spec(),
            answers=[
                answer("a", "404", [ok("f", 100), suppressed("m")]),
                answer("b", "524", [ok("f", 50), ok("m", 400)]),
            ],
            min_cell_size=10,
            max_ci_relative_width=None,
        )
    )
    m = cells[("m",)]
    assert m.status == "suppressed"
    assert m.reason == "suppressed_at_node"
    assert m.estimate is None
    assert m.ci95_low is None


def test_agreement_rules_apply_to_combined_cells() -> None:
    cells = by_key(
        combine(
            spec=spec(),
            answers=[
                answer("a", "404", [ok("f", 4), ok("m", 30)]),
                answer("b", "524", [ok("f", 3), ok("m", 30)]),
            ],
            min_cell_size=10,
            max_ci_relative_width=0.2,
        )
    )
    assert cells[("f",)].reason == "below_min_cell_size"
    # 60 ± 1.96·sqrt(8): relative width ≈ 0.18 passes; tighten the limit and it fails.
    assert cells[("m",)].status == "ok"
    tight = by_key(
        combine(
            spec=spec(),
            answers=[answer("a", "404", [ok("m", 30)]), answer("b", "524", [ok("m", 30)])],
            min_cell_size=10,
            max_ci_relative_width=0.1,
        )
    )
    assert tight[("m",)].reason == "interval_too_wide"


def test_shares_are_ratios_of_summed_components() -> None:
    (f,) = combine(
        spec=spec("share"),
        answers=[
            answer("a", "404", [share_cell("f", 30, 100)], sigma=2.0),
            answer("b", "524", [share_cell("f", 10, 100)], sigma=3.0),
        ],
        min_cell_size=10,
        max_ci_relative_width=None,
    )
    assert f.estimate == pytest.approx(40 / 200)
    low, high = share_interval(40, 200, 4.0 + 9.0)
    assert (f.ci95_low, f.ci95_high) == (pytest.approx(low), pytest.approx(high))


def test_share_with_small_denominator_is_suppressed_not_divided() -> None:
    (f,) = combine(
        spec=spec("share"),
        answers=[
            answer("a", "404", [share_cell("f", 0, 1)]),
            answer(
                "b",
                "524",
                [
                    Cell(
                        key=("f",),
                        status="ok",
                        estimate=0.0,
                        ci95_low=0.0,
                        ci95_high=1.0,
                        numerator=0,
                        denominator=-1,
                    )
                ],
            ),
        ],
        min_cell_size=0,
        max_ci_relative_width=None,
    )
    assert f.status == "suppressed"
    assert f.reason == "below_min_cell_size"


def test_hub_dims_split_and_keys_follow_group_by_order() -> None:
    answers = [
        answer("ke-a", "404", [ok("f", 100)]),
        answer("ke-b", "404", [ok("f", 20)]),
        answer("np", "524", [ok("f", 40)]),
    ]
    cells = by_key(
        combine(
            spec=spec(group_by=("country", "sex")),
            answers=answers,
            min_cell_size=10,
            max_ci_relative_width=None,
        )
    )
    assert cells[("404", "f")].estimate == pytest.approx(120)
    assert cells[("524", "f")].estimate == pytest.approx(40)
    nodes = by_key(
        combine(
            spec=spec(group_by=("sex", "node")),
            answers=answers,
            min_cell_size=10,
            max_ci_relative_width=None,
        )
    )
    assert set(nodes) == {("f", "ke-a"), ("f", "ke-b"), ("f", "np")}
    both = by_key(
        combine(
            spec=spec(group_by=("node", "sex", "country")),
            answers=answers,
            min_cell_size=10,
            max_ci_relative_width=None,
        )
    )
    assert set(both) == {("ke-a", "f", "404"), ("ke-b", "f", "404"), ("np", "f", "524")}


def test_missing_nodes_are_not_imputed_and_status_says_so() -> None:
    cells = combine(
        spec=spec(),
        answers=[answer("a", "404", [ok("f", 100)])],
        min_cell_size=10,
        max_ci_relative_width=None,
    )
    assert by_key(cells)[("f",)].estimate == pytest.approx(100)
    assert result_status(asked=3, answered=3) == "complete"
    assert result_status(asked=3, answered=1) == "partial"
    assert result_status(asked=3, answered=0) == "failed"
    assert combine(spec=spec(), answers=[], min_cell_size=10, max_ci_relative_width=None) == ()


@pytest.mark.parametrize("group_by", [("sex",), ("country", "sex"), ("sex", "node")])
@pytest.mark.parametrize("min_cell_size", [0, 30])
def test_counts_pooled_in_one_pass_equal_the_cell_by_cell_combination(
    group_by: tuple[str, ...], min_cell_size: int
) -> None:
    # The count path (`_counts`) must give exactly what the general one (`_by_cell`) gives:
    # suppressed cells, single contributors, structural zeros, variances given or not, a key
    # repeated in one release (the last one counts), several countries.
    import random  # noqa: PLC0415

    from hub.queries import combine as combining  # noqa: PLC0415

    rng = random.Random(25)
    answers = []
    for i in range(40):
        cells = []
        for key in rng.sample(["f", "m", "x", "u"], rng.randint(1, 4)):
            estimate = float(rng.randint(0, 80)) + rng.random()
            if rng.random() < 0.1:
                cells.append(Cell(key=(key,), status="suppressed", reason="below_min_cell_size"))
                continue
            cell = ok(key, estimate, sigma=rng.choice([1.0, 2.0, 3.5]))
            if rng.random() < 0.5:
                cell = cell.model_copy(update={"variance": rng.random() * 9})
            cells.append(cell)
        if rng.random() < 0.1:
            cells.append(ok(cells[0].key[0], 5.0))
        answers.append(answer(f"n{i:02d}", rng.choice(["KE", "NP", "BD"]), cells))
    s = spec(group_by=group_by)
    pooled = combine(
        spec=s, answers=answers, min_cell_size=min_cell_size, max_ci_relative_width=0.8
    )
    partitions: dict[tuple[str, ...], list[NodeAnswer]] = {}
    for a in sorted(answers, key=lambda a: a.node_id):
        split = tuple(
            (a.country if d == "country" else a.node_id)
            for d in group_by
            if d in ("country", "node")
        )
        partitions.setdefault(split, []).append(a)
    by_cell = tuple(
        cell
        for split in sorted(partitions)
        for cell in combining._by_cell(s, split, partitions[split], min_cell_size, 0.8)
    )
    assert pooled == by_cell
    assert {c.status for c in pooled} == {"ok", "suppressed"}
