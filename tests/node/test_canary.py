"""Canary: planted raw values never reach a response, an error, the audit table or a log."""

import base64
import logging

import polars as pl
from pydantic import SecretStr
from sqlalchemy import text

from contracts.v1 import Column, Filter
from contracts.v1.audit import csv_chunks
from node.app import create_app
from node.audit import service as node_audit
from node.audit.models import AuditRow
from node.db import dispose_engines, transaction
from tests.node.conftest import AppClient, contract, frame, make_node

TEXT_CANARY = "zq-canary-7731-text"
LEVEL_CANARY = "zqcanarylevel"
NUMBER_CANARY = 987654.321


def _decoded(body: str) -> str:
    """The body plus, for a JWS, its decoded header and payload."""
    parts = [body]
    for chunk in body.split('"'):
        if chunk.count(".") == 2:
            for segment in chunk.split(".")[:2]:
                padded = segment + "=" * (-len(segment) % 4)
                try:
                    parts.append(base64.urlsafe_b64decode(padded).decode(errors="replace"))
                except ValueError:
                    continue
    return "\n".join(parts)


def test_planted_values_never_leave_the_node(tmp_path, db_url, caplog, capsys) -> None:
    caplog.set_level(logging.DEBUG)
    base = contract(extra_levels=(LEVEL_CANARY,))
    canary_contract = base.model_copy(
        update={
            "columns": (
                *base.columns,
                Column(name="income", type="number", role="measure", lower=0, upper=1_000_000),
            )
        }
    )
    df = frame(200).with_columns(pl.lit(1000.0).alias("income"))
    row = pl.int_range(pl.len()) == 17
    df = df.with_columns(
        pl.when(row).then(pl.lit(TEXT_CANARY)).otherwise(pl.col("comment")).alias("comment"),
        pl.when(row).then(pl.lit(LEVEL_CANARY)).otherwise(pl.col("group")).alias("group"),
        pl.when(row).then(pl.lit(NUMBER_CANARY)).otherwise(pl.col("income")).alias("income"),
    )
    n = make_node(
        tmp_path / "n",
        db_url,
        data=df,
        dataset_contract=canary_contract,
        columns=("disability", "sex", "age", "income", "comment", "group"),
    )
    bodies = [n.client.get("/v1/info").text]
    specs = [
        n.spec(group_by=("sex", "district")),
        n.spec(filters=(Filter(column="group", levels=(LEVEL_CANARY,)),)),
        n.spec(
            measure="share",
            column="disability",
            value="yes",
            filters=(Filter(column="group", levels=(LEVEL_CANARY,)),),
        ),
        # Invalid ones, carrying the canaries where an analyst could type them.
        n.spec(measure="share", column="sex", value=TEXT_CANARY),
        n.spec(filters=(Filter(column="sex", levels=(LEVEL_CANARY,)),)),
        n.spec(group_by=(TEXT_CANARY,)),
        n.spec(measure="share", column="comment", value=TEXT_CANARY),
        n.spec(measure="share", column="income", value=str(NUMBER_CANARY)),
        n.spec(group_by=("income",)),
        n.spec(measure="mean", column="income"),
    ]
    statuses = []
    for spec in specs:
        response = n.post(n.request(spec))
        statuses.append(response.status_code)
        bodies.append(response.text)
    assert statuses[:3] == [200, 200, 200]
    assert all(s >= 400 for s in statuses[3:])
    bodies.append(n.post(n.request(node_id=TEXT_CANARY)).text)
    # Prometheus scrapes leave the node too: labels are templates, codes and agreement ids.
    scraper = create_app(n.settings.model_copy(update={"metrics_token": SecretStr("m")}))
    bodies.append(
        AppClient(scraper).request("GET", "/metrics", headers={"Authorization": "Bearer m"}).text
    )
    assert "sauti_node_queries_total" in bodies[-1]
    # What leaves the node for auditors and the hub: exports and the signed checkpoint.
    checkpoint = node_audit.make_checkpoint(home=n.home, settings=n.settings)
    exports = [
        *node_audit.export_lines(home=n.home, settings=n.settings),
        *csv_chunks(node_audit.iter_entries(database_url=n.settings.db_url)),
        checkpoint.model_dump_json(),
    ]

    with transaction(n.settings.db_url) as session:
        tables = [AuditRow.__tablename__, "audit_checkpoints", "releases", "budgets", "agreements"]
        dump = "\n".join(
            str(row) for t in tables for row in session.execute(text(f"SELECT * FROM {t}"))
        ) + "\n".join(exports)
    dispose_engines()
    captured = capsys.readouterr()
    everything = "\n".join(
        [*(_decoded(b) for b in bodies), dump, caplog.text, captured.out, captured.err]
    )
    assert TEXT_CANARY not in everything
    assert str(NUMBER_CANARY) not in everything
    assert "987654" not in everything
    # The level is public metadata (it is in the contract, hence in /v1/info) but no error,
    # audit entry or log line may repeat it back.
    assert LEVEL_CANARY in bodies[0]
    assert LEVEL_CANARY not in "\n".join(
        [*(_decoded(b) for b in bodies[4:]), dump, caplog.text, captured.out, captured.err]
    )
