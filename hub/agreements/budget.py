"""What each node reported it spent under an agreement: the one budget figure the hub shows.

A node's ledger is the authority; what the hub knows of it is the releases the node sent
back, each carrying the rho it was charged. Refusals, failures and tasks never answered
cost nothing here, so a query every node refused changes no figure, at the hub or at any
node. Counted in the agreement's current budget period (contracts.agreement_rules), across
versions as the node counts, and summed exactly (contracts.budget).
"""

from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from contracts import budget as exact
from contracts.agreement_rules import budget_window
from contracts.v1 import AgreementTerms
from hub.queries.models import QueryNodeRow, QueryRow

ANSWERED = "ok"


def spent_by_node(
    session: Session, *, terms: AgreementTerms, now: datetime | None = None
) -> dict[str, Decimal]:
    """Rho each node party reported spent in the current period (zero for a silent one)."""
    start, end = budget_window(terms, now or datetime.now(UTC))
    costs: dict[str, list[float | str | Decimal]] = {node_id: [] for node_id in terms.node_ids}
    rows = session.execute(
        select(QueryNodeRow.node_id, QueryNodeRow.release, QueryRow.spec, QueryRow.created_at)
        .join(QueryRow, QueryRow.query_id == QueryNodeRow.query_id)
        .where(QueryRow.agreement_id == terms.agreement_id, QueryNodeRow.outcome == ANSWERED)
    )
    for node_id, release, spec, created in rows:
        made = created if created.tzinfo is not None else created.replace(tzinfo=UTC)
        if (start is not None and made < start) or (end is not None and made >= end):
            continue
        reported = (release or {}).get("rho")
        costs.setdefault(node_id, []).append(reported if reported is not None else spec["rho"])
    return {node_id: exact.total(values) for node_id, values in costs.items()}


def spent(by_node: dict[str, Decimal]) -> Decimal:
    """The agreement's figure: the most any one node spent (each node has its own budget)."""
    return max(by_node.values(), default=exact.ZERO)
