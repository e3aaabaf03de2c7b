"""Alembic migrations of the hub database; `schema` runs them, `regenerate` writes 0001."""
