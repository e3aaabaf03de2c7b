"""Reading real exports: Kobo, ODK Central with a repeat, XLSX, encodings, and bad files."""

import polars as pl
import pytest

from node.datasets import service
from node.datasets.drafting import Choices
from node.datasets.exceptions import DatasetInvalid, FileTooLarge, FileUnreadable
from node.db import dispose_engines
from node.privacy.bounds import EDGES
from node.settings import NodeSettings
from tests.node.datasets_support import (
    BENGALI,
    IDENT_CANARY,
    KOBO_HEADER,
    NEPALI,
    SWAHILI,
    VIETNAMESE,
    kobo_contract,
    kobo_csv,
    kobo_rows,
    kobo_xlsx,
    members_contract,
    odk_zip,
    simple_contract,
    write_delimited,
    xlsform,
)


@pytest.fixture(autouse=True)
def _engines():
    yield
    dispose_engines()


def _stored(home, name: str) -> pl.DataFrame:
    return pl.read_parquet(service.load(home=home, name=name).parquet_path)


def test_kobo_csv_with_groups_and_select_multiple(tmp_path) -> None:
    result = service.import_file(
        home=tmp_path / "h",
        path=kobo_csv(tmp_path / "kobo.csv"),
        contract=kobo_contract(),
        fmt="kobo",
    )
    assert result.report.source.delimiter == ";"
    stored = _stored(tmp_path / "h", "dalit_services")
    assert stored.height == 40
    assert "mobile" not in stored.columns
    assert "_uuid" not in stored.columns
    # Row 1 answered nothing (its answer column is blank): missing, never "not chosen".
    assert stored["services_health"].to_list()[:3] == [None, "yes", "no"]
    # Identifiers hashed with the node's secret salt: linkable, never the raw name.
    assert stored["full_name"].str.len_chars().unique().to_list() == [32]
    assert IDENT_CANARY not in stored["full_name"].to_list()
    assert "comments" not in stored.columns
    assert stored.schema["_submission_time"] == pl.Datetime("us")


def test_kobo_xlsx_reads_like_the_csv(tmp_path) -> None:
    service.import_file(
        home=tmp_path / "a",
        path=kobo_csv(tmp_path / "kobo.csv"),
        contract=kobo_contract(),
        fmt="kobo",
    )
    service.import_file(
        home=tmp_path / "b",
        path=kobo_xlsx(tmp_path / "kobo.xlsx"),
        contract=kobo_contract(),
        fmt="kobo",
    )
    a, b = _stored(tmp_path / "a", "dalit_services"), _stored(tmp_path / "b", "dalit_services")
    assert a.drop("full_name").equals(b.drop("full_name"))


def test_codebook_derives_option_columns_an_export_lacks(tmp_path) -> None:
    header, rows = ["_uuid", "services", "age"], [["u1", "health water", "30"], ["u2", "", "41"]]
    path = write_delimited(tmp_path / "plain.csv", header, rows)
    drafted = service.draft_contract(
        home=tmp_path / "h",
        path=path,
        name="svc",
        fmt="kobo",
        codebook_path=xlsform(tmp_path / "f.xlsx"),
    )
    names = [c.name for c in drafted.contract.columns]
    assert {"services_health", "services_water", "services_school"} <= set(names)
    result = service.import_file(
        home=tmp_path / "h",
        path=path,
        contract=drafted.contract,
        fmt="kobo",
        codebook_path=tmp_path / "f.xlsx",
    )
    assert "services_water" in result.report.derived_columns
    stored = _stored(tmp_path / "h", "svc")
    assert stored["services_water"].to_list() == ["yes", None]
    assert stored["services_school"].to_list() == ["no", None]


def test_odk_central_zip_with_a_repeat_group(tmp_path) -> None:
    path = odk_zip(tmp_path / "export.zip")
    result = service.import_file(
        home=tmp_path / "h", path=path, contract=members_contract(), fmt="odk", repeat="members"
    )
    assert result.report.source.repeat == "members"
    stored = _stored(tmp_path / "h", "members")
    assert stored.height == sum(1 + h % 4 for h in range(12))
    # Each member carries its household's district, joined by PARENT_KEY.
    assert stored["district"].to_list()[:3] == ["kathmandu", "saptari", "saptari"]
    main = service.draft_contract(home=tmp_path / "h", path=path, name="households", fmt="odk")
    by_name = {c.name: c for c in main.contract.columns}
    assert by_name["head_name"].role == "identifier"
    assert by_name["SubmitterName"].role == "identifier"
    assert by_name["SubmissionDate"].type == "datetime"
    assert main.contract.privacy.unit_key == "KEY" or main.contract.privacy.unit_key is None


