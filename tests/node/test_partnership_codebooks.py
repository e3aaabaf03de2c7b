"""Partnership codebooks: three CSOs draft one contract from a shared module or a partner's
codebook, map their own exports onto it, and publish contracts whose public parts match.

Also: bad codebooks are refused and write nothing, a value only one node's data hold never
becomes a level, a column the codebook has and a survey lacks is kept and marked not
collected (refused by name, never answered as zero), and bounds a draft estimates with the
DP rule are audited with the rho they spend when the contract is published.
"""

import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from joserfc.jwk import OKPKey
from typer.testing import CliRunner

from contracts import signing
from contracts.v1 import Column, DatasetContract, Level, QuerySpec
from contracts.v1.audit import AuditEntry
from hub.harmonisation.service import signed_module
from node import home as node_home
from node.audit import service as audit
from node.auth import service as auth
from node.datasets import drafting, mappings, store
from node.datasets import service as datasets
from node.datasets.exceptions import CodebookInvalid, DatasetInvalid, ImportMappingInvalid
from node.datasets.schemas import (
    ColumnMap,
    ContractDraft,
    ImportMapping,
    SourceInfo,
    ValidationReport,
)
from node.datasets.tables import Table
from node.db import url_for
from node.harmonisation import service as harmonisation
from node.harmonisation import store as module_store
from node.harmonisation.exceptions import ModuleInvalid, ModuleNotHeld
from node.privacy import engine
from node.privacy.exceptions import ColumnNotCollected
from sauti.cli import app as sauti_app
from tests.node.conftest import Node
from tests.node.datasets_support import xlsform
from tests.partnership_surveys import (
    BANGLADESH_RECODE,
    COUNTRIES,
    DATASET,
    LEVEL_CANARY,
    MODULE_GROUPS,
    TEXT_CANARY,
    mapped,
    write_exports,
)

HUB_ID = "test-hub"
SEX_LEVELS = ("female", "male", "other")
runner = CliRunner()


@pytest.fixture
def hub_key() -> OKPKey:
    return signing.generate_key()


def make_home(tmp_path: Path, node_id: str, hub_key: OKPKey) -> Path:
    """A node home with the hub pinned and the shipped modules added (signed by the hub)."""
    home = tmp_path / node_id
    node_home.init_home(home, name=f"CSO {node_id}", country=COUNTRIES[node_id], node_id=node_id)
    node_home.pin_hub(home, hub_id=HUB_ID, public_jwk=signing.public_jwk(hub_key))
    for name in ("lnob_core", "wg_ss"):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(signed_module(name=name, version=1, key=hub_key).model_dump()))
        harmonisation.add_module(home=home, path=path)
    return home


def choices(node_id: str, **extra: Any) -> drafting.Choices:
    recode = BANGLADESH_RECODE if node_id == "bd-swn" else {}
    return drafting.Choices(recode=recode, **extra)


def shared_part(contract: DatasetContract) -> dict[str, Any]:
    """What partners must publish alike: everything but the node's own privacy unit (its unit
    key and rows per unit) and whether it collects a column."""
    document = contract.model_dump(mode="json", exclude={"privacy", "methodology"})
    document["columns"] = [
        {k: v for k, v in c.items() if k != "collected"}
        for c in document["columns"]
        if c["role"] != "unit_key"
    ]
    return document


def _entries(home: Path) -> list[AuditEntry]:
    return audit.entries(database_url=url_for(home=home))


def audit_text(home: Path) -> str:
    return "\n".join(json.dumps(e.model_dump(mode="json")) for e in _entries(home))


