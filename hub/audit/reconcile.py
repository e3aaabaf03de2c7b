"""Reconcile the hub's audit log with each node's: pure logic over exports, for auditors.

Rules (each broken rule is one listed difference):
- every release a node stored answers a query the hub sent to that node;
- every answer the hub combined ("ok" outcome) is a release the node stored;
- every charge a node made is for a query the hub sent it, once, at the rho it asked (once
  per attempt of a secure aggregation query, for no more attempts than the hub ran; a
  charge the node returned, `budget_released`, counts as none; a secure query's last node
  answers a plain request under the derived id the hub logged, `query.per_node_fallback`);
- each node's spent budget per agreement equals the sum of its charges in its log;
- each log's chain holds, and the hub's copies of a node's checkpoints match its chain;
- the hub holds a signed checkpoint of each node's log that leaves at most
  `overdue_entries` entries after it (HUB_CHECKPOINT_OVERDUE_ENTRIES).
"""

import base64
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel

from contracts import budget as exact
from contracts.errors import RhoNotFinite
from contracts.v1.audit import (
    AuditEntry,
    AuditExportHeader,
    AuditVerification,
    past_keys,
    verify_log,
)
from hub.settings import CHECKPOINT_OVERDUE_ENTRIES

# Twice a node's default checkpoint cadence (NODE_AUDIT_CHECKPOINT_EVERY = 100): room for
# one checkpoint signed but not yet published.

Kind = Literal[
    "chain_invalid",
    "checkpoints_overdue",
    "export_incomplete",
    "node_log_missing",
    "release_without_hub_query",
    "hub_result_without_node_release",
    "charge_without_hub_query",
    "extra_charge",
    "charge_rho_mismatch",
    "budget_mismatch",
]


class Difference(BaseModel):
    kind: Kind
    node_id: str | None = None
    query_id: str | None = None
    agreement_id: str | None = None
    message: str


class Reconciliation(BaseModel):
    hub_id: str
    nodes: list[str]
    hub_queries: int
    node_releases: int
    verifications: list[AuditVerification]
    differences: list[Difference]

    @property
    def ok(self) -> bool:
        return not self.differences


@dataclass
class AuditLog:
    """One side's export, parsed: the header line and the entries after it."""

    header: AuditExportHeader
    entries: list[AuditEntry] = field(default_factory=list)


def parse_export(lines: list[str]) -> AuditLog:
    """Raises ValueError (pydantic's ValidationError) on a malformed export."""
    rows = [line for line in lines if line.strip()]
    if not rows:
        raise ValueError("the export is empty")
    header = AuditExportHeader.model_validate_json(rows[0])
    return AuditLog(header, [AuditEntry.model_validate_json(r) for r in rows[1:]])


def verify_export(log: AuditLog, *, checkpoints: list[str] | None = None) -> AuditVerification:
    header = log.header
    own = list(header.checkpoints) if header.side == "node" else []
    return verify_log(
        side=header.side,
        owner_id=header.owner_id,
        entries=log.entries,
        head=(header.head_seq, header.head_hash) if header.complete else None,
        checkpoints=own + list(checkpoints or []),
        public_jwk=header.public_jwk if header.side == "node" else None,
        # Keys the node rotated out are in its own log: checkpoints they signed still count.
        previous_keys=past_keys(log.entries) if header.side == "node" else (),
        # The export is a snapshot at `exported_at` (the owner's clock, like `signed_at`):
        # a checkpoint the hub received later is beyond it, not evidence of deletion.
        as_of=header.exported_at,
    )


def _query(entry: AuditEntry) -> str | None:
    return entry.object.removeprefix("query:") if entry.object.startswith("query:") else None


