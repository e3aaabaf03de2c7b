"""Modules and mappings at the node: fetch/add, draft, validate, install, coverage, query view."""

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import polars as pl
from pydantic import ValidationError

from contracts import signing
from contracts.v1 import (
    AgreementTerms,
    CoverageReport,
    DatasetContract,
    MappingCoverage,
    Module,
    QuerySpec,
    Signed,
)
from contracts.v1.harmonisation import not_collected_message
from node.audit import service as audit
from node.datasets import service as datasets
from node.datasets.exceptions import UnknownDataset
from node.db import transaction, url_for
from node.exceptions import HubUnreachable
from node.harmonisation import draft as drafting
from node.harmonisation import rules, store
from node.harmonisation.exceptions import (
    MappingInvalid,
    ModuleInvalid,
    ModuleNotHeld,
    ModuleNotInAgreement,
    VariableNotCollected,
)
from node.harmonisation.schemas import Mapping, Rule, ValidationReport, VariableReport
from node.home import load_identity, load_key
from node.settings import NodeSettings

STEWARD = "steward"
HUB_TIMEOUT_SECONDS = 10.0


def fetch_module(
    *,
    home: Path,
    name: str,
    version: int,
    settings: NodeSettings | None = None,
    transport: httpx.BaseTransport | None = None,
) -> Module:
    """Fetch a module from the pinned hub and pin it here once its hub signature verifies."""
    identity = load_identity(home)
    if identity.hub_url is None:
        raise HubUnreachable("no hub URL is pinned (sauti node pin-hub --url)")
    try:
        with httpx.Client(
            base_url=identity.hub_url, transport=transport, timeout=HUB_TIMEOUT_SECONDS
        ) as client:
            response = client.get(f"/v1/modules/{name}/versions/{version}/signed")
    except httpx.HTTPError as exc:
        raise HubUnreachable("the hub is unreachable") from exc
    if response.status_code == 404:
        raise ModuleNotHeld(f"the hub has no module {name} v{version}")
    if not response.is_success:
        raise HubUnreachable(f"the hub answered {response.status_code}")
    try:
        token = Signed.model_validate_json(response.content).jws
    except ValidationError as exc:
        raise ModuleInvalid("the hub's answer is not a signed module") from exc
    return _pin(home, token, settings=settings, how="fetched")


def add_module(*, home: Path, path: Path, settings: NodeSettings | None = None) -> Module:
    """Pin a hub-signed module from a file (`{"jws": ...}` or the bare token), for offline nodes."""
    try:
        text = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ModuleInvalid("the module file cannot be read") from exc
    if text.startswith("{"):
        try:
            text = Signed.model_validate_json(text).jws
        except ValidationError as exc:
            raise ModuleInvalid("the module file is not a signed document") from exc
    return _pin(home, text, settings=settings, how="added")


def _pin(home: Path, token: str, *, settings: NodeSettings | None, how: str) -> Module:
    module = store.save_module(home, token)
    with transaction(url_for(home=home, settings=settings)) as session:
        audit.append(
            session,
            actor=STEWARD,
            action="module_pinned",
            object=f"module:{module.name}:v{module.version}",
            details={"how": how, "digest": signing.digest(module)},
        )
    return module


def list_modules(*, home: Path) -> list[Module]:
    return store.held_modules(home)


def _contract(home: Path, mapping: Mapping) -> DatasetContract:
    try:
        return datasets.get_contract(
            home=home, name=mapping.dataset, version=mapping.contract_version
        )
    except UnknownDataset as exc:
        raise MappingInvalid(
            f"the mapping's dataset {mapping.dataset} v{mapping.contract_version} is not here"
        ) from exc


def draft_mapping(
    *, home: Path, module: str, version: int, dataset: str, reference_year: int | None = None
) -> Mapping:
    held = store.load_module(home, module, version)
    contract = datasets.get_contract(home=home, name=dataset)
    wg = next((m for m in store.held_modules(home) if m.name == "wg_ss"), None)
    return drafting.draft(
        module=held,
        contract=contract,
        wg_module=wg,
        reference_year=reference_year or datetime.now(UTC).year,
    )


