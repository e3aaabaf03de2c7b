"""Append-only, hash-chained audit log of the node."""
