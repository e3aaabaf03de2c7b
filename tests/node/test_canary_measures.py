"""Canary for the numeric and weighted measures: planted raw values (a measured number, a
survey weight, free text) never reach a release, an error, the ledger, the audit or a log."""

import base64
import logging

import polars as pl
from sqlalchemy import text

from contracts.v1 import Column, PrivacyUnit
from node.audit.models import AuditRow
from node.db import dispose_engines, transaction
from tests.node.conftest import contract, frame, make_node

TEXT_CANARY = "zq-canary-5512-text"
NUMBER_CANARY = 876543.219
WEIGHT_CANARY = 4.56789123


def _decoded(body: str) -> str:
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
    base = contract()
    canary_contract = base.model_copy(
        update={
            "columns": (
                *base.columns,
                Column(name="income", type="number", role="measure", lower=0, upper=1_000_000),
                Column(name="w", type="number", role="other"),
            ),
            "privacy": PrivacyUnit(
                unit_key="respondent", max_contributions=1, weight_column="w", weight_upper=5.0
            ),
        }
    )
    row = pl.int_range(pl.len()) == 17
    df = frame(200).with_columns(pl.lit(1000.0).alias("income"), pl.lit(1.0).alias("w"))
    df = df.with_columns(
        pl.when(row).then(pl.lit(TEXT_CANARY)).otherwise(pl.col("comment")).alias("comment"),
        pl.when(row).then(pl.lit(NUMBER_CANARY)).otherwise(pl.col("income")).alias("income"),
        pl.when(row).then(pl.lit(WEIGHT_CANARY)).otherwise(pl.col("w")).alias("w"),
    )
    n = make_node(
        tmp_path / "n",
        db_url,
        data=df,
        dataset_contract=canary_contract,
        measures=("count", "share", "sum", "mean", "quantile", "histogram"),
        columns=("disability", "sex", "age", "income", "comment"),
    )
    specs = [
        n.spec(measure="sum", column="income", group_by=("sex",)),
        n.spec(measure="mean", column="income", group_by=("sex", "district")),
        n.spec(measure="quantile", column="income", quantiles=(0.5, 0.9)),
        n.spec(measure="histogram", column="income", group_by=("sex",)),
        n.spec(measure="mean", column="income", weighted=True),
        n.spec(measure="share", column="disability", value="yes", weighted=True),
        # Invalid ones, carrying canaries where an analyst could type them.
        n.spec(measure="mean", column="comment"),
        n.spec(measure="histogram", column="income", edges=(0, NUMBER_CANARY)),
    ]
    statuses, bodies = [], []
    for spec in specs:
        response = n.post(n.request(spec))
        statuses.append(response.status_code)
        bodies.append(response.text)
    assert statuses[:6] == [200] * 6
    assert all(s >= 400 for s in statuses[6:7])
    with transaction(n.settings.db_url) as session:
        tables = [AuditRow.__tablename__, "releases", "budgets", "budget_charges"]
        dump = "\n".join(
            str(r) for t in tables for r in session.execute(text(f"SELECT * FROM {t}"))
        )
    assert "release_stored" in dump
    dispose_engines()
    captured = capsys.readouterr()
    # The last spec names the canary itself (it is the analyst's input, echoed in the
    # signed release's grid): only what the data could leak is checked there.
    everything = "\n".join(
        [*(_decoded(b) for b in bodies[:7]), dump, caplog.text, captured.out, captured.err]
    )
    assert TEXT_CANARY not in everything
    assert str(NUMBER_CANARY) not in everything
    assert str(WEIGHT_CANARY) not in everything