@pytest.mark.parametrize(
    ("encoding", "texts"),
    [
        ("cp1252", ("Café Mwanza", "Zürich – Kibera", "Façade Ndogo")),
        ("utf-16", (NEPALI, BENGALI, VIETNAMESE, SWAHILI)),
        ("utf-8-sig", (NEPALI, BENGALI, VIETNAMESE, SWAHILI)),
        ("utf-8", (NEPALI, BENGALI, VIETNAMESE, SWAHILI)),
    ],
)
def test_encodings_are_detected_and_text_preserved(tmp_path, encoding, texts) -> None:
    rows = [[str(i), texts[i % len(texts)], ("f", "m")[i % 2], str(i % 10)] for i in range(30)]
    path = write_delimited(
        tmp_path / "t.csv", ["id", "town", "sex", "score"], rows, encoding=encoding
    )
    result = service.import_file(home=tmp_path / "h", path=path, contract=simple_contract())
    expected = {"cp1252": "cp1252", "utf-16": "utf-16", "utf-8-sig": "utf-8-sig", "utf-8": "utf-8"}
    assert result.report.source.encoding == expected[encoding]
    assert set(_stored(tmp_path / "h", "towns")["town"].to_list()) == set(texts)


def _refused(tmp_path, path, **kwargs):
    home = tmp_path / "h"
    settings = NodeSettings(home=home, **kwargs.pop("settings", {}))
    service.import_file(
        home=home, path=tmp_path / "good.csv", contract=simple_contract(), settings=settings
    )
    before = service.list_versions(home=home)
    with pytest.raises((DatasetInvalid, FileUnreadable, FileTooLarge)) as info:
        service.import_file(
            home=home, path=path, contract=simple_contract(), settings=settings, **kwargs
        )
    # Existing versions untouched, nothing half-imported, no leftovers.
    assert service.list_versions(home=home) == before
    leftovers = [p.name for p in (home / "datasets").rglob(".*") if p.name != ".identifier-salt"]
    assert leftovers == []
    return info.value


@pytest.fixture
def good(tmp_path):
    rows = [[str(i), "Lalitpur", ("f", "m")[i % 2], str(i % 10)] for i in range(20)]
    return write_delimited(tmp_path / "good.csv", ["id", "town", "sex", "score"], rows)


HEADER = ["id", "town", "sex", "score"]


def test_ragged_rows_are_reported_by_row(tmp_path, good) -> None:
    rows = [
        ["1", "a", "f", "1"],
        ["2", "b", "m"],
        ["3", "c", "f", "2", "extra"],
        ["4", "d", "m", "3"],
    ]
    error = _refused(tmp_path, write_delimited(tmp_path / "r.csv", HEADER, rows))
    issue = next(i for i in error.report.issues if i.rule == "ragged_row")
    assert issue.rows == (2, 3)


def test_wrong_delimiter_is_named(tmp_path, good) -> None:
    rows = [["1", "a", "f", "1"]]
    path = write_delimited(tmp_path / "semi.csv", HEADER, rows, sep=";")
    error = _refused(tmp_path, path, delimiter=",")
    assert {"missing_column", "wrong_delimiter"} <= {i.rule for i in error.report.issues}


def test_values_out_of_bounds_unknown_levels_and_duplicates(tmp_path, good) -> None:
    rows = [["1", "a", "f", "1"], ["2", "b", "F", "11"], ["2", "c", "m", "x"], ["4", "d", "m", ""]]
    error = _refused(tmp_path, write_delimited(tmp_path / "v.csv", HEADER, rows))
    rules = {(i.rule, i.column): i.rows for i in error.report.issues}
    assert rules[("unknown_level", "sex")] == (2,)
    assert rules[("out_of_bounds", "score")] == (2,)
    assert rules[("not_integer", "score")] == (3,)
    assert rules[("too_many_rows_per_unit", "id")] == (3,)
    assert "levels are case-sensitive" in str(error)


def test_unknown_encoding_is_refused_with_a_hint(tmp_path, good) -> None:
    path = tmp_path / "sjis.csv"
    path.write_bytes(
        "id,town,sex,score\n1,東京都新宿区,f,1\n2,大阪市,m,2\n".encode("shift_jis") * 40
    )
    error = _refused(tmp_path, path)
    assert error.code == "file_unreadable"
    assert "UTF-8" in error.message


