"""node key history: every key a node ever had, with when it was current (issue #7).

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None

_nodes = sa.table(
    "nodes",
    sa.column("node_id", sa.String()),
    sa.column("public_jwk", sa.JSON()),
    sa.column("kid", sa.String()),
    sa.column("registered_at", sa.DateTime(timezone=True)),
    sa.column("previous_jwk", sa.JSON()),
    sa.column("previous_kid", sa.String()),
    sa.column("previous_valid_until", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    node_keys = op.create_table(
        "node_keys",
        sa.Column("node_id", sa.String(length=100), nullable=False),
        sa.Column("kid", sa.String(length=100), nullable=False),
        sa.Column("public_jwk", sa.JSON(), nullable=False),
        sa.Column("valid_from", sa.DateTime(timezone=True), nullable=True),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("valid_until", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["node_id"], ["nodes.node_id"], name=op.f("fk_node_keys_node_id_nodes")
        ),
        sa.PrimaryKeyConstraint("node_id", "kid", name=op.f("pk_node_keys")),
    )
    op.create_index(op.f("ix_node_keys_kid"), "node_keys", ["kid"], unique=False)
    # The keys the registry already pins become the start of each node's history. When a
    # previous key exists, neither its start nor the moment it was replaced was recorded:
    # its overlap end is the latest it can have been used, and the current key's start is
    # unknown (None: no lower bound).
    rows: list[dict[str, object]] = []
    for node in op.get_bind().execute(sa.select(_nodes)).mappings():
        has_previous = node["previous_kid"] is not None and node["previous_jwk"] is not None
        rows.append(
            {
                "node_id": node["node_id"],
                "kid": node["kid"],
                "public_jwk": node["public_jwk"],
                "valid_from": None if has_previous else node["registered_at"],
                "retired_at": None,
                "valid_until": None,
            }
        )
        if has_previous and node["previous_kid"] != node["kid"]:
            rows.append(
                {
                    "node_id": node["node_id"],
                    "kid": node["previous_kid"],
                    "public_jwk": node["previous_jwk"],
                    "valid_from": node["registered_at"],
                    "retired_at": node["previous_valid_until"],
                    "valid_until": node["previous_valid_until"],
                }
            )
    if rows:
        op.bulk_insert(node_keys, rows)


def downgrade() -> None:
    op.drop_index(op.f("ix_node_keys_kid"), table_name="node_keys")
    op.drop_table("node_keys")
