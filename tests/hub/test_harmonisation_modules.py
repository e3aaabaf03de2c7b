"""Shipped modules load and say what they mean; the hub serves them signed; coverage intake."""

import json
import secrets
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hub_support import Hub, SimNode, make_terms
from typer.testing import CliRunner

from contracts import signing
from contracts.v1 import CoverageReport, MappingCoverage, Module, ModuleRef, Signed
from hub.harmonisation.service import shipped_modules
from hub.home import HubIdentity
from sauti.cli import app as sauti_app

WG_DOMAINS = ("seeing", "hearing", "walking", "cognition", "self_care", "communication")
WG_LEVELS = ("no_difficulty", "some_difficulty", "a_lot_of_difficulty", "cannot_do_at_all")


def test_every_shipped_module_loads_with_sources_and_definitions() -> None:
    modules = {m.name: m for m in shipped_modules()}
    assert set(modules) >= {"lnob_core", "wg_ss", "sdg_dims"}
    for module in modules.values():
        assert module.sources, module.name
        assert all(v.definition.strip() for v in module.variables)
    lnob = modules["lnob_core"]
    assert {v.name for v in lnob.variables} == {
        "country",
        "admin_area",
        "sex",
        "age_band",
        "marginalised_group",
        "disability_status",
        "violence_12m",
        "basic_services_access",
        "satisfaction",
    }
    country = lnob.variable("country")
    assert country is not None
    assert country.hub_dim
    satisfaction = lnob.variable("satisfaction")
    assert satisfaction is not None
    assert (satisfaction.lower, satisfaction.upper) == (1, 5)
    wg = modules["wg_ss"]
    for name in WG_DOMAINS:
        domain = wg.variable(name)
        assert domain is not None
        assert domain.level_codes == WG_LEVELS
    identifier = wg.variable("disability")
    assert identifier is not None
    assert identifier.derive == "wg_identifier"
    assert "washingtongroup-disability.com" in " ".join(s.url or "" for s in wg.sources)
    sdg = modules["sdg_dims"]
    assert {"sex", "age_group", "disability", "urban_rural", "income_quintile"} <= {
        v.name for v in sdg.variables
    }
    assert any("IAEG-SDGs" in s.publisher for s in sdg.sources)


def test_hub_serves_modules_signed_with_its_key(make_hub: Callable[..., Hub]) -> None:
    hub = make_hub([])
    listed = hub.client.get("/v1/modules")
    assert listed.status_code == 200
    assert {m["name"] for m in listed.json()} >= {"lnob_core", "wg_ss", "sdg_dims"}
    signed = hub.client.get("/v1/modules/wg_ss/versions/1/signed")
    assert signed.status_code == 200
    token = Signed.model_validate(signed.json()).jws
    module = signing.verify_model(token, signing.load_public_key(hub.identity.public_jwk), Module)
    assert module.name == "wg_ss"
    missing = hub.client.get("/v1/modules/wg_ss/versions/9/signed")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "module_not_found"


def _report(hub: Hub, node: SimNode, **changes: object) -> dict[str, str]:
    fields: dict[str, object] = {
        "node_id": node.node_id,
        "hub_id": hub.identity.hub_id,
        "issued_at": datetime.now(UTC),
        "nonce": secrets.token_hex(16),
        "mappings": (
            MappingCoverage(
                module="lnob_core",
                version=1,
                variables={"sex": "mapped", "disability_status": "not_collected"},
            ),
        ),
    }
    fields.update(changes)
    return {"jws": signing.sign(CoverageReport(**fields), node.key)}  # type: ignore[arg-type]


