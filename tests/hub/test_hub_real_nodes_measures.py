"""End to end in process: the hub asks two real node apps for mean, quantile and histogram,
and pools them (quantiles from the pooled noisy grid)."""

import random
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hub_support import DATASET, Hub, make_terms
from real_nodes_support import SEXES, NodeData, lnob_contract, start_real_nodes

from contracts.v1 import Column, DatasetContract
from hub.home import HubIdentity
from node.db import dispose_engines
from node.privacy import mechanisms


def contract() -> DatasetContract:
    return lnob_contract(Column(name="age", type="integer", role="measure", lower=0, upper=100))


def frame(rows: int, seed: int, offset: int) -> pl.DataFrame:
    rnd = random.Random(seed)
    return pl.DataFrame(
        {
            "respondent": [f"r{seed}-{i}" for i in range(rows)],
            "sex": [rnd.choice(SEXES) for _ in range(rows)],
            "age": [min(100, offset + rnd.randint(0, 30)) for _ in range(rows)],
        }
    )


@pytest.fixture
def federation(
    tmp_path: Path, hub_home: HubIdentity, make_hub: Callable[..., Hub]
) -> Iterator[tuple[Hub, pl.DataFrame]]:
    frames = {"ke-cso": frame(400, 1, 18), "np-cso": frame(200, 2, 50)}
    countries = {"ke-cso": "404", "np-cso": "524"}
    nodes = {n: NodeData(countries[n], contract(), data) for n, data in frames.items()}
    real = start_real_nodes(tmp_path, hub_home, make_hub, nodes)
    terms = make_terms(
        list(countries.items()),
        measures=("count", "mean", "quantile", "histogram"),
        columns=("age",),
        dims=("sex",),
        min_cell_size=0,
        rho_per_query_max=5.0,
        rho_budget=20.0,
    )
    real.agree(terms)
    yield real.hub, pl.concat(list(frames.values()))
    dispose_engines()


def ask(hub: Hub, **fields: object) -> dict:  # type: ignore[type-arg]
    spec = {"agreement_id": "lnob-2026", "dataset": DATASET, "rho": 5.0, **fields}
    response = hub.client.post("/v1/queries", json=spec, headers=hub.headers("analyst"))
    assert response.status_code == 201, response.text
    result = response.json()
    assert result["status"] == "complete", result["nodes"]
    return result  # type: ignore[no-any-return]


def test_mean_quantile_histogram_across_two_real_nodes(
    federation: tuple[Hub, pl.DataFrame],
) -> None:
    hub, both = federation
    mean = ask(hub, measure="mean", column="age", group_by=["sex"])
    for cell in mean["cells"]:
        truth = both.filter(pl.col("sex") == cell["key"][0])["age"].mean()
        assert cell["nodes"] == ["ke-cso", "np-cso"]
        assert abs(cell["estimate"] - truth) < 1.0
    # Each node's guarantee, as it signed it, is in the result (API and everything after).
    for node in mean["nodes"]:
        assert node["rho"] == 5.0
        assert node["delta"] == 1e-7
        assert node["epsilon"] == pytest.approx(mechanisms.epsilon(5.0))
        assert node["mechanism"] == "discrete_gaussian"
        assert [c["name"] for c in node["components"]] == ["count", "sum"]
        assert node["noise_scale"] == node["components"][0]["scale"]
    quantile = ask(hub, measure="quantile", column="age", quantiles=[0.5, 0.9])
    assert quantile["group_by"] == ["@quantile"]
    assert quantile["grid"] == list(range(101))
    assert quantile["grid_resolution"] == 1
    ages = np.sort(both["age"].to_numpy())
    for cell in quantile["cells"]:
        q = float(cell["key"][0])
        truth = next(c for c in range(101) if (ages <= c).sum() >= q * len(ages))
        # Test-inversion intervals over-cover (>= 95%); one candidate of slack keeps a single
        # draw from failing a run on a near-miss.
        assert cell["ci95_low"] - 1 <= truth <= cell["ci95_high"] + 1
    histogram = ask(hub, measure="histogram", column="age", group_by=["country"])
    assert histogram["group_by"] == ["country", "@bin"]
    assert len(histogram["cells"]) == 2 * 10
    total = sum(c["estimate"] or 0 for c in histogram["cells"])
    assert abs(total - both.height) < 30
