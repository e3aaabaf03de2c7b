"""Mappings at the node: draft from names and labels, validate, apply, and refuse bad input."""

import json
from pathlib import Path

import polars as pl
import pytest
from joserfc.jwk import OKPKey
from typer.testing import CliRunner

from contracts import signing
from contracts.v1 import ModuleRef
from hub.harmonisation.service import signed_module
from node import home as node_home
from node.agreements import service as node_agreements
from node.agreements.exceptions import AgreementInvalid, TermNotInContract
from node.datasets import service as datasets
from node.harmonisation import rules, store
from node.harmonisation import service as harmonisation
from node.harmonisation.exceptions import MappingInvalid, ModuleInvalid, ModuleNotHeld
from node.harmonisation.schemas import Derive, Mapping, Recode, Rescale
from sauti.cli import app as sauti_app
from tests.harmonisation_surveys import LEVEL_CANARY, MAPPINGS, harmonised, surveys
from tests.node.conftest import hub_signed, terms

HUB_ID = "test-hub"


@pytest.fixture
def hub_key() -> OKPKey:
    return signing.generate_key()


def make_home(tmp_path: Path, node_id: str, hub_key: OKPKey, *, modules: bool = True) -> Path:
    country, contract, data = surveys()[node_id]
    home = tmp_path / node_id
    node_home.init_home(home, name=f"CSO {node_id}", country=country, node_id=node_id)
    node_home.pin_hub(home, hub_id=HUB_ID, public_jwk=signing.public_jwk(hub_key))
    datasets.import_frame(home=home, contract=contract, frame=data)
    if modules:
        for name in ("lnob_core", "wg_ss"):
            path = tmp_path / f"{name}.json"
            path.write_text(
                json.dumps(signed_module(name=name, version=1, key=hub_key).model_dump())
            )
            harmonisation.add_module(home=home, path=path)
    return home


def mapping(node_id: str, **variables: object) -> Mapping:
    document = {"module": "lnob_core", "version": 1, "contract_version": 1, **MAPPINGS[node_id]}
    document["variables"] = {**document["variables"], **variables}  # type: ignore[dict-item]
    return Mapping.model_validate(document)


def test_draft_proposes_rules_from_names_labels_and_levels(tmp_path: Path, hub_key: OKPKey) -> None:
    kenya = harmonisation.draft_mapping(
        home=make_home(tmp_path, "ke-dpo", hub_key),
        module="lnob_core",
        version=1,
        dataset="utafiti_ulemavu",
    )
    v = kenya.variables
    assert v["sex"] == Recode(rule="recode", column="jinsia", levels={"ke": "female", "me": "male"})
    assert v["age_band"] == Derive(rule="derive", method="age_band_from_age", inputs=("umri",))
    assert v["violence_12m"] == Recode(
        rule="recode", column="vurugu_12m", levels={"ndiyo": "yes", "hapana": "no"}
    )
    wg = v["disability_status"]
    assert isinstance(wg, Derive)
    assert wg.method == "wg_identifier"
    assert wg.inputs == ("kuona", "kusikia", "kutembea", "kukumbuka", "kujihudumia", "kuwasiliana")
    assert wg.levels == {
        "none": "no_difficulty",
        "some": "some_difficulty",
        "alot": "a_lot_of_difficulty",
        "cannot": "cannot_do_at_all",
    }
    assert kenya.status("marginalised_group") == "not_collected"

    nepal = harmonisation.draft_mapping(
        home=make_home(tmp_path, "np-dalit", hub_key),
        module="lnob_core",
        version=1,
        dataset="dalit_survey",
        reference_year=2026,
    )
    assert nepal.variables["sex"] == Recode(
        rule="recode", column="linga", levels={"mahila": "female", "purush": "male"}
    )
    assert nepal.variables["age_band"] == Derive(
        rule="derive",
        method="age_band_from_birth_year",
        inputs=("janma_barsa",),
        reference_year=2026,
    )
    assert nepal.status("disability_status") == "not_collected"

    # A single yes/no disability question is never proposed as the WG-SS identifier.
    bangladesh = harmonisation.draft_mapping(
        home=make_home(tmp_path, "bd-swn", hub_key),
        module="lnob_core",
        version=1,
        dataset="jorip",
    )
    assert bangladesh.status("disability_status") == "not_collected"
    assert bangladesh.variables["sex"] == Recode(
        rule="recode",
        column="lingo",
        levels={"nari": "female", "purush": "male", "hijra": "other"},
    )
    assert bangladesh.variables["violence_12m"] == Recode(
        rule="recode", column="shohingshota", levels={"ha": "yes", "na": "no"}
    )


def test_wg_module_draft_renames_domains_and_derives_the_identifier(
    tmp_path: Path, hub_key: OKPKey
) -> None:
    home = make_home(tmp_path, "ke-dpo", hub_key)
    draft = harmonisation.draft_mapping(
        home=home, module="wg_ss", version=1, dataset="utafiti_ulemavu"
    )
    seeing = draft.variables["seeing"]
    assert isinstance(seeing, Recode)
    assert seeing.column == "kuona"
    assert draft.status("disability") == "derived"
    report = harmonisation.validate_mapping(home=home, mapping=draft)
    assert report.ok
    assert all(item.rows_missing == 0 for item in report.variables)


