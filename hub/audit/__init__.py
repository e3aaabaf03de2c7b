"""The hub's append-only, hash-chained audit log."""
