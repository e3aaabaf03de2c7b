"""One module query across three differently designed surveys on three real nodes.

The three surveys of tests/harmonisation_surveys.py each map onto the shipped `lnob_core`
module; the hub asks all three at once.

Exactness: rho = 10 per query gives each node's discrete Gaussian sigma = 1/sqrt(20), so a
count's noise is 0 with probability 1 - 2e^-10 - ... > 0.9999; with every draw at 0 the
DP answer equals the exact pooled answer and lies in its interval. The test makes 27 draws
(9 cells x 3 nodes, shares: 2 counts each), so a false alarm (some draw non-zero AND the
truth outside the interval) has probability below 27 x 9.1e-5 < 0.25%.
"""

import logging
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from hub_support import Hub, make_terms
from real_nodes_support import NodeData, decoded, hub_database, hub_transport, start_real_nodes

from contracts.v1 import ModuleRef
from hub.home import HubIdentity
from node.db import dispose_engines
from node.harmonisation import service as harmonisation
from node.harmonisation import store
from node.harmonisation.schemas import Mapping
from node.ledger import service as ledger
from node.settings import NodeSettings
from tests.harmonisation_surveys import (
    LEVEL_CANARY,
    MAPPINGS,
    TEXT_CANARY,
    harmonised,
    surveys,
)

AGREEMENT = "lnob-modules-2026"
RHO = 10.0
SEX = ("female", "male", "other")


@pytest.fixture
def three_nodes(
    tmp_path: Path, hub_home: HubIdentity, make_hub: Callable[..., Hub]
) -> Iterator[tuple[Hub, dict[str, Path], dict[str, pl.DataFrame]]]:
    built = surveys()
    nodes = {n: NodeData(country, contract, data) for n, (country, contract, data) in built.items()}
    real = start_real_nodes(tmp_path, hub_home, make_hub, nodes, hub_url="http://hub.test")
    hub, homes = real.hub, real.homes
    frames = {node_id: node.frame for node_id, node in nodes.items()}
    to_hub = hub_transport(hub)
    for node_id, home in homes.items():
        module = harmonisation.fetch_module(
            home=home, name="lnob_core", version=1, transport=to_hub
        )
        assert module.name == "lnob_core"
        mapping = Mapping.model_validate(
            {"module": "lnob_core", "version": 1, "contract_version": 1, **MAPPINGS[node_id]}
        )
        path = tmp_path / f"{node_id}-mapping.yaml"
        path.write_text(store.mapping_yaml(mapping), encoding="utf-8")
        harmonisation.install_mapping(home=home, path=path)
        assert harmonisation.publish_coverage(home=home, transport=to_hub) == 1
    terms = make_terms(
        [(n, built[n][0]) for n in homes],
        agreement_id=AGREEMENT,
        datasets=(),
        modules=(ModuleRef(name="lnob_core", version=1),),
        columns=("violence_12m", "disability_status"),
        dims=("sex", "age_band", "disability_status"),
        min_cell_size=0,
        # Kenya has no third sex level: its structural zeros must reach the hub unsuppressed.
        suppression="combined",
        rho_per_query_max=RHO,
        rho_budget=100.0,
    )
    real.agree(terms)
    yield hub, homes, frames
    dispose_engines()


def _query(hub: Hub, **spec: object) -> dict[str, object]:
    body = {"agreement_id": AGREEMENT, "dataset": "lnob_core", "module_version": 1, "rho": RHO}
    response = hub.client.post("/v1/queries", json={**body, **spec}, headers=hub.headers("analyst"))
    assert response.status_code == 201, response.text
    result: dict[str, object] = response.json()
    return result


def _spent(home: Path) -> Decimal:
    lines = ledger.budget_report(home=home, settings=NodeSettings(home=home))
    return sum((line.rho_spent for line in lines), Decimal(0))