def test_applied_mapping_matches_the_raw_data(tmp_path: Path, hub_key: OKPKey) -> None:
    for node_id in ("np-dalit", "ke-dpo", "bd-swn"):
        home = make_home(tmp_path, node_id, hub_key)
        _, contract, data = surveys()[node_id]
        module = store.load_module(home, "lnob_core", 1)
        chosen = mapping(node_id)
        assert rules.check(chosen, module=module, contract=contract) == []
        frame = rules.view_frame(chosen, module=module, contract=contract, data=data.lazy())
        view = frame.collect()
        expected = harmonised(node_id, data)
        assert view["sex"].to_list() == expected["sex"].to_list()
        assert view["violence_12m"].to_list() == expected["violence_12m"].to_list()
        if node_id == "ke-dpo":
            assert view["disability_status"].to_list() == expected["disability_status"].to_list()
        else:
            assert "disability_status" not in view.columns
        ages = expected["age"].to_list()
        for band, age in zip(view["age_band"].to_list(), ages, strict=True):
            low, _, high = (band or "").partition("-")
            assert band is not None
            assert int(low.rstrip("+")) <= age <= (int(high) if high else 130)
        contract_view = rules.view_contract(chosen, module=module, contract=contract)
        sex = contract_view.column("sex")
        assert sex is not None
        assert sex.level_codes == ("female", "male", "other")
        assert contract_view.privacy.max_contributions == contract.privacy.max_contributions
        assert contract_view.column("admin_area") is None
        assert contract_view.column("country") is None


def test_validation_reports_unmapped_levels_and_rows_locally(
    tmp_path: Path, hub_key: OKPKey
) -> None:
    home = make_home(tmp_path, "bd-swn", hub_key)
    report = harmonisation.validate_mapping(home=home, mapping=mapping("bd-swn"))
    assert report.ok
    assert report.rows == 180
    by_name = {item.variable: item for item in report.variables}
    assert by_name["sex"].unmapped_levels == (LEVEL_CANARY,)
    assert by_name["sex"].rows_missing == 1
    assert by_name["sex"].share_missing == pytest.approx(1 / 180)
    assert by_name["violence_12m"].rows_missing == 0
    assert by_name["disability_status"].status == "not_collected"
    # What the node publishes about the same mapping carries no level and no count.
    harmonisation.save_draft(home=home, mapping=mapping("bd-swn"))
    (coverage,) = harmonisation.coverage(home=home)
    assert coverage.variables["sex"] == "mapped"
    assert coverage.variables["age_band"] == "derived"
    assert coverage.variables["disability_status"] == "not_collected"
    assert LEVEL_CANARY not in coverage.model_dump_json()


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        (
            {"sex": {"rule": "recode", "column": "linga", "levels": {"mahila": "woman"}}},
            "variable sex: level 'woman' does not exist in the module",
        ),
        (
            {"age_band": {"rule": "derive", "method": "age_band_from_age", "inputs": ["umer"]}},
            "derived variable age_band: input column(s) not in dataset dalit_survey: umer",
        ),
        (
            {"violence_12m": {"rule": "rename", "column": "hinsa_12m"}},
            "variable violence_12m: input column(s) not in dataset dalit_survey: hinsa_12m",
        ),
        (
            {"sex": {"rule": "rename", "column": "linga"}},
            "variable sex: column linga has levels the module does not have; use recode",
        ),
        (
            {"satisfaction": {"rule": "rename", "column": "uttaradata"}},
            "variable satisfaction: column uttaradata is a unit_key and is never mapped",
        ),
        (
            {"country": {"rule": "rename", "column": "linga"}},
            "variable country: answered by the hub, never mapped",
        ),
        (
            {"caste": {"rule": "not_collected"}},
            "variable caste: not a variable of module lnob_core",
        ),
        (
            {
                "disability_status": {
                    "rule": "derive",
                    "method": "wg_identifier",
                    "inputs": ["linga"],
                    "levels": {"ho": "a_lot_of_difficulty"},
                }
            },
            "derived variable disability_status: wg_identifier needs the six WG-SS domain columns",
        ),
    ],
)
def test_validation_errors_name_the_variable(
    tmp_path: Path, hub_key: OKPKey, variables: dict[str, object], expected: str
) -> None:
    home = make_home(tmp_path, "np-dalit", hub_key)
    bad = mapping("np-dalit", **variables)
    report = harmonisation.validate_mapping(home=home, mapping=bad)
    assert not report.ok
    assert expected in report.errors
    path = tmp_path / "bad.yaml"
    path.write_text(store.mapping_yaml(bad), encoding="utf-8")
    with pytest.raises(MappingInvalid) as refused:
        harmonisation.install_mapping(home=home, path=path)
    assert expected in refused.value.message
    assert not store.mapping_path(home, "lnob_core", 1).exists()


