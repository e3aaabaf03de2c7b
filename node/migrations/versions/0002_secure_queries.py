"""secure queries: the query ids a node accepted for secure aggregation (issue #20).

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "secure_queries",
        sa.Column("query_id", sa.String(length=36), nullable=False),
        sa.Column("first_seen", sa.String(length=40), nullable=False),
        sa.PrimaryKeyConstraint("query_id", name=op.f("pk_secure_queries")),
    )


def downgrade() -> None:
    op.drop_table("secure_queries")
