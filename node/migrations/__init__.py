"""The node database's Alembic revisions (`versions/`), run by `node.db.SCHEMA`."""
