"""Reserve-and-charge budget per period with the release intent, store releases, report budgets."""

import json
from collections import defaultdict
from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import cast
from uuid import UUID

from sqlalchemy import Table, bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session

from contracts import budget as exact
from contracts.agreement_rules import budget_window, period_label
from contracts.v1 import AgreementTerms
from node.agreements.exceptions import AgreementUnknown
from node.agreements.models import AgreementRow
from node.db import ExactDecimal, SessionLike, connection_of, exact_sum, transaction, url_for
from node.ledger.exceptions import BudgetExhausted, QueryIdConflict
from node.ledger.models import BudgetCharge, BudgetRow, ReleaseRow
from node.ledger.schemas import (
    BudgetDetail,
    BudgetLine,
    ChargeInfo,
    ChargeRead,
    Reservation,
    SpendBy,
)
from node.settings import NodeSettings

# The ledger's tables, for the Core statements of the per-query path.
_BUDGETS = cast(Table, BudgetRow.__table__)
_RELEASES = cast(Table, ReleaseRow.__table__)
_CHARGES = cast(Table, BudgetCharge.__table__)
# Built once (SQLAlchemy then reuses their compiled form and cache keys): the statements of
# every charge. The budget row's lock is FOR UPDATE on PostgreSQL (SQLite's BEGIN IMMEDIATE
# already holds the write lock).
_LOCK_BUDGET = (
    select(_BUDGETS.c.rho_spent)
    .where(_BUDGETS.c.agreement_id == bindparam("agreement"))
    .with_for_update()
)
_INTENT = select(_RELEASES.c.request_digest, _RELEASES.c.release).where(
    _RELEASES.c.query_id == bindparam("query")
)
_CHARGE_BUDGET = (
    update(_BUDGETS)
    .where(_BUDGETS.c.agreement_id == bindparam("agreement"))
    .values(rho_spent=bindparam("spent", type_=ExactDecimal()), queries=_BUDGETS.c.queries + 1)
)
_INSERT_INTENT = insert(_RELEASES)
_INSERT_CHARGE = insert(_CHARGES)
_STORE = (
    update(_RELEASES)
    .where(_RELEASES.c.query_id == bindparam("query"), _RELEASES.c.release.is_(None))
    .values(release=bindparam("release"))
)

# Who spent a budget when the request does not say (requests from hubs before v1 carried it).
HUB = "hub"


def _utc(moment: datetime) -> datetime:
    # SQLite hands back naive datetimes; everything the ledger stores is UTC.
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def spent_in_period(
    session: SessionLike, *, terms: AgreementTerms, now: datetime, lifetime: Decimal
) -> tuple[Decimal, int]:
    """Rho spent (exactly) and queries charged under this agreement in `now`'s period."""
    start, end = budget_window(terms, now)
    if start is None or end is None:
        # The whole validity is one period: the lifetime total is that period's sum of
        # charges (kept exactly, in the same transactions), and also holds charges made
        # before per-charge rows existed.
        queries = session.execute(
            select(func.count()).where(BudgetCharge.agreement_id == terms.agreement_id)
        ).scalar_one()
        return lifetime, int(queries)
    rho, queries = session.execute(
        select(exact_sum(BudgetCharge.rho), func.count()).where(
            BudgetCharge.agreement_id == terms.agreement_id,
            BudgetCharge.charged_at >= start,
            BudgetCharge.charged_at < end,
        )
    ).one()
    return rho, int(queries)