def test_three_csos_draft_one_contract_from_a_module(tmp_path: Path, hub_key: OKPKey) -> None:
    files = write_exports(tmp_path / "exports")
    drafts: dict[str, ContractDraft] = {}
    for node_id, path in files.items():
        home = make_home(tmp_path, node_id, hub_key)
        proposed = datasets.draft_contract(
            home=home,
            path=path,
            name=DATASET,
            from_module="lnob_core",
            choices=choices(node_id),
        )
        drafts[node_id] = proposed
        assert proposed.shared == "module lnob_core v1"
        assert datasets.publish_contract(
            home=home, contract=proposed.contract, mapping=proposed.mapping
        )
        result = datasets.import_file(home=home, path=path, dataset=DATASET)
        assert not isinstance(result, ValidationReport)
        stored = pl.read_parquet(datasets.load(home=home, name=DATASET).parquet_path)
        expected = mapped(node_id)
        for column in ("sex", "marginalised_group", "violence_12m"):
            if column in stored.columns:
                assert stored[column].cast(pl.String).to_list() == expected[column].to_list()
        # Free text the codebook lacks is left out, so it never reaches the stored file.
        assert TEXT_CANARY not in stored.write_csv()

    contracts = {n: d.contract for n, d in drafts.items()}
    parts = [shared_part(c) for c in contracts.values()]
    assert parts[0] == parts[1] == parts[2]
    # The same as Table Schemas: every field alike, but for each node's own unit key.
    schemas = []
    for contract in contracts.values():
        schema = contract.to_table_schema()
        unit = contract.privacy.unit_key
        schemas.append((schema["x-sauti"], [f for f in schema["fields"] if f["name"] != unit]))
    assert schemas[0] == schemas[1] == schemas[2]
    for contract in contracts.values():
        group = contract.column("marginalised_group")
        assert group is not None
        assert group.level_codes == MODULE_GROUPS  # every level, whatever each one's data hold
        assert group.levels[0].labels["ne"] == "दलित"  # labels in every language the module has
        satisfaction = contract.column("satisfaction")
        assert satisfaction is not None
        assert (satisfaction.lower, satisfaction.upper, satisfaction.bounds_rho) == (1, 5, None)
        assert contract.column("comments") is None  # the file's own column: left out
    collected = {n: {c.name for c in k.columns if c.collected} for n, k in contracts.items()}
    assert "violence_12m" in collected["np-dalit"]
    assert "violence_12m" in collected["bd-swn"]
    assert "violence_12m" not in collected["ke-dpo"]  # its survey has no such question
    assert "admin_area" not in collected["bd-swn"]
    assert "disability_status" not in set().union(*collected.values())  # the WG-SS identifier

    # The mappings: renamed columns and recoded codes, the steward's own decisions included.
    bangladesh = drafts["bd-swn"].mapping
    assert bangladesh is not None
    assert bangladesh.columns["sex"].column == "gender"
    assert bangladesh.columns["sex"].levels == {"F": "female", "M": "male", "H": "other"}
    assert bangladesh.columns["violence_12m"].levels == {"1": "yes", "0": "no"}
    assert bangladesh.columns["marginalised_group"].levels[LEVEL_CANARY] is None
    nepal = drafts["np-dalit"].mapping
    assert nepal is not None
    assert nepal.columns["marginalised_group"].levels == {"dalit": "caste_discriminated"}
    assert nepal.columns["admin_area"].column == "district"
    assert drafts["ke-dpo"].mapping is not None
    flags = {(n.column, n.flag) for n in drafts["ke-dpo"].notes}
    assert ("violence_12m", "not_collected") in flags
    assert ("marginalised_group", "unmapped") not in flags

    # The canary level is in no contract, note, candidate or audit entry: only in Bangladesh's
    # raw data and its own mapping file, which never leaves the node.
    for node_id, proposed in drafts.items():
        shown = json.dumps(
            [
                proposed.contract.model_dump(mode="json"),
                [n.model_dump() for n in proposed.notes],
                [c.model_dump() for c in proposed.candidates],
            ]
        )
        assert LEVEL_CANARY not in shown
        home = tmp_path / node_id
        assert LEVEL_CANARY not in audit_text(home)
        public = [i.model_dump(mode="json") for i in datasets.list_datasets(home=home)]
        assert public
        assert LEVEL_CANARY not in json.dumps(public)
    bd = tmp_path / "bd-swn"
    entries = _entries(bd)
    entry = next(e for e in entries if e.action == "contract_published")
    assert entry.details["mapped_columns"] == ["marginalised_group", "sex", "violence_12m"]
    assert "dp_bounds" not in entry.details  # every bound came from the module: nothing spent


