"""End to end in process: the hub app asks two real node apps (node package) over ASGI."""

import json
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import polars as pl
import pytest
from hub_support import DATASET, Hub, make_terms
from real_nodes_support import SEXES, NodeData, lnob_contract, start_real_nodes
from typer.testing import CliRunner

from contracts.v1 import Column, DatasetContract, Level
from hub.home import HubIdentity
from node import home as node_home
from node.app import create_app as create_node_app
from node.db import dispose_engines
from node.settings import NodeSettings
from sauti.cli import app as sauti_app
from sauti.serve import serve_in_thread

GROUPS = ("dalit", "none")


def contract() -> DatasetContract:
    return lnob_contract(
        Column(name="group", type="categorical", levels=tuple(Level(code=c) for c in GROUPS)),
        Column(
            name="violence_12m", type="categorical", levels=(Level(code="yes"), Level(code="no"))
        ),
    )


def frame(rows: int, seed: int) -> pl.DataFrame:
    rnd = random.Random(seed)
    return pl.DataFrame(
        {
            "respondent": [f"r{seed}-{i}" for i in range(rows)],
            "sex": [rnd.choice(SEXES) for _ in range(rows)],
            "group": [rnd.choice(GROUPS) for _ in range(rows)],
            "violence_12m": [rnd.choice(("yes", "no", "no")) for _ in range(rows)],
        }
    )


@pytest.fixture
def real_federation(
    tmp_path: Path, hub_home: HubIdentity, make_hub: Callable[..., Hub]
) -> Iterator[tuple[Hub, dict[str, pl.DataFrame]]]:
    frames = {"ke-cso": frame(400, 1), "np-cso": frame(300, 2)}
    countries = {"ke-cso": "404", "np-cso": "524"}
    nodes = {n: NodeData(countries[n], contract(), data) for n, data in frames.items()}
    federation = start_real_nodes(tmp_path, hub_home, make_hub, nodes)
    terms = make_terms(
        list(countries.items()),
        columns=("violence_12m",),
        dims=("sex", "group"),
        min_cell_size=0,
        rho_per_query_max=2.0,
        rho_budget=10.0,
    )
    assert federation.agree(terms)["status"] == "active"
    yield federation.hub, frames
    dispose_engines()


def test_count_and_share_across_two_real_nodes(
    real_federation: tuple[Hub, dict[str, pl.DataFrame]],
) -> None:
    hub, frames = real_federation
    spec = {"agreement_id": "lnob-2026", "dataset": DATASET, "rho": 2.0}
    count = hub.client.post(
        "/v1/queries",
        json={**spec, "measure": "count", "group_by": ["sex", "country"]},
        headers=hub.headers("analyst"),
    )
    assert count.status_code == 201, count.text
    result = count.json()
    assert result["status"] == "complete", result["nodes"]
    cells = {tuple(c["key"]): c for c in result["cells"]}
    assert set(cells) == {(s, c) for s in SEXES for c in ("404", "524")}
    exact = {
        (s, c): frames[n].filter(pl.col("sex") == s).height
        for n, c in (("ke-cso", "404"), ("np-cso", "524"))
        for s in SEXES
    }
    for key, cell in cells.items():
        assert cell["status"] == "ok"
        # rho = 2 gives sigma = 0.5: a noisy count lands within a few units of the truth.
        assert abs(cell["estimate"] - exact[key]) < 10
        assert cell["ci95_low"] <= cell["estimate"] <= cell["ci95_high"]

    share = hub.client.post(
        "/v1/queries",
        json={
            **spec,
            "measure": "share",
            "column": "violence_12m",
            "value": "yes",
            "group_by": ["group"],
        },
        headers=hub.headers("analyst"),
    )
    assert share.status_code == 201, share.text
    result = share.json()
    assert result["status"] == "complete"
    both = pl.concat(list(frames.values()))
    for cell in result["cells"]:
        (group,) = cell["key"]
        rows = both.filter(pl.col("group") == group)
        truth = rows.filter(pl.col("violence_12m") == "yes").height / rows.height
        assert cell["status"] == "ok"
        assert sorted(cell["nodes"]) == ["ke-cso", "np-cso"]
        assert abs(cell["estimate"] - truth) < 0.05
        assert 0 <= cell["ci95_low"] <= cell["estimate"] <= cell["ci95_high"] <= 1


def test_a_level_outside_every_contract_is_stopped_at_the_hub(
    real_federation: tuple[Hub, dict[str, pl.DataFrame]],
) -> None:
    hub, _ = real_federation
    # The hub holds the nodes' signed contracts: a level none of them has never leaves it
    # (the nodes would refuse it as unknown_level; tests/node check that they still do).
    response = hub.client.post(
        "/v1/queries",
        json={
            "agreement_id": "lnob-2026",
            "dataset": DATASET,
            "rho": 0.5,
            "measure": "count",
            "filters": [{"column": "group", "levels": ["no-such-level"]}],
        },
        headers=hub.headers("analyst"),
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "unknown_level"
    assert "dalit, none" in error["message"]
    assert hub.client.get("/v1/queries", headers=hub.headers("analyst")).json() == []


def test_nodes_add_pins_what_the_node_says(tmp_path: Path, hub_home: HubIdentity) -> None:
    home = tmp_path / "np-cso"
    identity = node_home.init_home(home, name="CSO Nepal", country="524", node_id="np-cso")
    hub_dir = str(tmp_path / "hub")
    runner = CliRunner()
    with serve_in_thread(create_node_app(NodeSettings(home=home))) as server:
        added = runner.invoke(
            sauti_app, ["hub", "nodes", "add", "--home", hub_dir, "--url", server.url]
        )
    dispose_engines()
    assert added.exit_code == 0, added.stderr
    listed = runner.invoke(sauti_app, ["hub", "nodes", "list", "--home", hub_dir, "--json"])
    (node,) = json.loads(listed.stdout)
    assert (node["node_id"], node["country"], node["kid"]) == ("np-cso", "524", identity.kid)
    assert node["url"] == server.url
    gone = runner.invoke(sauti_app, ["hub", "nodes", "add", "--home", hub_dir, "--url", server.url])
    assert gone.exit_code == 1
    assert "node_info_unavailable" in gone.stderr
