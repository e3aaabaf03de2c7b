"""The hub database's Alembic revisions (`versions/`), run by `hub.db.SCHEMA`."""