def test_values_the_codebook_lacks_are_flagged_never_levels(
    tmp_path: Path, hub_key: OKPKey
) -> None:
    path = write_exports(tmp_path / "exports")["bd-swn"]
    home = make_home(tmp_path, "bd-swn", hub_key)
    proposed = datasets.draft_contract(home=home, path=path, name=DATASET, from_module="lnob_core")
    unmapped = {n.column: n.note for n in proposed.notes if n.flag == "unmapped"}
    # `H` (hijra) and the canary are placed nowhere: counted, never named, never levels.
    assert set(unmapped) == {"sex", "marginalised_group"}
    assert "1 values" in unmapped["marginalised_group"]
    text = json.dumps([n.model_dump() for n in proposed.notes])
    assert LEVEL_CANARY not in text
    assert '"H"' not in text
    assert all(not c.values for c in proposed.candidates)
    assert proposed.contract.column("sex").level_codes == SEX_LEVELS  # type: ignore[union-attr]
    # Asked for, the steward sees the values to map (and only those), on this screen only.
    shown = datasets.draft_contract(
        home=home,
        path=path,
        name=DATASET,
        from_module="lnob_core",
        choices=drafting.Choices(show_levels=frozenset({"marginalised_group", "gender"})),
    )
    values = {c.column: c.values for c in shown.candidates}
    assert values == {"marginalised_group": (LEVEL_CANARY,), "sex": ("H",)}
    # Published without mapping them, the import refuses those rows and stores nothing.
    datasets.publish_contract(home=home, contract=proposed.contract, mapping=proposed.mapping)
    with pytest.raises(DatasetInvalid) as refused:
        datasets.import_file(home=home, path=path, dataset=DATASET)
    report = refused.value.report
    assert report is not None
    assert {(i.rule, i.column) for i in report.errors} == {
        ("unknown_level", "sex"),
        ("unknown_level", "marginalised_group"),
    }
    assert LEVEL_CANARY not in report.model_dump_json()
    assert datasets.list_versions(home=home, name=DATASET) == []
    # A new local code needs a new mapping, never a new contract.
    assert proposed.mapping is not None
    fixed = proposed.mapping.model_copy(
        update={
            "columns": {
                **proposed.mapping.columns,
                **{
                    name: proposed.mapping.columns[name].model_copy(
                        update={"levels": {**proposed.mapping.columns[name].levels, **table}}
                    )
                    for name, table in BANGLADESH_RECODE.items()
                },
            }
        }
    )
    datasets.set_mapping(home=home, mapping=fixed)
    assert datasets.get_mapping(home=home, name=DATASET) == fixed
    datasets.import_file(home=home, path=path, dataset=DATASET)
    assert [v.rows for v in datasets.list_versions(home=home, name=DATASET)] == [120]
    assert "dataset_mapping_set" in audit_text(home)
    assert LEVEL_CANARY not in audit_text(home)
    # A mapping onto a level the contract lacks, or onto another dataset, is refused.
    wrong = fixed.model_copy(
        update={
            "columns": {
                **fixed.columns,
                "sex": fixed.columns["sex"].model_copy(update={"levels": {"H": "hijra"}}),
            }
        }
    )
    with pytest.raises(ImportMappingInvalid, match="column sex: 1 recodes name a level"):
        datasets.set_mapping(home=home, mapping=wrong)
    assert datasets.get_mapping(home=home, name=DATASET) == fixed


def test_a_partner_contract_or_form_is_a_codebook(tmp_path: Path, hub_key: OKPKey) -> None:
    files = write_exports(tmp_path / "exports")
    nepal = make_home(tmp_path, "np-dalit", hub_key)
    first = datasets.draft_contract(
        home=nepal, path=files["np-dalit"], name=DATASET, from_module="lnob_core"
    )
    published = first.contract
    datasets.publish_contract(home=nepal, contract=published, mapping=first.mapping)
    info = datasets.list_datasets(home=nepal)  # empty: nothing imported yet
    assert info == []
    forms = {
        "native.json": published.model_dump(mode="json"),
        "schema.json": published.to_table_schema(),
        "info.json": {
            "contract": published.model_dump(mode="json"),
            "contract_digest": signing.digest(published),
        },
    }
    kenya = make_home(tmp_path, "ke-dpo", hub_key)
    for filename, document in forms.items():
        partner = tmp_path / filename
        partner.write_text(json.dumps(document), encoding="utf-8")
        proposed = datasets.draft_contract(
            home=kenya, path=files["ke-dpo"], name=DATASET, from_contract=partner
        )
        assert proposed.shared == f"partner contract {DATASET} v1"
        assert shared_part(proposed.contract) == shared_part(published)
        assert proposed.contract.privacy.unit_key == "_uuid"  # Kenya's own unit key
    # A partner's XLSForm: its select_one levels with every language's labels, its bounds.
    form = xlsform(tmp_path / "form.xlsx")
    proposed = datasets.draft_contract(
        home=kenya, path=files["ke-dpo"], name="partner_form", from_contract=form
    )
    assert proposed.shared is not None
    assert proposed.shared.startswith("partner form")
    sex = proposed.contract.column("sex")
    assert sex is not None
    assert sex.collected
    assert sex.type == "categorical"
    assert all(level.labels for level in sex.levels)
    assert {c.name for c in proposed.contract.columns if not c.collected} >= {"age"}


