"""View models of the web pages, built from the hub's own services (no logic of their own
beyond arranging what those return for a page)."""

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from contracts import budget as exact
from contracts.agreement_rules import Section, plain_language
from contracts.budget_anchor import Anchor, anchor
from contracts.v1 import AgreementTerms
from hub.agreements import service as agreements
from hub.agreements.schemas import AgreementRead
from hub.auth import organisations as auth_organisations
from hub.auth.schemas import OrganisationRead, User
from hub.nodes import service as federation
from hub.nodes.schemas import EnrollmentTokenCreate, EnrollmentTokenRead, NodeRead
from hub.queries.models import QueryNodeRow
from hub.web.exceptions import FormInvalid

# Node task outcomes that prove the node was reachable (it answered, even with a refusal).
NODE_ANSWERED = ("ok", "refused", "failed")
# A node that has not answered for this long is shown as quiet.
QUIET_AFTER = timedelta(days=2)


def _invalid(exc: ValidationError) -> FormInvalid:
    """The form fields a validation error is about (a field's own name: `parties`, never
    `parties.1.country`), for the page to mark each one."""
    fields = tuple(sorted({str(e["loc"][0]) if e["loc"] else "form" for e in exc.errors()}))
    return FormInvalid("check these fields: " + ", ".join(fields), fields=fields)


