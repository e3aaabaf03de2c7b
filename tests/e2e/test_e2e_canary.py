"""Canaries planted in one node's raw data never reach the hub: not in any response,
error, database row, log line or file the hub wrote, after valid and invalid queries."""

import json
import logging
from pathlib import Path
from typing import Any

import httpx
import polars as pl
import pytest
from sqlalchemy import MetaData, create_engine, select

from contracts.v1 import Column, DatasetContract, Filter, Level, QueryResult, QuerySpec
from hub.settings import HubSettings
from node.datasets import service as node_datasets
from sauti.demo.codebook import DATASET
from sauti.demo.data import DemoNode, demo_nodes
from sauti.demo.run import federation

pytestmark = pytest.mark.e2e

CANARY_TEXT = "QZX7CANARYWV3K"
CANARY_NAME = "Vexilla Quorandt"
CANARY_LEVEL = "Zyqborough"
CANARY_ID = 918273645546371
CANARIES = (CANARY_TEXT, CANARY_NAME, CANARY_LEVEL, str(CANARY_ID))
# The canary level is a real (public) level of the contract, so grouping by `district`
# would list it as a key by design; the queries below filter on district instead. The hub
# keeps every node's public contract (`node_contracts`), so the level may stand there, in
# the hub's copy of what the node published, and nowhere else at the hub.
PUBLIC_CONTRACTS = "node_contracts"
CONTRACT_CHECK = {"unknown_level", "unknown_column", "column_not_numeric"}


def _with_level(contract: DatasetContract, column: str, code: str) -> DatasetContract:
    """The contract with one more (public) level of `column`, as a codebook might list it."""
    columns: list[Column] = []
    for col in contract.columns:
        if col.name == column:
            columns.append(col.model_copy(update={"levels": (*col.levels, Level(code=code))}))
        else:
            columns.append(col)
    return contract.model_copy(update={"columns": tuple(columns)})


def _plant(node: DemoNode) -> DemoNode:
    frame = node.frame.with_row_index("i")
    frame = frame.with_columns(
        notes=pl.when(pl.col("i") == 7).then(pl.lit(CANARY_TEXT)).otherwise(pl.col("notes")),
        respondent_name=pl.when(pl.col("i") == 7)
        .then(pl.lit(CANARY_NAME))
        .otherwise(pl.col("respondent_name")),
        respondent_id=pl.when(pl.col("i") == 11)
        .then(pl.lit(CANARY_ID, dtype=pl.Int64))
        .otherwise(pl.col("respondent_id")),
        district=pl.when(pl.col("i") == 13)
        .then(pl.lit(CANARY_LEVEL))
        .otherwise(pl.col("district")),
    ).drop("i")
    contract = _with_level(node.contract, "district", CANARY_LEVEL)
    return DemoNode(
        node_id=node.node_id,
        organisation=node.organisation,
        country=node.country,
        contract=contract,
        frame=frame,
    )


def _specs(agreement_id: str) -> list[dict[str, Any]]:
    def spec(**kwargs: Any) -> dict[str, Any]:
        base: dict[str, Any] = {"agreement_id": agreement_id, "dataset": DATASET, "rho": 0.05}
        return {**base, **kwargs}

    valid = [
        QuerySpec.model_validate(s).model_dump(mode="json")
        for s in (
            spec(measure="count", group_by=["group", "sex"]),
            spec(
                measure="count",
                group_by=["education"],
                filters=[{"column": "sex", "levels": ["female"]}],
            ),
            spec(
                measure="share", column="violence_12m", value="yes", group_by=["group", "country"]
            ),
            spec(
                measure="count",
                group_by=["age_band"],
                filters=[Filter(column="district", levels=("Kathmandu",)).model_dump()],
            ),
        )
    ]
    invalid = [
        spec(measure="count", group_by=["notes"]),
        spec(measure="count", group_by=["respondent_name"]),
        spec(measure="share", column="notes", value="anything"),
        spec(measure="count", group_by=["no_such_column"]),
        spec(measure="count", filters=[{"column": "district", "levels": ["Atlantis"]}]),
        spec(measure="share", column="district", value="Atlantis"),
        spec(measure="count", rho=0.5),
        spec(measure="mean", column="satisfaction"),
        spec(measure="count", group_by=["group", "sex", "age_band", "district"]),
        {**spec(measure="count"), "agreement_id": "no-such-agreement"},
        {**spec(measure="count"), "dataset": "no_such_dataset"},
        {**spec(measure="count"), "rho": "lots"},
        {**spec(measure="count"), "unexpected": 1},
    ]
    return valid + invalid