def save_draft(*, home: Path, mapping: Mapping, force: bool = False) -> Path:
    path = store.mapping_path(home, mapping.module, mapping.version)
    if path.exists() and not force:
        raise MappingInvalid(
            f"a mapping onto {mapping.module} v{mapping.version} exists; edit it or use --force"
        )
    return store.save_mapping(home, mapping)


def install_mapping(*, home: Path, path: Path, settings: NodeSettings | None = None) -> Mapping:
    """Install an edited mapping file once it has no errors (the old one is replaced)."""
    try:
        mapping = store.parse_mapping(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise MappingInvalid("the mapping file cannot be read") from exc
    _checked(home, mapping)
    store.save_mapping(home, mapping)
    with transaction(url_for(home=home, settings=settings)) as session:
        audit.append(
            session,
            actor=STEWARD,
            action="mapping_installed",
            object=f"mapping:{mapping.module}:v{mapping.version}",
            details={"dataset": mapping.dataset, "contract_version": mapping.contract_version},
        )
    return mapping


def _checked(home: Path, mapping: Mapping) -> tuple[Module, DatasetContract]:
    module = store.load_module(home, mapping.module, mapping.version)
    contract = _contract(home, mapping)
    problems = rules.check(mapping, module=module, contract=contract)
    if problems:
        raise MappingInvalid("; ".join(problems))
    return module, contract


def load_mapping(*, home: Path, module: str, version: int, path: Path | None = None) -> Mapping:
    if path is None:
        return store.load_mapping(home, module, version)
    try:
        return store.parse_mapping(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise MappingInvalid("the mapping file cannot be read") from exc


def validate_mapping(*, home: Path, mapping: Mapping) -> ValidationReport:
    """Errors (each naming its variable) and, when there are none, per variable the local
    levels the mapping leaves out and the rows that end up missing. Local only: the counts
    are shown to the steward and never sent anywhere."""
    module = store.load_module(home, mapping.module, mapping.version)
    contract = _contract(home, mapping)
    problems = rules.check(mapping, module=module, contract=contract)
    base = {"module": mapping.module, "version": mapping.version, "dataset": mapping.dataset}
    if problems:
        return ValidationReport(**base, rows=0, errors=tuple(problems))
    loaded = datasets.load(home=home, name=mapping.dataset, version=mapping.contract_version)
    data = pl.scan_parquet(loaded.parquet_path)
    rows = int(data.select(pl.len()).collect().item())
    reports = []
    for name, rule in rules.collected(mapping, module).items():
        variable = module.variable(name)
        assert variable is not None
        used = rules.inputs(rule)
        lost = rules.expression(rule, variable).is_null() & pl.all_horizontal(
            [pl.col(c).is_not_null() for c in used]
        )
        missing = int(data.select(lost.sum()).collect().item())
        reports.append(
            VariableReport(
                variable=name,
                status=mapping.status(name),
                unmapped_levels=_unmapped(rule, contract),
                rows_missing=missing,
                share_missing=missing / rows if rows else 0.0,
            )
        )
    for variable in module.variables:
        if variable.mappable and mapping.status(variable.name) == "not_collected":
            reports.append(VariableReport(variable=variable.name, status="not_collected"))
    return ValidationReport(**base, rows=rows, variables=tuple(reports))


def _unmapped(rule: Rule, contract: DatasetContract) -> tuple[str, ...]:
    table = getattr(rule, "levels", None)
    if not table:
        return ()
    out: dict[str, None] = {}
    for name in rules.inputs(rule):
        column = contract.column(name)
        if column is not None:
            out.update(dict.fromkeys(c for c in column.level_codes if c not in table))
    return tuple(out)


def coverage(*, home: Path) -> tuple[MappingCoverage, ...]:
    """What the node may publish about its mappings: per variable status, nothing else."""
    found = []
    for mapping in store.mappings(home):
        try:
            module = store.load_module(home, mapping.module, mapping.version)
        except ModuleNotHeld:
            continue
        found.append(
            MappingCoverage(
                module=mapping.module,
                version=mapping.version,
                variables={v.name: mapping.status(v.name) for v in module.variables if v.mappable},
            )
        )
    return tuple(found)


def coverage_report(*, home: Path) -> Signed:
    identity = load_identity(home)
    if identity.hub_id is None:
        raise HubUnreachable("no hub is pinned at this node")
    report = CoverageReport(
        node_id=identity.node_id,
        hub_id=identity.hub_id,
        issued_at=datetime.now(UTC),
        nonce=secrets.token_hex(16),
        mappings=coverage(home=home),
    )
    return Signed(jws=signing.sign(report, load_key(home)))


def publish_coverage(
    *,
    home: Path,
    settings: NodeSettings | None = None,
    transport: httpx.BaseTransport | None = None,
) -> int:
    """Send the signed coverage report to the pinned hub; the number of mappings published."""
    identity = load_identity(home)
    if identity.hub_url is None:
        raise HubUnreachable("no hub URL is pinned (sauti node pin-hub --url)")
    body = coverage_report(home=home)
    try:
        with httpx.Client(
            base_url=identity.hub_url, transport=transport, timeout=HUB_TIMEOUT_SECONDS
        ) as client:
            response = client.post("/v1/modules/coverage", json=body.model_dump())
    except httpx.HTTPError as exc:
        raise HubUnreachable("the hub is unreachable") from exc
    if not response.is_success:
        raise HubUnreachable(f"the hub refused the coverage report ({response.status_code})")
    with transaction(url_for(home=home, settings=settings)) as session:
        audit.append(
            session,
            actor=STEWARD,
            action="coverage_published",
            object="modules",
            details={"mappings": [f"{m.module}:v{m.version}" for m in coverage(home=home)]},
        )
    return len(coverage(home=home))


@dataclass(frozen=True)
class QueryView:
    """What a module query reads: the module view's contract and a scan of its rows."""

    version: int
    contract: DatasetContract
    scan: Callable[[], pl.LazyFrame]


def query_view(*, home: Path, terms: AgreementTerms, spec: QuerySpec) -> QueryView:
    """Check a module query against the agreement, the pinned module and the mapping, and
    give the view to answer it. Raised before anything is charged."""
    version = spec.module_version
    assert version is not None
    if (spec.dataset, version) not in {(m.name, m.version) for m in terms.modules}:
        raise ModuleNotInAgreement("term modules: the agreement does not cover that module")
    module = store.load_module(home, spec.dataset, version)
    mapping = store.load_mapping(home, spec.dataset, version)
    contract = _contract(home, mapping)
    problems = rules.problems_by_variable(mapping, module, contract)
    if problems:
        # The hub learns which module variables need attention; the details (local columns
        # and levels) stay with the steward (`sauti node map validate`).
        names = ", ".join(n for n in problems if n) or "the mapping as a whole"
        raise MappingInvalid(
            f"the mapping onto {spec.dataset} v{version} does not validate at this node"
            f" (variables: {names})"
        )
    wanted = [c for c in (spec.column, *spec.group_by, *(f.column for f in spec.filters)) if c]
    lacking = [
        name
        for name in dict.fromkeys(wanted)
        if module.variable(name) is not None and mapping.status(name) == "not_collected"
    ]
    if lacking:
        raise VariableNotCollected(not_collected_message(lacking))
    loaded = datasets.load(home=home, name=mapping.dataset, version=mapping.contract_version)

    def scan() -> pl.LazyFrame:
        data = pl.scan_parquet(loaded.parquet_path)
        return rules.view_frame(mapping, module=module, contract=contract, data=data)

    return QueryView(
        version=version,
        contract=rules.view_contract(mapping, module=module, contract=contract),
        scan=scan,
    )
