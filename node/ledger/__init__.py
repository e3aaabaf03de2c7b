"""Privacy budget ledger and stored releases (idempotent by query id)."""
