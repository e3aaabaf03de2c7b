"""The hub knows each node's public contract: fetched signed, verified, stored per version,
refreshed when an agreement names a version it lacks, and checked before a query is sent."""

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from hub_support import DATASET, Hub, SimNode, count_cell, make_terms
from real_nodes_support import NodeData, hub_transport, lnob_contract, start_real_nodes
from test_hub_with_real_nodes import contract as real_contract
from test_hub_with_real_nodes import frame as real_frame

from contracts import signing
from contracts.v1 import Column, DatasetContract, DatasetRef, Level, PublishedContracts
from hub.home import HubIdentity
from hub.queries.contract_check import differences
from node.db import dispose_engines
from node.sync.service import publish_contracts

YES_NO = (Level(code="yes", labels={"en": "Yes", "bn": "হ্যাঁ"}), Level(code="no"))


def contract(version: int = 1, *, groups: tuple[str, ...] = ("dalit", "none")) -> DatasetContract:
    base = lnob_contract(
        Column(name="group", type="categorical", levels=tuple(Level(code=g) for g in groups)),
        Column(name="violence_12m", type="categorical", levels=YES_NO),
        Column(name="disability", type="categorical", levels=YES_NO),
    )
    return base.model_copy(update={"version": version})


@pytest.fixture
def hub(make_hub: Callable[..., Hub], hub_home: HubIdentity) -> Hub:
    nodes = [
        SimNode(
            node_id=node_id,
            country=country,
            hub_key=hub_home.public_jwk,
            cells={("female",): count_cell(("female",), 50.0)},
            contracts=(contract(groups=groups),),
        )
        for node_id, country, groups in (
            ("ke-a", "404", ("dalit", "none")),
            ("np-a", "524", ("dalit", "janajati", "none")),
        )
    ]
    built = make_hub(nodes)
    for node in nodes:
        built.register(node)
    assert built.agree(make_terms(nodes))["status"] == "active"
    return built


def ask(hub: Hub, **changes: Any) -> Any:
    spec = {
        "agreement_id": "lnob-2026",
        "dataset": DATASET,
        "measure": "count",
        "group_by": ["sex"],
        "rho": 0.2,
        **changes,
    }
    return hub.client.post("/v1/queries", json=spec, headers=hub.headers("analyst"))


def spent(hub: Hub) -> float:
    body = hub.client.get("/v1/agreements/lnob-2026", headers=hub.headers("secretariat")).json()
    return float(body["rho_spent_at_hub"])


def stored(hub: Hub, node_id: str) -> list[dict[str, Any]]:
    response = hub.client.get(f"/v1/nodes/{node_id}/contracts", headers=hub.headers("analyst"))
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()
    return rows


def test_contracts_are_fetched_once_verified_and_stored(hub: Hub) -> None:
    assert ask(hub).status_code == 201
    for node in hub.nodes.values():
        assert node.contract_fetches == 1
        rows = stored(hub, node.node_id)
        assert [(r["dataset"], r["version"]) for r in rows] == [(DATASET, 1)]
        assert rows[0]["kid"] == signing.key_id(node.key)
        assert rows[0]["digest"] == signing.digest(node.contracts[0])
    # Held now: the next query fetches nothing.
    assert ask(hub).status_code == 201
    assert [n.contract_fetches for n in hub.nodes.values()] == [1, 1]


def test_a_level_no_node_knows_never_leaves_the_hub(hub: Hub) -> None:
    assert ask(hub).status_code == 201  # contracts stored
    calls, before = sum(n.calls for n in hub.nodes.values()), spent(hub)
    queries = len(hub.client.get("/v1/queries", headers=hub.headers("analyst")).json())
    refused = ask(hub, measure="share", column="violence_12m", value="Yes")
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert error["code"] == "unknown_level"
    assert "'Yes'" in error["message"]
    assert "yes, no" in error["message"]
    bad_filter = ask(hub, filters=[{"column": "group", "levels": ["women"]}])
    assert bad_filter.json()["error"]["code"] == "unknown_level"
    assert "dalit, none, janajati" in bad_filter.json()["error"]["message"]
    assert sum(n.calls for n in hub.nodes.values()) == calls  # no node called
    assert spent(hub) == before  # no budget spent
    after = hub.client.get("/v1/queries", headers=hub.headers("analyst")).json()
    assert len(after) == queries  # nothing recorded
    # A level one node knows still goes out: that node answers, the others say why not.
    assert ask(hub, filters=[{"column": "group", "levels": ["janajati"]}]).status_code == 201


def test_a_new_contract_version_is_fetched_when_an_agreement_names_it(hub: Hub) -> None:
    assert ask(hub).status_code == 201
    for node in hub.nodes.values():
        node.contracts = (contract(1), contract(2))
    terms = make_terms(
        list(hub.nodes.values()),
        agreement_id="lnob-2027",
        datasets=(DatasetRef(name=DATASET, contract_version=2),),
    )
    assert hub.agree(terms)["status"] == "active"
    assert ask(hub, agreement_id="lnob-2027").status_code == 201
    for node in hub.nodes.values():
        assert node.contract_fetches == 2
        assert [r["version"] for r in stored(hub, node.node_id)] == [1, 2]