def test_coverage_is_node_signed_fresh_and_metadata_only(
    make_hub: Callable[..., Hub], sim_nodes: list[SimNode]
) -> None:
    node = sim_nodes[0]
    hub = make_hub([node])
    hub.register(node)
    body = _report(hub, node)
    accepted = hub.client.post("/v1/modules/coverage", json=body)
    assert accepted.status_code == 201, accepted.text
    assert hub.client.post("/v1/modules/coverage", json=body).json()["error"]["code"] == (
        "replayed"
    )
    stale = _report(hub, node, issued_at=datetime.now(UTC) - timedelta(hours=2))
    assert hub.client.post("/v1/modules/coverage", json=stale).status_code == 401
    stranger = _report(hub, node)
    stranger["jws"] = signing.sign(
        CoverageReport.model_validate_json(signing.unverified_payload(stranger["jws"])),
        signing.generate_key(),
    )
    assert hub.client.post("/v1/modules/coverage", json=stranger).status_code == 401
    wrong = _report(
        hub,
        node,
        mappings=(MappingCoverage(module="lnob_core", version=1, variables={"nope": "mapped"}),),
    )
    refused = hub.client.post("/v1/modules/coverage", json=wrong)
    assert refused.status_code == 422
    assert refused.json()["error"]["code"] == "coverage_invalid"

    assert hub.client.get("/v1/modules/lnob_core/coverage").status_code == 401
    view = hub.client.get("/v1/modules/lnob_core/coverage", headers=hub.headers("analyst"))
    assert view.status_code == 200
    variables = {v["variable"]: v for v in view.json()["variables"]}
    assert variables["sex"]["nodes"] == [
        {"node_id": node.node_id, "country": node.country, "status": "mapped"}
    ]
    assert variables["sex"]["countries"] == [node.country]
    assert variables["disability_status"]["countries"] == []
    # A variable the node did not list is not collected there.
    assert variables["violence_12m"]["nodes"][0]["status"] == "not_collected"


def test_hub_cli_lists_shows_signs_and_reports_coverage(
    tmp_path: Path, hub_home: HubIdentity
) -> None:
    runner = CliRunner()
    home = str(tmp_path / "hub")
    listed = runner.invoke(sauti_app, ["hub", "modules", "list", "--json"])
    assert listed.exit_code == 0, listed.stderr
    assert {m["name"] for m in json.loads(listed.stdout)} >= {"lnob_core", "wg_ss", "sdg_dims"}
    shown = runner.invoke(sauti_app, ["hub", "modules", "show", "wg_ss"])
    assert shown.exit_code == 0
    assert json.loads(shown.stdout)["variables"][0]["name"] == "seeing"
    signed = runner.invoke(
        sauti_app, ["hub", "modules", "show", "wg_ss", "--signed", "--home", home]
    )
    assert signed.exit_code == 0, signed.stderr
    module = signing.verify_model(
        Signed.model_validate_json(signed.stdout).jws,
        signing.load_public_key(hub_home.public_jwk),
        Module,
    )
    assert module.name == "wg_ss"
    unknown = runner.invoke(sauti_app, ["hub", "modules", "show", "nope"])
    assert unknown.exit_code == 1
    assert "module_not_found" in unknown.stderr
    coverage = runner.invoke(
        sauti_app, ["hub", "modules", "coverage", "lnob_core", "--json", "--home", home]
    )
    assert coverage.exit_code == 0, coverage.stderr
    view = json.loads(coverage.stdout)
    assert view["module"] == "lnob_core"
    assert all(v["nodes"] == [] for v in view["variables"])


def test_agreements_may_name_only_shipped_modules(
    make_hub: Callable[..., Hub], sim_nodes: list[SimNode]
) -> None:
    node = sim_nodes[0]
    hub = make_hub([node])
    hub.register(node)
    for version, expected in ((2, 422), (1, 201)):
        terms = make_terms(
            [node],
            agreement_id=f"modules-v{version}",
            datasets=(),
            modules=(ModuleRef(name="lnob_core", version=version),),
            columns=("violence_12m",),
            dims=("sex",),
        )
        response = hub.client.post(
            "/v1/agreements",
            json=terms.model_dump(mode="json"),
            headers=hub.headers("secretariat"),
        )
        assert response.status_code == expected, response.text
    assert response.json()["agreement"]["terms"]["modules"] == [{"name": "lnob_core", "version": 1}]
    refused = make_terms(
        [node],
        agreement_id="modules-v9",
        datasets=(),
        modules=(ModuleRef(name="lnob_core", version=9),),
    )
    body = hub.client.post(
        "/v1/agreements", json=refused.model_dump(mode="json"), headers=hub.headers("secretariat")
    ).json()
    assert body["error"]["code"] == "module_not_shipped"
    assert "lnob_core version 9" in body["error"]["message"]
