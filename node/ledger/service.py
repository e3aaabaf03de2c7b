"""Reserve-and-charge budget with the release intent, store releases once, report budgets."""

from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from contracts.v1 import AgreementTerms
from node.agreements.models import AgreementRow
from node.db import transaction, url_for
from node.ledger.exceptions import BudgetExhausted, QueryIdConflict
from node.ledger.models import BudgetRow, ReleaseRow
from node.ledger.schemas import BudgetLine, Reservation
from node.settings import NodeSettings

# Float sums of costs may land a hair above the budget they exactly fill.
RHO_TOLERANCE = 1e-12


def reserve(
    session: Session, *, query_id: UUID, request_digest: str, terms: AgreementTerms, rho: float
) -> Reservation:
    """In the caller's transaction: look up the query id, else charge `rho` and record intent.

    The budget row is locked first (FOR UPDATE; BEGIN IMMEDIATE on SQLite), so concurrent
    requests under one agreement are serialised and can never overspend.
    """
    budget = session.execute(
        select(BudgetRow).where(BudgetRow.agreement_id == terms.agreement_id).with_for_update()
    ).scalar_one_or_none()
    if budget is None:
        budget = BudgetRow(agreement_id=terms.agreement_id, rho_spent=0.0, queries=0)
        session.add(budget)
        session.flush()
    existing = session.get(ReleaseRow, str(query_id))
    if existing is not None:
        if existing.request_digest != request_digest:
            raise QueryIdConflict("this query id was already used for another request")
        if existing.release is not None:
            return Reservation(outcome="stored", release_jws=existing.release)
        return Reservation(outcome="pending")
    if budget.rho_spent + rho > terms.rho_budget + RHO_TOLERANCE:
        raise BudgetExhausted("the agreement's privacy budget at this node cannot cover this query")
    budget.rho_spent += rho
    budget.queries += 1
    session.add(
        ReleaseRow(
            query_id=str(query_id),
            agreement_id=terms.agreement_id,
            request_digest=request_digest,
            rho=rho,
            created_at=datetime.now(UTC).isoformat(),
            release=None,
        )
    )
    session.flush()
    return Reservation(outcome="charged")


def store_release(session: Session, *, query_id: UUID, release_jws: str) -> str:
    """Store the release if none is stored yet; returns the one stored (first writer wins)."""
    result = session.execute(
        update(ReleaseRow)
        .where(ReleaseRow.query_id == str(query_id), ReleaseRow.release.is_(None))
        .values(release=release_jws)
    )
    if result.rowcount == 1:  # type: ignore[attr-defined]
        return release_jws
    stored = session.execute(
        select(ReleaseRow.release).where(ReleaseRow.query_id == str(query_id))
    ).scalar_one()
    assert stored is not None
    return stored


def budget_report(*, home: Path, settings: NodeSettings | None = None) -> list[BudgetLine]:
    """Budget per agreement, under the terms of its latest version signed here."""
    with transaction(url_for(home=home, settings=settings)) as session:
        rows = session.execute(
            select(AgreementRow).order_by(AgreementRow.agreement_id, AgreementRow.version)
        ).scalars()
        latest: dict[str, AgreementRow] = {}
        for row in rows:
            latest[row.agreement_id] = row
        lines = []
        for agreement_id, row in latest.items():
            terms = AgreementTerms.model_validate_json(row.terms)
            budget = session.get(BudgetRow, agreement_id)
            spent = budget.rho_spent if budget else 0.0
            lines.append(
                BudgetLine(
                    agreement_id=agreement_id,
                    version=row.version,
                    rho_budget=terms.rho_budget,
                    rho_spent=spent,
                    rho_remaining=max(0.0, terms.rho_budget - spent),
                    queries=budget.queries if budget else 0,
                )
            )
        return lines