def reconcile(
    hub: AuditLog, nodes: list[AuditLog], *, overdue_entries: int = CHECKPOINT_OVERDUE_ENTRIES
) -> Reconciliation:
    if hub.header.side != "hub" or any(n.header.side != "node" for n in nodes):
        raise ValueError("expected one hub export and node exports")
    diffs: list[Difference] = []
    # What the hub sent: (query, node) -> rho; what it combined: (query, node) with "ok".
    sent: dict[tuple[str, str], Decimal] = {}
    combined: set[tuple[str, str]] = set()
    attempts: dict[str, int] = {}  # secure aggregation: attempts the hub ran per query
    # A secure query's last node asked for a plain release under a derived id.
    renamed: dict[tuple[str, str], str] = {}
    for e in hub.entries:
        qid = _query(e)
        if qid is None:
            continue
        if e.action == "query.submitted":
            for node_id in e.details.get("nodes", []):
                sent[(qid, str(node_id))] = _rho(e.details)
        elif e.action == "query.per_node_fallback":
            node, alias = str(e.details.get("node")), str(e.details.get("node_query_id"))
            sent[(alias, node)] = _rho(e.details)
            renamed[(qid, node)] = alias
        elif e.action == "query.node_outcome":
            if e.details.get("outcome") == "ok":
                node = str(e.details.get("node"))
                combined.add((renamed.get((qid, node), qid), node))
            if e.details.get("aggregation") == "secure":
                attempts[qid] = max(attempts.get(qid, 0), int(e.details.get("attempts", 0)))

    by_id = {n.header.owner_id: n for n in nodes}
    hub_checkpoints: dict[str, list[str]] = defaultdict(list)
    for token in hub.header.checkpoints:
        hub_checkpoints[_checkpoint_owner(token)].append(token)

    verifications = [verify_export(hub)]
    releases = 0
    for node_id, log in sorted(by_id.items()):
        check, node_diffs = _reconcile_node(
            node_id,
            log,
            sent=sent,
            combined=combined,
            attempts=attempts,
            checkpoints=hub_checkpoints[node_id],
            overdue_entries=overdue_entries,
        )
        verifications.append(check)
        diffs.extend(node_diffs)
        releases += sum(1 for e in log.entries if e.action == "release_stored")
    for node_id in sorted({n for _, n in sent} - set(by_id)):
        diffs.append(
            Difference(
                kind="node_log_missing",
                node_id=node_id,
                message="the hub sent queries to this node but no export of its log was given",
            )
        )
    if verifications[0].problem is not None:
        diffs.insert(0, Difference(kind="chain_invalid", message=verifications[0].problem.message))
    return Reconciliation(
        hub_id=hub.header.owner_id,
        nodes=sorted(by_id),
        hub_queries=len({q for q, _ in sent}),
        node_releases=releases,
        verifications=verifications,
        differences=diffs,
    )