def test_bad_codebooks_are_refused_and_write_nothing(tmp_path: Path, hub_key: OKPKey) -> None:
    path = write_exports(tmp_path / "exports")["np-dalit"]
    home = make_home(tmp_path, "np-dalit", hub_key)
    before = audit_text(home)
    not_contract = tmp_path / "notes.json"
    not_contract.write_text(json.dumps({"hello": "partners"}), encoding="utf-8")
    listing = tmp_path / "list.json"
    listing.write_text("[1, 2]", encoding="utf-8")
    text = tmp_path / "export.csv"
    text.write_text("a,b\n1,2\n", encoding="utf-8")
    signed = tmp_path / "lnob_core.json"  # a signed module is pinned, not used as a file
    for bad in (not_contract, listing, text, signed):
        with pytest.raises(CodebookInvalid, match=bad.name):
            datasets.draft_contract(home=home, path=path, name=DATASET, from_contract=bad)
    with pytest.raises(ModuleNotHeld, match="sauti node modules fetch"):
        datasets.draft_contract(home=home, path=path, name=DATASET, from_module="no_such_module")
    with pytest.raises(ModuleNotHeld):
        datasets.draft_contract(home=home, path=path, name=DATASET, from_module="../../etc")
    # A pinned module whose file no longer verifies with the pinned hub key.
    other = signed_module(name="sdg_dims", version=1, key=signing.generate_key())
    module_store.module_path(home, "sdg_dims", 1).write_text(other.jws + "\n")
    with pytest.raises(ModuleInvalid):
        datasets.draft_contract(home=home, path=path, name=DATASET, from_module="sdg_dims")
    # And one added with a forged signature is never pinned.
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(other.model_dump()))
    with pytest.raises(ModuleInvalid):
        harmonisation.add_module(home=home, path=forged)
    assert not store.root(home).exists() or not any(store.root(home).iterdir())
    assert audit_text(home) == before
    # The command line says the same, with its code, and exits 1.
    for args in (
        ["--from-contract", str(not_contract)],
        ["--from-module", "no_such_module"],
        ["--from-module", "sdg_dims"],
    ):
        out = tmp_path / "c.json"
        result = runner.invoke(
            sauti_app,
            [
                "node",
                "contract",
                "draft",
                str(path),
                "--home",
                str(home),
                "--dataset",
                DATASET,
                "--out",
                str(out),
                *args,
            ],
        )
        assert result.exit_code == 1, result.output
        assert "codebook_invalid" in result.output or "module_" in result.output
        assert not out.exists()
    assert audit_text(home) == before


def test_dp_estimated_bounds_are_audited_when_published(tmp_path: Path) -> None:
    home = tmp_path / "node"
    node_home.init_home(home, name="CSO", country="524", node_id="np-cso")
    incomes = [str(1000 + (i * 37) % 9000) for i in range(600)]
    frame = pl.DataFrame(
        {
            "respondent_id": [f"r{i}" for i in range(600)],
            "income": incomes,
            "hh_size": [str(1 + i % 8) for i in range(600)],
        }
    )
    path = tmp_path / "export.csv"
    frame.write_csv(path)
    proposed = datasets.draft_contract(home=home, path=path, name="income_survey")
    income = proposed.contract.column("income")
    assert income is not None
    assert income.bounds_rho == 0.02
    assert income.bounds_policy == "clip"
    notes = " ".join(n.note for n in proposed.notes if n.column == "income")
    assert "spends rho 0.02 once" in notes
    assert "audit log" in notes
    # The steward sets one column's bounds from what they know: that one spent nothing.
    known = datasets.draft_contract(
        home=home,
        path=path,
        name="income_survey",
        choices=drafting.Choices(bounds={"hh_size": (1.0, 30.0, "refuse")}),
    )
    assert known.contract.column("hh_size").bounds_rho is None  # type: ignore[union-attr]
    contract = known.contract
    assert contract.to_table_schema()["x-privacy"]["bounds"]["income"]["rho"] == 0.02
    assert datasets.publish_contract(home=home, contract=contract)
    entry = _entries(home)[-1]
    assert entry.action == "contract_published"
    assert entry.details["dp_bounds"] == {"income": 0.02}
    assert entry.details["dp_bounds_rho"] == 0.02
    # Columns and rho only: no bound (or any other value of the data) is in the log.
    bounds = contract.column("income")
    assert bounds is not None
    logged = json.dumps(entry.details)
    assert f"{bounds.upper}" not in logged
    assert f"{bounds.upper:g}" not in logged
    # Published together with an import, the import's entry records the same.
    second = contract.model_copy(update={"version": 2})
    datasets.import_file(home=home, path=path, contract=second)
    imported = _entries(home)[-1]
    assert imported.action == "dataset_imported"
    assert imported.details["dp_bounds"] == {"income": 0.02}
    assert imported.details["contract_published"] is True


