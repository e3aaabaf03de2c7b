"""The one Alembic environment of both databases, run by `runtime.migrations.Schema`.

The schema hands over its connection and its models' metadata; each side keeps its own
revisions (`hub/migrations/versions/`, `node/migrations/versions/`).
"""

from alembic import context
from sqlalchemy import Connection, MetaData

connection: Connection = context.config.attributes["connection"]
metadata: MetaData = context.config.attributes["metadata"]
context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite alters tables by copying them: batch mode lets later revisions alter columns.
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