def reserve(
    session: SessionLike,
    *,
    query_id: UUID,
    request_digest: str,
    terms: AgreementTerms,
    rho: float,
    now: datetime | None = None,
    charge: ChargeInfo | None = None,
) -> Reservation:
    """In the caller's transaction: look up the query id, else charge `rho` and record intent.

    `rho` is the request's cost as it came over the wire; the ledger charges its shortest
    decimal (contracts.budget) and keeps every total exact. The budget row is locked first
    (FOR UPDATE; BEGIN IMMEDIATE on SQLite), so concurrent requests under one agreement are
    serialised and can never overspend. The budget is the one of `now`'s period by the
    agreement's calendar, spent by every version alike, so an amendment never resets what
    was spent.
    """
    now = _utc(now or datetime.now(UTC))
    # Core statements on the session's connection: this runs for every query, and the ORM's
    # unit of work (identity map, flush ordering) costs more than the statements themselves.
    connection = connection_of(session)
    agreement_id = terms.agreement_id
    budget = connection.execute(_LOCK_BUDGET, {"agreement": agreement_id}).first()
    if budget is None:
        connection.execute(
            insert(_BUDGETS), {"agreement_id": agreement_id, "rho_spent": exact.ZERO, "queries": 0}
        )
    lifetime = exact.ZERO if budget is None else budget[0]
    qid = str(query_id)
    existing = connection.execute(_INTENT, {"query": qid}).first()
    if existing is not None:
        if existing[0] != request_digest:
            raise QueryIdConflict("this query id was already used for another request")
        if existing[1] is not None:
            return Reservation(outcome="stored", release_jws=existing[1])
        return Reservation(outcome="pending")
    cost = exact.rho(rho)
    _check_covers(session, terms=terms, cost=cost, now=now, lifetime=lifetime)
    connection.execute(
        _CHARGE_BUDGET, {"agreement": agreement_id, "spent": exact.add(lifetime, cost)}
    )
    connection.execute(
        _INSERT_INTENT,
        {
            "query_id": qid,
            "agreement_id": agreement_id,
            "request_digest": request_digest,
            "rho": cost,
            "created_at": now.isoformat(),
            "release": None,
        },
    )
    info = charge or ChargeInfo(version=terms.version, dataset="", measure="")
    connection.execute(
        _INSERT_CHARGE,
        {
            "query_id": qid,
            "agreement_id": agreement_id,
            "version": info.version,
            "rho": cost,
            "charged_at": now,
            "period": period_label(terms, now),
            "analyst": info.analyst,
            "organisation": info.organisation,
            "dataset": info.dataset,
            "measure": info.measure,
            "column": info.column,
            "group_by": json.dumps(list(info.group_by)),
        },
    )
    return Reservation(outcome="charged")


def release_reservation(session: Session, *, query_id: UUID, request_digest: str) -> float | None:
    """Undo this request's charge when its release failed before any noise was drawn (the
    caller knows that; the ledger cannot). Returns the rho given back, or None when there is
    nothing to undo: no intent, another request's, or a release already stored."""
    budget_id = session.execute(
        select(ReleaseRow.agreement_id).where(ReleaseRow.query_id == str(query_id))
    ).scalar_one_or_none()
    if budget_id is None:
        return None
    # The budget row first, as `reserve` locks it: the same order, so no deadlock.
    budget = session.execute(
        select(BudgetRow).where(BudgetRow.agreement_id == budget_id).with_for_update()
    ).scalar_one()
    intent = session.get(ReleaseRow, str(query_id), with_for_update=True)
    if intent is None or intent.release is not None or intent.request_digest != request_digest:
        return None
    # Exact, as the charge was: the running total comes back to what it was before it.
    budget.rho_spent = max(exact.ZERO, exact.EXACT.subtract(budget.rho_spent, intent.rho))
    budget.queries = max(0, budget.queries - 1)
    session.execute(delete(BudgetCharge).where(BudgetCharge.query_id == str(query_id)))
    session.delete(intent)
    session.flush()
    # The chain records costs as the JSON numbers the hub signed.
    return float(intent.rho)


def check_covers(session: Session, *, terms: AgreementTerms, rho: float, now: datetime) -> None:
    """Raise BudgetExhausted unless `now`'s period can still cover `rho` (charges nothing)."""
    budget = session.get(BudgetRow, terms.agreement_id)
    lifetime = budget.rho_spent if budget is not None else exact.ZERO
    _check_covers(session, terms=terms, cost=exact.rho(rho), now=_utc(now), lifetime=lifetime)


def _check_covers(
    session: SessionLike, *, terms: AgreementTerms, cost: Decimal, now: datetime, lifetime: Decimal
) -> None:
    # Exact: a budget of 0.37 admits exactly 37 charges of 0.01, and never a 38th. For the
    # whole validity that is one locked row (no scan); a calendar period sums its charges.
    start, end = budget_window(terms, now)
    if start is None or end is None:
        spent = lifetime
    else:
        spent, _ = spent_in_period(session, terms=terms, now=now, lifetime=lifetime)
    if not exact.covers(budget=terms.rho_budget, spent=spent, cost=cost):
        raise BudgetExhausted(
            "term rho_budget: the agreement's privacy budget at this node for the current "
            "period cannot cover this query"
        )


def stored_release(session: Session, *, query_id: UUID, request_digest: str) -> str | None:
    """The release stored under `query_id` for exactly this request, if any."""
    existing = session.get(ReleaseRow, str(query_id))
    if existing is None:
        return None
    if existing.request_digest != request_digest:
        raise QueryIdConflict("this query id was already used for another request")
    return existing.release