def test_modules_must_be_signed_by_the_pinned_hub(tmp_path: Path, hub_key: OKPKey) -> None:
    home = make_home(tmp_path, "np-dalit", hub_key, modules=False)
    forged = tmp_path / "forged.json"
    forged.write_text(
        json.dumps(
            signed_module(name="lnob_core", version=1, key=signing.generate_key()).model_dump()
        )
    )
    with pytest.raises(ModuleInvalid):
        harmonisation.add_module(home=home, path=forged)
    with pytest.raises(ModuleNotHeld):
        store.load_module(home, "lnob_core", 1)


def test_cli_draft_validate_set_show(tmp_path: Path, hub_key: OKPKey) -> None:
    home = make_home(tmp_path, "bd-swn", hub_key)
    runner = CliRunner()
    base = ["node", "map"]
    drafted = runner.invoke(
        sauti_app,
        [*base, "draft", "--module", "lnob_core", "--dataset", "jorip", "--home", str(home)],
    )
    assert drafted.exit_code == 0, drafted.stderr
    assert "written to" in drafted.stdout
    again = runner.invoke(
        sauti_app,
        [*base, "draft", "--module", "lnob_core", "--dataset", "jorip", "--home", str(home)],
    )
    assert again.exit_code == 1
    assert "mapping_invalid" in again.stderr
    checked = runner.invoke(
        sauti_app, [*base, "validate", "--module", "lnob_core", "--home", str(home)]
    )
    assert checked.exit_code == 0, checked.stderr
    assert "sex: mapped, 1 rows missing" in checked.stdout
    assert "disability_status: not_collected" in checked.stdout

    bad = tmp_path / "bad.yaml"
    text = store.mapping_path(home, "lnob_core", 1).read_text(encoding="utf-8")
    bad.write_text(text.replace("boyosh", "bayas"), encoding="utf-8")
    refused = runner.invoke(
        sauti_app,
        [*base, "validate", "--module", "lnob_core", "--file", str(bad), "--home", str(home)],
    )
    assert refused.exit_code == 1
    assert (
        "derived variable age_band: input column(s) not in dataset jorip: bayas" in refused.stderr
    )
    installed = runner.invoke(sauti_app, [*base, "set", str(bad), "--home", str(home)])
    assert installed.exit_code == 1
    assert "mapping_invalid" in installed.stderr
    shown = runner.invoke(sauti_app, [*base, "show", "--module", "lnob_core", "--home", str(home)])
    assert shown.exit_code == 0
    assert "boyosh" in shown.stdout

    not_held = runner.invoke(
        sauti_app,
        [
            *base,
            "draft",
            "--module",
            "lnob_core",
            "--version",
            "2",
            "--dataset",
            "jorip",
            "--home",
            str(home),
        ],
    )
    assert not_held.exit_code == 1
    assert "module_not_held: module lnob_core v2 is not held here" in not_held.stderr
    listed = runner.invoke(sauti_app, ["node", "modules", "list", "--json", "--home", str(home)])
    assert listed.exit_code == 0
    rows = {r["module"]: r for r in json.loads(listed.stdout)}
    assert rows["lnob_core"]["mapping"]["sex"] == "mapped"
    assert rows["wg_ss"]["mapping"] is None


def test_rescale_maps_a_local_scale_onto_the_module_bounds(tmp_path: Path, hub_key: OKPKey) -> None:
    home = make_home(tmp_path, "np-dalit", hub_key)
    module = store.load_module(home, "lnob_core", 1)
    satisfaction = module.variable("satisfaction")
    assert satisfaction is not None
    rule = Rescale(rule="rescale", column="score", source_range=(0, 10))
    frame = pl.DataFrame({"score": [0, 5, 10, None]}).lazy()
    out = frame.select(rules.expression(rule, satisfaction)).collect().to_series().to_list()
    assert out == [1, 3, 5, None]


def test_signing_needs_the_module_and_its_variables(tmp_path: Path, hub_key: OKPKey) -> None:
    home = make_home(tmp_path, "np-dalit", hub_key, modules=False)
    module_terms = terms(
        "np-dalit",
        datasets=(),
        modules=(ModuleRef(name="lnob_core", version=1),),
        columns=("violence_12m",),
        dims=("sex",),
    )
    with pytest.raises(AgreementInvalid) as not_held:
        node_agreements.sign(home=home, agreement=hub_signed(module_terms, hub_key))
    assert "term modules: module lnob_core version 1 is not held" in not_held.value.message
    path = tmp_path / "lnob.json"
    path.write_text(
        json.dumps(signed_module(name="lnob_core", version=1, key=hub_key).model_dump())
    )
    harmonisation.add_module(home=home, path=path)
    stray = module_terms.model_copy(update={"dims": ("sex", "caste")})
    with pytest.raises(TermNotInContract) as unknown:
        node_agreements.sign(home=home, agreement=hub_signed(stray, hub_key))
    assert unknown.value.message == "term dims: caste is not a variable of module lnob_core"
    signature = node_agreements.sign(home=home, agreement=hub_signed(module_terms, hub_key))
    assert signature.signer == "np-dalit"
