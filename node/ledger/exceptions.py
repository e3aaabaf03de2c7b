"""Errors of the privacy budget ledger (see node.exceptions)."""

from node.exceptions import LedgerError


class BudgetExhausted(LedgerError):
    code = "budget_exhausted"


class QueryIdConflict(LedgerError):
    code = "query_id_conflict"