def test_one_module_query_across_three_surveys(
    three_nodes: tuple[Hub, dict[str, Path], dict[str, pl.DataFrame]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    hub, homes, frames = three_nodes
    views = {n: harmonised(n, f) for n, f in frames.items()}
    pooled = pl.concat(list(views.values()))

    share = _query(hub, measure="share", column="violence_12m", value="yes", group_by=["sex"])
    assert share["status"] == "complete", share["nodes"]
    cells = {tuple(c["key"]): c for c in share["cells"]}  # type: ignore[union-attr]
    assert set(cells) == {(s,) for s in SEX}
    for (sex,), cell in cells.items():
        rows = pooled.filter(pl.col("sex") == sex)
        exact = rows.filter(pl.col("violence_12m") == "yes").height / rows.height
        assert cell["status"] == "ok", cell
        assert cell["ci95_low"] <= exact <= cell["ci95_high"], (sex, exact, cell)
    answers = {v["variable"]: v for v in share["variables"]}  # type: ignore[union-attr]
    assert set(answers) == {"violence_12m", "sex"}
    for answer in answers.values():
        assert sorted(answer["answered"]) == sorted(homes)
        assert answer["not_collected"] == []

    # Only Kenya derives the WG-SS identifier; the others say so and are charged nothing.
    before = {n: _spent(h) for n, h in homes.items()}
    count = _query(hub, measure="count", group_by=["disability_status", "sex"])
    assert count["status"] == "partial"
    outcomes = {n["node_id"]: n for n in count["nodes"]}  # type: ignore[union-attr]
    assert outcomes["ke-dpo"]["outcome"] == "ok"
    for node_id in ("np-dalit", "bd-swn"):
        assert outcomes[node_id]["outcome"] == "refused"
        assert outcomes[node_id]["error_code"] == "variable_not_collected"
        assert "disability_status" in outcomes[node_id]["message"]
        assert _spent(homes[node_id]) == before[node_id]
    assert _spent(homes["ke-dpo"]) == before["ke-dpo"] + Decimal(repr(RHO))
    by_variable = {v["variable"]: v for v in count["variables"]}  # type: ignore[union-attr]
    assert by_variable["disability_status"]["answered"] == ["ke-dpo"]
    assert sorted(by_variable["disability_status"]["not_collected"]) == ["bd-swn", "np-dalit"]
    assert by_variable["sex"]["not_collected"] == []
    kenya = views["ke-dpo"]
    for cell in count["cells"]:  # type: ignore[union-attr]
        disability, sex = cell["key"]
        exact = kenya.filter(
            (pl.col("disability_status") == disability) & (pl.col("sex") == sex)
        ).height
        assert cell["nodes"] == ["ke-dpo"]
        if cell["status"] == "suppressed":  # a zero count is always withheld
            assert exact == 0, cell
        else:
            assert cell["ci95_low"] <= exact <= cell["ci95_high"], (cell, exact)

    # Coverage: metadata only, per variable which nodes and countries can answer it.
    coverage = hub.client.get("/v1/modules/lnob_core/coverage", headers=hub.headers("analyst"))
    assert coverage.status_code == 200, coverage.text
    variables = {v["variable"]: v for v in coverage.json()["variables"]}
    assert variables["disability_status"]["countries"] == ["404"]
    assert variables["sex"]["countries"] == ["050", "404", "524"]
    assert variables["country"]["countries"] == ["050", "404", "524"]
    statuses = {n["node_id"]: n["status"] for n in variables["age_band"]["nodes"]}
    assert statuses == {"bd-swn": "derived", "ke-dpo": "derived", "np-dalit": "derived"}

    # Canary: the planted values never leave the Bangladesh node (DB, answers, logs, files).
    outside = [
        str(share),
        str(count),
        coverage.text,
        caplog.text,
        decoded(hub_database(hub)),
        *(
            p.read_text(errors="replace")
            for p in hub.settings.home.rglob("*")
            if p.is_file() and p.suffix != ".db"
        ),
    ]
    for blob in outside:
        assert TEXT_CANARY not in blob
        assert LEVEL_CANARY not in blob


def test_module_query_refusals_charge_nothing(
    three_nodes: tuple[Hub, dict[str, Path], dict[str, pl.DataFrame]],
) -> None:
    hub, homes, _ = three_nodes
    # A module version the agreement does not name: refused at the hub, no node asked.
    response = hub.client.post(
        "/v1/queries",
        json={
            "agreement_id": AGREEMENT,
            "dataset": "lnob_core",
            "module_version": 2,
            "rho": 1.0,
            "measure": "count",
        },
        headers=hub.headers("analyst"),
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "module_not_allowed"
    # A mapping broken after signing (a level the module lacks): each node refuses, naming
    # nothing but the module, and charges nothing.
    home = homes["np-dalit"]
    path = store.mapping_path(home, "lnob_core", 1)
    path.write_text(path.read_text(encoding="utf-8").replace("female", "woman"), encoding="utf-8")
    result = _query(hub, measure="count", group_by=["sex"])
    outcomes = {n["node_id"]: n for n in result["nodes"]}  # type: ignore[union-attr]
    assert outcomes["np-dalit"]["error_code"] == "mapping_invalid"
    assert outcomes["np-dalit"]["message"].endswith("(variables: sex)")
    assert "woman" not in outcomes["np-dalit"]["message"]
    assert _spent(home) == 0.0
    # The module file gone at one node, the mapping at another: each says which, no charge.
    store.module_path(homes["ke-dpo"], "lnob_core", 1).unlink()
    store.mapping_path(homes["bd-swn"], "lnob_core", 1).unlink()
    before = {n: _spent(h) for n, h in homes.items()}
    result = _query(hub, measure="count", group_by=["sex"])
    assert result["status"] == "failed"
    outcomes = {n["node_id"]: n for n in result["nodes"]}  # type: ignore[union-attr]
    assert outcomes["ke-dpo"]["error_code"] == "module_not_held"
    assert "lnob_core v1" in outcomes["ke-dpo"]["message"]
    assert outcomes["bd-swn"]["error_code"] == "mapping_missing"
    assert {n: _spent(h) for n, h in homes.items()} == before