def store_release(session: SessionLike, *, query_id: UUID, release_jws: str) -> str:
    """Store the release if none is stored yet; returns the one stored (first writer wins)."""
    # Core, as in `reserve`: an ORM-enabled UPDATE would also search the identity map.
    connection = connection_of(session)
    result = connection.execute(_STORE, {"query": str(query_id), "release": release_jws})
    if result.rowcount == 1:
        return release_jws
    stored: str | None = connection.execute(_INTENT, {"query": str(query_id)}).one()[1]
    assert stored is not None
    return stored


def _status(rows: list[AgreementRow]) -> str:
    statuses = {r.status for r in rows}
    return next((s for s in ("revoked", "suspended") if s in statuses), "active")


def _line(session: Session, rows: list[AgreementRow], now: datetime) -> BudgetLine:
    latest = rows[-1]
    terms = AgreementTerms.model_validate_json(latest.terms)
    budget = session.get(BudgetRow, latest.agreement_id)
    lifetime = budget.rho_spent if budget else exact.ZERO
    spent, queries = spent_in_period(session, terms=terms, now=now, lifetime=lifetime)
    if terms.budget_period == "validity" and budget is not None:
        queries = max(queries, budget.queries)
    start, end = budget_window(terms, now)
    return BudgetLine(
        agreement_id=latest.agreement_id,
        version=latest.version,
        rho_budget=exact.rho(terms.rho_budget),
        rho_spent=spent,
        rho_remaining=exact.remaining(terms.rho_budget, spent),
        queries=queries,
        budget_period=terms.budget_period,
        period=period_label(terms, now),
        period_start=start,
        period_end=end,
        rho_spent_all_time=lifetime,
        status=_status(rows),
    )


def _grouped(session: Session) -> dict[str, list[AgreementRow]]:
    rows = session.execute(
        select(AgreementRow).order_by(AgreementRow.agreement_id, AgreementRow.version)
    ).scalars()
    grouped: dict[str, list[AgreementRow]] = defaultdict(list)
    for row in rows:
        grouped[row.agreement_id].append(row)
    return grouped


def budget_report(
    *, home: Path, settings: NodeSettings | None = None, now: datetime | None = None
) -> list[BudgetLine]:
    """Budget per agreement in the current period, under the newest version signed here."""
    moment = _utc(now or datetime.now(UTC))
    with transaction(url_for(home=home, settings=settings)) as session:
        return [_line(session, rows, moment) for rows in _grouped(session).values()]


def budget_detail(
    *,
    home: Path,
    agreement_id: str,
    settings: NodeSettings | None = None,
    now: datetime | None = None,
) -> BudgetDetail:
    """What was spent under one agreement: this period, by whom, per version, per charge."""
    moment = _utc(now or datetime.now(UTC))
    with transaction(url_for(home=home, settings=settings)) as session:
        rows = _grouped(session).get(agreement_id)
        if not rows:
            raise AgreementUnknown("no such agreement is signed at this node")
        line = _line(session, rows, moment)
        charges = [
            ChargeRead(
                query_id=c.query_id,
                version=c.version,
                rho=c.rho,
                charged_at=_utc(c.charged_at),
                period=c.period,
                requested_by=c.analyst or HUB,
                organisation=c.organisation,
                dataset=c.dataset,
                measure=c.measure,
                column=c.column,
                group_by=tuple(json.loads(c.group_by)),
            )
            for c in session.execute(
                select(BudgetCharge)
                .where(BudgetCharge.agreement_id == agreement_id)
                .order_by(BudgetCharge.charged_at, BudgetCharge.id)
            ).scalars()
        ]
    return BudgetDetail(
        line=line,
        by_organisation=_sums(charges, lambda c: c.organisation or HUB),
        by_version=_sums(charges, lambda c: f"v{c.version}"),
        by_period=_sums(charges, lambda c: c.period),
        charges=tuple(charges),
    )


def _sums(charges: list[ChargeRead], key: Callable[[ChargeRead], str]) -> tuple[SpendBy, ...]:
    grouped: dict[str, list[Decimal]] = defaultdict(list)
    for charge in charges:
        grouped[key(charge)].append(charge.rho)
    return tuple(
        SpendBy(key=k, rho=exact.add(*costs), queries=len(costs))
        for k, costs in sorted(grouped.items())
    )