def _text(form: Mapping[str, Any], name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _split(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in re.split(r"[,\n]", text) if part.strip())


# --- steward ------------------------------------------------------------------------------


@dataclass(frozen=True)
class VersionSignature:
    """One version and one of the steward's nodes: signed there when (the date inside the
    signature), whether the hub has received it, and whether the version is in force."""

    version: int
    node_id: str
    signed_at: datetime | None
    status: str


@dataclass(frozen=True)
class StewardAgreement:
    read: AgreementRead
    my_nodes: tuple[str, ...]
    awaiting_mine: tuple[str, ...]
    sections: tuple[Section, ...]
    versions: tuple[VersionSignature, ...] = ()


def steward_agreements(*, session: Session, user: User) -> list[StewardAgreement]:
    """Agreements naming one of the steward's nodes, with what still awaits their signature."""
    out = []
    for read in agreements.list_agreements(session=session, user=user):
        terms = read.agreement.terms
        mine = tuple(n for n in terms.node_ids if n in user.node_ids)
        if not mine:
            continue
        every = agreements.list_versions(
            session=session, agreement_id=terms.agreement_id, user=user
        )
        versions = tuple(
            VersionSignature(
                version=v.agreement.terms.version,
                node_id=node_id,
                signed_at=next((s.signed_at for s in v.signers if s.signer == node_id), None),
                status=v.status,
            )
            for v in reversed(every)
            for node_id in v.agreement.terms.node_ids
            if node_id in mine
        )
        out.append(
            StewardAgreement(
                read=read,
                my_nodes=mine,
                awaiting_mine=tuple(n for n in read.missing_signers if n in mine),
                sections=plain_language(terms),
                versions=versions,
            )
        )
    return out


def budget_anchor(rho: float | Decimal) -> Anchor:
    """What a spend of `rho` means for one person (the wording is in the templates)."""
    return anchor(rho)


def exact_rho(rho: float | Decimal) -> Decimal:
    return exact.rho(rho)


# --- secretariat --------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeView:
    node: NodeRead
    last_contact: datetime | None
    health: str  # removed | never | quiet | ok


@dataclass(frozen=True)
class SecretariatOverview:
    organisations: list[OrganisationRead]
    nodes: list[NodeView]
    tokens: list[EnrollmentTokenRead]
    agreements: list[AgreementRead]


def valid_node_id(node_id: str) -> bool:
    try:
        EnrollmentTokenCreate(node_id=node_id)
    except ValidationError:
        return False
    return True


def node_views(*, session: Session, now: datetime | None = None) -> list[NodeView]:
    """Registered nodes with when each last answered a task (release, refusal or error)."""
    now = now or datetime.now(UTC)
    seen = {
        node_id: at
        for node_id, at in session.execute(
            select(QueryNodeRow.node_id, func.max(QueryNodeRow.answered_at))
            .where(QueryNodeRow.outcome.in_(NODE_ANSWERED))
            .group_by(QueryNodeRow.node_id)
        )
        if at is not None
    }
    views = []
    for node in federation.list_nodes(session=session):
        last = seen.get(node.node_id)
        if node.status == "removed":
            health = "removed"
        elif last is None:
            health = "never"
        elif now - last > QUIET_AFTER:
            health = "quiet"
        else:
            health = "ok"
        views.append(NodeView(node=node, last_contact=last, health=health))
    return views


def secretariat_overview(*, session: Session) -> SecretariatOverview:
    overview = SecretariatOverview(
        organisations=auth_organisations.list_organisations(session=session),
        nodes=node_views(session=session),
        tokens=federation.list_enrollment_tokens(session=session),
        agreements=agreements.list_agreements(session=session),
    )
    session.rollback()
    return overview


def _parties(text: str) -> list[dict[str, Any]]:
    """One party a line: `organisation | role | country | node` (the last two optional)."""
    parties = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        parts = [p.strip() for p in line.split("|")]
        if len(parts) < 2 or len(parts) > 4 or not parts[0] or not parts[1]:
            raise FormInvalid(
                f"party line {number} should read: organisation | role | country | node",
                fields=("parties",),
            )
        parts += [""] * (4 - len(parts))
        parties.append(
            {
                "organisation": parts[0],
                "role": parts[1],
                "country": parts[2] or None,
                "node_id": parts[3] or None,
            }
        )
    return parties


def _datasets(text: str) -> list[dict[str, Any]]:
    out = []
    for item in _split(text):
        name, _, version = item.partition(":")
        if not version.strip().isdigit():
            raise FormInvalid(
                "each dataset should read: name:contract version", fields=("datasets",)
            )
        out.append({"name": name.strip(), "contract_version": int(version)})
    return out


def _day(text: str, name: str) -> datetime:
    try:
        return datetime.fromisoformat(text).replace(tzinfo=UTC)
    except ValueError as exc:
        raise FormInvalid(f"check these fields: {name}", fields=(name,)) from exc


def terms_from_form(form: Mapping[str, Any], *, hub_id: str) -> AgreementTerms:
    """The drafting form as agreement terms (version 1); the hub's own id is filled in."""
    measures = form.getlist("measures") if hasattr(form, "getlist") else form.get("measures", [])
    data = {
        "agreement_id": _text(form, "agreement_id"),
        "version": 1,
        "title": _text(form, "title"),
        "purpose": _text(form, "purpose"),
        "hub_id": hub_id,
        "parties": _parties(_text(form, "parties")),
        "datasets": _datasets(_text(form, "datasets")),
        "measures": tuple(m for m in measures if isinstance(m, str)),
        "columns": _split(_text(form, "columns")),
        "dims": _split(_text(form, "dims")),
        "max_dims": _text(form, "max_dims") or "2",
        "min_cell_size": _text(form, "min_cell_size") or "10",
        "rho_per_query_max": _text(form, "rho_per_query_max"),
        "rho_budget": _text(form, "rho_budget"),
        "analyst_organisations": _split(_text(form, "analyst_organisations")),
        "dissemination": _text(form, "dissemination") or "partners",
        "aggregation": _text(form, "aggregation") or "per_node",
        "collusion": _text(form, "collusion") or "0",
        "valid_from": _day(_text(form, "valid_from"), "valid_from"),
        # The form asks for the last day in force, included; the terms' bound is exclusive
        # (`contracts.agreement_rules.validity_at`): in force until the next day begins.
        "valid_until": _day(_text(form, "valid_until"), "valid_until") + timedelta(days=1),
    }
    try:
        return AgreementTerms.model_validate(data)
    except ValidationError as exc:
        raise _invalid(exc) from exc