def test_published_contracts_must_carry_the_nodes_signature(hub: Hub) -> None:
    node = hub.nodes["ke-a"]
    forged = PublishedContracts(
        node_id="ke-a",
        issued_at=datetime.now(UTC),
        datasets=(),
    )
    bad = hub.client.post(
        "/v1/nodes/contracts", json={"jws": signing.sign(forged, signing.generate_key())}
    )
    assert bad.status_code == 401, bad.text
    good = hub.client.post("/v1/nodes/contracts", json={"jws": node.published()})
    assert good.status_code == 200, good.text
    assert good.json() == {"stored": [f"{DATASET}:v1"]}
    again = hub.client.post("/v1/nodes/contracts", json={"jws": node.published()})
    assert again.json() == {"stored": []}


def test_differences_between_nodes_are_named() -> None:
    found = differences(
        {"ke-a": contract(groups=("dalit", "none")), "np-a": contract(groups=("dalit",))},
        ("group", "sex", "country"),
    )
    assert [(d.column, d.kind) for d in found] == [("group", "levels")]
    assert dict(found[0].by_node) == {"ke-a": "dalit, none", "np-a": "dalit"}


@pytest.fixture
def real_hub(tmp_path: Path, hub_home: HubIdentity, make_hub: Callable[..., Hub]) -> Iterator[Hub]:
    nodes = {"ke-cso": NodeData("404", real_contract(), real_frame(100, 1))}
    federation = start_real_nodes(tmp_path, hub_home, make_hub, nodes)
    terms = make_terms([("ke-cso", "404")], columns=("violence_12m",), dims=("sex", "group"))
    assert federation.agree(terms)["status"] == "active"
    yield federation.hub
    dispose_engines()


def test_a_real_node_signs_its_contracts_and_the_hub_checks_against_them(real_hub: Hub) -> None:
    refused = ask(real_hub, filters=[{"column": "group", "levels": ["Dalit"]}])
    assert refused.status_code == 422, refused.text
    assert refused.json()["error"]["code"] == "unknown_level"
    rows = stored(real_hub, "ke-cso")
    assert [(r["dataset"], r["version"]) for r in rows] == [(DATASET, 1)]
    assert ask(real_hub, filters=[{"column": "group", "levels": ["dalit"]}]).status_code == 201


def test_a_pull_node_posts_its_signed_contracts(
    tmp_path: Path, hub_home: HubIdentity, make_hub: Callable[..., Hub]
) -> None:
    nodes = {"np-pull": NodeData("524", real_contract(), real_frame(50, 3))}
    federation = start_real_nodes(tmp_path, hub_home, make_hub, nodes, hub_url="http://hub.test")
    try:
        with httpx.Client(transport=hub_transport(federation.hub)) as client:
            assert publish_contracts(home=federation.homes["np-pull"], client=client)
        rows = stored(federation.hub, "np-pull")
        assert [(r["dataset"], r["version"]) for r in rows] == [(DATASET, 1)]
    finally:
        dispose_engines()


# PostgreSQL only: SQLite's one writer cannot interleave the two transactions (and one
# hub process is all SQLite serves).
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
def test_two_hub_processes_storing_the_same_contracts_at_once(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two API processes fetch the contracts their own queries need at once: the second
    insert meets the first's row (once a 500 for a query) and keeps it, logging nothing."""
    from hub.db import init_db, make_engine  # noqa: PLC0415
    from hub.nodes import contracts as hub_contracts  # noqa: PLC0415

    node = hub.nodes["ke-a"]
    token = node.published()
    engine = make_engine(hub.settings.effective_database_url)
    sessions = init_db(engine)
    real = hub_contracts._inserted
    raced: list[list[tuple[str, int]]] = []
    racing_now: list[bool] = []

    def racing(session: Any, key: Any, values: Any) -> bool:
        if not racing_now:  # the other process commits between this one's read and insert
            racing_now.append(True)
            with sessions() as other:
                raced.append(
                    hub_contracts.store_published(session=other, token=token, skew_seconds=300)
                )
        return real(session, key, values)

    monkeypatch.setattr(hub_contracts, "_inserted", racing)
    try:
        with sessions() as session:
            mine = hub_contracts.store_published(session=session, token=token, skew_seconds=300)
    finally:
        engine.dispose()
    assert raced == [[(DATASET, 1)]]
    assert mine == []  # the same publication: nothing changed, nothing logged twice
    assert [(r["dataset"], r["digest"]) for r in stored(hub, "ke-a")] == [
        (DATASET, signing.digest(node.contracts[0]))
    ]
