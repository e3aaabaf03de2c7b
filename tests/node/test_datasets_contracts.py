"""Contracts as Table Schema with x-privacy, methodology, XLSForm codebooks, identifier flags."""

from datetime import date

import polars as pl
import pytest

from contracts import signing
from contracts.v1 import DatasetContract, PrivacyUnit
from contracts.v1.dataset import Geography, Methodology, Period, Sampling
from node.datasets import service
from node.datasets.codebook import constraint_bounds, language_code, read_codebook
from node.datasets.drafting import identifier_by_name, identifier_by_values
from node.datasets.exceptions import ContractInvalid
from tests.node.conftest import contract
from tests.node.datasets_support import SHARED, kobo_contract, kobo_csv, xlsform


def _full() -> DatasetContract:
    base = kobo_contract()
    columns = (
        *base.columns,
        base.columns[3].model_copy(
            update={"name": "weight", "role": "other", "lower": 0, "upper": 50}
        ),
    )
    return base.model_copy(
        update={
            "columns": columns,
            "privacy": PrivacyUnit(
                unit_key="_uuid", max_contributions=1, weight_column="weight", weight_upper=50
            ),
            "methodology": Methodology(
                collection_method="household_survey",
                sampling=Sampling(design="stratified", description="wards by caste share"),
                period=Period(start=date(2024, 3, 1), end=date(2024, 3, 28)),
                geography=Geography(country="524", districts=("Kathmandu", "Saptari")),
                consent_basis="informed_consent",
                producer="Feminist Dalit Organisation",
            ),
        }
    )


def test_table_schema_round_trips_with_privacy_and_methodology() -> None:
    full = DatasetContract.model_validate(_full().model_dump())
    schema = full.to_table_schema()
    assert schema["x-privacy"]["identifiers"] == [
        {"name": "full_name", "treatment": "hash"},
        {"name": "mobile", "treatment": "drop"},
    ]
    assert schema["x-privacy"]["weight"] == {"column": "weight", "upper": 50}
    assert schema["primaryKey"] == ["_uuid"]
    sex = next(f for f in schema["fields"] if f["name"] == "sex")
    assert sex["constraints"]["enum"] == ["female", "male", "third_gender"]
    assert DatasetContract.from_table_schema(schema) == full
    assert service.parse_contract(schema) == full
    assert full.column("age").queryable
    assert not full.column("mobile").queryable


def test_bad_contract_documents_are_refused_by_rule() -> None:
    schema = contract().to_table_schema()
    schema["x-privacy"]["free_text"] = ["comment", "nosuch"]
    with pytest.raises(ContractInvalid, match="nosuch"):
        service.parse_contract(schema)
    with pytest.raises(ContractInvalid, match="weight"):
        service.parse_contract(
            {**contract().model_dump(mode="json"), "privacy": {"weight_column": "age"}}
        )


def test_xlsform_codebook_with_english_and_nepali_labels(tmp_path) -> None:
    book = read_codebook(xlsform(tmp_path / "form.xlsx"))
    assert book.languages == ("en", "ne")
    age = book.question("age")
    assert age.groups == ("respondent",)
    assert constraint_bounds(age.constraint) == (0, 120)
    assert [c.name for c in book.choices["sex"]] == ["female", "male", "third_gender"]
    assert book.choices["sex"][0].labels == {"en": "Female", "ne": "महिला"}
    drafted = service.draft_contract(
        home=tmp_path,
        path=kobo_csv(tmp_path / "k.csv"),
        name="dalit",
        fmt="kobo",
        codebook_path=tmp_path / "form.xlsx",
    )
    sex = drafted.contract.column("sex")
    assert sex.levels[2].labels["ne"] == "तेस्रो लिङ्ग"
    assert drafted.contract.column("age").upper == 120
    flagged = {n.column for n in drafted.notes if n.flag == "identifier"}
    assert {"full_name", "mobile", "location"} <= flagged
    assert drafted.contract.column("comments").role == "free_text"


