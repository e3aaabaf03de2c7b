"""The synthetic demo data: deterministic, true to its contracts, with realistic contrasts."""

from pathlib import Path

import polars as pl
import pytest

from node.datasets import service as node_datasets
from sauti.demo.codebook import DATASET, GROUPS
from sauti.demo.data import DemoNode, demo_nodes


@pytest.fixture(scope="module")
def nodes() -> list[DemoNode]:
    return demo_nodes(rows=6000)


def test_same_seed_same_data() -> None:
    one, two = demo_nodes(rows=300), demo_nodes(rows=300)
    for a, b in zip(one, two, strict=True):
        assert a.frame.equals(b.frame)
        assert a.contract == b.contract
    assert not demo_nodes(rows=300, seed=1)[0].frame.equals(one[0].frame)


def test_three_countries_one_dataset(nodes: list[DemoNode]) -> None:
    assert [n.country for n in nodes] == ["524", "050", "404"]
    assert len({n.node_id for n in nodes}) == 3
    for node in nodes:
        assert node.contract.name == DATASET
        assert node.contract.version == 1
        assert [c.name for c in node.contract.columns] == node.frame.columns
        assert node.frame.height == 6000
    ids = pl.concat([n.frame.select("respondent_id") for n in nodes])
    assert ids.n_unique() == ids.height


def test_values_stay_within_contract_levels_and_bounds(nodes: list[DemoNode]) -> None:
    for node in nodes:
        for column in node.contract.columns:
            series = node.frame.get_column(column.name)
            if column.type == "categorical":
                assert set(series.drop_nulls().unique().to_list()) <= set(column.level_codes)
            if column.lower is not None and column.upper is not None:
                assert series.min() >= column.lower  # type: ignore[operator]
                assert series.max() <= column.upper  # type: ignore[operator]


def test_local_language_labels_and_districts_differ(nodes: list[DemoNode]) -> None:
    languages = []
    for node in nodes:
        group = node.contract.column("group")
        assert group is not None
        languages.append(next(iter(set(group.levels[0].labels) - {"en"})))
    assert languages == ["ne", "bn", "sw"]
    districts = [node.contract.column("district") for node in nodes]
    codes = [set(d.level_codes) for d in districts if d is not None]
    assert not codes[0] & codes[1]
    # Kenya's codebook has no Dalit category: a structural zero, not a small count.
    kenya_groups = nodes[2].contract.column("group")
    assert kenya_groups is not None
    assert "dalit" not in kenya_groups.level_codes
    assert len(kenya_groups.level_codes) == len(GROUPS) - 1


def test_realistic_contrasts_and_small_groups(nodes: list[DemoNode]) -> None:
    frame = pl.concat([n.frame for n in nodes])
    by_group = frame.group_by("group").agg(
        violence=(pl.col("violence_12m") == "yes").mean(),
        health=(pl.col("health_access") == "yes").sum() / pl.col("health_access").count(),
    )
    rates = {row["group"]: row for row in by_group.to_dicts()}
    for exposed in ("sex_worker", "third_gender"):
        assert rates[exposed]["violence"] > rates["none"]["violence"] + 0.2
    for excluded in ("dalit", "disability"):
        assert rates[excluded]["health"] < rates["none"]["health"] - 0.15
    # Each node has a few groups of only a few dozen respondents at the default size.
    for node in nodes:
        smallest = int(node.frame["group"].value_counts()["count"].min())  # type: ignore[arg-type]
        assert smallest < 6000 * 0.005


def test_imports_into_a_node(tmp_path: Path, nodes: list[DemoNode]) -> None:
    node = nodes[1]
    info = node_datasets.import_frame(home=tmp_path, contract=node.contract, frame=node.frame)
    assert info.contract == node.contract
    stored = pl.read_parquet(node_datasets.load(home=tmp_path, name=DATASET).parquet_path)
    assert "respondent_name" not in stored.columns
    assert "notes" not in stored.columns
    assert stored.height == node.frame.height
