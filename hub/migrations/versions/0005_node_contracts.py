"""node contracts: each node's public dataset contracts, per version (issue #24).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "node_contracts",
        sa.Column("node_id", sa.String(length=100), nullable=False),
        sa.Column("dataset", sa.String(length=63), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=100), nullable=False),
        sa.Column("contract", sa.JSON(), nullable=False),
        sa.Column("kid", sa.String(length=100), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["node_id"], ["nodes.node_id"], name=op.f("fk_node_contracts_node_id_nodes")
        ),
        sa.PrimaryKeyConstraint("node_id", "dataset", "version", name=op.f("pk_node_contracts")),
    )


def downgrade() -> None:
    op.drop_table("node_contracts")