@pytest.mark.parametrize("form", ["UCL_Biomass_Plot_Form.xlsx", "liberiaCoverage.xlsx"])
def test_real_xlsforms_read(form) -> None:
    path = SHARED / "xlsforms" / form
    if not path.exists():
        pytest.skip("../shared/data is not present")
    book = read_codebook(path)
    assert len(book.questions) > 50
    assert book.repeats
    multi = [q for q in book.questions if q.type == "select_multiple"]
    assert multi
    assert all(q.list_name for q in multi)
    if form.startswith("UCL"):
        assert book.languages == ("en", "sw")
        assert book.choices["yes_no"][0].labels == {"sw": "Ndiyo", "en": "Yes"}
    else:
        assert "1" in {c.name for c in book.choices["yes_no"]}
        assert any("repeats a choice name" in w for w in book.warnings)


def test_identifier_detection_by_name_and_values() -> None:
    assert identifier_by_name("respondent_name") == "a person's name"
    assert identifier_by_name("village_name") is None
    assert identifier_by_name("hh_head_mobile") == "a phone number"
    assert identifier_by_name("nid_number") is not None
    assert identifier_by_name("gps_lat") == "a GPS location"
    phones = pl.Series([f"+2547{i:08d}" for i in range(30)])
    assert "phone" in identifier_by_values(phones)
    gps = pl.Series([f"-1.{i} 36.{i} 1700 4" for i in range(30)])
    assert "GPS" in identifier_by_values(gps)
    ids = pl.Series([f"19{i:09d}" for i in range(30)])
    assert identifier_by_values(ids) is not None
    assert identifier_by_values(pl.Series(["yes", "no"] * 20)) is None
    assert language_code("Nepali (ne)") == "ne"
    assert language_code("Bangla") == "bn"


def test_bounds_policy_is_left_out_of_canonical_json_at_its_default() -> None:
    published = contract()
    document = published.model_dump(mode="json")
    assert all("bounds_policy" not in c for c in document["columns"])
    # A contract written before the field existed reads back to the same digest.
    assert signing.digest(DatasetContract.model_validate(document)) == signing.digest(published)
    age = published.column("age")
    assert age is not None
    clipped = published.model_copy(
        update={
            "columns": tuple(
                c.model_copy(update={"bounds_policy": "clip"}) if c.name == "age" else c
                for c in published.columns
            )
        }
    )
    assert signing.digest(clipped) != signing.digest(published)
    schema = clipped.to_table_schema()
    assert schema["x-privacy"]["bounds"]["age"] == {"lower": 0, "upper": 120, "policy": "clip"}
    assert "policy" not in published.to_table_schema()["x-privacy"]["bounds"]["age"]
    assert DatasetContract.from_table_schema(schema) == DatasetContract.model_validate(
        clipped.model_dump()
    )
    with pytest.raises(ContractInvalid, match="clips to bounds"):
        service.parse_contract(
            {
                **published.model_dump(mode="json"),
                "columns": [
                    {"name": "x", "type": "integer", "role": "measure", "bounds_policy": "clip"}
                ],
                "privacy": {},
            }
        )


def test_bounds_rho_and_not_collected_are_left_out_at_their_defaults() -> None:
    published = contract()
    for name in ("bounds_rho", "collected"):
        assert all(name not in c for c in published.model_dump(mode="json")["columns"])
    changed = published.model_copy(
        update={
            "columns": tuple(
                c.model_copy(update={"bounds_rho": 0.02, "bounds_policy": "clip"})
                if c.name == "age"
                else c.model_copy(update={"collected": False})
                if c.name == "sex"
                else c
                for c in published.columns
            )
        }
    )
    assert signing.digest(changed) != signing.digest(published)
    schema = changed.to_table_schema()
    assert schema["x-privacy"]["bounds"]["age"] == {
        "lower": 0,
        "upper": 120,
        "policy": "clip",
        "rho": 0.02,
    }
    assert schema["x-privacy"]["not_collected"] == ["sex"]
    assert "not_collected" not in published.to_table_schema()["x-privacy"]
    assert DatasetContract.from_table_schema(schema) == DatasetContract.model_validate(
        changed.model_dump()
    )
    with pytest.raises(ContractInvalid, match="cost of bounds"):
        service.parse_contract(
            {
                **published.model_dump(mode="json"),
                "columns": [{"name": "x", "type": "integer", "role": "measure", "bounds_rho": 0.1}],
                "privacy": {},
            }
        )
    stray = {**schema, "x-privacy": {**schema["x-privacy"], "not_collected": ["nope"]}}
    with pytest.raises(ContractInvalid, match="not_collected names unknown"):
        service.parse_contract(stray)
