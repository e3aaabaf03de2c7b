"""Alembic migrations of the node database; `schema` runs them, `regenerate` writes 0001."""
