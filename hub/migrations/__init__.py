"""Alembic migrations of the hub database; `schema` runs them."""
