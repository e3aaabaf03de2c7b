"""Three CSOs draft one contract from the shared `lnob_core` module, each mapping its own
export onto it (tests/partnership_surveys.py), and one dataset query spans them all.

Every node publishes the module's levels, so a query split by node returns every level for
every node, zeros included; the node that lacks the violence question refuses a query on it
by name, is charged nothing, and the result says so per variable. A value found only in one
node's raw data never reaches the hub.

Exactness: rho = 10 gives each node's discrete Gaussian sigma = 1/sqrt(20), so a draw
reaches |k| with probability about 2 exp(-10 k^2). Counts are checked within 3 of the exact
count (a draw of |3|: about 1e-39 each) and shares within 0.1 of the exact share (each share's
counts are at least 30, so that needs draws of |2| or more: about 1e-17 each): a false alarm is
astronomically rare.
"""

import logging
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from hub_support import Hub, make_terms
from real_nodes_support import NodeData, decoded, hub_database, hub_transport, start_real_nodes

from contracts import budget as rho_math
from contracts.v1 import DatasetRef
from hub.home import HubIdentity
from node.datasets import drafting
from node.datasets import service as datasets
from node.db import dispose_engines
from node.harmonisation import service as harmonisation
from node.ledger import service as ledger
from node.settings import NodeSettings
from tests.partnership_surveys import (
    BANGLADESH_RECODE,
    COUNTRIES,
    DATASET,
    LEVEL_CANARY,
    MODULE_GROUPS,
    SEX,
    TEXT_CANARY,
    mapped,
    write_exports,
)

AGREEMENT = "lnob-partnership-2026"
RHO = 10.0


@pytest.fixture
def partnership(
    tmp_path: Path, hub_home: HubIdentity, make_hub: Callable[..., Hub]
) -> Iterator[tuple[Hub, dict[str, Path]]]:
    nodes = {node_id: NodeData(country, None, None) for node_id, country in COUNTRIES.items()}
    real = start_real_nodes(tmp_path, hub_home, make_hub, nodes, hub_url="http://hub.test")
    files = write_exports(tmp_path / "exports")
    to_hub = hub_transport(real.hub)
    for node_id, home in real.homes.items():
        # Each steward: fetch the signed module, draft from it, publish, import their export.
        harmonisation.fetch_module(home=home, name="lnob_core", version=1, transport=to_hub)
        recode = BANGLADESH_RECODE if node_id == "bd-swn" else {}
        proposed = datasets.draft_contract(
            home=home,
            path=files[node_id],
            name=DATASET,
            from_module="lnob_core",
            choices=drafting.Choices(recode=recode),
        )
        datasets.publish_contract(home=home, contract=proposed.contract, mapping=proposed.mapping)
        datasets.import_file(home=home, path=files[node_id], dataset=DATASET)
    terms = make_terms(
        list(COUNTRIES.items()),
        agreement_id=AGREEMENT,
        datasets=(DatasetRef(name=DATASET, contract_version=1),),
        columns=("violence_12m", "marginalised_group"),
        dims=("sex", "marginalised_group"),
        min_cell_size=0,
        suppression="combined",
        rho_per_query_max=RHO,
        rho_budget=100.0,
    )
    # Every node signs the one agreement: the columns it names are in every contract, the
    # violence question included where it is not collected.
    assert real.agree(terms)["status"] == "active"
    yield real.hub, real.homes
    dispose_engines()


def _query(hub: Hub, **spec: object) -> dict[str, object]:
    body = {"agreement_id": AGREEMENT, "dataset": DATASET, "rho": RHO}
    response = hub.client.post("/v1/queries", json={**body, **spec}, headers=hub.headers("analyst"))
    assert response.status_code == 201, response.text
    result: dict[str, object] = response.json()
    return result


def _spent(home: Path) -> Decimal:
    lines = ledger.budget_report(home=home, settings=NodeSettings(home=home))
    return rho_math.add(*(line.rho_spent for line in lines))


def test_one_query_returns_every_level_for_every_node(
    partnership: tuple[Hub, dict[str, Path]], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    hub, homes = partnership
    count = _query(hub, measure="count", group_by=["marginalised_group", "node"])
    assert count["status"] == "complete", count["nodes"]
    cells = {tuple(c["key"]): c for c in count["cells"]}  # type: ignore[union-attr]
    assert set(cells) == {(g, n) for g in MODULE_GROUPS for n in homes}
    held = 0
    for (group, node_id), cell in cells.items():
        # The node released this level (a zero where its data have none): not a level
        # outside its contract, which the hub would have to treat as a structural zero.
        assert cell["nodes"] == [node_id], cell
        exact = mapped(node_id).filter(pl.col("marginalised_group") == group).height
        held = held + 1 if exact else held
        if cell["status"] == "suppressed":  # a noisy count of no one at or below 0 is withheld
            assert exact == 0, cell
        else:
            assert abs(cell["estimate"] - exact) < 3, (group, node_id, cell, exact)
    assert held == 2 + 2 + 3  # the levels each node's data hold; the rest are zeros

    # The Kenyan survey has no violence question: it refuses by name and spends nothing;
    # the others answer, and the result says who does not collect the variable.
    before = {n: _spent(h) for n, h in homes.items()}
    share = _query(hub, measure="share", column="violence_12m", value="yes", group_by=["sex"])
    assert share["status"] == "partial"
    outcomes = {n["node_id"]: n for n in share["nodes"]}  # type: ignore[union-attr]
    assert outcomes["ke-dpo"]["outcome"] == "refused"
    assert outcomes["ke-dpo"]["error_code"] == "variable_not_collected"
    assert outcomes["ke-dpo"]["message"] == "not collected at this node: violence_12m"
    assert _spent(homes["ke-dpo"]) == before["ke-dpo"]
    for node_id in ("np-dalit", "bd-swn"):
        assert outcomes[node_id]["outcome"] == "ok"
        assert _spent(homes[node_id]) == rho_math.add(before[node_id], rho_math.rho(RHO))
    variables = {v["variable"]: v for v in share["variables"]}  # type: ignore[union-attr]
    assert variables["violence_12m"]["not_collected"] == ["ke-dpo"]
    assert sorted(variables["violence_12m"]["answered"]) == ["bd-swn", "np-dalit"]
    pooled = pl.concat([mapped("np-dalit"), mapped("bd-swn")])
    for cell in share["cells"]:  # type: ignore[union-attr]
        (sex,) = cell["key"]
        assert sex in SEX
        rows = pooled.filter((pl.col("sex") == sex) & pl.col("violence_12m").is_not_null())
        assert rows.height >= 30
        exact = rows.filter(pl.col("violence_12m") == "yes").height / rows.height
        assert abs(cell["estimate"] - exact) < 0.1, (sex, exact, cell)
        assert cell["ci95_low"] <= cell["estimate"] <= cell["ci95_high"], cell

    # Canary: what only the Bangladesh export holds never leaves that node.
    outside = [
        str(count),
        str(share),
        caplog.text,
        decoded(hub_database(hub)),
        *(
            p.read_text(errors="replace")
            for p in hub.settings.home.rglob("*")
            if p.is_file() and p.suffix != ".db"
        ),
    ]
    for node_id, home in homes.items():
        info = hub.client.get(f"/v1/nodes/{node_id}", headers=hub.headers("secretariat"))
        outside.append(info.text)
        outside.append(str([i.model_dump() for i in datasets.list_datasets(home=home)]))
    for blob in outside:
        assert LEVEL_CANARY not in blob
        assert TEXT_CANARY not in blob
