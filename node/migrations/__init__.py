"""Alembic migrations of the node database; `schema` runs them."""
