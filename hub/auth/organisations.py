"""Organisations at the hub: the parties agreements name and analysts act for."""

from typing import cast

from sqlalchemy import select
from sqlalchemy.orm import Session

from hub.audit import service as audit
from hub.auth._accounts import (
    utc_now,
)
from hub.auth.exceptions import (
    OrganisationExists,
)
from hub.auth.models import Organisation
from hub.auth.schemas import (
    OrganisationCreate,
    OrganisationRead,
    OrgKind,
)


def org_row(session: Session, slug: str) -> Organisation | None:
    return session.scalars(select(Organisation).where(Organisation.slug == slug)).first()


def _org_read(row: Organisation) -> OrganisationRead:
    return OrganisationRead(
        slug=row.slug,
        name=row.name,
        kind=cast(OrgKind, row.kind),
        country=row.country,
        created_at=row.created_at,
    )


def create_organisation(
    *, session: Session, body: OrganisationCreate, actor: str
) -> OrganisationRead:
    if org_row(session, body.slug) is not None:
        raise OrganisationExists()
    row = Organisation(
        slug=body.slug, name=body.name, kind=body.kind, country=body.country, created_at=utc_now()
    )
    session.add(row)
    session.flush()
    audit.append(
        session=session,
        actor=actor,
        action="org.created",
        object=f"org:{row.slug}",
        details={"kind": row.kind, "country": row.country},
    )
    session.commit()
    return _org_read(row)


def list_organisations(*, session: Session) -> list[OrganisationRead]:
    rows = session.scalars(select(Organisation).order_by(Organisation.slug))
    result = [_org_read(r) for r in rows]
    session.rollback()
    return result


def org_or_create(session: Session, slug: str, *, actor: str) -> Organisation:
    """The organisation, created as kind `other` when a script names one not yet registered."""
    row = org_row(session, slug)
    if row is not None:
        return row
    row = Organisation(slug=slug, name=slug, kind="other", country=None, created_at=utc_now())
    session.add(row)
    session.flush()
    audit.append(
        session=session,
        actor=actor,
        action="org.created",
        object=f"org:{slug}",
        details={"kind": "other", "implicit": True},
    )
    return row