def _reconcile_node(
    node_id: str,
    log: AuditLog,
    *,
    sent: dict[tuple[str, str], Decimal],
    combined: set[tuple[str, str]],
    attempts: dict[str, int],
    checkpoints: list[str],
    overdue_entries: int,
) -> tuple[AuditVerification, list[Difference]]:
    diffs: list[Difference] = []
    check = verify_export(log, checkpoints=checkpoints)
    if check.problem is not None:
        diffs.append(
            Difference(kind="chain_invalid", node_id=node_id, message=check.problem.message)
        )
    covered = max((_checkpoint_field(t, "seq") for t in checkpoints), default=0)
    uncovered = log.header.head_seq - covered
    if overdue_entries > 0 and uncovered > overdue_entries:
        diffs.append(
            Difference(
                kind="checkpoints_overdue",
                node_id=node_id,
                message=f"the hub holds no signed checkpoint for the last {uncovered} entries "
                f"of this node's log (newest held: entry {covered}; flagged above "
                f"{overdue_entries})",
            )
        )
    if not log.header.complete:
        diffs.append(
            Difference(
                kind="export_incomplete",
                node_id=node_id,
                message="a filtered export cannot be reconciled; export the whole log",
            )
        )
    stored: set[str] = set()
    charges: Counter[tuple[str, int]] = Counter()  # (query, secure attempt or 0)
    charged_by_agreement: dict[str, Decimal] = defaultdict(Decimal)
    for e in log.entries:
        qid = _query(e)
        if qid is None:
            continue
        if e.action == "release_stored":
            stored.add(qid)
            if (qid, node_id) not in sent:
                diffs.append(
                    Difference(
                        kind="release_without_hub_query",
                        node_id=node_id,
                        query_id=qid,
                        message="the node released an answer to a query the hub has no "
                        "record of sending it",
                    )
                )
        elif e.action == "budget_released":
            # A charge returned because its release failed before any noise was drawn.
            agreement = str(e.details.get("agreement_id", ""))
            charged_by_agreement[agreement] = exact.EXACT.subtract(
                charged_by_agreement[agreement], _rho(e.details)
            )
            charges[(qid, int(e.details.get("attempt", 0)))] -= 1
        elif e.action == "budget_charged":
            rho = _rho(e.details)
            agreement = str(e.details.get("agreement_id", ""))
            charged_by_agreement[agreement] = exact.add(charged_by_agreement[agreement], rho)
            charges[(qid, int(e.details.get("attempt", 0)))] += 1
            if (qid, node_id) not in sent:
                diffs.append(
                    Difference(
                        kind="charge_without_hub_query",
                        node_id=node_id,
                        query_id=qid,
                        agreement_id=agreement,
                        message="the node charged budget for a query the hub never sent it",
                    )
                )
            elif sent[(qid, node_id)] != rho:
                diffs.append(
                    Difference(
                        kind="charge_rho_mismatch",
                        node_id=node_id,
                        query_id=qid,
                        agreement_id=agreement,
                        message="the node charged another rho than the hub asked for",
                    )
                )
    for (qid, attempt), count in sorted(charges.items()):
        if count > 1:
            diffs.append(
                Difference(
                    kind="extra_charge",
                    node_id=node_id,
                    query_id=qid,
                    message=f"the node charged this query {count} times",
                )
            )
        elif attempt > attempts.get(qid, 0):
            diffs.append(
                Difference(
                    kind="extra_charge",
                    node_id=node_id,
                    query_id=qid,
                    message=f"the node charged secure attempt {attempt}, which the hub never ran",
                )
            )
    for budget in log.header.budgets:
        logged = charged_by_agreement.get(budget.agreement_id, exact.ZERO)
        if budget.rho_spent != logged:
            diffs.append(
                Difference(
                    kind="budget_mismatch",
                    node_id=node_id,
                    agreement_id=budget.agreement_id,
                    message=f"the node's ledger says rho {exact.text(budget.rho_spent)} spent, "
                    f"the charges in its log add up to {exact.text(logged)}",
                )
            )
    for qid, answered_by in sorted(combined):
        if answered_by == node_id and qid not in stored:
            diffs.append(
                Difference(
                    kind="hub_result_without_node_release",
                    node_id=node_id,
                    query_id=qid,
                    message="the hub combined an answer from this node that the node's "
                    "log does not show it released",
                )
            )
    return check, diffs


def _rho(details: dict[str, Any]) -> Decimal:
    """A cost as logged (a JSON number: the double that was signed), as its exact decimal."""
    value = details.get("rho", 0)
    try:
        return exact.rho(value if isinstance(value, int | float) else str(value))
    except (RhoNotFinite, ArithmeticError):
        return exact.ZERO


def _checkpoint_owner(token: str) -> str:
    """The node a checkpoint names, read without verifying (verification follows per node)."""
    return str(_checkpoint_payload(token).get("node_id", ""))


def _checkpoint_field(token: str, name: str) -> int:
    """A number from a checkpoint, read without verifying (a forgery fails `verify_export`)."""
    value = _checkpoint_payload(token).get(name)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _checkpoint_payload(token: str) -> dict[str, Any]:
    try:
        payload = token.split(".")[1]
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
