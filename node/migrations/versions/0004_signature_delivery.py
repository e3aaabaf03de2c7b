"""signature delivery: what the hub said of each version this node signed (issue #23).

Revision ID: 0004
Revises: 0003

The node sends its steward's signature to the pinned hub at once and retries until the hub
confirms; these columns are that outbox and its outcome. A version signed before them is
sent on the next attempt (the hub takes a signature it already holds as it stands).
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("agreements") as batch:
        batch.add_column(sa.Column("hub_received_at", sa.String(length=40), nullable=True))
        batch.add_column(sa.Column("hub_answer", sa.String(length=100), nullable=True))
        batch.add_column(sa.Column("hub_status", sa.String(length=20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("agreements") as batch:
        batch.drop_column("hub_status")
        batch.drop_column("hub_answer")
        batch.drop_column("hub_received_at")