def test_a_column_not_collected_is_refused_never_zero() -> None:
    contract = DatasetContract(
        name="lnob_survey",
        version=1,
        title="t",
        columns=(
            Column(name="sex", type="categorical", levels=(Level(code="female"),)),
            Column(
                name="violence_12m",
                type="categorical",
                levels=(Level(code="yes"), Level(code="no")),
                collected=False,
            ),
        ),
    )
    base = {"agreement_id": "a", "dataset": "lnob_survey", "rho": 0.1}
    engine.check_spec(contract=contract, spec=QuerySpec(measure="count", group_by=("sex",), **base))
    for spec in (
        QuerySpec(measure="share", column="violence_12m", value="yes", **base),
        QuerySpec(measure="count", group_by=("sex", "violence_12m"), **base),
    ):
        with pytest.raises(ColumnNotCollected, match="not collected at this node: violence_12m"):
            engine.check_spec(contract=contract, spec=spec)
    with pytest.raises(ValueError, match="must be collected"):
        DatasetContract(
            name="x",
            version=1,
            title="t",
            columns=(Column(name="id", type="string", role="unit_key", collected=False),),
            privacy={"unit_key": "id"},  # type: ignore[arg-type]
        )


def test_command_line_drafts_publishes_and_imports_through_the_mapping(
    tmp_path: Path, hub_key: OKPKey
) -> None:
    path = write_exports(tmp_path / "exports")["bd-swn"]
    home = make_home(tmp_path, "bd-swn", hub_key)
    out = tmp_path / "c.json"
    common = ["--home", str(home)]
    drafted = runner.invoke(
        sauti_app,
        [
            "node",
            "contract",
            "draft",
            str(path),
            *common,
            "--dataset",
            DATASET,
            "--from-module",
            "lnob_core",
            "--out",
            str(out),
            "--recode",
            "sex=H:other",
            "--recode",
            f"marginalised_group={LEVEL_CANARY}:",
        ],
    )
    assert drafted.exit_code == 0, drafted.output
    mapping_path = tmp_path / "c.mapping.json"
    assert json.loads(mapping_path.read_text())["columns"]["sex"]["column"] == "gender"
    assert LEVEL_CANARY not in out.read_text()
    assert f"--mapping {mapping_path}" in drafted.output
    checked = runner.invoke(
        sauti_app,
        [
            "node",
            "contract",
            "validate",
            str(path),
            *common,
            "--contract",
            str(out),
            "--mapping",
            str(mapping_path),
        ],
    )
    assert checked.exit_code == 0, checked.output
    assert "the file satisfies the contract" in checked.output
    published = runner.invoke(
        sauti_app,
        ["node", "contract", "publish", str(out), *common, "--mapping", str(mapping_path)],
    )
    assert published.exit_code == 0, published.output
    imported = runner.invoke(
        sauti_app, ["node", "import", str(path), *common, "--dataset", DATASET]
    )
    assert imported.exit_code == 0, imported.output
    shown = runner.invoke(sauti_app, ["node", "contract", "mapping", DATASET, *common])
    assert shown.exit_code == 0
    assert json.loads(shown.output)["columns"]["violence_12m"]["levels"] == {"1": "yes", "0": "no"}
    as_json = runner.invoke(
        sauti_app,
        [
            "node",
            "contract",
            "draft",
            str(path),
            *common,
            "--dataset",
            DATASET,
            "--from-module",
            "lnob_core",
            "--column",
            "violence_12m=",
            "--json",
        ],
    )
    assert as_json.exit_code == 0, as_json.output
    body = json.loads(as_json.output)
    assert body["shared"] == "module lnob_core v1"
    assert "violence_12m" in body["contract"]["x-privacy"]["not_collected"]
    bad = runner.invoke(
        sauti_app,
        [
            "node",
            "contract",
            "draft",
            str(path),
            *common,
            "--dataset",
            DATASET,
            "--from-module",
            "lnob_core",
            "--recode",
            "sex",
        ],
    )
    assert bad.exit_code == 2