def _dump_tables(url: str, *, public: bool = False) -> str:
    """Every row of the hub's tables but the nodes' public contracts (or only those)."""
    engine = create_engine(url)
    try:
        metadata = MetaData()
        metadata.reflect(engine)
        parts = []
        with engine.connect() as conn:
            for table in metadata.sorted_tables:
                if (table.name == PUBLIC_CONTRACTS) != public:
                    continue
                parts.append(f"== {table.name}")
                parts.extend(repr(tuple(row)) for row in conn.execute(select(table)))
        return "\n".join(parts)
    finally:
        engine.dispose()


def test_canaries_never_reach_the_hub(
    tmp_path: Path,
    db_url: str,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    nodes = demo_nodes(rows=600)
    nodes[0] = _plant(nodes[0])
    hub_db = None if db_url.startswith("sqlite") else db_url

    bodies: list[str] = []
    statuses: list[int] = []
    with federation(
        work=tmp_path / "work",
        nodes=nodes,
        hub_database_url=hub_db,
        log_level="debug",
        access_log=True,
    ) as fed:
        # The plant is really in the node's stored data, so queries do run over it.
        stored = pl.read_parquet(
            node_datasets.load(home=fed.node_homes[nodes[0].node_id], name=DATASET).parquet_path
        )
        assert stored.filter(pl.col("district") == CANARY_LEVEL).height == 1
        hub_home = fed.hub_home
        headers = {"Authorization": f"Bearer {fed.analyst_token}"}
        with httpx.Client(base_url=fed.hub_url, timeout=60) as client:
            for query in _specs(fed.agreement_id):
                response = client.post("/v1/queries", json=query, headers=headers)
                statuses.append(response.status_code)
                bodies.append(response.text)
            bodies.append(client.post("/v1/queries", content=b"{not json", headers=headers).text)
            listed = client.get("/v1/queries", headers=headers)
            bodies.append(listed.text)
            for summary in listed.json():
                query_id = summary.get("query_id") or summary.get("id")
                bodies.append(client.get(f"/v1/queries/{query_id}", headers=headers).text)
            for path in ("/v1/agreements", "/v1/nodes", f"/v1/agreements/{fed.agreement_id}"):
                bodies.append(client.get(path, headers=headers).text)
        hub_settings = HubSettings(home=hub_home, database_url=hub_db)
        database_text = _dump_tables(hub_settings.effective_database_url)
        public_text = _dump_tables(hub_settings.effective_database_url, public=True)

    # Valid queries were answered and invalid ones refused, so both paths were exercised.
    assert statuses[:4] == [201] * 4
    # The hub checks a question against the nodes' public contracts before asking anyone
    # (#24): its refusal names the value the analyst typed and the public levels, which may
    # include the canary level. Nothing a node holds beyond its contract is in it.
    contract_checked: list[str] = []
    for status, body in zip(statuses[4:], bodies[4 : len(statuses)], strict=True):
        if status == 422 and json.loads(body)["error"]["code"] in CONTRACT_CHECK:
            contract_checked.append(body)
            continue
        if status == 201:  # checked at the nodes: every node refused, nothing released
            refused = QueryResult.model_validate_json(body)
            assert refused.status == "failed"
            assert {n.outcome for n in refused.nodes} == {"refused"}
            assert not refused.cells
            messages = [n.message or "" for n in refused.nodes]
        else:
            assert 400 <= status < 500
            messages = [json.loads(body)["error"]["message"]]
        # Errors name columns and rules, never a value (not even one the analyst typed).
        assert not any("Atlantis" in m or "anything" in m for m in messages)

    captured = capfd.readouterr()
    logs = caplog.text + captured.out + captured.err
    assert "GET /v1/info" in logs or "POST /v1/queries" in logs  # logging really was captured
    hub_files = {str(path): path.read_bytes() for path in hub_home.rglob("*") if path.is_file()}
    assert any(name.endswith(".sqlite") for name in hub_files) == (hub_db is None)
    # The node's published contract did reach the hub, as designed; no value of a row did.
    assert CANARY_LEVEL in public_text
    for canary in (CANARY_TEXT, CANARY_NAME, str(CANARY_ID)):
        assert canary not in public_text
    assert contract_checked, "the hub's contract check was not exercised"
    for body in contract_checked:
        for canary in (CANARY_TEXT, CANARY_NAME, str(CANARY_ID)):
            assert canary not in body
    for canary in CANARIES:
        for body in bodies:
            if canary == CANARY_LEVEL and body in contract_checked:
                continue
            assert canary not in body
        assert canary not in database_text
        assert canary not in logs
        for name, content in hub_files.items():
            if canary == CANARY_LEVEL and name.endswith(".sqlite"):
                continue  # the database file holds the public contract too: checked by table
            assert canary.encode() not in content, name
