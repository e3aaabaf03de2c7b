"""harmonisation: the coverage nodes publish about their module mappings (issue #14).

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
        "module_coverage",
        sa.Column("node_id", sa.String(length=100), nullable=False),
        sa.Column("module", sa.String(length=63), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("variables", sa.JSON(), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("node_id", "module", "version", name=op.f("pk_module_coverage")),
    )


def downgrade() -> None:
    op.drop_table("module_coverage")
