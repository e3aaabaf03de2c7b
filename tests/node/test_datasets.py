"""Dataset import: validation by contract, contribution bounding, immutable versions."""

import json

import polars as pl
import pytest

from contracts import signing
from node.datasets import service
from node.datasets.exceptions import DatasetExists, DatasetInvalid, UnknownDataset
from tests.node.conftest import contract, frame


def test_import_writes_an_immutable_version(tmp_path) -> None:
    info = service.import_frame(home=tmp_path, contract=contract(), frame=frame(50))
    vdir = tmp_path / "datasets" / "survey" / "v1"
    manifest = json.loads((vdir / "manifest.json").read_text())
    assert manifest["rows"] == 50
    assert manifest["contract_digest"] == info.contract_digest == signing.digest(contract())
    stored = pl.read_parquet(vdir / "data.parquet")
    assert "phone" not in stored.columns
    assert "comment" not in stored.columns
    assert "respondent" not in stored.columns
    assert stored.schema["age"] == pl.Int64
    loaded = service.load(home=tmp_path, name="survey")
    assert loaded.contract == contract()
    assert loaded.parquet_path == vdir / "data.parquet"
    with pytest.raises(DatasetExists):
        service.import_frame(home=tmp_path, contract=contract(), frame=frame(50))
    assert [d.contract.version for d in service.list_datasets(home=tmp_path)] == [1]
    with pytest.raises(UnknownDataset):
        service.load(home=tmp_path, name="other")


def test_contributions_are_bounded_per_unit(tmp_path) -> None:
    df = frame(30).with_columns(pl.lit("same-person").alias("respondent"))
    service.import_frame(home=tmp_path, contract=contract(max_contributions=3), frame=df)
    assert pl.read_parquet(service.load(home=tmp_path, name="survey").parquet_path).height == 3


def test_invalid_values_name_columns_and_rows_never_values(tmp_path) -> None:
    df = frame(20).with_columns(
        pl.when(pl.int_range(pl.len()) == 4)
        .then(pl.lit("zz-secret"))
        .otherwise(pl.col("sex"))
        .alias("sex"),
        pl.when(pl.int_range(pl.len()) == 7).then(999).otherwise(pl.col("age")).alias("age"),
    )
    with pytest.raises(DatasetInvalid) as info:
        service.import_frame(home=tmp_path, contract=contract(), frame=df)
    message = str(info.value)
    assert "sex" in message
    assert "rows 5" in message
    assert "age" in message
    assert "rows 8" in message
    assert "zz-secret" not in message
    assert "999" not in message
    assert not (tmp_path / "datasets" / "survey" / "v1").exists()


def test_missing_column_is_refused(tmp_path) -> None:
    with pytest.raises(DatasetInvalid, match="district"):
        service.import_frame(home=tmp_path, contract=contract(), frame=frame(5).drop("district"))


def test_import_csv_and_parquet(tmp_path) -> None:
    frame(40).write_csv(tmp_path / "a.csv")
    frame(40).write_parquet(tmp_path / "b.parquet")
    service.import_file(home=tmp_path / "h1", contract=contract(), path=tmp_path / "a.csv")
    service.import_file(home=tmp_path / "h2", contract=contract(), path=tmp_path / "b.parquet")
    a = pl.read_parquet(service.load(home=tmp_path / "h1", name="survey").parquet_path)
    b = pl.read_parquet(service.load(home=tmp_path / "h2", name="survey").parquet_path)
    assert a.equals(b)
    with pytest.raises(DatasetInvalid):
        service.import_file(home=tmp_path, contract=contract(), path=tmp_path / "x.xlsx")
