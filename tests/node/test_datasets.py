"""Dataset store: immutable import versions, contract versions, load, delete, audit."""

import json

import polars as pl
import pytest

from contracts import signing
from node.audit import service as audit
from node.datasets import service
from node.datasets.exceptions import ContractConflict, DatasetInvalid, UnknownDataset
from node.db import dispose_engines
from node.settings import NodeSettings
from tests.node.conftest import contract, frame


def _settings(tmp_path, db_url: str) -> NodeSettings:
    return NodeSettings(home=tmp_path, database_url=db_url)


def test_import_writes_an_immutable_version(tmp_path) -> None:
    info = service.import_frame(home=tmp_path, contract=contract(), frame=frame(50))
    vdir = tmp_path / "datasets" / "survey" / "versions" / "1"
    manifest = json.loads((vdir / "manifest.json").read_text())
    assert manifest["rows"] == 50
    assert manifest["contract_version"] == 1
    assert manifest["contract_digest"] == info.contract_digest == signing.digest(contract())
    assert manifest["data_sha256"] == service.store.sha256(vdir / "data.parquet")
    stored = pl.read_parquet(vdir / "data.parquet")
    assert not {"phone", "comment", "respondent"} & set(stored.columns)
    assert stored.schema["age"] == pl.Int64
    assert stored.schema["sex"] == pl.Enum(["female", "male", "other"])
    loaded = service.load(home=tmp_path, name="survey")
    assert loaded.contract == contract()
    assert loaded.parquet_path == vdir / "data.parquet"
    with pytest.raises(UnknownDataset):
        service.load(home=tmp_path, name="other")
    dispose_engines()


def test_versions_contract_versions_and_deletion_are_logged(tmp_path, db_url) -> None:
    settings = _settings(tmp_path, db_url)
    service.import_frame(home=tmp_path, contract=contract(), frame=frame(40), settings=settings)
    service.import_frame(
        home=tmp_path, contract=contract(), frame=frame(60, seed=2), settings=settings
    )
    # A second import under contract v1 is a new version, and what v1 queries now read.
    assert service.load(home=tmp_path, name="survey", version=1).version == 2
    v2 = contract(version=2, extra_levels=("madhesi",))
    service.import_frame(home=tmp_path, contract=v2, frame=frame(30), settings=settings)
    assert service.load(home=tmp_path, name="survey").version == 3
    assert service.load(home=tmp_path, name="survey", version=1).version == 2
    assert [(d.contract.version) for d in service.list_datasets(home=tmp_path)] == [1, 2]
    listed = service.list_versions(home=tmp_path)
    assert [(v.version, v.contract_version, v.current) for v in listed] == [
        (1, 1, False),
        (2, 1, True),
        (3, 2, True),
    ]
    # A published contract version never changes.
    with pytest.raises(ContractConflict):
        service.import_frame(
            home=tmp_path, contract=contract(max_contributions=2), frame=frame(5), settings=settings
        )
    service.delete_version(
        home=tmp_path, name="survey", version=2, settings=settings, by="steward:sita"
    )
    assert service.load(home=tmp_path, name="survey", version=1).version == 1
    with pytest.raises(UnknownDataset):
        service.delete_version(home=tmp_path, name="survey", version=2, settings=settings)
    entries = audit.entries(database_url=db_url)
    actions = [(e.action, e.actor, e.details.get("version")) for e in entries]
    assert actions == [
        ("dataset_imported", "steward", 1),
        ("dataset_imported", "steward", 2),
        ("dataset_imported", "steward", 3),
        ("dataset_deleted", "steward:sita", 2),
    ]
    assert "rows" not in json.dumps([e.details for e in entries])
    dispose_engines()


def test_contributions_beyond_the_limit_are_refused_or_cut_on_request(tmp_path) -> None:
    df = frame(30).with_columns(pl.lit("same-person").alias("respondent"))
    with pytest.raises(DatasetInvalid) as info:
        service.import_frame(home=tmp_path, contract=contract(max_contributions=3), frame=df)
    issue = next(i for i in info.value.report.issues if i.rule == "too_many_rows_per_unit")
    assert (issue.count, issue.rows[:2]) == (27, (4, 5))
    assert not (tmp_path / "datasets" / "survey" / "versions" / "1").exists()
    service.import_frame(
        home=tmp_path, contract=contract(max_contributions=3), frame=df, excess="keep_first"
    )
    assert pl.read_parquet(service.load(home=tmp_path, name="survey").parquet_path).height == 3
    dispose_engines()


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
    assert "column sex" in message
    assert "rows 5" in message
    assert "column age" in message
    assert "rows 8" in message
    assert "zz-secret" not in message
    assert "999" not in message
    assert "zz-secret" not in info.value.report.model_dump_json()
    assert not (tmp_path / "datasets" / "survey" / "versions").exists() or not list(
        (tmp_path / "datasets" / "survey" / "versions").iterdir()
    )


def test_missing_column_is_refused(tmp_path) -> None:
    with pytest.raises(DatasetInvalid, match="district"):
        service.import_frame(home=tmp_path, contract=contract(), frame=frame(5).drop("district"))


def test_import_csv_and_parquet_store_the_same_data(tmp_path) -> None:
    frame(40).write_csv(tmp_path / "a.csv")
    frame(40).write_parquet(tmp_path / "b.parquet")
    service.import_file(home=tmp_path / "h1", contract=contract(), path=tmp_path / "a.csv")
    service.import_file(home=tmp_path / "h2", contract=contract(), path=tmp_path / "b.parquet")
    a = pl.read_parquet(service.load(home=tmp_path / "h1", name="survey").parquet_path)
    b = pl.read_parquet(service.load(home=tmp_path / "h2", name="survey").parquet_path)
    assert a.equals(b)
    dispose_engines()


def test_clip_policy_keeps_outliers_counts_them_and_queries_clamp_them(tmp_path) -> None:
    from contracts.v1 import QuerySpec  # noqa: PLC0415
    from node.privacy import engine  # noqa: PLC0415

    clipped = contract()
    clipped = clipped.model_copy(
        update={
            "columns": tuple(
                c.model_copy(update={"bounds_policy": "clip"}) if c.name == "age" else c
                for c in clipped.columns
            )
        }
    )
    rows = frame(40).with_columns(
        age=pl.when(pl.int_range(pl.len()) < 3).then(pl.lit(500)).otherwise(pl.col("age"))
    )
    with pytest.raises(DatasetInvalid) as refused:
        service.import_frame(home=tmp_path, contract=contract(), frame=rows)
    assert refused.value.report is not None
    assert [i.rule for i in refused.value.report.errors] == ["out_of_bounds"]
    service.import_frame(home=tmp_path, contract=clipped, frame=rows)
    report = service.validation_report(home=tmp_path, name="survey", version=1)
    assert report is not None
    (issue,) = [i for i in report.issues if i.column == "age"]
    assert (issue.rule, issue.severity, issue.count, issue.rows) == (
        "clipped_to_bounds",
        "warning",
        3,
        (),
    )
    loaded = service.load(home=tmp_path, name="survey")
    spec = QuerySpec(agreement_id="a", dataset="survey", measure="sum", column="age", rho=0.5)
    exact = engine.measure_exact(
        data=pl.scan_parquet(loaded.parquet_path),
        contract=loaded.contract,
        spec=spec,
        rho=0.5,
        source=loaded.parquet_path,
    )
    # Every query sums the clipped values (centred on the bounds' middle): 500 counts as 120.
    centred = float((rows["age"].clip(0, 120) - 60).sum())
    assert centred in {v for vs in exact.values.values() for v in vs}
    dispose_engines()
