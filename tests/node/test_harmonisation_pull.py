"""The steward's whole path over real sockets, with a pull-mode node: fetch a module from the
hub, draft and validate a mapping with the CLI, publish coverage, sign an agreement naming
the module, and answer (or refuse) module queries by polling."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest
from typer.testing import CliRunner

from contracts.v1 import AgreementTerms, ModuleRef, Party, SignedAgreement
from hub import home as hub_home
from hub.app import create_app as create_hub_app
from hub.auth.tokens import create_token
from hub.db import init_db, make_engine
from hub.nodes import service as federation
from hub.settings import HubSettings
from node import home as node_home
from node.agreements import service as node_agreements
from node.datasets import service as node_datasets
from node.db import dispose_engines
from node.ledger import service as ledger
from node.settings import NodeSettings
from node.sync import service as sync
from sauti.cli import app as sauti_app
from sauti.serve import serve_in_thread
from tests.harmonisation_surveys import harmonised, surveys

NODE = "np-dalit"
ANALYST_ORG = "Nepal Central Bureau of Statistics"


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[tuple[str, HubSettings]]:
    hub_home.init_home(tmp_path / "hub", hub_id="lnob-hub")
    settings = HubSettings(home=tmp_path / "hub", query_wait_seconds=0)
    with serve_in_thread(create_hub_app(settings)) as server:
        yield server.url, settings
    dispose_engines()


def _tokens(settings: HubSettings, node_id: str) -> tuple[str, str, str]:
    engine = make_engine(settings.effective_database_url)
    try:
        with init_db(engine)() as s:
            enrol = federation.create_enrollment_token(
                session=s,
                identity=hub_home.load_identity(settings.home),
                actor="test",
                node_id=node_id,
            ).token
            sec = create_token(session=s, name="sec", organisation="sec", role="secretariat")
            ana = create_token(session=s, name="ana", organisation=ANALYST_ORG, role="analyst")
    finally:
        engine.dispose()
    return enrol, sec, ana


def test_pull_node_maps_publishes_and_answers_module_queries(
    tmp_path: Path, hub: tuple[str, HubSettings]
) -> None:
    hub_url, settings = hub
    country, contract, data = surveys()[NODE]
    home = tmp_path / NODE
    node_home.init_home(home, name="Dalit rights CSO", country=country, node_id=NODE)
    node_datasets.import_frame(home=home, contract=contract, frame=data)
    enrol, sec, ana = _tokens(settings, NODE)
    sync.enroll(home=home, hub_url=hub_url, token=enrol, mode="pull")

    runner = CliRunner()
    at = ["--home", str(home)]

    def run(*args: str) -> str:
        outcome = runner.invoke(sauti_app, [*args, *at])
        assert outcome.exit_code == 0, outcome.stderr
        return outcome.stdout

    assert "module lnob_core v1 pinned" in run("node", "modules", "fetch", "lnob_core")
    draft = ("--module", "lnob_core", "--dataset", contract.name, "--reference-year", "2026")
    run("node", "map", "draft", *draft)
    report = run("node", "map", "validate", "--module", "lnob_core")
    assert "sex: mapped, 0 rows missing" in report
    assert "age_band: derived, 0 rows missing" in report
    assert "coverage of 1 mapping(s) published" in run("node", "modules", "publish")

    now = datetime.now(UTC)
    terms = AgreementTerms(
        agreement_id="lnob-modules",
        version=1,
        title="LNOB core across surveys",
        purpose="Disaggregated SDG 16 indicators from differently designed surveys.",
        hub_id="lnob-hub",
        parties=(
            Party(organisation="Secretariat", role="secretariat"),
            Party(organisation="Dalit rights CSO", role="cso", country=country, node_id=NODE),
        ),
        datasets=(),
        modules=(ModuleRef(name="lnob_core", version=1),),
        measures=("count", "share"),
        columns=("violence_12m",),
        dims=("sex", "disability_status"),
        min_cell_size=0,
        suppression="combined",
        rho_per_query_max=10.0,
        rho_budget=100.0,
        analyst_organisations=(ANALYST_ORG,),
        valid_from=now - timedelta(days=1),
        valid_until=now + timedelta(days=365),
    )
    with httpx.Client(base_url=hub_url, headers={"Authorization": f"Bearer {sec}"}) as client:
        created = client.post("/v1/agreements", json=terms.model_dump(mode="json"))
        assert created.status_code == 201, created.text
        signed = SignedAgreement.model_validate(created.json()["agreement"])
        signature = node_agreements.sign(home=home, agreement=signed)
        response = client.post(
            f"/v1/agreements/{terms.agreement_id}/signatures",
            json=signature.model_dump(mode="json"),
        )
        assert response.json()["status"] == "active"

    analyst = {"Authorization": f"Bearer {ana}"}
    base = {"agreement_id": "lnob-modules", "dataset": "lnob_core", "module_version": 1}
    share = {"measure": "share", "column": "violence_12m", "value": "yes", "group_by": ["sex"]}
    share_id = _submit(hub_url, analyst, {**base, **share, "rho": 10.0})
    count = {"measure": "count", "group_by": ["disability_status"]}
    count_id = _submit(hub_url, analyst, {**base, **count, "rho": 10.0})
    with httpx.Client() as client:
        stats = sync.poll_once(settings=NodeSettings(home=home), client=client, wait_seconds=5)
    assert (stats.received, stats.answered, stats.refused) == (2, 1, 1)

    answered = _result(hub_url, analyst, share_id)
    assert answered["status"] == "complete"
    view = harmonised(NODE, data)
    for cell in answered["cells"]:
        (sex,) = cell["key"]
        rows = view.filter(pl.col("sex") == sex)
        if rows.height == 0:
            assert cell["status"] == "suppressed"
            continue
        exact = rows.filter(pl.col("violence_12m") == "yes").height / rows.height
        assert cell["ci95_low"] <= exact <= cell["ci95_high"]
    refused = _result(hub_url, analyst, count_id)
    assert refused["status"] == "failed"
    (node,) = refused["nodes"]
    assert node["error_code"] == "variable_not_collected"
    assert refused["variables"] == [
        {"variable": "disability_status", "answered": [], "not_collected": [NODE]}
    ]
    (line,) = ledger.budget_report(home=home)
    assert line.queries == 1


def _submit(hub_url: str, headers: dict[str, str], spec: dict[str, Any]) -> str:
    response = httpx.post(f"{hub_url}/v1/queries", json=spec, headers=headers)
    assert response.status_code == 202, response.text
    query_id: str = response.json()["query_id"]
    return query_id


def _result(hub_url: str, headers: dict[str, str], query_id: str) -> dict[str, Any]:
    response = httpx.get(f"{hub_url}/v1/queries/{query_id}", params={"wait": 10}, headers=headers)
    body: dict[str, Any] = response.json()
    return body
