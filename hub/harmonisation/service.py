"""Shipped modules (loaded and validated once), their signed publication, and coverage."""

import functools
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import yaml
from joserfc.jwk import OKPKey
from pydantic import ValidationError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from contracts import signing
from contracts.agreement_rules import HUB_DIMS
from contracts.v1 import CoverageReport, Module, ModuleRef, NodeStatus, QuerySpec, Signed
from contracts.v1.harmonisation import (
    NOT_COLLECTED_CODE,
    ModuleCoverageView,
    NodeCoverage,
    VariableAnswer,
    VariableCoverage,
    not_collected_variables,
)
from hub.audit import service as audit
from hub.harmonisation.exceptions import (
    CoverageInvalid,
    ModuleFileInvalid,
    ModuleNotFound,
    ModuleNotShipped,
)
from hub.harmonisation.models import ModuleCoverageRow
from hub.harmonisation.schemas import CoverageAccepted, ModuleSummary
from hub.home import HubIdentity
from hub.nodes.models import Node
from hub.nodes.service import check_fresh, verify_node_message

MODULES_DIR = Path(__file__).parent / "modules"


@functools.cache
def shipped_modules() -> tuple[Module, ...]:
    """Every module file shipped with the hub, validated by the v1 models (cached)."""
    modules = []
    for path in sorted(MODULES_DIR.glob("*.yaml")):
        try:
            module = Module.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
        except (yaml.YAMLError, ValidationError) as exc:
            raise ModuleFileInvalid(path.name) from exc
        if path.stem != f"{module.name}-v{module.version}":
            raise ModuleFileInvalid(path.name)
        modules.append(module)
    return tuple(modules)


def get_module(*, name: str, version: int | None = None) -> Module:
    """One shipped module; the newest version when `version` is None."""
    found = [m for m in shipped_modules() if m.name == name]
    if version is not None:
        found = [m for m in found if m.version == version]
    if not found:
        raise ModuleNotFound()
    return max(found, key=lambda m: m.version)


def check_shipped(refs: Sequence[ModuleRef]) -> None:
    """Refuse an agreement naming a module version this hub does not ship."""
    shipped = {(m.name, m.version) for m in shipped_modules()}
    for ref in refs:
        if (ref.name, ref.version) not in shipped:
            raise ModuleNotShipped(ref.name, ref.version)


def list_modules() -> list[ModuleSummary]:
    return [
        ModuleSummary(
            name=m.name,
            version=m.version,
            title=m.title,
            variables=tuple(v.name for v in m.variables),
            sources=tuple(s.title for s in m.sources),
        )
        for m in shipped_modules()
    ]


def signed_module(*, name: str, version: int, key: OKPKey) -> Signed:
    """The module as a hub-signed document, which a node verifies with its pinned hub key."""
    return Signed(jws=signing.sign(get_module(name=name, version=version), key))


def accept_coverage(
    *,
    session: Session,
    identity: HubIdentity,
    signed: Signed,
    skew_seconds: int,
    now: datetime | None = None,
) -> CoverageAccepted:
    """Store a node's signed coverage report, replacing what it published before."""
    now = now or datetime.now(UTC)
    node, report = verify_node_message(
        session=session, token=signed.jws, model=CoverageReport, now=now
    )
    if report.hub_id != identity.hub_id:
        raise CoverageInvalid("the coverage report names another hub")
    check_fresh(
        session=session,
        node_id=node.node_id,
        nonce=report.nonce,
        issued_at=report.issued_at,
        now=now,
        skew_seconds=skew_seconds,
    )
    for mapping in report.mappings:
        module = get_module(name=mapping.module, version=mapping.version)
        known = {v.name for v in module.variables if v.mappable}
        if not set(mapping.variables) <= known:
            raise CoverageInvalid(
                f"the coverage of {mapping.module} v{mapping.version} names variables the "
                "module does not have"
            )
    session.execute(delete(ModuleCoverageRow).where(ModuleCoverageRow.node_id == node.node_id))
    for mapping in report.mappings:
        session.add(
            ModuleCoverageRow(
                node_id=node.node_id,
                module=mapping.module,
                version=mapping.version,
                variables=dict(mapping.variables),
                published_at=now,
            )
        )
    audit.append(
        session=session,
        actor=f"node:{node.node_id}",
        action="module.coverage_published",
        object=f"node:{node.node_id}",
        details={"mappings": [f"{m.module}:v{m.version}" for m in report.mappings]},
    )
    session.commit()
    return CoverageAccepted(node_id=node.node_id, mappings=len(report.mappings))


def coverage(*, session: Session, name: str, version: int | None = None) -> ModuleCoverageView:
    """Per variable, which nodes map, derive or do not collect it, and which countries can
    answer it. Hub dims (country) are answerable by every active node."""
    module = get_module(name=name, version=version)
    rows = session.scalars(
        select(ModuleCoverageRow).where(
            ModuleCoverageRow.module == module.name, ModuleCoverageRow.version == module.version
        )
    ).all()
    nodes = {n.node_id: n for n in session.scalars(select(Node).where(Node.status == "active"))}
    session.rollback()
    variables = []
    for variable in module.variables:
        entries: list[NodeCoverage] = []
        if variable.hub_dim:
            entries = [
                NodeCoverage(node_id=n.node_id, country=n.country, status="mapped")
                for n in sorted(nodes.values(), key=lambda n: n.node_id)
            ]
        else:
            for row in sorted(rows, key=lambda r: r.node_id):
                node = nodes.get(row.node_id)
                if node is None:
                    continue
                status = row.variables.get(variable.name, "not_collected")
                entries.append(
                    NodeCoverage(node_id=row.node_id, country=node.country, status=status)
                )
        countries = sorted(
            {e.country for e in entries if e.status != "not_collected" and e.country}
        )
        variables.append(
            VariableCoverage(
                variable=variable.name,
                title=variable.title,
                nodes=tuple(entries),
                countries=tuple(countries),
            )
        )
    return ModuleCoverageView(
        module=module.name, version=module.version, variables=tuple(variables)
    )


def variable_answers(spec: QuerySpec, nodes: Sequence[NodeStatus]) -> tuple[VariableAnswer, ...]:
    """For a module query, or a dataset query some node does not fully collect (a shared
    codebook's column its survey lacks): per queried variable, who answered and who does not
    collect it.

    A node that answered answered every variable of the query; a node that refused with
    `variable_not_collected` named the variables it lacks. Nodes refusing for any other
    reason (or not answering) appear in neither list: their outcome says why.
    """
    lacking_any = any(n.error_code == NOT_COLLECTED_CODE for n in nodes)
    if spec.module_version is None and not lacking_any:
        return ()
    names: dict[str, None] = {}
    if spec.column is not None:
        names[spec.column] = None
    for dim in (*spec.group_by, *(f.column for f in spec.filters)):
        if dim not in HUB_DIMS:
            names[dim] = None
    answered = tuple(n.node_id for n in nodes if n.outcome == "ok")
    lacking = {
        n.node_id: set(not_collected_variables(n.message))
        for n in nodes
        if n.error_code == NOT_COLLECTED_CODE
    }
    return tuple(
        VariableAnswer(
            variable=name,
            answered=answered,
            not_collected=tuple(node for node, missing in lacking.items() if name in missing),
        )
        for name in names
    )