def test_steward_api_drafts_from_a_module_or_a_partner_file(sqlite_node: Node, tmp_path) -> None:
    node = sqlite_node
    for name in ("lnob_core",):
        path = tmp_path / f"{name}.json"
        path.write_text(
            json.dumps(signed_module(name=name, version=1, key=node.hub_key).model_dump())
        )
        harmonisation.add_module(home=node.home, path=path, settings=node.settings)
    token = auth.create_token(database_url=node.settings.db_url, name="Sita")
    headers = {"Authorization": f"Bearer {token}"}
    data = write_exports(tmp_path / "exports")["bd-swn"].read_bytes()
    url = f"/v1/steward/datasets/{DATASET}"
    answer = node.client.request(
        "POST",
        f"{url}/draft?filename=bd.csv&from_module=lnob_core&recode=sex%3DH%3Aother",
        headers=headers,
        content=data,
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["shared"] == "module lnob_core v1"
    assert body["mapping"]["columns"]["sex"]["levels"]["H"] == "other"
    assert LEVEL_CANARY not in answer.text
    contract = body["contract"]
    partner = json.dumps(contract).encode()
    multipart = node.client.request(
        "POST",
        f"{url}/draft",
        headers=headers,
        files={
            "upload": ("bd.csv", data, "text/csv"),
            "partner": ("partner.json", partner, "application/json"),
        },
    )
    assert multipart.status_code == 200, multipart.text
    assert multipart.json()["shared"] == f"partner contract {DATASET} v1"
    bad = node.client.request(
        "POST",
        f"{url}/draft",
        headers=headers,
        files={
            "upload": ("bd.csv", data, "text/csv"),
            "partner": ("partner.json", b'{"hello": 1}', "application/json"),
        },
    )
    assert bad.status_code == 422
    assert bad.json()["error"]["code"] == "codebook_invalid"
    unknown = node.client.request(
        "POST", f"{url}/draft?from_module=nope", headers=headers, content=data
    )
    assert unknown.status_code == 422
    assert unknown.json()["error"]["code"] == "module_not_held"
    created = node.client.request("POST", f"{url}/contracts", headers=headers, json=contract)
    assert created.status_code == 201
    put = node.client.request("PUT", f"{url}/mapping", headers=headers, json=body["mapping"])
    assert put.status_code == 200, put.text
    got = node.client.request("GET", f"{url}/mapping", headers=headers)
    assert got.json() == body["mapping"]
    wrong = {**body["mapping"], "contract_version": 9}
    refused = node.client.request("PUT", f"{url}/mapping", headers=headers, json=wrong)
    assert refused.status_code == 422


def test_mapping_renames_recodes_and_steps_aside(tmp_path: Path) -> None:
    frame = pl.DataFrame(
        {"sex": ["x", "y"], "gender": [" F", "M "], "count": ["1", "0"], "other": ["a", "b"]}
    )
    source = SourceInfo(filename="f.csv", format="csv", bytes=1, sha256="")
    table = Table(frame=frame.lazy(), source=source, option_columns={"gender": ("q", "o")})
    mapping = ImportMapping(
        dataset="d",
        contract_version=1,
        columns={
            "sex": ColumnMap(column="gender", levels={"F": "female", "M": None}),
            "violence": ColumnMap(column="count", levels={"1": "yes", "0": "no"}),
        },
    )
    out = mappings.apply(table, mapping).frame.collect()
    # The file's own `sex` steps aside for the column mapped onto that name.
    assert out.columns == ["sex", "violence", "other"]
    assert out["sex"].to_list() == ["female", None]
    assert out["violence"].to_list() == ["yes", "no"]
    assert mappings.apply(table, mapping).option_columns == {"sex": ("q", "o")}
    contract = DatasetContract(
        name="d",
        version=1,
        title="t",
        columns=(Column(name="sex", type="categorical", levels=(Level(code="female"),)),),
    )
    assert mappings.problems(mapping, contract) == ["column violence: not a column of the contract"]