def test_empty_file_and_header_only(tmp_path, good) -> None:
    (tmp_path / "empty.csv").write_bytes(b"")
    assert "empty" in _refused(tmp_path, tmp_path / "empty.csv").message


def test_file_not_what_its_extension_says(tmp_path, good) -> None:
    fake = tmp_path / "data.xlsx"
    fake.write_text("id,town\n1,a\n")
    assert "not what its extension says" in _refused(tmp_path, fake).message
    zipped = tmp_path / "data.csv"
    kobo_xlsx(zipped)
    assert "Excel workbook" in _refused(tmp_path, zipped).message


def test_a_file_over_the_size_limit_is_refused(tmp_path, good) -> None:
    rows = [[str(i), "Lalitpur", "f", "1"] for i in range(200)]
    path = write_delimited(tmp_path / "big.csv", HEADER, rows)
    error = _refused(tmp_path, path, settings={"import_max_bytes": 1000})
    assert error.code == "file_too_large"


def test_pums_real_table_drafts_and_imports(tmp_path) -> None:
    from tests.node.datasets_support import SHARED  # noqa: PLC0415

    path = SHARED / "pums" / "PUMS_pid.csv"
    if not path.exists():
        pytest.skip("../shared/data is not present")
    # Codes are public levels only once the steward names them.
    sex = service.draft_contract(home=tmp_path, path=path, name="pums").contract.column("sex")
    assert sex is not None
    assert (sex.type, sex.role, sex.bounds_policy) == ("integer", "measure", "clip")
    choices = Choices(categorical={"sex": ("0", "1"), "married": ("0", "1")})
    draft = service.draft_contract(home=tmp_path, path=path, name="pums", choices=choices)
    by_name = {c.name: c for c in draft.contract.columns}
    assert draft.contract.privacy.unit_key == "pid"
    assert by_name["sex"].type == "categorical"
    assert by_name["married"].level_codes == ("0", "1")
    assert by_name["age"].type == "integer"
    # Bounds from a DP rule on a public grid, never the data's own extremes.
    # (A grid step above the highest bin holding about 20 rows: ages reach 93, incomes 420500.)
    assert by_name["age"].bounds_policy == "clip"
    assert by_name["age"].lower == 0
    assert by_name["age"].upper in EDGES
    assert by_name["age"].upper >= 200
    assert by_name["income"].upper in EDGES
    assert by_name["income"].upper >= 200_000
    # The steward sets the public bounds the PUMS.yaml gives, then imports.
    columns = tuple(
        c.model_copy(update={"lower": 0.0, "upper": {"age": 100.0, "income": 500000.0}[c.name]})
        if c.name in ("age", "income")
        else c
        for c in draft.contract.columns
    )
    contract = draft.contract.model_copy(update={"columns": columns})
    contract = type(contract).model_validate(contract.model_dump())
    result = service.import_file(home=tmp_path, path=path, contract=contract)
    assert result.version.rows == 1000
    # The copy with missing values also misses person ids: refused, rows named.
    with pytest.raises(DatasetInvalid) as info:
        service.import_file(
            home=tmp_path, path=SHARED / "pums" / "PUMS_null.csv", contract=contract
        )
    rules = {(i.rule, i.column) for i in info.value.report.issues}
    assert ("missing_value", "pid") in rules
    assert len(service.list_versions(home=tmp_path)) == 1


def test_a_column_dropped_at_import_anyway_may_be_absent(tmp_path) -> None:
    """Free text and dropped identifiers are never stored: a later export without them
    imports with a warning; a hashed identifier (stored) must be there."""
    header = [h for h in KOBO_HEADER if h not in ("comments", "respondent/mobile")]
    rows = [
        [v for h, v in zip(KOBO_HEADER, row, strict=True) if h in header] for row in kobo_rows()
    ]
    path = write_delimited(tmp_path / "k.csv", header, rows, sep=";")
    result = service.import_file(home=tmp_path / "h", path=path, contract=kobo_contract())
    absent = {(i.column, i.severity) for i in result.report.issues if i.rule == "missing_column"}
    assert absent == {("comments", "warning"), ("mobile", "warning")}
    no_name = [h for h in header if h != "respondent/full_name"]
    rows = [[v for h, v in zip(header, row, strict=True) if h in no_name] for row in rows]
    path = write_delimited(tmp_path / "k2.csv", no_name, rows, sep=";")
    with pytest.raises(DatasetInvalid) as refused:
        service.import_file(home=tmp_path / "h", path=path, contract=kobo_contract())
    assert [(i.rule, i.column) for i in refused.value.report.errors] == [
        ("missing_column", "full_name")
    ]
